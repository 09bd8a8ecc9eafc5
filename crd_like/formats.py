"""Input formats: native reconcile YAML and compose files, several files merged as overlays.

``load_any(sources, opts)`` is the single entry point the CLI uses; ``to_native_yaml``
writes resources back as native YAML (``reconcile convert``). No I/O: sources arrive as
``(raw bytes, display name, base directory)``, and the few files compose itself refers
to (``.env``, ``env_file:``, secret and config files) are read through
``LoadOptions.read_file``, a callable the caller supplies.

How the sources combine:
- each source is native or compose: by shape with ``fmt="auto"`` (see
  ``compose.is_compose``; a file with only ``include:`` is compose), or all of them as
  ``fmt`` says; compose sources are re-read with YAML 1.2 scalars (``loader``);
- all compose sources form one project: merged in order (compose's rules, see
  ``crd_like.merge``), then converted to native documents, which take the place of the
  first compose file in the order of sources;
- native documents with the same kind and name in different files merge (later
  wins, see ``merge.merge_native``), so a later native file may also patch a service
  converted from compose by its native name (``<project>-<service>``); the same name
  twice within one file, or for two kinds, is an error;
- everything is validated before anything is returned: all problems are raised
  together in one ``InvalidSpec``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import ValidationError

from crd_like import units
from crd_like.compose import ComposeSource, Converted, convert, is_compose
from crd_like.load_options import Format, LoadOptions
from crd_like.errors import InvalidSpec, Issue
from crd_like.loader import Document, _fmt, _issue_from_error, _resolve_binds, parse_documents, validate_document
from crd_like.merge import Node, locate, merge_native, plain, tree
from crd_like.registry import kind_for, known_kinds

@dataclass
class _Entry:
    """One document to validate: a parsed native document, or a converted compose service."""

    layer: int
    doc: Document | None
    base_dir: str
    converted: Converted | None = None

    def key(self) -> tuple[str, str] | None:
        if self.converted is not None:
            return self.converted.kind, self.converted.name
        data = self.doc.data if self.doc is not None else None
        meta = data.get("metadata") if isinstance(data, dict) else None
        name = meta.get("name") if isinstance(meta, dict) else None
        kind = data.get("kind") if isinstance(data, dict) else None
        return (kind, name) if isinstance(kind, str) and isinstance(name, str) else None

    def where(self) -> str:
        if self.converted is not None:
            return f"{self.converted.doc.file}:{self.converted.doc.line}"
        assert self.doc is not None
        return f"{self.doc.file}:{self.doc.line_of(('metadata', 'name'))}"

    def issue(self, message: str) -> Issue:
        if self.converted is not None:
            node = self.converted.doc
            return Issue(node.file, node.line, node.field, message)
        assert self.doc is not None
        return Issue(self.doc.file, self.doc.line_of(("metadata", "name")), "metadata.name", message)

    def node(self) -> Node:
        if self.converted is not None:
            return self.converted.doc
        assert self.doc is not None
        data = copy.deepcopy(self.doc.data)
        if isinstance(data, dict):
            _resolve_binds(data, self.base_dir)  # relative binds belong to the file that wrote them
        return tree(self.doc, data)


def load_any(sources: list[tuple[bytes, str, str]], opts: LoadOptions | None = None) -> list[Any]:
    """Validated resources (``Service`` / ``Job`` models) from native and compose sources."""
    opts = opts or LoadOptions()
    issues: list[Issue] = []
    layers: list[list[_Entry]] = []
    compose: list[ComposeSource] = []
    compose_layer = -1
    for raw, file, base_dir in sources:
        try:
            docs = parse_documents(raw, file)
        except InvalidSpec as exc:
            issues.extend(exc.issues)
            continue
        if opts.fmt == "compose" or (opts.fmt == "auto" and len(docs) == 1 and is_compose(docs[0].data)):
            if len(docs) > 1:
                issues.append(Issue(file, docs[1].start_line, "", "a compose file holds a single YAML document"))
                continue
            docs = parse_documents(raw, file, yaml12=True)  # compose reads YAML 1.2
            if compose_layer < 0:
                compose_layer = len(layers)
                layers.append([])
            compose.append(ComposeSource(tree(docs[0], native=False), file, base_dir))
            continue
        layers.append([_Entry(len(layers), doc, base_dir) for doc in docs])
    if issues:
        raise InvalidSpec(issues)
    if compose:
        converted = convert(compose, opts)
        layers[compose_layer] = [_Entry(compose_layer, None, compose[0].base_dir, c) for c in converted]
    return _validate(layers)


def _validate(layers: list[list[_Entry]]) -> list[Any]:
    issues: list[Issue] = []
    groups, singles = _grouped(layers, issues)
    out: list[Any] = []
    for entry in singles:  # no kind or name: validation says what is missing
        try:
            validate_document(entry.doc, entry.base_dir)  # type: ignore[arg-type]
        except InvalidSpec as exc:
            issues.extend(exc.issues)
    for group in groups.values():
        try:
            if len(group) == 1 and group[0].doc is not None:
                out.append(validate_document(group[0].doc, group[0].base_dir))
                continue
            overlay_issues = [issue for entry in group for issue in _overlay_problems(entry)]
            if overlay_issues:
                issues.extend(overlay_issues)
                continue
            node = group[0].node()
            for entry in group[1:]:
                node = merge_native(node, entry.node())
            out.append(validate_node(node))
        except InvalidSpec as exc:
            issues.extend(exc.issues)
    if issues:
        raise InvalidSpec(issues)
    return out


def _grouped(layers: list[list[_Entry]], issues: list[Issue]) -> tuple[dict[tuple[str, str], list[_Entry]], list[_Entry]]:
    """Entries by (kind, name) in the order of the layers, and those without a kind or
    name; the same name twice in one layer, or for two kinds, is an issue."""
    groups: dict[tuple[str, str], list[_Entry]] = {}
    names: dict[str, tuple[str, _Entry]] = {}  # name -> (kind, first entry)
    singles: list[_Entry] = []
    for layer in layers:
        for entry in layer:
            key = entry.key()
            if key is None:
                singles.append(entry)
                continue
            first = names.get(key[1])
            if first is not None and (first[0] != key[0] or groups[key][-1].layer == entry.layer):
                issues.append(entry.issue(f"duplicate name {key[1]!r} (first defined at {first[1].where()})"))
                continue
            names.setdefault(key[1], (key[0], entry))
            groups.setdefault(key, []).append(entry)
    return groups, singles


def _overlay_problems(entry: _Entry) -> list[Issue]:
    """Each overlay names a known kind itself (a later file never mends it), and a merge
    tag is compose's, in any overlay."""
    out: list[Issue] = []
    doc = entry.doc
    if doc is None:
        return out
    data = doc.data
    if isinstance(data, dict) and kind_for(str(data.get("apiVersion")), str(data.get("kind"))) is None:
        out.append(Issue(doc.file, doc.line_of(("apiVersion",)), "apiVersion",
                         f"unknown kind {data.get('kind')!r} in {data.get('apiVersion')!r}; "
                         f"expected one of {known_kinds()}"))
    if doc.tags:
        path, tag = next(iter(doc.tags.items()))
        out.append(Issue(doc.file, doc.line_of(path), _fmt(path),
                         f"the YAML tag !{tag} is a compose merge tag; a native reconcile file cannot use it"))
    return out


_TEXT_MAPS = (("spec", "env"), ("spec", "labels"), ("metadata", "labels"), ("metadata", "annotations"))


def validate_node(node: Node) -> Any:
    """Validate a (merged or converted) document tree; issues point at each value's origin."""
    data = plain(node)
    if not isinstance(data, dict):
        raise InvalidSpec([Issue(node.file, node.line, node.field, "expected a mapping with apiVersion, kind, "
                                                                   "metadata and spec")])
    for outer, inner in _TEXT_MAPS:  # values as written, like the native loader (_as_written)
        section = node.get(outer)
        values = section.get(inner) if section is not None else None
        if values is not None and isinstance(values.value, dict):
            data[outer][inner] = {k: v.text() for k, v in values.value.items()}
    model = kind_for(str(data.get("apiVersion")), str(data.get("kind")))
    if model is None:
        where = node.get("kind") or node
        raise InvalidSpec([Issue(where.file, where.line, "kind", f"unknown kind {data.get('kind')!r} in "
                                 f"{data.get('apiVersion')!r}; expected one of {known_kinds()}")])
    if "status" in data:
        where = node.get("status") or node
        raise InvalidSpec([Issue(where.file, where.line, "status",
                                 "status is written by the controller and cannot be applied")])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidSpec([_issue(node, err) for err in exc.errors()]) from None


def _issue(root: Node, err: Any) -> Issue:
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))
    node, rest = locate(root, loc)
    message = _issue_from_error(Document(node.file, 0, None, {}, node.line or 1), err).message
    if node.native:
        return Issue(node.file, node.line, _fmt(loc), message)
    if rest:  # below a compose key: name the native field the value was converted to
        message = f"{_fmt(rest)}: {message} (reconcile field {_fmt(loc)})"
    return Issue(node.file, node.line, node.field, message)


def to_native_yaml(resources: list[Any], header: str | None = None, *, reveal_secrets: bool = False) -> str:
    """Multi-document native YAML for ``resources`` (e.g. converted from compose).

    Only non-default fields are written; loading the text natively gives specs with the
    same ``spec_hash`` (with ``reveal_secrets``; otherwise stored secret values are
    printed as ``crd_like.secrets.SECRET_PLACEHOLDER``). Relative bind mounts are
    already absolute at this point."""
    from crd_like.secrets import redact_spec

    docs = []
    for res in resources:
        doc: dict[str, Any] = {"apiVersion": res.apiVersion, "kind": res.kind,
                               "metadata": res.metadata.model_dump(mode="json", exclude_defaults=True)}
        doc["metadata"]["name"] = res.metadata.name
        spec = res.spec.model_dump(mode="json", exclude_defaults=True)
        doc["spec"] = _readable(spec if reveal_secrets else redact_spec(spec))
        docs.append(doc)
    text = yaml.safe_dump_all(docs, sort_keys=False, default_flow_style=False, allow_unicode=True, width=120)
    if header:
        text = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines()) + text
    return text


_DURATIONS = frozenset({
    ("stopGracePeriod",), ("healthcheck", "interval"), ("healthcheck", "timeout"), ("healthcheck", "startPeriod"),
    ("restartPolicy", "window"), ("restartPolicy", "resetAfter"), ("restartPolicy", "backoff", "initial"),
    ("restartPolicy", "backoff", "max"), ("update", "monitor"),
})
_MEMORY = frozenset({("resources", "limits", "memory"), ("resources", "reservations", "memory")})


def _readable(spec: dict[str, Any]) -> dict[str, Any]:
    """Durations as ``30s`` and sizes as ``64m`` where that spells the same value exactly."""
    for path in _DURATIONS | _MEMORY:
        parent: Any = spec
        for part in path[:-1]:
            parent = parent.get(part) if isinstance(parent, dict) else None
        value = parent.get(path[-1]) if isinstance(parent, dict) else None
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        if path in _MEMORY:
            text = _format_memory(int(value))
            same = units.parse_memory(text) == value
        else:
            text = units.format_duration(float(value))
            same = units.parse_duration(text) == value
        if same:
            parent[path[-1]] = text
    return spec


def _format_memory(size: int) -> str:
    for unit, factor in (("g", 1024**3), ("m", 1024**2), ("k", 1024)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


__all__ = ["Format", "LoadOptions", "load_any", "to_native_yaml", "validate_node"]
