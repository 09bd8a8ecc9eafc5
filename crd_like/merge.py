"""Overlay merging (several ``-f`` files) on trees that remember where each value came from.

A ``Node`` is a parsed YAML value (mapping of Nodes, list of Nodes, or a scalar) with the
file, line and field path it was written at. Merging works on Nodes so that, after
several files have been merged, every value still points at the file and line that
provided it, and a validation error can name that place.

Merge rules (compose's, https://docs.docker.com/reference/compose-file/merge/):
- mappings merge recursively, the later file's value wins on conflicts;
- ``command``, ``entrypoint`` and ``healthcheck.test`` are replaced, never appended;
- ``environment``, ``labels``, ``extra_hosts`` merge by key, whichever of list
  (``K=V``) or map form each file used; ``networks`` and ``depends_on`` likewise;
- ``ports`` merge by (host_ip, published, target, protocol), ``volumes`` by target
  path, ``secrets`` and ``configs`` by target path, ``env_file`` by path; a later entry
  with the same identity replaces the earlier one in place, new ones are appended;
- ``annotations``, ``sysctls``, ``build.args``/``labels``, ``deploy.labels`` merge by key;
  ``build: DIR`` merges as ``{context: DIR}``; ``logging`` merges its options unless
  the later file names another driver (then it replaces);
- other sequences (``dns``, ``cap_add``, ``profiles``, ``tmpfs``, ...) append, skipping
  entries already present;
- the merge tags ``!reset`` (remove the key) and ``!override`` (replace, do not merge)
  of the later file win over every rule above (compose-spec ``13-merge.md``).

Native documents with the same kind and name in different files merge their
``metadata`` and ``spec`` the same way, with native field names (``env``, ``ports`` by
container port and protocol, ``volumes`` by target, ``dependsOn``).

No I/O. Must not import ``store`` or ``controller``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from crd_like import units
from crd_like.loader import Document, Path, _fmt


@dataclass
class Node:
    """A YAML value and where it was written.

    ``field`` is the value's path in its own file; ``native`` says whether that path
    is a native spec path (so a deeper native path can be appended to it) or a path in
    a compose file (where native paths below it mean nothing to the user)."""

    value: Any  # dict[Any, Node] | list[Node] | scalar
    file: str
    line: int | None
    field: str
    native: bool = True
    raw: str | None = None  # a plain scalar's text, when YAML 1.1 would reinterpret it (0755, 1.10, yes)
    tag: str | None = None  # compose merge tag: "reset" | "override"
    interpolated: bool = False  # the value came (in part) from a variable: .env or the environment
    variables: tuple[str, ...] = ()  # the names of the variables interpolated into it
    # `secrets|configs.NAME.environment: VAR` of an included project: VAR's value in that
    # project's environment (its own env_file), where compose reads it
    env_value: str | None = None

    def text(self) -> Any:
        """The plain value, with scalars that YAML 1.1 reinterprets as written (env and label values)."""
        return self.raw if self.raw is not None else plain(self)

    def get(self, key: Any) -> Node | None:
        return self.value.get(key) if isinstance(self.value, dict) else None

    def at(self, value: Any) -> Node:
        """A new value (a scalar or a plain structure) located where this node is."""
        if isinstance(value, Node):
            return value
        if isinstance(value, dict):
            value = {k: self.at(v) for k, v in value.items()}
        elif isinstance(value, list):
            value = [self.at(v) for v in value]
        return Node(value, self.file, self.line, self.field, self.native)


def tree(doc: Document, data: Any = None, path: Path = (), *, native: bool = True) -> Node:
    """The Node tree of a parsed document (or of ``data`` laid out like it)."""
    if not path and data is None:
        data = doc.data
    if isinstance(data, dict):
        value: Any = {k: tree(doc, v, (*path, k), native=native) for k, v in data.items()}
    elif isinstance(data, list):
        value = [tree(doc, v, (*path, i), native=native) for i, v in enumerate(data)]
    else:
        value = data
    raw = doc.raw.get(path) if doc.raw else None
    tag = doc.tags.get(path) if doc.tags else None
    return Node(value, doc.file, doc.line_of(path), _fmt(path), native, raw, tag)


def plain(node: Node | None) -> Any:
    """The value without locations."""
    if node is None:
        return None
    if isinstance(node.value, dict):
        return {k: plain(v) for k, v in node.value.items()}
    if isinstance(node.value, list):
        return [plain(v) for v in node.value]
    return node.value


def locate(node: Node, loc: Path) -> tuple[Node, Path]:
    """The deepest node along ``loc`` and the part of ``loc`` below it."""
    for i, part in enumerate(loc):
        value = node.value
        if isinstance(value, dict) and part in value:
            node = value[part]
        elif isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value):
            node = value[part]
        else:
            return node, tuple(loc[i:])
    return node, ()


# ---------------------------------------------------------------------------- list forms
def kv_pairs(node: Node, sep: str = "=") -> list[tuple[str, Node]] | None:
    """``[K=V, K]`` or ``{K: V}`` as (key, value node) pairs; ``K`` alone has value None.

    None when the node is neither form (the converter reports that)."""
    if isinstance(node.value, dict):
        return [(str(k), v) for k, v in node.value.items()]
    if not isinstance(node.value, list):
        return None
    out = []
    for item in node.value:
        if not isinstance(item.value, str):
            return None
        text = item.value
        cut = _kv_cut(text, sep)
        if cut < 0:
            out.append((text, Node(None, item.file, item.line, item.field, item.native)))
        else:
            out.append((text[:cut], Node(text[cut + 1:], item.file, item.line, item.field, item.native)))
    return out


def _kv_cut(text: str, sep: str) -> int:
    if sep == "host":  # extra_hosts: "name=ip" (compose v2) or "name:ip"
        eq = text.find("=")
        return eq if eq >= 0 else text.find(":")
    return text.find(sep)


def names_map(node: Node) -> list[tuple[str, Node]] | None:
    """``[a, b]`` or ``{a: ..., b: ...}`` (networks, depends_on) as pairs; list items map to None."""
    if isinstance(node.value, dict):
        return [(str(k), v) for k, v in node.value.items()]
    if isinstance(node.value, list) and all(isinstance(i.value, str) for i in node.value):
        return [(i.value, Node(None, i.file, i.line, i.field, i.native)) for i in node.value]
    return None


# ---------------------------------------------------------------------------- identities
def compose_port_key(node: Node) -> Any:
    v = node.value
    if isinstance(v, dict):
        ip, published, target, protocol = (plain(v.get(k)) for k in ("host_ip", "published", "target", "protocol"))
        return (ip or "", "" if published is None else str(published), str(target), protocol or "tcp")
    try:
        p = units.parse_port(v)
    except ValueError:
        return ("?", repr(plain(node)))
    published = "" if p.host_port_start is None else _rng(p.host_port_start, p.host_port_end)
    return (p.host_ip, published, _rng(p.container_port_start, p.container_port_end), p.protocol)


def native_port_key(node: Node) -> Any:
    try:
        p = units.parse_port(node.value)
    except ValueError:
        return ("?", repr(plain(node)))
    return (_rng(p.container_port_start, p.container_port_end), p.protocol)


def _rng(a: int | None, b: int | None) -> str:
    return str(a) if a == b else f"{a}-{b}"


def volume_key(node: Node) -> Any:
    v = node.value
    if isinstance(v, dict):
        return plain(v.get("target"))
    if isinstance(v, str):
        parts = v.split(":")
        return parts[1] if len(parts) >= 2 else parts[0]
    return repr(plain(node))


def source_key(node: Node) -> Any:
    v = node.value
    return plain(v.get("source")) if isinstance(v, dict) else repr(plain(node))


# ---------------------------------------------------------------------------- merging
Rule = Literal["merge", "replace", "append", "kv", "kv-host", "names", "logging", "build"] | Callable[[Node], Any]


def strip_tags(node: Node) -> Node:
    """``node`` without its merge tags: ``!reset`` entries are removed (in the file that
    writes them they mean "not set"), ``!override`` values are kept as they are."""
    value = node.value
    if isinstance(value, dict):
        value = {k: strip_tags(v) for k, v in value.items() if v.tag != "reset"}
    elif isinstance(value, list):
        value = [strip_tags(v) for v in value if v.tag != "reset"]
    else:
        return node if node.tag is None else Node(value, node.file, node.line, node.field, node.native, node.raw)
    return Node(value, node.file, node.line, node.field, node.native, node.raw)


def merge(base: Node, over: Node, rule_for: Callable[[tuple[Any, ...]], Rule], path: tuple[Any, ...] = ()) -> Node:
    """``over`` merged onto ``base`` by the rule ``rule_for(path)`` gives each path.

    compose's merge tags (https://github.com/compose-spec/compose-spec/blob/main/13-merge.md):
    an entry of ``over`` tagged ``!reset`` removes the key from the result, one tagged
    ``!override`` replaces the base value whole instead of merging with it."""
    if over.tag == "override":
        return strip_tags(over)
    rule = rule_for(path)
    if rule == "replace":
        return strip_tags(over)
    if rule == "build":  # `build: DIR` is `build: {context: DIR}` for merging
        base, over = _build_map(base), _build_map(over)
        rule = "merge"
    if rule == "logging":  # another driver: its options do not apply to the new one
        bd, od = plain(base.get("driver")), plain(over.get("driver"))
        if od is not None and bd is not None and od != bd:
            return strip_tags(over)
        rule = "merge"
    if rule in ("kv", "kv-host", "names"):
        return _merge_pairs(base, over, rule, rule_for, path)
    if callable(rule):
        return _merge_keyed(base, over, rule)
    if isinstance(base.value, dict) and isinstance(over.value, dict):
        return _merge_mapping(base, over, rule_for, path)
    if isinstance(base.value, list) and isinstance(over.value, list):
        return _merge_sequence(base, over)
    return strip_tags(over)


def _merge_mapping(base: Node, over: Node, rule_for: Callable[[tuple[Any, ...]], Rule], path: tuple[Any, ...]) -> Node:
    """Two mappings, key by key (each by its own path's rule); ``!reset`` removes a key."""
    out = dict(base.value)
    for key, node in over.value.items():
        if node.tag == "reset":
            out.pop(key, None)
            continue
        out[key] = merge(out[key], node, rule_for, (*path, key)) if key in out else strip_tags(node)
    return Node(out, base.file, base.line, base.field, base.native)


def _merge_pairs(base: Node, over: Node, rule: str, rule_for: Callable[[tuple[Any, ...]], Rule],
                 path: tuple[Any, ...]) -> Node:
    """``KEY=VALUE`` lists or mappings (``kv``; ``HOST:IP`` with ``kv-host``) and name
    lists or mappings (``names``), merged by key."""
    pairs = (names_map if rule == "names" else lambda n: kv_pairs(n, "host" if rule == "kv-host" else "="))
    a, b = pairs(base), pairs(over)
    if a is None or b is None:
        return strip_tags(over)
    merged = dict(a)
    for key, node in b:
        if node.tag == "reset":
            merged.pop(key, None)
            continue
        old = merged.get(key)
        merged[key] = merge(old, node, rule_for, (*path, key)) if old is not None else strip_tags(node)
    return Node(merged, base.file, base.line, base.field, base.native)


def _merge_keyed(base: Node, over: Node, key_of: Callable[[Node], Any]) -> Node:
    """A list whose entries ``key_of`` identifies (ports, mounts ...): a later entry with the
    same key replaces the earlier one in place, others are appended."""
    if not (isinstance(base.value, list) and isinstance(over.value, list)):
        return strip_tags(over)
    items = list(base.value)
    index = {key_of(item): i for i, item in enumerate(items)}
    for item in over.value:
        item = strip_tags(item)
        key = key_of(item)
        if key in index:
            items[index[key]] = item
        else:
            index[key] = len(items)
            items.append(item)
    return Node(items, base.file, base.line, base.field, base.native)


def _merge_sequence(base: Node, over: Node) -> Node:
    """Any other list: the entries of ``over`` not already in ``base`` are appended."""
    seen = [plain(i) for i in base.value]
    items = list(base.value)
    for item in over.value:
        if item.tag == "reset":
            continue
        if plain(item) not in seen:
            seen.append(plain(item))
            items.append(strip_tags(item))
    return Node(items, base.file, base.line, base.field, base.native)


def _build_map(node: Node) -> Node:
    if isinstance(node.value, str):
        return node.at({"context": node})
    return node


def mount_key(default_dir: str) -> Callable[[Node], Any]:
    """secrets / configs entries by target path (compose-go's mountIndexer)."""
    def key(node: Node) -> Any:
        v = node.value
        if isinstance(v, dict):
            target, source = plain(v.get("target")), plain(v.get("source"))
        else:
            target, source = None, plain(node)
        target = str(target or source)
        return target if target.startswith("/") else f"{default_dir}/{target}"
    return key


def env_file_key(node: Node) -> Any:
    v = node.value
    return plain(v.get("path")) if isinstance(v, dict) else plain(node)


_COMPOSE_SERVICE_RULES: dict[tuple[str, ...], Rule] = {
    ("command",): "replace",
    ("entrypoint",): "replace",
    ("healthcheck", "test"): "replace",
    ("environment",): "kv",
    ("labels",): "kv",
    ("annotations",): "kv",
    ("sysctls",): "kv",
    ("build",): "build",
    ("build", "args"): "kv",
    ("build", "labels"): "kv",
    ("build", "extra_hosts"): "kv-host",
    ("deploy", "labels"): "kv",
    ("extra_hosts",): "kv-host",
    ("logging",): "logging",
    ("networks",): "names",
    ("depends_on",): "names",
    ("ports",): compose_port_key,
    ("volumes",): volume_key,
    ("secrets",): mount_key("/run/secrets"),
    ("configs",): mount_key(""),
    ("env_file",): env_file_key,
}


def compose_rule(path: tuple[Any, ...]) -> Rule:
    if len(path) >= 3 and path[0] == "services":
        return _COMPOSE_SERVICE_RULES.get(tuple(path[2:]), "merge")
    return "merge"


_NATIVE_SPEC_RULES: dict[tuple[str, ...], Rule] = {
    ("command",): "replace",
    ("entrypoint",): "replace",
    ("healthcheck", "test"): "replace",
    ("dependsOn",): "names",
    ("ports",): native_port_key,
    ("volumes",): volume_key,
}


def native_rule(path: tuple[Any, ...]) -> Rule:
    if len(path) >= 2 and path[0] == "spec":
        return _NATIVE_SPEC_RULES.get(tuple(path[1:]), "merge")
    return "merge"


def merge_compose(base: Node, over: Node) -> Node:
    """Two compose files (whole documents), compose's rules."""
    return merge(strip_tags(base), over, compose_rule)


def merge_service(base: Node, over: Node) -> Node:
    """A service onto the service it ``extends`` (compose's rules for one service)."""
    return merge(strip_tags(base), over, lambda p: compose_rule(("services", "-", *p)))


def merge_native(base: Node, over: Node) -> Node:
    """Two native documents of the same kind and name; ``spec`` and ``metadata`` merge."""
    for doc in (base, over):
        spec = doc.get("spec")
        policy = spec.get("restartPolicy") if spec is not None else None
        if policy is not None and isinstance(policy.value, str):  # "always" == {condition: always}
            policy.value = {"condition": policy.at(policy.value)}
    return merge(base, over, native_rule)
