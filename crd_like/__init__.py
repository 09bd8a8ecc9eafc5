"""crd_like: the resource API of reconcile — kinds, validation, defaulting, hashing.

Pure: no I/O, no Docker, no SQL. Must not import ``store`` or ``controller``.
"""

from crd_like.errors import InvalidSpec, Issue
from crd_like.hashing import changed_fields, container_hash, spec_hash
from crd_like.loader import load_resources
from crd_like.models import API_VERSION, Service, ServiceSpec

__all__ = [
    "API_VERSION", "InvalidSpec", "Issue", "Service", "ServiceSpec",
    "changed_fields", "container_hash", "load_resources", "spec_hash",
]
