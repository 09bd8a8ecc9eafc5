"""Host-configuration fields of a spec (``crd_like.spec_host``) -> extra engine create
arguments. Pure (no Docker, no SQL).

``host_config(spec)`` returns extra HostConfig settings and ``create_args(spec)`` extra
``create_container`` arguments, both in the docker SDK's keyword spelling; ``render``
merges them into its ``ContainerConfig``.
"""

from __future__ import annotations

from typing import Any

from crd_like.models import ServiceSpec


def host_config(spec: ServiceSpec) -> dict[str, Any]:
    return {}


def create_args(spec: ServiceSpec) -> dict[str, Any]:
    return {}
