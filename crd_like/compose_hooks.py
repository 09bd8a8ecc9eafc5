"""Compose lifecycle hooks (``post_start``, ``pre_stop``) -> ``spec.lifecycle`` (see
``crd_like.spec_lifecycle`` for what runs when, and how it differs from compose).

``HANDLERS`` maps the compose key to ``handler(service, node)``, as
``crd_like.compose_host`` does. A hook is ``{command, user, privileged, working_dir,
environment}``, as in the compose specification; ``command`` is required. Hook
``environment`` values are plain values; one interpolated into a secret-looking key
(``*PASSWORD*``, ``*TOKEN*``...) is an error, because the spec would hold it in clear:
give it to the service's ``environment`` (a hook inherits the container's environment).
No I/O; must not import ``store`` or ``controller``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from crd_like.merge import Node, kv_pairs
from crd_like.secrets import looks_secret

if TYPE_CHECKING:
    from crd_like.compose import _Service

Handler = Callable[["_Service", "Node"], None]
_KEYS = {"command": "command", "user": "user", "privileged": "privileged", "working_dir": "workingDir"}
_PHASE = {"post_start": "postStart", "pre_stop": "preStop"}


def _hook(svc: _Service, key: str, item: Node) -> Node | None:
    ctx = svc.ctx
    if not isinstance(item.value, dict):
        ctx.error(item, f"a {key} hook must be a mapping such as {{command: [sh, -c, 'echo hi']}}")
        return None
    out: dict[str, Node] = {}
    for sub, sub_node in item.value.items():
        if sub in _KEYS:
            out[_KEYS[sub]] = _command(sub_node) if sub == "command" else sub_node
        elif sub == "environment":
            env = _hook_env(svc, key, sub_node)
            if env is not None:
                out["env"] = env
        elif not str(sub).startswith("x-"):
            ctx.unsupported(sub_node, f"{key}.{sub}", known=False)
    if "command" not in out:
        ctx.error(item, f"a {key} hook needs `command`")
        return None
    return item.at(out)


def _command(node: Node) -> Node:
    """A command list with its numbers as strings (``[sleep, 30]``)."""
    if not isinstance(node.value, list):
        return node
    return node.at([i.at(str(i.value)) if isinstance(i.value, (int, float)) and not isinstance(i.value, bool) else i
                    for i in node.value])


def _hook_env(svc: _Service, key: str, node: Node) -> Node | None:
    """A hook's ``environment`` (values as text; a bare KEY from the project environment);
    None after an error. A secret-looking key with an interpolated value is an error."""
    ctx = svc.ctx
    pairs = kv_pairs(node)
    if pairs is None:
        ctx.error(node, f"{key} environment must be a list of KEY=VALUE strings or a mapping")
        return None
    env: dict[str, Node] = {}
    for k, v in pairs:
        if v.value is None:  # `- KEY`: from the project environment, or left unset
            if k not in ctx.env:
                continue
            v = v.at(ctx.env[k])
            v.interpolated = True
        if looks_secret(k) and v.interpolated:
            ctx.error(v, f"{key} environment {k!r} looks secret and is interpolated: hook environment "
                         "values are stored in clear; set it in the service's `environment` instead "
                         "(a hook inherits the container's environment)")
            continue
        env[k] = v.at(v.text())
    return node.at(env)


def _lifecycle(key: str) -> Handler:
    def handler(svc: _Service, node: Node) -> None:
        if node.value is None:
            return
        if not isinstance(node.value, list):
            svc.ctx.error(node, f"{key} must be a list of hooks, e.g. [{{command: [sh, -c, 'echo hi']}}]")
            return
        hooks = [h for h in (_hook(svc, key, item) for item in node.value) if h is not None]
        if not hooks:
            return
        current = svc.spec.get("lifecycle")
        value = dict(current.value) if current is not None and isinstance(current.value, dict) else {}
        value[_PHASE[key]] = node.at(hooks)
        svc._set("lifecycle", Node(value, node.file, node.line, node.field, False))
    return handler


HANDLERS: dict[str, Handler] = {key: _lifecycle(key) for key in _PHASE}
