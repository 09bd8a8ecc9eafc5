"""crd_like.loader composes through libyaml when it can (``compose_with_libyaml``) and
through the bounded pure-Python composer otherwise: both paths must give the same
documents (data, line maps, raw texts, merge tags) or the same errors, for every YAML
file in this repository and for generated text and documents."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import random

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

import crd_like.loader as loader
from crd_like import InvalidSpec
from tests.unit.test_fuzz import FUZZ, HEAD, compose_docs, dump, native_docs, yamlish

REPO = Path(__file__).resolve().parents[2]
FILES = sorted(p for p in REPO.rglob("*.y*ml") if p.suffix in (".yaml", ".yml") and ".git" not in p.parts)

pytestmark = pytest.mark.skipif(not loader.LIBYAML, reason="PyYAML without libyaml: one path only")


def outcome(raw: bytes, yaml12: bool, fast: bool) -> tuple[str, Any]:
    old = loader.LIBYAML
    loader.LIBYAML = fast
    try:
        return "docs", repr(loader.parse_documents(raw, "f.yaml", yaml12=yaml12))  # repr: NaN == NaN
    except InvalidSpec as exc:
        return "invalid", [str(i) for i in exc.issues]
    finally:
        loader.LIBYAML = old


def same(raw: bytes) -> None:
    for yaml12 in (False, True):
        assert outcome(raw, yaml12, True) == outcome(raw, yaml12, False)


def test_the_repository_has_yaml_to_compare() -> None:
    assert len(FILES) > 20


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_repository_files(path: Path) -> None:
    same(path.read_bytes())


@pytest.mark.parametrize(
    "text",
    [
        "a: 1\nb: !!str 5\nc: !reset null\nd: !override [1]\ne: &x {f: g}\nh: *x\n<<: {i: j}\n",
        "k: 'q'\nl: \"dq\"\nm: |\n  block\nn: >\n  folded\no: ! nonspecific\np: 0755\nq: 0o17\nr: yes\ns: 22:22\n",
        "a: 1\n---\n---\nb: 2\n...\n",
        "",
        "a: [1, 2\n",  # syntax error
        "a:\n\tb: 1\n",  # a tab
        "a: 1\na: 2\n",  # duplicate key
        "a: \x07\n",  # control character
        "a: !!int x\n",
        "a: !unknown x\n",
        "x: " + "[" * 70 + "]" * 70 + "\n",  # nesting beyond the bound
        "x: " + "[" * 62 + "]" * 62 + "\n",  # just within it
        "a: &a [1, 2]\nb: [*a, *a, *a]\n",
        "%YAML 1.1\n---\na: 1\n",
        "%YAML 1.2\n---\na: 1\n",
        "%TAG !e! tag:example.com,2000:\n---\na: !e!x 1\n",
        "? [complex, key]\n: v\n",
        "a: 2024-02-30\nb: 2024-02-03\nc: .inf\nd: -.NaN\ne: ~\nf: 1_000\n",
        "\ufeffa: 1\n",
    ],
)
def test_edge_cases(text: str) -> None:
    same(text.encode("utf-8"))


def test_many_values_go_to_the_bounded_composer() -> None:
    text = "a: [" + ", ".join(["1"] * (loader.MAX_NODES + 5)) + "]\n"
    assert loader.compose_with_libyaml(text) is None
    same(text.encode())


def test_the_fast_path_is_taken_for_a_plain_file() -> None:
    nodes = loader.compose_with_libyaml(HEAD)
    assert nodes is not None and isinstance(nodes[0], yaml.MappingNode)
    key, value = nodes[0].value[0]
    assert key.style is None and key.implicit_tag is True  # type: ignore[attr-defined]


@FUZZ
@given(yamlish)
def test_generated_text(text: str) -> None:
    same(text.encode("utf-8", "surrogatepass"))


@FUZZ
@given(yamlish)
def test_generated_text_after_a_valid_head(text: str) -> None:
    same((HEAD + text).encode("utf-8", "surrogatepass"))


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes(raw: bytes) -> None:
    same(raw)


@FUZZ
@given(st.lists(native_docs, min_size=1, max_size=3))
def test_generated_native_documents(docs: list[Any]) -> None:
    same(dump(docs))


@FUZZ
@given(compose_docs)
def test_generated_compose_documents(doc: dict[str, Any]) -> None:
    same(dump([doc]))


# Text in the shape the fast path accepts (crd_like.loader._SIMPLE_LINE), with the scalars
# whose readings differ between schemas and parsers, nested and indented at random (so
# also badly): where the two parsers could disagree, if anywhere.
WORDS = ["a", "web", "1", "0", "007", "1.5", "-1", "yes", "no", "on", "off", "null", "~", "true", "False", "22:22",
         "0o17", "0x1F", "8080:80", "${X}", "${X:-y}", "$$H", "/data", "./d:/d:ro", "a=b", "u@h", "1e3", ".inf", "(x)",
         "a,b", "a{b}", "2024-02-30", "2024-01-01", "1_000", "<<", "a:b", "10s", "x-y", "_", "=", "~x", "+1", "a.b.c",
         "1:2:3"]
KEYS = ["a", "b", "image", "spec", "x-y", "1", "<<", "'q k'", '"d k"', "a.b", "on", "null", "007", "_k", "''", '""',
        "y/z"]


def _value(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.5:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randrange(1, 3)))
    if r < 0.65:
        return "'" + rng.choice([*WORDS, " ", "", "a b", "#x", ": x"]) + "'"
    if r < 0.8:
        return '"' + rng.choice([*WORDS, " ", "", "a b", "#x", ": x"]) + '"'
    if r < 0.85:
        return rng.choice(["[]", "{}", "[ ]", "{ }"])
    items = [rng.choice(["'a'", '"b"', "c", "1", "-f", "8080:80", "${X}", "'x, y'", '"[1]"'])
             for _ in range(rng.randrange(1, 4))]
    return "[" + rng.choice([",", ", ", " , "]).join(items) + rng.choice(["]", " ]"])


def _line(rng: random.Random) -> str:
    indent = " " * rng.choice([0, 0, 1, 2, 2, 3, 4, 4, 6, 8])
    dashes = "- " * rng.choice([0, 0, 0, 1, 1, 2])
    r = rng.random()
    if r < 0.05:
        return rng.choice(["---", "...", "", "  ", indent + "# c"])
    if r < 0.6:
        body = rng.choice(KEYS) + ":" + ("" if rng.random() < 0.3 else " " * rng.choice([1, 1, 2]) + _value(rng))
    elif dashes:
        body = _value(rng)
    else:
        body = rng.choice(KEYS) + ":"
    return indent + dashes + body + rng.choice(["", "", "", " # c", "  #x", " "])


@pytest.mark.parametrize("seed", range(3))
def test_generated_text_of_the_fast_shape(seed: int) -> None:
    rng = random.Random(seed)
    fast = 0
    for _ in range(500):
        text = "\n".join(_line(rng) for _ in range(rng.randrange(1, 9))) + rng.choice(["\n", ""])
        if loader.compose_with_libyaml(text) is not None:
            fast += 1
        same(text.encode())
    assert fast > 30  # many did take the fast path (the rest: syntax errors both reject): not vacuous
