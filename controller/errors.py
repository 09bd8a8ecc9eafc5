"""The project's error tree.

    ReconcileError                 root of everything the controller raises on purpose
    ├── TransientError(retry_after) worth retrying later: engine unreachable, timeouts
    │   └── EngineUnavailable       the Docker engine does not answer
    ├── TerminalError               retrying the same thing will not help
    │   ├── NotFound                container / image / network does not exist
    │   ├── NameConflict            the name belongs to a container we do not own
    │   ├── ImageMissing            the image is not present and cannot be pulled
    │   └── PortInUse               a host port the container publishes is taken
    └── (crd_like.InvalidSpec)      invalid user input; raised before anything is written

Only ``controller/engine.py`` translates ``docker.errors`` into these.
"""

from __future__ import annotations


class ReconcileError(Exception):
    """Root of the controller's errors."""


class TransientError(ReconcileError):
    def __init__(self, message: str, retry_after: float = 1.0):
        super().__init__(message)
        self.retry_after = retry_after


class EngineUnavailable(TransientError):
    pass


class TerminalError(ReconcileError):
    pass


class NotFound(TerminalError):
    pass


class NameConflict(TerminalError):
    pass


class ImageMissing(TerminalError):
    pass


class PortInUse(TerminalError):
    pass
