"""observe -> plan -> execute -> record.

``Reconciler.reconcile(only)`` is level-triggered and idempotent: it takes service
names, never events, re-reads desired state and the engine (one label-filtered list
per pass: the pass's snapshot), plans with the pure planner and has the executor carry
the plan out (services in parallel on a bounded pool; one service's actions in order).

*When* a name is looked at is the work queue's (``controller.workqueue``): a pass takes
its names from the queue for processing before it reads the engine, so a name whose
work is still in flight is left out (and looked at again once that work is done), and
no pass plans on a snapshot taken while another acted on the same service. Each name's
work answers a ``workqueue.Result``: done (looked at again at once), or the error whose
type decides the retry (transient: after its delay; terminal: not requeued).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from loguru import logger

from controller import files, planner, workqueue
from controller import status as status_mod
from controller.actions import Action
from controller.advance import Seen, Work, advance, observe
from controller.engine import Engine
from controller.executor import Executor
from controller.outcomes import EngineHung, Failed, truncate
from controller.errors import ReconcileError, TerminalError, TransientError
from controller.health import HealthChecks
from controller.probes import CONTROLLER
from controller.observed import Observed
from controller.record import Recorder
from controller.refs import RefCache
from controller.render import DesiredService, has_refs, prepare, with_refs
from controller.render_net import with_peers
from controller.workqueue import Batch, WorkQueue
from store import Event, Status, Store
from store.db import sqlite_path


@dataclass
class PassResult:
    plan: planner.Plan
    done: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    skipped: set[str] = field(default_factory=set)  # asked for, but in flight or backing off: looked at later

    @property
    def actions(self) -> list[Action]:
        return self.plan.actions


@dataclass(frozen=True)
class ReconcilerConfig:
    """Who acts (the audit rows' actor), its clock, its pool, and the daemon's two hooks:
    ``admit_restart`` (the host-wide restart limit) and ``on_events`` (the audit rows written)."""

    actor: str = "controller"
    clock: Callable[[], float] = time.time
    workers: int = 4
    admit_restart: Callable[[str], bool] | None = None
    on_events: Callable[[list[Event]], None] | None = None
    node: NodeHooks | None = None  # many hosts (controller.agent); None on a single host


@dataclass(frozen=True)
class NodeHooks:
    """What an agent changes in a pass (docs/MULTI-HOST.md): ``narrow`` gives each desired
    service the replicas assigned to this node; ``writes_status`` says whether this node
    writes a service's status row (the others keep theirs in memory); ``gate`` raises
    ``NotOwner`` before an engine action once the node may not act."""

    narrow: Callable[[dict[str, DesiredService]], dict[str, DesiredService]]
    writes_status: Callable[[str], bool]
    gate: Callable[[], None]


class Reconciler:
    def __init__(self, store: Store, engine: Engine, config: ReconcilerConfig = ReconcilerConfig(),
                 queue: WorkQueue | None = None):
        self.store = store
        self.engine = engine
        self.actor = config.actor
        self.clock = config.clock
        self.instance = store.instance_id
        # the daemon's queue; a reconciler of its own (the CLI's) keeps one just for exclusivity
        self.queue = queue if queue is not None else WorkQueue(config.clock)
        # health checks the engine does not run are run here (a change queues the service)
        self.health = HealthChecks(engine, config.clock, on_change=self.queue.add)
        self.node = config.node
        self.executor = Executor(engine, self.instance, actor=config.actor, clock=config.clock,
                                 admit_restart=config.admit_restart, health=self.health,
                                 gate=config.node.gate if config.node else None)
        self._local: dict[str, Status] = {}  # statuses another node writes (NodeHooks.writes_status)
        self.pool = ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="reconcile")
        self._prepared: dict[tuple[str, str, bool], DesiredService] = {}
        self._lock = threading.Lock()
        self._images: tuple[dict[str, str], dict[str, str]] | None = None
        self.refs = RefCache()
        self.files_root = files.files_root(sqlite_path(store.url), self.instance)
        self.on_events = config.on_events
        self._adoption_checked = False
        # writes status and audit rows; keeps them through store faults (controller.record)
        self.recorder = Recorder(store, config.clock)

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
        return self.node.narrow(out) if self.node is not None else out

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
    def reconcile(self, only: set[str] | None = None, *, wait: bool = True,
                  desired: dict[str, DesiredService] | None = None, dry_run: bool = False) -> PassResult:
        """One pass over ``only`` (None: every desired service and every orphan). Names in
        flight or backing off are left out (``skipped``). ``wait``: return once the work is done."""
        now = self.clock()
        if dry_run:
            return self._dry_run(only, self.desired() if desired is None else desired, now)
        pending: set[str] = set()  # names this pass holds and has not handed to a worker
        futures: list[Future[Any]] = []
        try:
            if desired is None:  # only a full view of what is desired may remove files
                desired = self._sync_files(self.desired(), now)
            wanted = set(desired) if only is None else set(only)
            pending |= self.queue.claim(wanted)
            result, futures = self._pass(desired, only is None, wanted, pending, now)
        finally:
            self._release(pending)
        if wait:
            for f in futures:
                f.result()
        return result

    def reconcile_batch(self, batch: Batch) -> PassResult:
        """The daemon's pass over names it took from the queue (``batch.keys``, already
        processing); a dependency's change may release (or cascade to) its dependents."""
        now = self.clock()
        pending = set(batch.keys)
        try:
            desired = self._sync_files(self.desired(), now)
            wanted = set(desired) if batch.full else set(batch.keys) | cascade(desired, batch.keys)
            pending |= self.queue.claim(wanted - pending)
            result, _futures = self._pass(desired, batch.full, wanted | pending, pending, now)
        finally:
            self._release(pending)
        return result

    def _release(self, keys: set[str]) -> None:
        """Names only looked at (nothing to do): done, their failure count kept."""
        for key in keys:
            self.queue.done(key)

    def _dry_run(self, only: set[str] | None, desired: dict[str, DesiredService], now: float) -> PassResult:
        observed = self.engine.list_owned(self.instance)
        desired = with_peers(desired, observed)
        statuses = self._statuses()
        plan = planner.plan(desired, observed, statuses, now=now, only=only, lookups=planner.Lookups(
            revisions=self._revisions(desired, observed, statuses), image_ids=self.image_ids(),
            image_builds=self.image_builds()))
        return PassResult(plan)

    def _pass(self, desired: dict[str, DesiredService], full: bool, wanted: set[str], pending: set[str],
              now: float) -> tuple[PassResult, list[Future[Any]]]:
        """Snapshot, plan and record the names in ``pending`` (held by this pass); hand
        those with work to the pool (removing them from ``pending``)."""
        in_flight = self.queue.processing() - pending  # before the snapshot: never planned on it
        observed = self.engine.list_owned(self.instance)
        if full:  # containers of services nobody wants any more (removed)
            pending |= self.queue.claim({c.service for c in observed} - desired.keys() - in_flight - pending)
        owned = set(pending)
        desired = with_peers(desired, observed)
        statuses = self._statuses()
        observed = self.health.observe(observed, desired, now, seed=_health_seed(statuses))
        revisions = self._revisions(desired, observed, statuses)
        plan = planner.plan(desired, observed, statuses, now=now, only=owned, lookups=planner.Lookups(
            revisions=revisions, image_ids=self.image_ids(), image_builds=self.image_builds()))
        result = PassResult(plan, skipped=(wanted & desired.keys()) - owned)
        by_service: dict[str, list[Observed]] = {}
        for c in observed:
            by_service.setdefault(c.service, []).append(c)
        self._adopt(observed)
        derived = self._record_observations(plan, desired, by_service, statuses, now)
        for sp in plan.services.values():
            if sp.retry_at is not None:  # a wait (backoff, dependency, probe) ends then
                self.queue.add_after(sp.name, sp.retry_at + 0.01 - self.clock())
        futures: list[Future[Any]] = []
        for name, actions in _work(plan).items():
            futures.append(self.pool.submit(self.reconcile_name, name, desired.get(name), actions,
                                            derived.get(name) or statuses.get(name), result))
            pending.discard(name)
        return result, futures

    def reconcile_name(self, name: str, svc: DesiredService | None, actions: list[Action],
                       status: Status | None, result: PassResult) -> workqueue.Result:
        """One name's work (a worker holds it: no other has it); its answer goes to the queue."""
        outcome = workqueue.Result(error=ReconcileError("not run"))
        try:
            outcome = self._run_service(name, svc, actions, status, result)
        finally:
            workqueue.finish(self.queue, name, outcome)
        return outcome

    def _run_service(self, name: str, svc: DesiredService | None, actions: list[Action],
                     status: Status | None, result: PassResult) -> workqueue.Result:
        try:
            outcome = self._carry_out(name, svc, actions, status, result)
        except Exception as exc:  # noqa: BLE001 - one service's failure must not stop others
            logger.exception(f"reconciling {name} failed")
            result.errors.append(f"{name}: {exc}")
            outcome = workqueue.Result(error=exc)
        return outcome

    def _carry_out(self, name: str, svc: DesiredService | None, actions: list[Action],
                   status: Status | None, result: PassResult) -> workqueue.Result:
        """Execute one service's actions, advance its status from the outcomes and record
        both. The queue's answer: done, or the error that decides the retry."""
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
        return _outcome(adv.errors, [o.exc for o in outcomes if isinstance(o, (Failed, EngineHung)) and o.exc])

    # -- recording (controller.record: survives store faults) ---------------------
    def _statuses(self) -> dict[str, Status]:
        """The stored statuses, overlaid with those the store could not take yet (so the
        backoff and restart counts stay right while the disk is full)."""
        merged = self.recorder.overlay(self.store.statuses())
        if self.node is not None:
            merged.update((n, st) for n, st in self._local.items() if not self.node.writes_status(n))
        return merged

    def _record(self, events: list[Event], statuses: list[Status] | tuple[()] = (),
                drop: list[str] | tuple[()] = ()) -> None:
        if self.node is not None:  # a service spread over nodes: one of them writes its status row
            writes = self.node.writes_status
            self._local.update((st.name, st) for st in statuses if not writes(st.name))
            for n in drop:
                self._local.pop(n, None)
            statuses = [st for st in statuses if writes(st.name)]
            drop = [n for n in drop if writes(n)]
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
                             by_service: dict[str, list[Observed]], statuses: dict[str, Status],
                             now: float) -> dict[str, Status]:
        """Status of every planned service and audit rows for what changed on its own.
        Returns the derived statuses (the executor continues from them)."""
        events: list[Event] = []
        updates: list[Status] = []
        derived: dict[str, Status] = {}
        for name, sp in plan.services.items():  # the pass holds these names: nothing acts on them
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
        plan = planner.plan(desired, observed, statuses, now=now, only=only, lookups=planner.Lookups(
            image_ids=self.image_ids(), image_builds=self.image_builds()))
        by_service: dict[str, list[Observed]] = {}
        for c in observed:
            by_service.setdefault(c.service, []).append(c)
        self._record_observations(plan, desired, by_service, statuses, now)
        return PassResult(plan)


def _health_seed(statuses: dict[str, Status]) -> dict[str, str]:
    """Container -> the health the controller's own probes last recorded for it."""
    return {st.container_id: st.health for st in statuses.values()
            if st.container_id and st.health and st.health_checked_by == CONTROLLER}


def cascade(desired: dict[str, DesiredService], names: Iterable[str]) -> set[str]:
    """The services that depend on any of ``names`` (a change may release or restart them)."""
    out: set[str] = set()
    for n in names:
        out |= planner.dependents(desired, n)
    return out


def _work(plan: planner.Plan) -> dict[str, list[Action]]:
    """Each name's actions, in order (orphans: their removals)."""
    work: dict[str, list[Action]] = {}
    for sp in plan.services.values():
        if sp.actions:
            work.setdefault(sp.name, []).extend(sp.actions)
    for orphan in plan.orphans:
        work.setdefault(orphan.service, []).append(orphan)
    return work


def _outcome(errors: Sequence[str], failures: Sequence[ReconcileError]) -> workqueue.Result:
    """The queue's answer for one name's executed actions: done (look again at once, for
    the next step or the proof), or the error that decides the retry: a transient one
    (the longest delay asked), a terminal one when every failure was terminal, otherwise
    a plain failure (rate-limited)."""
    if not errors:
        return workqueue.Result(requeue_after=0.0)
    transient = [e for e in failures if isinstance(e, TransientError)]
    if transient:
        return workqueue.Result(error=max(transient, key=lambda e: e.retry_after))
    if len(failures) == len(errors) and all(isinstance(e, TerminalError) for e in failures):
        return workqueue.Result(error=failures[0])
    return workqueue.Result(error=ReconcileError("; ".join(errors)))
