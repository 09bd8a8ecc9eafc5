"""The project's error tree.

    ReconcileError                 root of everything the controller raises on purpose
    ├── TransientError(retry_after) worth retrying later: engine unreachable, timeouts
    │   ├── EngineUnavailable       the Docker engine does not answer
    │   └── EngineTimeout(call, target, timeout)
    │                               one call took longer than its timeout (the engine
    │                               answers others): audited as EngineDegraded
    ├── TerminalError               retrying the same thing will not help
    │   ├── NotFound                container / image / network does not exist
    │   │   └── NetworkMissing      a network a call needs (a container's, to start it) is gone
    │   ├── NameConflict            the name belongs to a container we do not own
    │   ├── ImageMissing            the image is not present and cannot be pulled
    │   ├── ExternalMissing         an external network / volume does not exist (never created)
    │   ├── PortInUse               a host port the container publishes is taken
    │   ├── StaleTask               the engine keeps a runtime task of this container from
    │   │                           before an engine restart and refuses to start it again
    │   └── HookFailed              a postStart hook failed (the container keeps running)
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


class NotOwner(TransientError):
    """This agent's local deadline passed without a renewal of its node lease: it must not
    act on the engine until it holds the lease again (``controller.nodelease``)."""


class EngineTimeout(TransientError):
    """One engine call did not answer within its timeout: the engine is degraded (it may
    still answer other calls). ``call`` is the engine call (``containers.remove``),
    ``target`` the container (id or name) it was about, if any."""

    def __init__(self, call: str, target: str, timeout: float, *, queued: bool = False):
        what = f"{call} {target[:12]}".rstrip()
        how = "found no free slot" if queued else "did not answer"
        super().__init__(f"engine call {what} {how} within {timeout:g}s", retry_after=min(30.0, max(1.0, timeout / 4)))
        self.call = call
        self.target = target
        self.timeout = timeout


class TerminalError(ReconcileError):
    pass


class NotFound(TerminalError):
    pass


class NetworkMissing(NotFound):
    """The engine says a network is not found: the one inspected or removed, or one a
    container is attached to (it cannot start again until it is recreated)."""


class NameConflict(TerminalError):
    pass


class ImageMissing(TerminalError):
    pass


class ExternalMissing(TerminalError):
    """An external network or volume is missing: reconcile never creates one."""


class PortInUse(TerminalError):
    pass


class StaleTask(TerminalError):
    """The engine cannot start this container again: its runtime (containerd) still holds
    a task of it from before an engine restart ("task ...: already exists"). Retrying the
    start never helps (Docker's own restart policy fails the same way); a new container
    does: the executor replaces it."""


class HookFailed(TerminalError):
    """A postStart hook exited non-zero or did not end in time: the start it followed
    failed (as a failing ``post_start`` fails ``docker compose up``); the container keeps
    running, and the hook runs again only when the container is started again."""
