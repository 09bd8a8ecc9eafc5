"""Why a container no longer matches what is desired (drift), and the human words for it:
changed spec fields, a moved image tag, a missing network, a replaced peer, changed
referenced files, an exit code's meaning, a failed rollout. Pure."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from controller import labels as L
from controller.observed import Observed
from controller.planner.deps import ready
from controller.render import DesiredService, has_refs
from controller.render_net import replaced_peers
from crd_like.hashing import POLICY_FIELDS, canonical, changed_fields
from store.records import Status

# (reason, changed fields) of a Recreate
Drift = tuple[str, tuple[str, ...]]

_EXIT_MEANINGS = {0: "exited normally", 137: "killed (SIGKILL or out of memory)", 143: "terminated (SIGTERM)",
                  139: "segmentation fault", 255: "engine stopped or failed"}


def exit_reason(c: Observed) -> str:
    code = c.exit_code
    if code is None:
        return f"container is {c.state}"
    return f"container exited with code {code} ({_EXIT_MEANINGS.get(code, 'failed')})"


def diff_fields(old_spec: dict[str, Any] | None, svc: DesiredService) -> tuple[str, ...]:
    if old_spec is None:
        return ("spec (previous revision unknown)",)
    try:
        old = canonical(type(svc.spec).model_validate(old_spec), exclude=POLICY_FIELDS)
    except Exception:  # noqa: BLE001 - an old revision from an older schema
        return ("spec",)
    new = canonical(svc.spec, exclude=POLICY_FIELDS)
    fields = changed_fields(old, new)
    if fields:
        return tuple(_named_file(f, svc) for f in fields)
    if svc.kind == "Job":
        return ("generation (a Job runs once per generation)",)
    if has_refs(svc.spec):
        return ("referenced files",)
    # same spec, no references: the container's hash label itself was changed (a look-alike
    # container made by hand with copied labels)
    return ("spec-hash label (altered outside reconcile)",)


def _named_file(path: str, svc: DesiredService) -> str:
    """``files./run/secrets/db.secret`` -> ``secret db (files./run/secrets/db.secret)``: a
    reason names the compose secret or config whose content changed (never the value)."""
    if not path.startswith("files."):
        return path
    rest = path[len("files."):]
    for target in (rest, rest.rsplit(".", 1)[0]):
        mount = svc.spec.files.get(target)
        if mount is not None and mount.source:
            return f"{mount.source} ({path})"
    return path


def changed_files(c: Observed, svc: DesiredService) -> tuple[str, ...]:
    """The referenced files whose content differs from what ``c`` was made with."""
    try:
        before = json.loads(c.labels.get(L.CONFIG_FILES) or "{}")
    except ValueError:
        before = {}
    now = {k: v for k, v in svc.config_files.items() if not k.startswith("env:")}
    files = tuple(sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k)))
    return files or ("secret environment values",)


def image_moved(c: Observed, svc: DesiredService, image_ids: Mapping[str, str]) -> Drift | None:
    want_image = image_ids.get(svc.spec.image)
    if want_image and c.image_id and want_image != c.image_id:
        return (f"image {svc.spec.image} now points to a new image",
                (f"image id ({c.image_id[7:19]} -> {want_image[7:19]})",))
    return None


def _network_drift(c: Observed, svc: DesiredService) -> Drift | None:
    if c.running and svc.spec.networks and not set(svc.spec.networks) <= set(c.networks):
        missing = sorted(set(svc.spec.networks) - set(c.networks))
        return (f"not attached to network {', '.join(missing)} (detached or removed outside reconcile)",
                tuple(f"network {n}" for n in missing))
    return None


def _peer_drift(c: Observed, svc: DesiredService) -> Drift | None:
    replaced = replaced_peers(svc, c)
    if replaced:  # its network stack / volumes come from a container that no longer is the peer's
        return ("; ".join(f"{why}: its container was replaced" for _ref, why in replaced),
                tuple(why for _ref, why in replaced))
    return None


def _config_drift(c: Observed, svc: DesiredService) -> Drift | None:
    if svc.spec.onConfigChange == "recreate" and c.labels.get(L.CONFIG_HASH, "") != svc.config_hash:
        files = changed_files(c, svc)
        return ("referenced file changed: " + ", ".join(files), tuple(f"file {f}" for f in files))
    return None  # onConfigChange: restart is a Restart, not a drift (see replica.config_restart)


def drift(c: Observed, svc: DesiredService, revisions: Mapping[tuple[str, int], dict[str, Any]],
          image_ids: Mapping[str, str]) -> Drift | None:
    """Why container ``c`` must be recreated (reason, changed fields), or None."""
    if c.spec_hash != svc.container_hash:
        fields = diff_fields(revisions.get((svc.name, c.generation)), svc)
        return ("spec changed: " + ", ".join(fields), fields)
    # an exited Job is not rerun because its tag moved (a retry picks the new image up)
    moved = image_moved(c, svc, image_ids)
    if moved and not (svc.kind == "Job" and c.state == "exited"):
        return moved
    return _network_drift(c, svc) or _peer_drift(c, svc) or _config_drift(c, svc)


def rollout_failure(svc: DesiredService, current: list[Observed], status: Status, now: float) -> str | None:
    """Why the rollout of the current generation failed, or None."""
    monitor = svc.spec.update.monitor
    for c in current:
        if c.state in ("exited", "dead"):
            return f"new container {c.short_id} exited ({exit_reason(c)})"
        if c.health == "unhealthy":
            return f"new container {c.short_id} is unhealthy"
        if now - max(c.created, status.rollout_started_at) > monitor and not ready(c, svc):
            return f"new container {c.short_id} not ready within monitor {monitor:g}s"
    return None
