"""Canonical spec hashing. No I/O.

Two hashes exist:
- ``spec_hash``: the whole normalised spec; a change bumps the resource's generation.
- ``container_hash``: only the fields that shape the container (image, command, env,
  ports, volumes, labels, healthcheck, ...). It is written on the container as a label and
  decides recreate vs nothing. Controller-side policy (restart policy, onUnhealthy, ...)
  is left out, so changing a policy never recreates a running container.

Fields equal to their defaults are left out of both, so spelling a default out and
omitting it hash the same, and a later release that adds a defaulted field does not
change existing hashes (which would recreate every container on upgrade).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel

# Fields of a spec that the controller acts on but the container does not carry.
POLICY_FIELDS = frozenset({"restartPolicy", "onUnhealthy", "dependsOn", "replicas", "update", "backoffLimit",
                           "onConfigChange", "build", "lifecycle", "placement"})


def canonical(spec: BaseModel, *, exclude: frozenset[str] = frozenset()) -> dict[str, Any]:
    data = spec.model_dump(mode="json", exclude_defaults=True, exclude=set(exclude) or None)
    return data


def _digest(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def spec_hash(spec: BaseModel) -> str:
    return _digest(canonical(spec))


def container_hash(spec: BaseModel, extra: dict[str, str] | None = None) -> str:
    """``extra`` carries what the spec references (e.g. config file digests)."""
    data: dict[str, Any] = {"spec": canonical(spec, exclude=POLICY_FIELDS)}
    if extra:
        data["refs"] = extra
    return _digest(data)


def changed_fields(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted paths of fields that differ between two canonical dumps."""
    out: list[str] = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        path = f"{prefix}{key}"
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            out.extend(changed_fields(a, b, path + "."))
        else:
            out.append(path)
    return out
