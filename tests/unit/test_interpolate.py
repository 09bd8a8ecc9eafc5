"""crd_like.interpolate: compose's ${VAR} syntax, .env parsing, and errors located at file:line."""

from __future__ import annotations

import pytest

from crd_like import InvalidSpec
from crd_like.formats import LoadOptions, load_any
from crd_like.interpolate import InterpolationError, parse_env_file, substitute

ENV = {"SET": "value", "EMPTY": "", "PORT": "8080", "NESTED": "inner"}


@pytest.mark.parametrize(("text", "expected"), [
    ("plain", "plain"),
    ("$SET", "value"),
    ("${SET}", "value"),
    ("pre-${SET}-post", "pre-value-post"),
    ("$SET/$PORT", "value/8080"),
    ("${UNSET}", ""),
    ("$UNSET", ""),
    ("${SET:-d}", "value"),
    ("${EMPTY:-d}", "d"),
    ("${UNSET:-d}", "d"),
    ("${SET-d}", "value"),
    ("${EMPTY-d}", ""),
    ("${UNSET-d}", "d"),
    ("${UNSET:-}", ""),
    ("${UNSET:-with spaces and :colons}", "with spaces and :colons"),
    ("${SET:?must be set}", "value"),
    ("${EMPTY?may be empty}", ""),
    ("${SET:+alt}", "alt"),
    ("${EMPTY:+alt}", ""),
    ("${UNSET:+alt}", ""),
    ("${SET+alt}", "alt"),
    ("${EMPTY+alt}", "alt"),
    ("${UNSET+alt}", ""),
    ("${UNSET:-${NESTED}}", "inner"),
    ("${UNSET:-${ALSO_UNSET:-deep}}", "deep"),
    ("${SET:+${PORT}}", "8080"),
    ("$$", "$"),
    ("$${SET}", "${SET}"),
    ("$$SET", "$SET"),
    ("costs $$5", "costs $5"),
    ("costs $5", "costs $5"),  # not a variable name: kept as written, like compose
    ("trailing $", "trailing $"),
    ("a $ b", "a $ b"),
    ("${SET}${PORT}", "value8080"),
    ("$SET_SUFFIX", ""),  # the name runs on: SET_SUFFIX is unset
    ("${SET}_SUFFIX", "value_SUFFIX"),
    ("${UNSET:-a}b}", "ab}"),
])
def test_substitution(text: str, expected: str) -> None:
    assert substitute(text, ENV.get) == expected


def test_default_is_only_evaluated_when_used() -> None:
    assert substitute("${SET:-${MISSING:?never evaluated}}", ENV.get) == "value"
    with pytest.raises(InterpolationError):
        substitute("${UNSET:-${MISSING:?evaluated}}", ENV.get)


@pytest.mark.parametrize(("text", "variable", "fragment"), [
    ("${UNSET:?set UNSET please}", "UNSET", "required variable UNSET is missing a value: set UNSET please"),
    ("${EMPTY:?no empties}", "EMPTY", "required variable EMPTY is empty: no empties"),
    ("${UNSET?}", "UNSET", "required variable UNSET is missing a value"),
    ("${SET", "SET", "unterminated '${'"),
    ("${", None, "unterminated '${'"),
    ("${}", None, "invalid interpolation '${}'"),
    ("${1ABC}", None, "invalid interpolation"),
    ("${SET:x}", "SET", "invalid interpolation '${SET:x}' for variable SET"),
    ("${SET!}", "SET", "invalid interpolation"),
    ("${UNSET:-${ALSO}", None, "unterminated '${'"),
])
def test_substitution_errors(text: str, variable: str | None, fragment: str) -> None:
    with pytest.raises(InterpolationError) as info:
        substitute(text, ENV.get)
    assert fragment in str(info.value)
    if variable is not None:
        assert info.value.variable == variable


def test_unset_variables_are_reported() -> None:
    seen: list[str] = []
    assert substitute("${A}-$B-${C:-x}-${D-y}", {}.get, seen.append) == "--x-y"
    assert seen == ["A", "B"]


# ------------------------------------------------------------------------------ .env files
DOTENV = b"""\
# comment line

PLAIN=hello world
export EXPORTED=yes
SPACED = padded
INLINE=value # a comment
HASH=no#comment
SINGLE='literal $PLAIN \\n'
DOUBLE="expanded ${PLAIN} \\"quoted\\"\\tand\\nnewline"
MULTI="first
second"
REF=${PLAIN}!
DEFAULTED=${NOPE:-fallback}
EMPTY=
DOLLAR="\\$HOME stays"
FROM_ENV
NOT_IN_ENV
"""


def test_dotenv_parsing() -> None:
    values = parse_env_file(DOTENV, ".env", {"FROM_ENV": "from-process"})
    assert values == {
        "PLAIN": "hello world",
        "EXPORTED": "yes",
        "SPACED": "padded",
        "INLINE": "value",
        "HASH": "no#comment",
        "SINGLE": "literal $PLAIN \\n",
        "DOUBLE": 'expanded hello world "quoted"\tand\nnewline',
        "MULTI": "first\nsecond",
        "REF": "hello world!",
        "DEFAULTED": "fallback",
        "EMPTY": "",
        "DOLLAR": "$HOME stays",
        "FROM_ENV": "from-process",
    }


def test_dotenv_lookups_prefer_the_process_environment() -> None:
    assert parse_env_file(b"A=file\nB=${A}\n", ".env", {"A": "process"})["B"] == "process"


@pytest.mark.parametrize(("text", "line", "fragment"), [
    (b"OK=1\nnot a valid line\n", 2, "invalid line"),
    (b"OK=1\n\nBAD KEY=1\n", 3, "invalid line"),
    (b'A="unterminated\nB=2\n', 1, "unterminated \" quote"),
    (b"A='x' trailing\n", 1, "unexpected text"),
    (b"A=1\nB=${MISSING:?needed}\n", 2, "required variable MISSING is missing a value: needed"),
])
def test_dotenv_errors_have_lines(text: bytes, line: int, fragment: str) -> None:
    with pytest.raises(InvalidSpec) as info:
        parse_env_file(text, "app/.env")
    issue = info.value.issues[0]
    assert (issue.file, issue.line) == ("app/.env", line)
    assert fragment in issue.message


# ------------------------------------------------------------------------------ in a compose file
COMPOSE = """\
name: ct-interp
services:
  web:
    image: reconcile/demo-web:${TAG:-1}
    command: ["echo", "$$HOME", "${GREETING}"]
    environment:
      URL: http://${HOST:?set HOST}:${PORT:-80}/
      RAW: "$${NOT_A_VAR}"
      ${NOT_INTERPOLATED}: key
"""


def load(text: str, environ: dict[str, str], dotenv: bytes | None = None, opts: dict | None = None) -> tuple[list, LoadOptions]:
    files = {"/p/ct/.env": dotenv} if dotenv is not None else {}

    def read(path: str) -> bytes:
        if path not in files:
            raise FileNotFoundError(path)
        return files[path]

    o = LoadOptions(environ=environ, read_file=read, **(opts or {}))
    return load_any([(text.encode(), "ct/docker-compose.yml", "/p/ct")], o), o


def test_compose_values_are_interpolated_and_keys_are_not() -> None:
    [web], opts = load(COMPOSE, {"HOST": "db", "GREETING": "hi"})
    assert web.spec.image == "reconcile/demo-web:1"
    assert web.spec.command == ["echo", "$HOME", "hi"]
    assert web.spec.env == {"URL": "http://db:80/", "RAW": "${NOT_A_VAR}", "${NOT_INTERPOLATED}": "key"}
    assert opts.warnings == []


def test_process_environment_wins_over_dotenv() -> None:
    [web], _ = load(COMPOSE, {"HOST": "from-shell", "GREETING": "x"}, b"HOST=from-dotenv\nTAG=2\nPORT=81\n")
    assert web.spec.env["URL"] == "http://from-shell:81/"
    assert web.spec.image == "reconcile/demo-web:2"


def test_dotenv_beside_the_first_file_supplies_values() -> None:
    [web], _ = load(COMPOSE, {}, b"HOST=db\nGREETING=hello\n")
    assert web.spec.env["URL"] == "http://db:80/"
    assert web.spec.command == ["echo", "$HOME", "hello"]


def test_unset_variable_warns_with_location() -> None:
    _, opts = load(COMPOSE, {"HOST": "db"})
    assert opts.warnings == ["ct/docker-compose.yml:5: services.web.command[2]: "
                             "variable GREETING is not set; substituting an empty string"]


@pytest.mark.parametrize(("replace", "line", "field", "fragment"), [
    (None, 7, "services.web.environment.URL", "required variable HOST is missing a value: set HOST"),
    (("${TAG:-1}", "${TAG"), 4, "services.web.image", "unterminated '${'"),
    (("${GREETING}", "${GREETING:oops}"), 5, "services.web.command[2]", "invalid interpolation"),
])
def test_interpolation_errors_name_file_line_and_field(replace: tuple[str, str] | None, line: int, field: str,
                                                        fragment: str) -> None:
    text = COMPOSE if replace is None else COMPOSE.replace(*replace)
    env = {"GREETING": "x"} if replace is None else {"HOST": "h", "GREETING": "x"}
    with pytest.raises(InvalidSpec) as info:
        load(text, env)
    [issue] = info.value.issues
    assert (issue.file, issue.line, issue.field) == ("ct/docker-compose.yml", line, field)
    assert fragment in issue.message


def test_dotenv_errors_point_into_the_dotenv_file() -> None:
    with pytest.raises(InvalidSpec) as info:
        load(COMPOSE, {"HOST": "h"}, b"# settings\nGREETING=${NOPE:?define NOPE}\n")
    [issue] = info.value.issues
    assert (issue.file, issue.line) == ("ct/.env", 2)
    assert "required variable NOPE" in issue.message


def test_compose_project_name_is_available_for_interpolation() -> None:
    text = "name: ct-proj\nservices:\n  a:\n    image: x\n    environment:\n      P: ${COMPOSE_PROJECT_NAME}\n"
    [a], _ = load(text, {})
    assert a.spec.env == {"P": "ct-proj"}


def test_interpolated_values_are_converted_by_the_models() -> None:
    text = ("name: ct-proj\nservices:\n  a:\n    image: x\n    init: ${INIT:-true}\n"
            "    deploy:\n      replicas: ${N:-3}\n    stop_grace_period: ${GRACE:-1m30s}\n")
    [a], _ = load(text, {})
    assert (a.spec.init, a.spec.replicas, a.spec.stopGracePeriod) == (True, 3, 90.0)


# ------------------------------------------------------------------ dotenv: one parser, compose's rules
@pytest.mark.parametrize(("text", "expected"), [
    (b"A=foo # note\n", {"A": "foo"}),  # an inline comment starts at whitespace + '#'
    (b"A=foo#bar\n", {"A": "foo#bar"}),  # ... not at a bare '#'
    (b"A=  spaced  \n", {"A": "spaced"}),  # unquoted values are trimmed
    (b"A='x # y' # c\n", {"A": "x # y"}),  # single quotes: literal, a comment may follow
    (b"A='${X}'\n", {"A": "${X}"}),  # ... and never interpolated
    (b'A="a\\tb\\$X"\n', {"A": "a\tb$X"}),  # double quotes: escapes; '\$' is a literal dollar
    (b'A="${X}-y"\n', {"A": "from-env-y"}),  # ... and interpolated
    (b"A=1\nB=${A}-x\n", {"A": "1", "B": "1-x"}),  # earlier keys of the file
    (b"X=file\nB=$X\n", {"X": "file", "B": "from-env"}),  # the given environment wins over the file
    (b"B=${UNSET:-d}\n", {"B": "d"}),
    (b'A="line1\nline2"\nB=2\n', {"A": "line1\nline2", "B": "2"}),  # quoted values span lines
    (b"export A=1\n# comment\n\n", {"A": "1"}),
    (b"X\nY\n", {"X": "from-env"}),  # a bare KEY: from the environment, skipped when unset
    (b"\xef\xbb\xbfA=1\r\n", {"A": "1"}),  # BOM and CRLF
])
def test_dotenv_values(text: bytes, expected: dict[str, str]) -> None:
    assert parse_env_file(text, ".env", {"X": "from-env"}) == expected


@pytest.mark.parametrize(("text", "where"), [
    (b'A="x" trailing\n', [(1, "A", "unexpected text after the quoted value of A")]),
    (b'A="open\nB=2\nC=3\n', [(1, "A", 'unterminated " quote in the value of A')]),  # the rest is the value
    (b"OK=1\nnot a line\n", [(2, "", "invalid line")]),
    (b"A=${\n", [(1, "A", "unterminated '${'")]),
    (b"A=1\n\xff=2\n", [(2, "", "not valid UTF-8")]),
])
def test_dotenv_errors_name_the_line(text: bytes, where: list[tuple[int, str, str]]) -> None:
    with pytest.raises(InvalidSpec) as info:
        parse_env_file(text, ".env", {})
    assert [(i.file, i.line, i.field) for i in info.value.issues] == [(".env", line, f) for line, f, _m in where]
    assert all(m in i.message for i, (_l, _f, m) in zip(info.value.issues, where, strict=True))
