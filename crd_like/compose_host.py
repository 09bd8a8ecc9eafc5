"""Compose service keys about host configuration -> native spec fields (see
``crd_like.spec_host``).

``HANDLERS`` maps a compose service key to ``handler(service, node)``, where ``service``
is the ``crd_like.compose._Service`` being converted (it offers ``ctx``, ``spec``,
``_set`` ...). ``compose._Service.convert`` dispatches these before its own keys, and a
key listed here is no longer "unsupported". No I/O; must not import ``store`` or
``controller``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crd_like.compose import _Service
    from crd_like.merge import Node

HANDLERS: dict[str, Callable[[_Service, Node], None]] = {}
