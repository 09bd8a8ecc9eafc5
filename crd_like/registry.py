"""The registry of kinds and API versions: (apiVersion, kind) -> model class. No I/O."""

from __future__ import annotations

from typing import Any

from crd_like.models import API_VERSION, Job, Service
from crd_like.notifier import Notifier

KINDS: dict[tuple[str, str], type[Any]] = {
    (API_VERSION, "Service"): Service,
    (API_VERSION, "Job"): Job,
    (API_VERSION, "Notifier"): Notifier,
}


def kind_for(api_version: str, kind: str) -> type[Any] | None:
    return KINDS.get((api_version, kind))


def known_kinds() -> list[str]:
    return [f"{v}/{k}" for v, k in KINDS]


def model_for_kind(kind: str) -> type[Any]:
    for (_, k), model in KINDS.items():
        if k == kind:
            return model
    raise KeyError(kind)
