"""scripts/complexity.py, the complexity bar of scripts/check.sh: what it counts."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _gate() -> ModuleType:
    spec = importlib.util.spec_from_file_location("complexity_gate", ROOT / "scripts" / "complexity.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


GATE = _gate()
BRANCHES = "\n".join(f"    if x == {i}:\n        return {i}" for i in range(15))  # 15 branches: complexity 16


@pytest.mark.parametrize(("source", "expected"), [
    ("def f(a, b, c, d, e, f, g):\n    pass\n", []),
    ("def f(a, b, c, d, e, f, g, h):\n    pass\n", ["m.py::f: 8 parameters > 7"]),
    ("def f(a, *args, b, c, d, e, f, **kw):\n    pass\n", ["m.py::f: 8 parameters > 7"]),
    ("class C:\n    def m(self, a, b, c, d, e, f, g):\n        pass\n", []),  # self is not counted
    ("class C:\n    @staticmethod\n    def m(self, a, b, c, d, e, f, g):\n        pass\n",
     ["m.py::C.m: 8 parameters > 7"]),  # ... but a static method's first parameter is
    (f"def f(x):\n{BRANCHES}\n", ["m.py::f: cyclomatic complexity 16 > 15"]),
    (f"def f(x):\n    def inner(x):\n{textwrap.indent(BRANCHES, '    ')}\n    return inner\n",
     ["m.py::f.inner: cyclomatic complexity 16 > 15"]),  # a closure is measured on its own
    ("from dataclasses import dataclass\n@dataclass\nclass D:\n" + "".join(f"    a{i}: int\n" for i in range(9)), []),
])
def test_what_the_gate_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str,
                              expected: list[str]) -> None:
    monkeypatch.setattr(GATE, "ROOT", tmp_path)
    path = tmp_path / "m.py"
    path.write_text(source)
    found = [f"{o.key}: {'; '.join(o.problems)}" for o in GATE.offences(path)]
    assert found == expected


def test_every_function_above_the_bar_is_allowlisted() -> None:
    still = {o.key for pkg in GATE.PACKAGES for f in (ROOT / pkg).rglob("*.py") for o in GATE.offences(f)}
    assert still <= GATE.allowed(), sorted(still - GATE.allowed())
