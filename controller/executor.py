"""Carries out one service's actions on the engine and reports what happened, as
``controller.outcomes`` records (container ids, how a container died, hook runs, the
failure of an action and its reason code). It never plans, never prints and derives
no status: ``controller.advance`` turns the outcomes into status and audit rows, and
the reconciler has them recorded.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any, assert_never

from loguru import logger

from controller import hooks
from controller import labels as L
from controller import outcomes as oc
from controller.actions import Action, Build, Create, Recreate, Remove, Rename, Restart, Rollback, Start, describe
from controller import render_host
from controller.engine import BuildRequest, Engine
from controller.health import HealthChecks
from controller.errors import (EngineTimeout, ExternalMissing, HookFailed, ImageMissing, NameConflict, NotFound, NotOwner,
                               PortInUse,
                               ReconcileError, StaleTask, TerminalError)
from controller.outcomes import OUTPUT_LIMIT, Outcome, truncate
from controller.planner import R_ACTION_FAILED, R_IMAGE_MISSING, R_NAME_CONFLICT, R_PORT_IN_USE
from controller.render import ContainerConfig, DesiredService, inherit_anonymous, render

__all__ = ["OUTPUT_LIMIT", "Executor", "error_reason", "not_fetched", "truncate", "unreachable"]


def _network_gone(exc: Exception) -> bool:
    text = str(exc).lower()
    return "network" in text and "not found" in text


_UNREACHABLE = ("could not resolve host", "no such host", "network is unreachable", "temporary failure in name "
                "resolution", "connection refused", "connection timed out", "i/o timeout", "failed to connect",
                "unable to access", "error fetching", "dial tcp", "could not read from remote repository",
                "error downloading remote context")


def unreachable(build_output: str) -> bool:
    """Does a failed build's output say the engine could not fetch a remote context?"""
    text = build_output.lower()
    return any(marker in text for marker in _UNREACHABLE)


# Podman's Docker-compatible build (`POST /build`, 4.3 and still in 5.x) ignores `remote`: only
# its own `/libpod/build` fetches a URL. It unpacks the request body into
# <tmp>/libpod_builderN/build and builds from there; for a URL context the body is empty, so
# the build stops at the Dockerfile it cannot find in that directory. A context Podman did
# fetch would lie in a download directory of its own (buildahN), never in that /build/, and a
# local context's tar is never sent with a URL: for a URL context this shape says "not
# fetched at all", not "unreachable" and not "fetched without a Dockerfile".
_NOT_FETCHED = re.compile(r"stat \S*/libpod_builder\d*/build/\S*: no such file or directory")


def not_fetched(build_output: str) -> bool:
    """Does a failed build of a URL context say the engine built without fetching it (Podman)?"""
    return _NOT_FETCHED.search(build_output) is not None


# Failures after which the service's remaining actions are not tried this pass.
_STOPPING = (ImageMissing, NameConflict, PortInUse, ExternalMissing)


def error_reason(exc: ReconcileError) -> str:
    """The status reason code for a failed action (data, for `wait` to act on)."""
    if isinstance(exc, ImageMissing):
        return R_IMAGE_MISSING
    if isinstance(exc, PortInUse):
        return R_PORT_IN_USE
    if isinstance(exc, NameConflict):
        return R_NAME_CONFLICT
    return R_ACTION_FAILED


def _failure(action: Action, exc: ReconcileError, at: float) -> Outcome:
    cid = getattr(action, "container_id", "")
    if isinstance(exc, EngineTimeout):
        # a hung call: the engine is degraded; the service is retried with backoff
        # (the work queue's failure limiter) while the others go on
        return oc.EngineHung(action.service, describe(action), exc.call, exc.timeout, str(exc), error_reason(exc), at,
                             cid or (exc.target if len(exc.target) == 64 else ""), exc)
    return oc.Failed(action.service, describe(action), type(action).__name__.lower(), str(exc), error_reason(exc),
                     at, cid, exc)


Out = list[Outcome]  # what one run has done so far, in order


class Executor:
    def __init__(self, engine: Engine, instance: str, *, actor: str, clock: Callable[[], float],
                 admit_restart: Callable[[str], bool] | None = None, health: HealthChecks | None = None,
                 gate: Callable[[], None] | None = None):
        self.engine = engine
        # many hosts: raises NotOwner once the agent may no longer act (checked before each
        # action and before each create and start); None on a single host
        self.gate = gate or (lambda: None)
        self.health = health  # the controller's own health probes (their output; restarts reset them)
        self.instance = instance
        self.actor = actor
        self.clock = clock
        # Storm control hook: asked before each restart; False defers it to a later pass.
        self.admit_restart = admit_restart or (lambda _name: True)
        self._create_lock = threading.Lock()

    def run(self, svc: DesiredService | None, actions: tuple[Action, ...] | list[Action]) -> list[Outcome]:
        """Carry ``actions`` out in order; what happened, in order. A failed action is
        reported and the next is tried, unless the failure makes the rest pointless (a
        hung engine call, an image missing, a name or port taken, an external missing)."""
        out: Out = []
        for action in actions:
            try:
                self.gate()
                self._one(svc, action, out)
            except ReconcileError as exc:
                failure = _failure(action, exc, self.clock())
                logger.warning(failure.problem)
                out.append(failure)
                if isinstance(exc, (EngineTimeout, NotOwner, *_STOPPING)):
                    break
        return out

    def _note(self, out: Out, outcome: Outcome) -> None:
        if outcome.line:
            logger.info(outcome.line)
        out.append(outcome)

    def _one(self, svc: DesiredService | None, action: Action, out: Out) -> None:
        match action:
            case Create():
                assert svc is not None
                cid = self._create_and_start(svc, action.replica)
                self._note(out, oc.Created(svc.name, action.replica, cid, action.reason, self.clock()))
                self._post_start(svc, cid, out)
            case Start():
                assert svc is not None
                self._start(svc, action, out)
            case Restart():
                assert svc is not None
                self._restart(svc, action, out)
            case Recreate():
                assert svc is not None
                self._replace(svc, action, out)
            case Remove():
                self._remove(svc, action, out)
            case Build():
                assert svc is not None
                self._build(svc, action, out)
            case Rename():
                self._rename(action, out)
            case Rollback():
                self._note(out, oc.RollbackAsked(action.service, action.to_generation, action.reason, self.clock()))
            case _:
                assert_never(action)

    def _start(self, svc: DesiredService, action: Start, out: Out) -> None:
        if action.restart and not self.admit_restart(svc.name):
            out.append(oc.Deferred(svc.name, self.clock()))
            return
        state = self._state(action.container_id)
        if state.get("Running"):
            return  # started meanwhile (by the engine or another pass): nothing to do
        detail = self._death_detail(action.container_id, state)
        try:
            self.engine.start(action.container_id)
        except StaleTask as exc:
            # the engine keeps a task of this container from before it restarted and
            # refuses every start: only a new container runs again (volumes are kept)
            self._replace(svc, Recreate(svc.name, action.replica, action.container_id,
                                        f"{action.reason}; {exc}", ("runtime state",)), out)
            return
        except ReconcileError as exc:
            if not _network_gone(exc):
                raise
            # someone removed a network this container was attached to: the
            # container cannot start again, so it is recreated (networks ensured)
            self._replace(svc, Recreate(svc.name, action.replica, action.container_id,
                                        f"{action.reason}; its network was removed ({exc})", ("networks",)), out)
            return
        self._restarted(action.container_id)
        self._note(out, oc.Started(svc.name, action.replica, action.container_id, action.reason, self.clock(),
                                   restart=action.restart, detail=detail))
        self._post_start(svc, action.container_id, out)

    def _restart(self, svc: DesiredService, action: Restart, out: Out) -> None:
        if not action.requested and not self.admit_restart(svc.name):
            out.append(oc.Deferred(svc.name, self.clock()))
            return
        probe = "" if action.requested else self.probe_output(action.container_id)
        self._pre_stop(svc.name, action.container_id, self._pre_stop_calls(svc), svc.spec.stopGracePeriod, out)
        try:
            self.engine.restart(action.container_id, timeout=int(svc.spec.stopGracePeriod))
        except StaleTask as exc:
            self._replace(svc, Recreate(svc.name, action.replica, action.container_id,
                                        f"{action.reason}; {exc}", ("runtime state",)), out)
            return
        self._restarted(action.container_id)
        self._note(out, oc.Restarted(svc.name, action.replica, action.container_id, action.reason, self.clock(),
                                     requested=action.requested, config_hash=action.config_hash, probe=probe))
        self._post_start(svc, action.container_id, out)

    def _replace(self, svc: DesiredService, action: Recreate, out: Out) -> None:
        cid = self._recreate(svc, action, out)
        self._note(out, oc.Recreated(svc.name, action.replica, action.container_id, cid, action.reason, self.clock(),
                                     action.changed_fields, action.rollout))
        self._post_start(svc, cid, out)

    def _remove(self, svc: DesiredService | None, action: Remove, out: Out) -> None:
        grace = svc.spec.stopGracePeriod if svc else (10.0 if action.grace is None else action.grace)
        calls = self._pre_stop_calls(svc) if svc else action.pre_stop
        self._pre_stop(action.service, action.container_id, calls, grace, out)
        self._stop_quietly(action.container_id, int(grace))
        self.engine.remove(action.container_id)
        self._note(out, oc.Removed(action.service, action.container_id, action.name, action.reason, self.clock()))

    def _rename(self, action: Rename, out: Out) -> None:
        try:
            self.engine.rename(action.container_id, action.new_name)
        except NameConflict:
            self._explain_conflict(action.new_name, action.service, action.replica)
            raise
        self._note(out, oc.Renamed(action.service, action.container_id, action.old_name, action.new_name,
                                   action.reason, self.clock()))

    def _build(self, svc: DesiredService, action: Build, out: Out) -> None:
        b = svc.spec.build
        assert b is not None
        try:
            ok, tail = self.engine.build_image(BuildRequest(
                context=b.context, dockerfile=b.dockerfile, tag=svc.spec.image, args=dict(b.args), target=b.target,
                labels={L.BUILD_HASH: svc.build_hash, L.MANAGED: "true", L.INSTANCE: self.instance},
                options=render_host.build_options(b, svc.spec.platform), dockerfile_inline=b.dockerfileInline))
        except ReconcileError as exc:  # the engine refused the build itself (a remote context it cannot fetch)
            if not (b.remote and (not_fetched(str(exc)) or unreachable(str(exc)))):
                raise
            ok, tail = False, str(exc)
        if ok:
            self._note(out, oc.Built(svc.name, svc.spec.image, b.context, action.reason, self.clock()))
            return
        out.append(oc.BuildFailed(svc.name, action.reason, tail, self.clock()))
        last = tail.splitlines()[-1] if tail else ""
        if b.remote and not_fetched(tail):
            # this engine never fetches a URL context: retrying cannot help
            raise TerminalError(f"building {svc.spec.image} failed: its build context {b.context} is a URL, and "
                                "this engine does not fetch URL build contexts (Podman's Docker-compatible API "
                                "ignores the URL and builds from an empty context, so it finds no Dockerfile); "
                                f"clone or download it and give a local directory instead ({last})")
        if b.remote and unreachable(tail):
            # retrying will not help until the network (or the file) changes
            raise TerminalError(f"building {svc.spec.image} failed: its build context {b.context} is a "
                                "URL the engine fetches itself, and the engine could not reach it (no "
                                "network route or DNS from the engine's host?); clone or download it "
                                f"and give a local directory instead ({last})")
        raise ReconcileError(f"building {svc.spec.image} from {b.context} failed: {last}")

    def _stop_quietly(self, cid: str, timeout: int) -> None:
        try:
            self.engine.stop(cid, timeout=timeout)
        except NotFound:
            pass

    def _create_and_start(self, svc: DesiredService, replica: int, name: str | None = None) -> str:
        cfg = render(svc, self.instance, replica)
        if name:
            cfg = replace(cfg, name=name)
        self._ensure_volumes(svc, cfg)
        self._ensure_networks(svc, cfg)
        self.gate()
        try:
            cid = self.engine.create(cfg)
        except NameConflict:
            self._explain_conflict(cfg.name, svc.name, replica)
            raise
        except ImageMissing as exc:
            raise ImageMissing(f"image {svc.spec.image!r} is not present on this host and is never pulled; "
                               f"build or load it first ({exc})") from exc
        self._connect_rest(cid, cfg)
        self.gate()
        self.engine.start(cid)
        return cid

    def _ensure_volumes(self, svc: DesiredService, cfg: ContainerConfig) -> None:
        """Named volumes exist before the engine would create them itself (without our
        labels and options); an external one is only checked (ExternalMissing)."""
        for vol in cfg.volumes:
            if self.engine.ensure_volume(vol, {L.MANAGED: "true", L.INSTANCE: self.instance, L.SERVICE: svc.name},
                                         cfg.volume_specs.get(vol)):
                logger.info(f"created volume {vol} for {svc.name}")

    def _ensure_networks(self, svc: DesiredService, cfg: ContainerConfig) -> None:
        # the engine allows two networks with one name; services created in parallel
        # must not race to make the same one
        with self._create_lock:
            for net in cfg.networks:
                if self.engine.ensure_network(net, {L.MANAGED: "true", L.INSTANCE: self.instance},
                                              cfg.network_specs.get(net)):
                    logger.info(f"created network {net} for {svc.name}")

    def _connect_rest(self, cid: str, cfg: ContainerConfig) -> None:
        for net in cfg.networks[1:]:
            self.engine.connect(cid, net, cfg.endpoints.get(net) or {})

    def _explain_conflict(self, name: str, service: str, replica: int) -> None:
        other = self.engine.find_by_name(name)
        if other is None:
            return
        labels = (other.get("Config") or {}).get("Labels") or {}
        owned = labels.get(L.INSTANCE) == self.instance and labels.get(L.SERVICE) == service
        if not owned:
            raise NameConflict(
                f"container name {name!r} is taken by container {other['Id'][:12]} that reconcile does not own; "
                "it was left untouched. Rename or remove it, or rename the service.")

    def _recreate(self, svc: DesiredService, action: Recreate, out: Out) -> str:
        """Rename old aside, create the new one under the real name, stop old, start new,
        remove old. If the new one cannot be created, the old one is put back."""
        old = action.container_id
        info = self.engine.inspect(old)
        real_name = info["Name"].lstrip("/")
        aside = f"{real_name}-old-{old[:8]}"
        # before the rename: nothing to put back if the image cannot be read
        cfg = inherit_anonymous(render(svc, self.instance, action.replica), info.get("Mounts") or [],
                                self.engine.image_volumes(svc.spec.image))
        self.engine.rename(old, aside)
        try:
            self._ensure_volumes(svc, cfg)
            self._ensure_networks(svc, cfg)
            new = self.engine.create(cfg)
            self._connect_rest(new, cfg)
        except ReconcileError:
            self.engine.rename(old, real_name)
            raise
        grace = int(svc.spec.stopGracePeriod)
        pre_stop = self._pre_stop_calls(svc)
        if svc.spec.update.order == "start-first":
            try:  # the new one first; it may need the old one's host ports, then stop-first it is
                self.engine.start(new)
                self._pre_stop(svc.name, old, pre_stop, svc.spec.stopGracePeriod, out)
                self._stop_quietly(old, grace)
                self.engine.remove(old)
                return new
            except ReconcileError as exc:
                logger.info(f"{svc.name}: start-first not possible ({exc}); stopping the old container first")
        self._pre_stop(svc.name, old, pre_stop, svc.spec.stopGracePeriod, out)
        self._stop_quietly(old, grace)
        try:
            self.engine.start(new)
        except ReconcileError:
            self.engine.remove(new)
            self.engine.rename(old, real_name)
            self.engine.start(old)
            raise
        self.engine.remove(old)
        return new

    # -- lifecycle hooks (controller.hooks) ------------------------------------
    @staticmethod
    def _pre_stop_calls(svc: DesiredService) -> tuple[hooks.HookCall, ...]:
        return hooks.calls(svc.spec.lifecycle.preStop)

    def _audit_hooks(self, service: str, cid: str, runs: list[hooks.HookRun], out: Out) -> None:
        for r in runs:
            outcome = oc.HookRan(service, cid, r, self.clock())
            if not r.ok:
                logger.warning(f"{service} ({cid[:12]}): {r.reason}: {r.message}")
            self._note(out, outcome)

    def _post_start(self, svc: DesiredService, cid: str, out: Out) -> None:
        """Run the postStart hooks after a start; the first failure fails the action
        (``HookFailed``), and the container keeps running, as compose leaves it."""
        calls = hooks.calls(svc.spec.lifecycle.postStart)
        if not calls:
            return
        runs = hooks.run("postStart", calls, lambda call: self.engine.exec_hook(cid, call), clock=self.clock)
        self._audit_hooks(svc.name, cid, runs, out)
        failed = next((r for r in runs if not r.ok), None)
        if failed is not None:
            tail = failed.result.output.strip()[-300:]
            raise HookFailed(f"postStart hook {failed.index}/{failed.total} of {svc.name} ({failed.call.shown}) "
                             f"{failed.outcome}" + (f": {tail}" if tail else "") + "; the container keeps running")

    def _pre_stop(self, service: str, cid: str, calls: tuple[hooks.HookCall, ...], grace: float, out: Out) -> None:
        """Run the preStop hooks of a running container before it is stopped, within its
        grace period; failures are audited and the stop proceeds."""
        if not calls or not self._state(cid).get("Running"):
            return
        try:
            runs = hooks.run("preStop", calls, lambda call: self.engine.exec_hook(cid, call), budget=grace,
                             clock=self.clock)
        except NotFound:
            return  # gone meanwhile: nothing to stop
        except ReconcileError as exc:  # the engine refused the exec (e.g. the container stopped): stop anyway
            out.append(oc.HookUnrunnable(service, cid, str(exc), self.clock()))
            return
        self._audit_hooks(service, cid, runs, out)

    def _state(self, cid: str) -> dict[str, Any]:
        try:
            return self.engine.inspect(cid).get("State") or {}
        except ReconcileError:
            return {}

    def _death_detail(self, cid: str, state: dict[str, Any] | None = None) -> str:
        if state is None:
            state = self._state(cid)
        parts = []
        if state.get("OOMKilled"):
            parts.append("OOM-killed")
        if state.get("Error"):
            parts.append(f"engine error: {state['Error']}")
        if state.get("FinishedAt") and not str(state["FinishedAt"]).startswith("0001"):
            parts.append(f"finished at {state['FinishedAt'][:19]}Z")
        return ", ".join(parts)

    def _restarted(self, cid: str) -> None:
        if self.health is not None:
            self.health.restarted(cid, self.clock())

    def probe_output(self, cid: str) -> str:
        """The last healthcheck probe: exit code and (truncated) output, from whichever of
        the engine and the controller ran it."""
        mine = self.health.last_probe(cid) if self.health is not None else None
        if mine is not None:
            return truncate(mine, 300) if mine else ""
        try:
            health = ((self.engine.inspect(cid).get("State") or {}).get("Health") or {})
        except ReconcileError:
            return ""
        log = health.get("Log") or []
        if not log:
            return ""
        last = log[-1]
        return truncate(f"exit {last.get('ExitCode')}: {last.get('Output', '')}", 300)
