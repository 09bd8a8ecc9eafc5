"""The complexity bar (scripts/check.sh runs it): no function or method in controller/,
crd_like/ or store/ above cyclomatic complexity 15 (radon's measure: grade C and worse) and
none with more than 7 parameters (``self``/``cls`` not counted; dataclass-generated
``__init__`` methods do not exist in the source, so they are never counted).

Nested functions are measured on their own, as radon measures them: a closure's branches
do not count towards the function that defines it.

Exceptions are listed in scripts/complexity-allow.txt, one ``path::qualified.name`` a
line (``#`` comments allowed); the list is meant to shrink to empty. An entry that is no
longer needed is reported (so that it gets deleted) but does not fail the check.

Usage: python3 scripts/complexity.py [--all]   (``--all``: ignore the allowlist)
Exit 0 when everything is within the bar, 1 otherwise (each offender on its own line).
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

from radon.visitors import ComplexityVisitor  # type: ignore[import-untyped]  # radon ships no type hints

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("controller", "crd_like", "store")
ALLOWLIST = ROOT / "scripts" / "complexity-allow.txt"
MAX_COMPLEXITY = 15
MAX_PARAMETERS = 7

FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef


@dataclass(frozen=True)
class Offence:
    key: str  # path::qualified.name
    line: int
    problems: tuple[str, ...]

    def __str__(self) -> str:
        path, name = self.key.split("::", 1)
        return f"{path}:{self.line}: {name}: {'; '.join(self.problems)}"


def parameters(node: FunctionNode, in_class: bool) -> int:
    """Named parameters (positional-only, ordinary, keyword-only, ``*args``, ``**kwargs``),
    without a method's leading ``self``/``cls``."""
    a = node.args
    names = [p.arg for p in (*a.posonlyargs, *a.args)]
    count = len(names) + len(a.kwonlyargs) + (a.vararg is not None) + (a.kwarg is not None)
    is_static = any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in node.decorator_list)
    if in_class and not is_static and names and names[0] in ("self", "cls", "mcs"):
        count -= 1
    return count


def complexity(node: FunctionNode) -> int:
    return int(ComplexityVisitor.from_ast(node).functions[0].complexity)


def offences(path: Path) -> list[Offence]:
    rel = path.relative_to(ROOT).as_posix()
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
    found: list[Offence] = []

    def visit(node: ast.AST, prefix: str, in_class: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.", True)
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                problems = []
                cc = complexity(child)
                if cc > MAX_COMPLEXITY:
                    problems.append(f"cyclomatic complexity {cc} > {MAX_COMPLEXITY}")
                n = parameters(child, in_class)
                if n > MAX_PARAMETERS:
                    problems.append(f"{n} parameters > {MAX_PARAMETERS}")
                if problems:
                    found.append(Offence(f"{rel}::{prefix}{child.name}", child.lineno, tuple(problems)))
                visit(child, f"{prefix}{child.name}.", False)
            else:
                visit(child, prefix, in_class)

    visit(tree, "", False)
    return found


def allowed() -> set[str]:
    if not ALLOWLIST.exists():
        return set()
    lines = (line.split("#", 1)[0].strip() for line in ALLOWLIST.read_text(encoding="utf-8").splitlines())
    return {line for line in lines if line}


def main(argv: list[str]) -> int:
    allow = set() if "--all" in argv else allowed()
    every = [o for pkg in PACKAGES for f in sorted((ROOT / pkg).rglob("*.py")) for o in offences(f)]
    failing = [o for o in every if o.key not in allow]
    for o in failing:
        print(o)
    for key in sorted(allow - {o.key for o in every}):
        print(f"complexity: {key} is within the bar now: delete it from {ALLOWLIST.relative_to(ROOT)}",
              file=sys.stderr)
    if failing:
        print(f"complexity: {len(failing)} function(s) above complexity {MAX_COMPLEXITY} or with more than "
              f"{MAX_PARAMETERS} parameters (split them by meaning; see scripts/complexity.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
