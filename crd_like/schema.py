"""JSON Schema of every registered kind (for editor completion). No I/O."""

from __future__ import annotations

from typing import Any

from crd_like.registry import KINDS


def json_schema() -> dict[str, Any]:
    variants = [model.model_json_schema() for model in KINDS.values()]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "reconcile resources",
        "oneOf": variants,
    }
