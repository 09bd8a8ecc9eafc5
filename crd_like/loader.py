"""Turns YAML text into validated resources, with file:line for every problem.

The YAML is composed into nodes first so each value's line is known; duplicate
keys, tabs, bad encodings and alias bombs (billion laughs) are rejected with a
location. Every document is validated before anything is returned: an apply of
a file with one bad document writes nothing. The caller reads the file (this
module does no I/O) and passes its bytes, its display name and its directory
(relative bind-mount paths are resolved against that directory).

Two scalar schemas: native reconcile files keep PyYAML's YAML 1.1 rules (their values
are validated by field type, and text maps keep the text as written); compose files
are read as compose reads them, with the YAML 1.2 core schema (``parse_documents(...,
yaml12=True)``): only ``true``/``false`` are booleans (``on``, ``yes``, ``no``, ``off``
are strings), ``22:22`` is the string "22:22" (no base 60), ``0o755`` is octal, ``0x1F``
hex, ``0755`` the decimal integer 755 (compose-go's YAML library would read a legacy
``0755`` as octal; reconcile keeps the YAML 1.2 reading, and env/label values keep the
text as written anyway), and timestamps stay strings. The compose merge tags ``!reset``
and ``!override`` are recorded per path (``Document.tags``); in a native file they are
an error.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import ValidationError

from crd_like.errors import InvalidSpec, Issue
from crd_like.registry import kind_for

# Values per file (aliases expanded when built). Far beyond any real spec; pure-Python
# PyYAML composes about 40k values per CPU second, so this also bounds the CPU time (and
# memory) of a hostile or accidental file to a couple of seconds.
MAX_NODES = 100_000
MAX_BYTES = 8 * 1024 * 1024
MAX_DEPTH = 64

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Document:
    """One YAML document: its data and the line of every value in it."""

    file: str
    index: int
    data: Any
    lines: dict[Path, int]
    start_line: int
    raw: dict[Path, str] | None = None
    tags: dict[Path, str] | None = None  # compose merge tags: path -> "reset" | "override"

    def line_of(self, path: Path) -> int:
        """The line of ``path``, or of its nearest ancestor that exists."""
        for cut in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:cut]))
            if line is not None:
                return line
        return self.start_line


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, composing within bounds.

    The composer is recursive and builds every node of a document before ``_Builder`` can
    count anything: 500 nested '[' end in a RecursionError, and an 8 MiB file of plain
    entries costs half a minute of CPU and most of a gigabyte. Counting here stops both
    at the first node beyond the bound, with its line."""

    def __init__(self, text: str, file: str):
        super().__init__(text)
        self.file = file
        self.depth = 0
        self.nodes = 0

    def compose_scalar_node(self, anchor: Any) -> yaml.ScalarNode:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        node: yaml.ScalarNode = super().compose_scalar_node(anchor)
        node.implicit_tag = event.tag is None or event.tag == "!"  # type: ignore[attr-defined]
        return node

    def documents(self) -> Iterator[yaml.Node | None]:
        while self.check_node():
            yield self.get_node()

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self.nodes += 1  # an alias counts once here; _Builder counts what it expands to
        # the root is depth 1 (and path () in _Builder): deeper than MAX_DEPTH + 1 is what
        # _Builder would refuse anyway
        self.depth += 1
        try:
            if self.nodes > MAX_NODES or self.depth > MAX_DEPTH + 1:
                line = self.peek_event().start_mark.line + 1  # type: ignore[no-untyped-call]
                problem = (f"more than {MAX_NODES} values in one file; refusing to load it" if self.nodes > MAX_NODES
                           else f"nesting deeper than {MAX_DEPTH} levels; refusing to load it")
                raise InvalidSpec([Issue(self.file, line, "", problem)])
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


# libyaml (PyYAML's C extension) composes about ten times faster than the pure-Python
# composer above, but runs its own composer in C, where _Loader's bounds cannot be
# counted. So it is used only for a file its C parser reads without error and whose
# parse events (a second C pass, counted here) stay clearly within the bounds; anything
# else goes to _Loader, which gives the bounds' and every syntax error's own message.
# libyaml is also more lenient than PyYAML in places (a tab after a plain scalar, a byte
# order mark inside the stream, `>1#` as a block scalar header), so only text in which
# every line has the plain shape of a typical stack file takes this path (_SIMPLE_LINE:
# printable ASCII; `key: value`, `- item` and comments; plain words, quotes without
# escapes, flow lists of those; no anchors, tags, block scalars or directives). Anything
# else keeps PyYAML's own rules. The nodes are then made to look like _Loader's (plain
# scalars' style None, the implicit_tag mark); tests/unit/test_loader_libyaml.py holds
# the two paths equal on the repository's files and on text generated from this shape.
_FAST_MARGIN = 4
_WORD = r"[A-Za-z0-9_/$~(][A-Za-z0-9_./:@$=(){}+,~\-]*(?<!:)"  # a plain word: no ': ', no trailing ':'
_SQ, _DQ = r"'[^'\n]*'", r'"[^"\\\n]*"'
_ITEM = rf"(?:{_SQ}|{_DQ}|[A-Za-z0-9_/$~(][A-Za-z0-9_./:@$=()+~\-]*(?<!:))"
_VALUE = rf"(?:{_WORD}(?: {_WORD})*|{_SQ}|{_DQ}|\[ *\]|\{{ *\}}|\[ *{_ITEM}(?: *, *{_ITEM})* *\])"
_KEY = rf"(?:[A-Za-z0-9_][A-Za-z0-9_./\-]*|{_SQ}|{_DQ})"
_SIMPLE_LINE = re.compile(
    rf"(?: *(?:- )*(?:{_KEY}:(?: +{_VALUE})?|(?<=- ){_VALUE})?(?: +#[ -~]*| *)|---|\.\.\.| *#[ -~]*)")
LIBYAML = bool(getattr(yaml, "__with_libyaml__", False))


def _simple(text: str) -> bool:
    match = _SIMPLE_LINE.fullmatch
    return text.isascii() and all(match(line) for line in text.split("\n"))


def compose_with_libyaml(text: str) -> list[yaml.Node | None] | None:
    """The documents' nodes as _Loader composes them, through libyaml; None when libyaml is
    missing or the pure-Python composer must decide (a syntax error, near a bound)."""
    if not LIBYAML or not _simple(text):
        return None
    try:
        explicit = _explicit_tags_within_bounds(text)
        if explicit is None:
            return None
        loader = yaml.CSafeLoader(text)
        try:
            nodes: list[yaml.Node | None] = []
            while loader.check_node():
                nodes.append(loader.get_node())
        finally:
            loader.dispose()
    except (yaml.YAMLError, RecursionError, ValueError, TypeError):
        return None
    _as_pure_python(nodes, explicit)
    return nodes


def _explicit_tags_within_bounds(text: str) -> set[int] | None:
    """The start indexes of the scalars with an explicit tag, counted on libyaml's parse
    events; None near the node or depth bound (the pure-Python composer enforces them)."""
    explicit: set[int] = set()
    count = depth = 0
    scalar, alias = yaml.ScalarEvent, yaml.AliasEvent
    opening, closing = (yaml.MappingStartEvent, yaml.SequenceStartEvent), (yaml.MappingEndEvent, yaml.SequenceEndEvent)
    for event in yaml.parse(text, Loader=yaml.CSafeLoader):
        if isinstance(event, scalar):
            count += 1
            if event.tag is not None and event.tag != "!" and event.start_mark is not None:
                explicit.add(event.start_mark.index)
        elif isinstance(event, opening):
            count += 1
            depth += 1
            if depth + 1 > MAX_DEPTH - _FAST_MARGIN:
                return None
        elif isinstance(event, closing):
            depth -= 1
        elif isinstance(event, alias):
            count += 1
        if count > MAX_NODES - _FAST_MARGIN:
            return None
    return explicit


def _as_pure_python(nodes: list[yaml.Node | None], explicit: set[int]) -> None:
    """libyaml's nodes made to look like PyYAML's composer's: plain style as None, and
    ``implicit_tag`` on every scalar (True unless its tag was written)."""
    seen: set[int] = set()
    todo = [n for n in nodes if n is not None]
    while todo:
        node = todo.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.ScalarNode):
            if node.style == "":
                node.style = None  # libyaml's plain style; PyYAML's is None
            node.implicit_tag = node.start_mark.index not in explicit  # type: ignore[attr-defined]
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                todo.append(key)
                todo.append(value)
        else:
            todo.extend(node.value)


MERGE_TAGS = {"!reset": "reset", "!override": "override"}

# YAML 1.2 core schema (https://yaml.org/spec/1.2.2/#1032-tag-resolution), for compose input
_Y12 = (
    ("tag:yaml.org,2002:null", re.compile(r"^(~|null|Null|NULL|)$")),
    ("tag:yaml.org,2002:bool", re.compile(r"^(true|True|TRUE|false|False|FALSE)$")),
    ("tag:yaml.org,2002:int", re.compile(r"^([-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")),
    ("tag:yaml.org,2002:float", re.compile(r"^([-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?"
                                           r"|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN))$")),
)


def _core12(value: str) -> Any:
    """A plain scalar's value under the YAML 1.2 core schema."""
    for tag, pattern in _Y12:
        if pattern.match(value):
            if tag.endswith("null"):
                return None
            if tag.endswith("bool"):
                return value.lower() == "true"
            if tag.endswith("int"):
                if value.startswith("0o"):
                    return int(value[2:], 8)
                if value.startswith("0x"):
                    return int(value[2:], 16)
                return int(value, 10)
            low = value.lower()
            if low.endswith(("inf", "nan")):
                return float(low.replace(".", ""))
            return float(value)
    return value


class _Builder:
    def __init__(self, file: str, yaml12: bool = False):
        self.file = file
        self.yaml12 = yaml12
        self.tags: dict[Path, str] = {}
        self.budget = MAX_NODES
        self.lines: dict[Path, int] = {}
        self.constructor = yaml.SafeLoader("")
        self.raw: dict[Path, str] = {}  # text of plain scalars that YAML 1.1 would reinterpret

    def build(self, node: yaml.Node, path: Path) -> Any:
        self.budget -= 1
        if self.budget < 0:
            raise InvalidSpec(
                [Issue(self.file, node.start_mark.line + 1, _fmt(path),
                       f"document expands to more than {MAX_NODES} values "
                       "(an alias bomb?); refusing to load it")]
            )
        self.lines.setdefault(path, node.start_mark.line + 1)
        if node.tag in MERGE_TAGS:
            self.tags[path] = MERGE_TAGS[node.tag]
        if len(path) > MAX_DEPTH:
            raise InvalidSpec([Issue(self.file, node.start_mark.line + 1, _fmt(path[:8]) + "...",
                                     f"nesting deeper than {MAX_DEPTH} levels; refusing to load it")])
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(child, (*path, i)) for i, child in enumerate(node.value)]
        assert isinstance(node, yaml.ScalarNode)
        return self._scalar(node, path)

    def _scalar(self, node: yaml.ScalarNode, path: Path) -> Any:
        implicit = getattr(node, "implicit_tag", False)
        if node.tag in MERGE_TAGS:  # `!reset value`: the value as if untagged
            implicit = node.style is None
            tag = "tag:yaml.org,2002:str" if node.style is not None else self.constructor.resolve(  # type: ignore[no-untyped-call]
                yaml.ScalarNode, node.value, (True, False))
            node = yaml.ScalarNode(tag, node.value, node.start_mark, node.end_mark, node.style)
        if self.yaml12 and implicit and node.style is None:
            value = _core12(node.value)
            if not isinstance(value, str):
                self.raw[path] = node.value
            return value
        if node.style is None and node.tag != "tag:yaml.org,2002:str":
            self.raw[path] = node.value
        try:
            return self.constructor.construct_object(node, deep=True)
        except yaml.MarkedYAMLError as exc:  # e.g. an unknown tag: the problem, without PyYAML's own location
            raise InvalidSpec([Issue(self.file, node.start_mark.line + 1, _fmt(path),
                                     f"{exc.problem or exc.context or 'invalid value'} (YAML)")]) from None
        except yaml.YAMLError as exc:
            raise InvalidSpec([Issue(self.file, node.start_mark.line + 1, _fmt(path), str(exc))]) from None
        except (ValueError, LookupError, AttributeError, TypeError, ArithmeticError) as exc:
            # SafeConstructor converts resolved scalars with plain Python calls and lets their
            # errors through: 2024-02-30 (datetime), an int of 5000 digits, an empty !!int
            # (IndexError), !!bool maybe (KeyError), !!timestamp x (AttributeError).
            raise InvalidSpec([Issue(self.file, node.start_mark.line + 1, _fmt(path),
                                     _scalar_message(node, exc))]) from None

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        explicit: set[Any] = set()
        merged: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or (
                    self.yaml12 and key_node.value == "<<" and getattr(key_node, "implicit_tag", False)):
                sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                for src in sources:
                    val = self.build(src, path)
                    if not isinstance(val, dict):
                        raise InvalidSpec([Issue(self.file, src.start_mark.line + 1, _fmt(path),
                                                 "merge key '<<' expects a mapping or a list of mappings")])
                    for k, v in val.items():
                        merged.setdefault(k, v)
                continue
            key = self._scalar(key_node, path) if isinstance(key_node, yaml.ScalarNode) else None
            if key is None or isinstance(key, (dict, list)):
                raise InvalidSpec([Issue(self.file, key_node.start_mark.line + 1, _fmt(path),
                                         "mapping keys must be plain scalars")])
            if key in explicit:
                raise InvalidSpec([Issue(self.file, key_node.start_mark.line + 1, _fmt((*path, key)),
                                         f"duplicate key {key!r} (each key may appear once)")])
            explicit.add(key)
            self.lines[(*path, key)] = key_node.start_mark.line + 1
            out[key] = self.build(value_node, (*path, key))
        for k, v in merged.items():
            out.setdefault(k, v)
        return out


def _scalar_message(node: yaml.ScalarNode, exc: Exception) -> str:
    kind = node.tag.rsplit(":", 1)[-1]
    value = repr(node.value) if len(node.value) <= 40 else f"{node.value[:20]!r}... ({len(node.value)} characters)"
    # a ValueError says what is wrong ("day is out of range for month"); the others do not.
    # Python's int-size message ends with advice for programmers (sys.set_int_max_str_digits).
    detail = str(exc).split(";")[0] if isinstance(exc, ValueError) else ""
    hint = "; quote it if it is meant as a string" if node.style is None else ""
    return f"{value} is not a valid YAML {kind}" + (f" ({detail})" if detail else "") + hint


def _fmt(path: Path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def parse_documents(raw: bytes, file: str, *, yaml12: bool = False) -> list[Document]:
    """Parse YAML bytes into documents with line maps. Raises InvalidSpec.

    ``yaml12``: resolve plain scalars with the YAML 1.2 core schema (compose input)."""
    text = _decoded(raw, file)
    loader: _Loader | None = None
    try:
        fast = compose_with_libyaml(text)
        if fast is None:  # anything but a plain valid file within the bounds: the composer below decides
            loader = _Loader(text, file)
        docs = _documents(fast if fast is not None else loader.documents(), file, yaml12)  # type: ignore[union-attr]
    except yaml.YAMLError as exc:
        raise InvalidSpec([_yaml_issue(exc, file, text)]) from None
    finally:
        if loader is not None:
            loader.dispose()
    if not docs:
        raise InvalidSpec([Issue(file, 1, "", "no documents found (the file is empty)")])
    return docs


def _decoded(raw: bytes, file: str) -> str:
    """The file's text: at most MAX_BYTES of UTF-8, without a leading BOM. Raises InvalidSpec."""
    if len(raw) > MAX_BYTES:
        raise InvalidSpec([Issue(file, None, "", f"file is larger than {MAX_BYTES // (1024 * 1024)} MiB")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InvalidSpec([Issue(file, line, "", f"not valid UTF-8 (byte {exc.start}): {exc.reason}")]) from None
    return text[1:] if text.startswith("\ufeff") else text


def _documents(nodes: Iterable[yaml.Node | None], file: str, yaml12: bool) -> list[Document]:
    docs: list[Document] = []
    for index, node in enumerate(nodes):
        if node is None or (isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null") and not node.value):
            continue  # an empty document (e.g. a trailing '---')
        builder = _Builder(file, yaml12)
        data = builder.build(node, ())
        docs.append(Document(file, index, data, builder.lines, node.start_mark.line + 1, builder.raw,
                             builder.tags or None))
    return docs


def _yaml_issue(exc: yaml.YAMLError, file: str, text: str) -> Issue:
    """A YAML error as an issue at its line, in words the user can act on."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = mark.line + 1 if mark else None
        problem = exc.problem or str(exc)
        if "\t" in problem or "\\t" in problem or "tab" in problem.lower():
            problem += " (YAML does not allow tabs for indentation; use spaces)"
        return Issue(file, where, "", f"YAML syntax error: {problem}")
    if isinstance(exc, yaml.reader.ReaderError):
        # a control character (NUL, BEL, ...): PyYAML reports a position, not a mark
        at = text.count("\n", 0, exc.position) + 1
        char = ord(exc.character) if isinstance(exc.character, str) else exc.character
        escape = f"\\x{char:02x}" if char < 0x100 else f"\\u{char:04x}"
        return Issue(file, at, "", f"YAML syntax error: unacceptable character #x{char:04x}: "
                                   f"{exc.reason} (write it as {escape} in a double-quoted string)")
    return Issue(file, None, "", f"YAML error: {exc}")


def _rel(path: str, base_dir: str) -> str:
    if "://" in path or path.startswith(("git@", "github.com/")):  # a remote build context: as written
        return path
    if path.startswith("~"):
        return os.path.normpath(os.path.expanduser(path))
    if os.path.isabs(path):
        return os.path.normpath(path)
    return os.path.normpath(os.path.join(base_dir, path))


def _resolve_binds(data: dict[str, Any], base_dir: str) -> None:
    """Paths in a spec are relative to the file they were written in; store them absolute."""
    spec = data.get("spec")
    if not isinstance(spec, dict):
        return
    for key, resolve in _SPEC_PATHS.items():
        if key in spec:
            spec[key] = resolve(spec[key], base_dir)


def _volume_paths(volumes: Any, base_dir: str) -> Any:
    if not isinstance(volumes, list):
        return volumes
    resolved = []
    for v in volumes:
        if isinstance(v, str) and (v.startswith(("./", "../", "~")) or v.split(":")[0] in (".", "..")):
            src, _, rest = v.partition(":")
            v = _rel(src, base_dir) + (":" + rest if rest else "")
        resolved.append(v)
    return resolved


def _build_path(build: Any, base_dir: str) -> Any:
    if isinstance(build, str):
        return {"context": _rel(build, base_dir)}
    if isinstance(build, dict) and isinstance(build.get("context"), str):
        return {**build, "context": _rel(build["context"], base_dir)}
    return build


def _env_file_paths(files: Any, base_dir: str) -> Any:
    if not isinstance(files, list):
        return files
    return [_rel(f, base_dir) if isinstance(f, str) else f for f in files]


def _env_source_paths(env: Any, base_dir: str) -> Any:
    """``env.KEY.valueFrom.file`` made absolute."""
    if not isinstance(env, dict):
        return env
    out: dict[str, Any] = {}
    for k, v in env.items():
        origin = v.get("valueFrom") if isinstance(v, dict) else None
        if isinstance(origin, dict) and isinstance(origin.get("file"), str):
            v = {**v, "valueFrom": {**origin, "file": _rel(origin["file"], base_dir)}}
        out[k] = v
    return out


# the spec fields that hold host paths, and how each is made absolute
_SPEC_PATHS: dict[str, Callable[[Any, str], Any]] = {
    "volumes": _volume_paths, "build": _build_path, "envFiles": _env_file_paths, "env": _env_source_paths,
}


_TEXT_MAPS = (("spec", "env"), ("spec", "labels"), ("metadata", "labels"), ("metadata", "annotations"))


def _as_written(data: dict[str, Any], doc: Document) -> None:
    """Env and label values are strings as written: YAML 1.1 would turn ``0755`` into 493,
    ``1.10`` into 1.1 and ``12:30`` into 750. Booleans and plain numbers keep their text too."""
    if not doc.raw:
        return
    for outer, inner in _TEXT_MAPS:
        section = data.get(outer)
        if not isinstance(section, dict) or not isinstance(section.get(inner), dict):
            continue
        values = dict(section[inner])
        for key, value in values.items():
            text = doc.raw.get((outer, inner, key))
            if text is not None and not isinstance(value, (dict, list)) and value is not None:
                values[key] = text
        data[outer] = {**section, inner: values}


def validate_document(doc: Document, base_dir: str) -> Any:
    """Validate one document against its kind. Returns the model. Raises InvalidSpec."""
    data = doc.data
    if not isinstance(data, dict):
        raise InvalidSpec([Issue(doc.file, doc.start_line, "",
                                 f"expected a mapping with apiVersion, kind, metadata and spec, got {type(data).__name__}")])
    issues: list[Issue] = []
    for key in ("apiVersion", "kind"):
        if not isinstance(data.get(key), str):
            issues.append(Issue(doc.file, doc.line_of((key,)), key, "required string field is missing"))
    if issues:
        raise InvalidSpec(issues)
    model = kind_for(data["apiVersion"], data["kind"])
    if model is None:
        from crd_like.registry import known_kinds

        raise InvalidSpec([Issue(doc.file, doc.line_of(("kind",)), "kind",
                                 f"unknown kind {data['kind']!r} in {data['apiVersion']!r}; expected one of {known_kinds()}")])
    if "status" in data:
        raise InvalidSpec([Issue(doc.file, doc.line_of(("status",)), "status",
                                 "status is written by the controller and cannot be applied")])
    if doc.tags:
        path, tag = next(iter(doc.tags.items()))
        raise InvalidSpec([Issue(doc.file, doc.line_of(path), _fmt(path),
                                 f"the YAML tag !{tag} is a compose merge tag; a native reconcile file cannot use it")])
    data = dict(data)
    _as_written(data, doc)
    _resolve_binds(data, base_dir)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidSpec([_issue_from_error(doc, err) for err in exc.errors()]) from None


def _issue_from_error(doc: Document, err: Any) -> Issue:
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    etype = err["type"]
    if etype == "extra_forbidden":
        msg = "unknown field (not part of the schema; check its spelling and indentation)"
    elif etype == "missing":
        msg = "required field is missing"
    elif etype == "literal_error":
        msg = f"got {_shown(err.get('input'))}: {msg}"
    elif etype.endswith(("_type", "_parsing")):
        value = err.get("input")
        shown = _shown(value) if isinstance(value, (dict, list)) else f"{type(value).__name__} {value!r}"
        msg = f"{msg}, got {shown}"[:300]
    elif etype == "string_pattern_mismatch":
        field = next((p for p in reversed(loc) if isinstance(p, str)), "")
        what, expected = _PATTERN_FIELDS.get(field, ("value", f"a string matching {err.get('ctx', {}).get('pattern')}"))
        msg = f"{err.get('input')!r} is not a valid {what}: expected {expected}"
    return Issue(doc.file, doc.line_of(loc), _fmt(loc), msg)


def _shown(value: Any) -> str:
    """A value in an error message: scalars as written, never a Python repr of a structure."""
    if isinstance(value, dict):
        return "a mapping" + (f" (keys {', '.join(map(str, list(value)[:5]))})" if value else "")
    if isinstance(value, list):
        return f"a list of {len(value)}"
    return repr(value)


# What each pattern-checked field (crd_like.models) expects, in words: the field, not the
# regular expression, is what the user can act on.
_PATTERN_FIELDS = {
    "name": ("name", "lowercase letters, digits and '-', at most 63 characters, "
                     "starting and ending with a letter or digit"),
    "stopSignal": ("signal", "a signal name such as 'SIGTERM' or 'SIGINT', or a signal number such as 15"),
    "networks": ("network name", "letters, digits, '_', '.' and '-', starting with a letter or digit"),
    "aliases": ("alias", "letters, digits, '_', '.' and '-', starting with a letter or digit"),
    "extraHosts": ("extra host", "'HOSTNAME:IP', e.g. 'db.internal:10.0.0.5'"),
    "tmpfs": ("tmpfs mount", "an absolute container path such as '/run', optionally with ':OPTIONS'"),
}
