"""Host-configuration fields of a service spec (a mixin of ``ServiceSpec``): ulimits,
sysctls, privileges, devices, security options, shared memory, TTY, namespaces,
cgroup and kernel-resource knobs, pull policy and platform. No I/O.

Every field has a default, so specs that do not use it hash as before (hashing leaves
defaults out). Must not import ``store`` or ``controller``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class HostFields(BaseModel):
    """Mixed into ``ServiceSpec``; fields are added here, never in ``models.py``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
