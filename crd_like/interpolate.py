"""Compose variable interpolation and ``.env`` / ``env_file`` parsing. No I/O.

Interpolation follows compose (https://docs.docker.com/reference/compose-file/interpolation/):

=====================  =====================================================
``$VAR``, ``${VAR}``   the value; unset -> empty string and a warning
``${VAR:-default}``    ``default`` if VAR is unset or empty
``${VAR-default}``     ``default`` if VAR is unset
``${VAR:?message}``    error if VAR is unset or empty
``${VAR?message}``     error if VAR is unset
``${VAR:+alt}``        ``alt`` if VAR is set and non-empty, else empty
``${VAR+alt}``         ``alt`` if VAR is set, else empty
``$$``                 a literal ``$``
=====================  =====================================================

Defaults and alternatives may themselves contain ``${...}`` (evaluated only when
used). A ``$`` followed by anything else is kept literally, as compose does; an
unterminated or malformed ``${`` is an error. Only string values are interpolated,
never mapping keys.

The values come from the caller's environment (the process environment) overlaid on
the ``.env`` file beside the first compose file: the process environment wins.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from crd_like.errors import InvalidSpec, Issue
from crd_like.merge import Node

_NAME = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*")
_ENV_KEY = re.compile(r"[_a-zA-Z][_a-zA-Z0-9.\-]*")

Lookup = Callable[[str], "str | None"]


class InterpolationError(ValueError):
    """A required variable is missing, or a ``${`` is malformed."""

    def __init__(self, variable: str | None, message: str):
        self.variable = variable
        super().__init__(message)


def substitute(text: str, lookup: Lookup, on_unset: Callable[[str], None] | None = None) -> str:
    """``text`` with every ``$`` expression replaced. Raises InterpolationError."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c != "$" or i + 1 >= n:
            out.append(c)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "{":
            end = _closing_brace(text, i + 2)
            if end < 0:
                m = _NAME.match(text, i + 2)
                raise InterpolationError(m.group() if m else None,
                                         f"unterminated '${{' in {text!r}: expected '${{VAR}}' (write '$$' for a literal '$')")
            out.append(_braced(text[i + 2:end], lookup, on_unset, text))
            i = end + 1
        else:
            m = _NAME.match(text, i + 1)
            if m is None:  # "$5", "$ ": not a variable, kept as written
                out.append("$")
                i += 1
                continue
            value = lookup(m.group())
            if value is None:
                if on_unset is not None:
                    on_unset(m.group())
                value = ""
            out.append(value)
            i = m.end()
    return "".join(out)


def _closing_brace(text: str, start: int) -> int:
    depth, i = 0, start
    while i < len(text):
        if text.startswith("$$", i):
            i += 2
            continue
        if text.startswith("${", i):
            depth += 1
            i += 2
            continue
        if text[i] == "}":
            if depth == 0:
                return i
            depth -= 1
        i += 1
    return -1


_OPERATORS = (":-", ":?", ":+", "-", "?", "+")


def _braced(body: str, lookup: Lookup, on_unset: Callable[[str], None] | None, whole: str) -> str:
    m = _NAME.match(body)
    if m is None:
        raise InterpolationError(None, f"invalid interpolation '${{{body}}}' in {whole!r}: "
                                       "a variable name is letters, digits and '_', not starting with a digit")
    name, rest = m.group(), body[m.end():]
    value = lookup(name)
    if not rest:
        if value is None:
            if on_unset is not None:
                on_unset(name)
            return ""
        return value
    op = next((o for o in _OPERATORS if rest.startswith(o)), None)
    if op is None:
        raise InterpolationError(name, f"invalid interpolation '${{{body}}}' for variable {name}: expected "
                                       "'${VAR}', '${VAR:-default}', '${VAR-default}', '${VAR:?error}', "
                                       "'${VAR?error}' or '${VAR:+alternative}'")
    return _operator(name, value, op, rest[len(op):], lookup, on_unset)


def _operator(name: str, value: str | None, op: str, arg: str, lookup: Lookup,
              on_unset: Callable[[str], None] | None) -> str:
    """``${NAME<op><arg>}`` for a variable whose value is ``value`` (None: unset); with a
    ``:`` the empty string counts as unset."""
    is_set = value is not None and (value != "" or not op.startswith(":"))
    if op in (":-", "-"):
        return value if is_set and value is not None else substitute(arg, lookup, on_unset)
    if op in (":?", "?"):
        if not is_set or value is None:
            why = "is missing a value" if value is None else "is empty"
            raise InterpolationError(name, f"required variable {name} {why}" + (f": {arg}" if arg else ""))
        return value
    return substitute(arg, lookup, on_unset) if is_set else ""


def interpolate_tree(node: Node, env: Mapping[str, str], issues: list[Issue], warnings: list[str]) -> Node:
    """Interpolate every string value below ``node`` in place (keys are left alone).

    Problems become issues located at the value's file, line and field; unset
    variables without a default become empty strings and a warning, as in compose."""
    if isinstance(node.value, dict):
        for child in node.value.values():
            interpolate_tree(child, env, issues, warnings)
    elif isinstance(node.value, list):
        for child in node.value:
            interpolate_tree(child, env, issues, warnings)
    elif isinstance(node.value, str) and "$" in node.value:
        def unset(name: str) -> None:
            warnings.append(str(Issue(node.file, node.line, node.field,
                                      f"variable {name} is not set; substituting an empty string")))

        used: list[str] = []

        def lookup(name: str) -> str | None:
            used.append(name)
            return env.get(name)

        try:
            node.value = substitute(node.value, lookup, unset)
            node.interpolated = bool(used)
            node.variables = tuple(used)
        except InterpolationError as exc:
            issues.append(Issue(node.file, node.line, node.field, str(exc)))
    return node


# ---------------------------------------------------------------------------- .env files
def parse_env_file(raw: bytes, file: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``KEY=VALUE`` lines (compose's dotenv format) -> dict. Raises InvalidSpec with lines.

    Blank lines and ``#`` comments are skipped; ``export KEY=V`` is accepted; values may
    be unquoted (an inline comment starts at `` #``), single-quoted (literal) or
    double-quoted (``\\n``, ``\\t``, ``\\"``, ``\\\\`` escapes); quoted values may span
    lines. Unquoted and double-quoted values are interpolated, looking variables up in
    ``environ`` first, then in the keys defined earlier in the same file. A line with
    only ``KEY`` takes the value from ``environ`` (and is skipped when it is not there).
    """
    environ = environ or {}
    lines = _decoded(raw, file).splitlines()
    out: dict[str, str] = {}
    issues: list[Issue] = []

    def lookup(name: str) -> str | None:
        return environ.get(name, out.get(name))

    i = 0
    while i < len(lines):
        lineno, line = i + 1, lines[i].strip()
        i += 1
        if not line or line.startswith("#"):
            continue
        if line.startswith(("export ", "export\t")):
            line = line[7:].lstrip()
        key, eq, rest = line.partition("=")
        key = key.strip()
        if not _ENV_KEY.fullmatch(key):
            # the line itself is not quoted: env files hold secrets
            issues.append(Issue(file, lineno, "", "invalid line: expected KEY=VALUE (KEY: letters, digits, '_', "
                                                  "'.' and '-', not starting with a digit)"))
            continue
        if not eq:
            if key in environ:
                out[key] = environ[key]
            continue
        value, i = _with_continuation(rest.lstrip(), lines, i)
        try:
            out[key] = _env_value(key, value, lookup)
        except InterpolationError as exc:
            issues.append(Issue(file, lineno, key, str(exc)))
    if issues:
        raise InvalidSpec(issues)
    return out


def _decoded(raw: bytes, file: str) -> str:
    try:
        return raw.decode("utf-8").lstrip("\ufeff")
    except UnicodeDecodeError as exc:
        at = raw[: exc.start].count(b"\n") + 1
        raise InvalidSpec([Issue(file, at, "", f"not valid UTF-8: {exc.reason}")]) from None


def _with_continuation(rest: str, lines: list[str], i: int) -> tuple[str, int]:
    """A quoted value goes on over the following lines until its closing quote: the
    value's whole text and the index of the line after it."""
    if rest[:1] not in ("'", '"'):
        return rest, i
    quote = rest[0]
    while _closing_quote(rest[1:], quote) < 0 and i < len(lines):
        rest += "\n" + lines[i]
        i += 1
    return rest, i


def _env_value(key: str, rest: str, lookup: Lookup) -> str:
    """The value of ``KEY=rest``: unquoted (an inline comment starts at whitespace and
    ``#``), single-quoted (literal) or double-quoted (escapes). Raises InterpolationError."""
    if rest[:1] not in ("'", '"'):
        return substitute(re.split(r"\s#", rest, maxsplit=1)[0].rstrip(), lookup)
    quote, body = rest[0], rest[1:]
    end = _closing_quote(body, quote)
    if end < 0:
        raise InterpolationError(key, f"unterminated {quote} quote in the value of {key}")
    value, tail = body[:end], body[end + 1:].strip()
    if tail and not tail.startswith("#"):
        raise InterpolationError(key, f"unexpected text after the quoted value of {key}")
    return substitute(_unescape(value), lookup) if quote == '"' else value


def _closing_quote(body: str, quote: str) -> int:
    i = 0
    while i < len(body):
        if quote == '"' and body[i] == "\\":
            i += 2
            continue
        if body[i] == quote:
            return i
        i += 1
    return -1


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$$"}


def _unescape(value: str) -> str:
    # "\$" stays a literal dollar through the interpolation that follows
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)), value)
