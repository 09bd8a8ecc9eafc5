"""observe -> plan -> execute -> record.

``Reconciler.reconcile(only)`` is level-triggered and idempotent: it takes service
names, never events, re-reads desired state and the engine, plans with the pure
planner and has the executor carry the plan out (services in parallel on a bounded
pool; one service's actions in order). A service with work still in flight is skipped
by later passes until that work finishes, so two passes never act on one service.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from loguru import logger

from controller import files, planner
from controller import status as status_mod
from controller.actions import Action
from controller.advance import Seen, Work, advance, observe
from controller.engine import Engine
from controller.executor import Executor
from controller.outcomes import truncate
from controller.health import HealthChecks
from controller.probes import CONTROLLER
from controller.observed import Observed
from controller.record import Recorder
from controller.refs import RefCache
from controller.render import DesiredService, has_refs, prepare, with_refs
from controller.render_net import with_peers
from store import Event, Status, Store
from store.db import sqlite_path

ERROR_BACKOFF_MAX = 300.0  # a service whose actions keep failing is retried at most this rarely


@dataclass
class PassResult:
    plan: planner.Plan
    done: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    skipped_busy: set[str] = field(default_factory=set)
    skipped_backoff: set[str] = field(default_factory=set)

    @property
    def actions(self) -> list[Action]:
        return self.plan.actions


class Reconciler:
    def __init__(self, store: Store, engine: Engine, *, actor: str = "controller",
                 clock: Callable[[], float] = time.time, workers: int = 4,
                 admit_restart: Callable[[str], bool] | None = None,
                 on_service_done: Callable[[str], None] | None = None,
                 on_events: Callable[[list[Event]], None] | None = None,
                 on_service_retry: Callable[[str, float], None] | None = None,
                 on_health_change: Callable[[str], None] | None = None):
        self.store = store
        self.engine = engine
        self.actor = actor
        self.clock = clock
        self.instance = store.instance_id
        # health checks the engine does not run are run here (on_health_change: one changed)
        self.health = HealthChecks(engine, clock, on_change=on_health_change)
        self.executor = Executor(engine, self.instance, actor=actor, clock=clock, admit_restart=admit_restart,
                                 health=self.health)
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reconcile")
        self._prepared: dict[tuple[str, str, bool], DesiredService] = {}
        self._busy: set[str] = set()
        self._lock = threading.Lock()
        self._images: tuple[dict[str, str], dict[str, str]] | None = None
        self.refs = RefCache()
        self.files_root = files.files_root(sqlite_path(store.url), self.instance)
        self.on_service_done = on_service_done
        self.on_events = on_events
        self.on_service_retry = on_service_retry
        self._version: dict[str, int] = {}  # bumped whenever work for a service finishes
        self._errors: dict[str, tuple[int, float, str]] = {}  # failures in a row, retry-after, last message
        self._adoption_checked = False
        # writes status and audit rows; keeps them through store faults (controller.record)
        self.recorder = Recorder(store, clock)

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.health.close()

    def invalidate_images(self) -> None:
        self._images = None

    # -- observe -------------------------------------------------------------
    def desired(self) -> dict[str, DesiredService]:
        out: dict[str, DesiredService] = {}
        prepared: dict[tuple[str, str, bool], DesiredService] = {}
        for name, rec in self.store.desired().items():
            key = (name, f"{rec.spec_hash}/{rec.generation}", rec.suspended)
            svc = self._prepared.get(key)
            if svc is None:
                svc = prepare(name, rec.kind, rec.generation, rec.spec, rec.suspended)
            prepared[key] = svc
            if svc.spec.files:
                svc = replace(svc, files_root=self.files_root)
            if has_refs(svc.spec):  # re-read referenced files (by size and mtime first)
                r = self.refs.resolve(svc.spec)
                svc = with_refs(svc, {**svc.env, **r.env}, r.secret_keys, r.files, r.config_hash,
                                r.build_hash, r.error)
            out[name] = svc
        self._prepared = prepared  # only what is still desired: no growth over months
        return out

    def _sync_files(self, desired: dict[str, DesiredService], now: float) -> dict[str, DesiredService]:
        """Write the files the desired services mount (``spec.files``) and remove those no
        service references (``controller.files``); a service whose files cannot be written
        is not created (its status says why, as for an unreadable secret file)."""
        res = files.sync(self.files_root, {n: s.spec.files for n, s in desired.items() if s.spec.files}, now)
        for path in res.removed:
            logger.info(f"removed {path}: no desired service mounts it any more")
        return {n: (replace(s, ref_error=res.errors[n]) if n in res.errors and not s.ref_error else s)
                for n, s in desired.items()}

    def image_ids(self) -> dict[str, str]:
        if self._images is None:
            self._images = self.engine.images()
        return self._images[0]

    def image_builds(self) -> dict[str, str]:
        self.image_ids()
        assert self._images is not None
        return self._images[1]

    # -- one pass ------------------------------------------------------------
    def _fresh(self, name: str, busy_at_start: set[str], versions: dict[str, int]) -> bool:
        """Not being worked on, and nothing finished for it since this pass read the store.
        A stale read must neither be recorded nor acted on (it would undo that work)."""
        return (name not in self._busy and name not in busy_at_start
                and self._version.get(name, 0) == versions.get(name, 0))

    def error_backoff_until(self, name: str) -> float:
        return self._errors.get(name, (0, 0.0, ""))[1]

    def reconcile(self, only: set[str] | None = None, *, wait: bool = True,
                  desired: dict[str, DesiredService] | None = None, dry_run: bool = False) -> PassResult:
        with self._lock:
            busy_at_start, versions = set(self._busy), dict(self._version)
        now = self.clock()
        if desired is None:
            desired = self.desired()
            if not dry_run:  # only a full view of what is desired may remove files
                desired = self._sync_files(desired, now)
        observed = self.engine.list_owned(self.instance)
        desired = with_peers(desired, observed)
        statuses = self._statuses()
        if not dry_run:
            observed = self.health.observe(observed, desired, now, seed=_health_seed(statuses))
        revisions = self._revisions(desired, observed, statuses)
        plan = planner.plan(desired, observed, statuses, revisions=revisions, image_ids=self.image_ids(),
                            now=now, only=only, image_builds=self.image_builds())
        result = PassResult(plan)
        if dry_run:
            return result
        by_service: dict[str, list[Observed]] = {}
        for c in observed:
            by_service.setdefault(c.service, []).append(c)
        self._adopt(observed)
        derived = self._record_observations(plan, desired, by_service, statuses, now, busy_at_start, versions)
        futures: list[Future[Any]] = []
        work: dict[str, list[Action]] = {}
        for sp in plan.services.values():
            if sp.actions:
                work.setdefault(sp.name, []).extend(sp.actions)
        for orphan in plan.orphans:
            work.setdefault(orphan.service, []).append(orphan)
        for name, actions in work.items():
            with self._lock:
                if not self._fresh(name, busy_at_start, versions):
                    result.skipped_busy.add(name)
                    continue
                if self.error_backoff_until(name) > now:
                    result.skipped_backoff.add(name)
                    continue
                self._busy.add(name)
            futures.append(self.pool.submit(self._run_service, name, desired.get(name), actions,
                                            derived.get(name) or statuses.get(name), result))
        if wait:
            for f in futures:
                f.result()
        return result

    def _run_service(self, name: str, svc: DesiredService | None, actions: list[Action],
                     status: Status | None, result: PassResult) -> None:
        failed = False
        try:
            failed = self._carry_out(name, svc, actions, status, result)
        except Exception as exc:  # noqa: BLE001 - one service's failure must not stop others
            logger.exception(f"reconciling {name} failed")
            result.errors.append(f"{name}: {exc}")
            failed = True
        finally:
            with self._lock:
                self._busy.discard(name)
                self._version[name] = self._version.get(name, 0) + 1
                if failed:
                    count = self._errors.get(name, (0, 0.0, ""))[0] + 1
                    until = self.clock() + min(ERROR_BACKOFF_MAX, 2.0 ** (count - 1))
                    self._errors[name] = (count, until, self._errors.get(name, (0, 0.0, ""))[2])
                else:
                    self._errors.pop(name, None)
            if failed:
                if self.on_service_retry:
                    self.on_service_retry(name, self.error_backoff_until(name))
            elif self.on_service_done:
                self.on_service_done(name)

    def _carry_out(self, name: str, svc: DesiredService | None, actions: list[Action],
                   status: Status | None, result: PassResult) -> bool:
        """Execute one service's actions, advance its status from the outcomes and record
        both. True when an action failed."""
        outcomes = self.executor.run(svc, actions)
        work = Work(name, tuple(actions), svc.generation if svc else 0,
                    svc.spec.restartPolicy if svc else None, self.actor)
        now = self.clock()
        adv = advance(status, work, outcomes, now)
        events = self.recorder.audited_failures(name, adv.errors, adv.events, now)
        self._record(events, [adv.status] if adv.status is not None else [], [name] if adv.forget else [])
        if self.on_events:
            self.on_events(events)
        if adv.built:
            self.invalidate_images()
        if adv.rollback is not None:
            self.store.rollback(name, to_generation=adv.rollback.to_generation, actor=self.actor,
                                now=self.clock(), reason=adv.rollback.reason)
        result.done.extend(adv.done)
        result.errors.extend(adv.errors)
        return bool(adv.errors)

    # -- recording (controller.record: survives store faults) ---------------------
    def _statuses(self) -> dict[str, Status]:
        """The stored statuses, overlaid with those the store could not take yet (so the
        backoff and restart counts stay right while the disk is full)."""
        return self.recorder.overlay(self.store.statuses())

    def _record(self, events: list[Event], statuses: list[Status] | tuple[()] = (),
                drop: list[str] | tuple[()] = ()) -> None:
        self.recorder.record(events, statuses, drop)

    def _adopt(self, observed: list[Observed]) -> None:
        """Once per controller: containers without a Created/Recreated row (a controller
        killed between creating one and recording it) get one, so the audit stays complete."""
        if self._adoption_checked:
            return
        self._adoption_checked = True
        ids = [c.id for c in observed]
        if not ids:
            return
        known = self.store.containers_with_events(ids, ("Created", "Recreated"))
        missing = [c for c in observed if c.id not in known]
        self._record([Event(ts=self.clock(), service=c.service, type="Created", container_id=c.id,
                                 reason="adopted: created by a controller that stopped before recording it",
                                 message=f"container {c.short_id} ({c.name})", generation=c.generation,
                                 actor=self.actor) for c in missing])

    def _revisions(self, desired: dict[str, DesiredService], observed: list[Observed],
                   statuses: dict[str, Status] | None = None) -> dict[tuple[str, int], dict[str, Any]]:
        """Specs of the older generations the planner needs: those running containers still
        carry (field diffs), and the one a rollout started from (the rollback target, which
        with one replica no container carries any more)."""
        out: dict[tuple[str, int], dict[str, Any]] = {}
        for name, st in (statuses or {}).items():
            svc = desired.get(name)
            gen = st.rollout_from_generation
            if svc and gen and gen != svc.generation and (name, gen) not in out:
                rev = self.store.revision(name, gen)
                if rev is not None:
                    out[(name, gen)] = rev.spec
        for c in observed:
            svc = desired.get(c.service)
            # a container nobody wants any more: its revision says which preStop hooks to run
            orphan = svc is None and bool(c.generation)
            if (orphan or (svc and c.spec_hash != svc.container_hash)) and (c.service, c.generation) not in out:
                rev = self.store.revision(c.service, c.generation)
                if rev is not None:
                    out[(c.service, c.generation)] = rev.spec
        return out

    def _record_observations(self, plan: planner.Plan, desired: dict[str, DesiredService],
                             by_service: dict[str, list[Observed]], statuses: dict[str, Status], now: float,
                             busy_at_start: set[str] | None = None,
                             versions: dict[str, int] | None = None) -> dict[str, Status]:
        """Status of every planned service and audit rows for what changed on its own.
        Returns the derived statuses (the executor continues from them)."""
        events: list[Event] = []
        updates: list[Status] = []
        derived: dict[str, Status] = {}
        with self._lock:
            if busy_at_start is None:
                busy_at_start, versions = set(self._busy), dict(self._version)
        for name, sp in plan.services.items():
            with self._lock:
                if not self._fresh(name, busy_at_start, versions or {}):
                    continue
            old = statuses.get(name)
            new, evs = observe(old, sp, self._seen(old, sp, desired[name], by_service.get(name, [])), now)
            for ev in evs:
                logger.info(f"{name}: {ev.type} {ev.reason} {ev.message}".rstrip())
            events.extend(evs)
            derived[name] = new
            if status_mod.changed(old, new):
                updates.append(new)
        self._record(events, updates)
        if self.on_events and events:
            self.on_events(events)
        return derived

    def _seen(self, old: Status | None, sp: planner.ServicePlan, svc: DesiredService,
              containers: list[Observed]) -> Seen:
        """What this pass saw of a service, with the detail its transitions' audit rows
        carry fetched from the engine (before anything is derived or recorded)."""
        main = next((c for c in containers if c.replica == 1 and c.running), None)
        checked_by = self.health.checked_by(main.id) if main is not None else ""
        details = {note: self._detail(note) for note in status_mod.transitions(old, sp, svc, containers)
                   if note.wants_probe or note.wants_logs}
        return Seen(svc, tuple(containers), checked_by, details, self.actor)

    def _detail(self, note: status_mod.Transition) -> str:
        if note.wants_probe:
            return self.executor.probe_output(note.container_id)
        try:
            return "output tail: " + truncate(self.engine.logs_tail(note.container_id, 10), 1000)
        except Exception:  # noqa: BLE001 - the audit row matters more than its detail
            return ""

    def gc_networks(self) -> list[str]:
        """Remove this store's networks that no desired service names (and nothing uses)."""
        # external networks are never removed, even one reconcile created before it was marked so
        wanted = {n for svc in self.desired().values() for n in [*svc.spec.networks, *svc.spec.networkSpecs]}
        removed = []
        for net in self.engine.owned_networks(self.instance):
            name = net.get("Name", "")
            if name in wanted or net.get("Containers"):
                continue
            try:
                self.engine.remove_network(name)
                removed.append(name)
                logger.info(f"removed network {name}: no desired service names it")
            except Exception as exc:  # noqa: BLE001 - in use by something: leave it
                logger.debug(f"network {name} kept: {exc}")
        return removed

    def refresh_status(self, only: set[str] | None = None) -> PassResult:
        """A pass that records status without acting (after actions, or for --wait)."""
        return self._observe_only(only)

    def _observe_only(self, only: set[str] | None) -> PassResult:
        now = self.clock()
        observed = self.engine.list_owned(self.instance)
        desired = with_peers(self.desired(), observed)
        statuses = self.store.statuses()
        observed = self.health.observe(observed, desired, now, seed=_health_seed(statuses))
        plan = planner.plan(desired, observed, statuses, image_ids=self.image_ids(), now=now, only=only,
                            image_builds=self.image_builds())
        by_service: dict[str, list[Observed]] = {}
        for c in observed:
            by_service.setdefault(c.service, []).append(c)
        self._record_observations(plan, desired, by_service, statuses, now)
        return PassResult(plan)


def _health_seed(statuses: dict[str, Status]) -> dict[str, str]:
    """Container -> the health the controller's own probes last recorded for it."""
    return {st.container_id: st.health for st in statuses.values()
            if st.container_id and st.health and st.health_checked_by == CONTROLLER}
