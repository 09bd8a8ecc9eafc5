"""The long-running controller behind ``reconcile run``.

- A lease in the store makes it the one actor on this host; it waits for the lease
  while another controller holds it and takes a stale one over after its expiry.
- APScheduler drives a periodic full resync (level-triggered), lease renewal, a cheap
  poll of the store's desired-state counter (so applies are picked up within a
  second), image-id refresh and audit-history pruning.
- The engine's event stream wakes an immediate reconcile of just the affected
  service. Events only decide *when* a name is reconciled: the work queue
  (``controller.workqueue``) merges duplicate wake-ups, never hands one name to two
  passes at once and backs failing names off; ``Reconciler.reconcile_batch`` re-reads
  everything itself.
- Files the desired services reference (bind mounts, env files, secret files) are
  watched with the OS's file notifications (``controller.filewatch``): an edit enqueues
  exactly the services that reference it, within tens of milliseconds. The watches are
  re-armed when the desired state changes; the periodic resync stays the safety net.
- When the engine goes away the controller keeps running, records
  ``EngineUnavailable``, retries with backoff and, on return, records
  ``EngineRestored`` and resyncs everything.
- When the store cannot be read (a PostgreSQL server gone) a pass stops before planning,
  so containers are left exactly as they are; the controller logs one line per episode
  and retries with a bounded backoff (1 s doubling to 30 s), then goes on where it was.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from loguru import logger

from controller import labels as L
from controller.agent import Agent
from controller.engine import Engine, watched_action
from controller.errors import EngineTimeout, EngineUnavailable, ReconcileError
from controller.fence import TICK as FENCE_TICK
from controller.filewatch import FileWatcher, index
from controller.metrics import Metrics, serve
from controller.statuspage import PageOptions, StatusPage
from controller.lease import Lease, holder_id
from controller.notify_send import Sender
from controller.reconciler import PassResult, Reconciler, ReconcilerConfig
from controller.storm import RestartLimiter
from controller.workqueue import Batch, FailureLimiter, LimiterBounds, WorkQueue
from store import Event, Store
from store.errors import StoreError

@dataclass(frozen=True)
class LoopOptions:
    resync_interval: float = 5.0
    lease_ttl: float = 15.0
    workers: int = 4
    restarts_per_minute: int = 30
    metrics_addr: str | None = None
    history_retention: float | None = 90 * 86400.0
    history_max_rows: int | None = 2_000_000
    store_poll: float = 0.5
    watch_files: bool = True  # OS file notifications for referenced files (else: the periodic check only)
    failure_backoff: LimiterBounds = LimiterBounds()  # a failing service's retries: 1 s, 2 s, 4 s ... 300 s
    ui_token: str | None = field(default=None, repr=False)  # the status page's bearer token (controller.pageapi)
    notify_interval: float = 1.0  # seconds between two looks at the notification outbox


# seconds after a death event at which its service is looked at again (see _watch_events)
RECHECKS_AFTER_DEATH = (0.05, 0.2, 0.6, 1.5, 3.0)

# audit row type -> the action that wrote it (reconcile_actions_total{type=...})
_ACTION_ROWS = {"Created": "Create", "Started": "Start", "Restarted": "Restart", "Recreated": "Recreate",
                "Removed": "Remove", "Built": "Build", "Renamed": "Rename"}


class Controller:
    def __init__(self, store: Store, engine: Engine, opts: LoopOptions, clock: Callable[[], float] = time.time,
                 agent: Agent | None = None):
        self.store = store
        self.engine = engine
        self.opts = opts
        self.clock = clock
        self.agent = agent  # many hosts: this controller is the agent of one node (controller.agent)
        self.holder = agent.holder if agent is not None else holder_id("controller")
        self.lease = Lease(self.store, self.holder, self.opts.lease_ttl, self.clock)
        self.refused_by = ""  # agent mode: the live holder of this node's lease, when it refused us
        self._node_lock = threading.Lock()
        self.queue = WorkQueue(clock, FailureLimiter(opts.failure_backoff))
        self.metrics = Metrics()
        self.limiter = RestartLimiter(opts.restarts_per_minute)
        config = ReconcilerConfig(actor="controller", clock=clock, workers=opts.workers,
                                  admit_restart=self._admit_restart, on_events=self._count_events,
                                  node=agent.hooks() if agent is not None else None)
        self.reconciler = Reconciler(store, engine, config, self.queue)
        self.stopping = threading.Event()
        self.leader = threading.Event()
        self.engine_down_since: float | None = None
        self._degraded = False  # an EngineDegraded row was written for the current episode
        self.store_down_since: float | None = None  # passes cannot read the store since then
        self._store_failures = 0
        self._store_warned_at = 0.0
        self._engine_lock = threading.Lock()
        self.last_pass_at = 0.0
        self._desired_rev = -1
        self.scheduler = BackgroundScheduler(timezone="UTC")
        self.files = FileWatcher(self._files_changed) if opts.watch_files else None
        self._server: Any = None
        self._page: StatusPage | None = None
        self.sender = Sender(store, clock)

    # -- recording -------------------------------------------------------------
    def _record(self, etype: str, reason: str, message: str = "", service: str = "") -> None:
        try:
            self.store.record([Event(ts=self.clock(), service=service, type=etype, reason=reason,
                                     message=message, actor="controller")])
        except Exception as exc:  # noqa: BLE001 - the store may be full or read-only
            logger.error(f"cannot record {etype} in the store ({StoreError.describe(exc)}); containers are left running")

    def _count_events(self, events: list[Event]) -> None:
        # Counted from the audit rows the executor wrote, not from the plan: a planned action
        # may be skipped (service in flight or backing off, restart limit) and must not count.
        for e in events:
            if e.type in _ACTION_ROWS:
                self.metrics.actions.labels(_ACTION_ROWS[e.type]).inc()
            if e.type == "Restarted":
                self.metrics.restarts.labels(e.service).inc()
            elif e.type == "HealthChanged":
                self.metrics.health.labels(e.service, e.reason.rsplit(" ", 1)[-1]).inc()

    def _admit_restart(self, name: str) -> bool:
        now = self.clock()
        ok, storm = self.limiter.admit(now)
        if not ok:
            self.queue.add_after(name, self.limiter.next_free(now) - now)
            if storm:
                msg = (f"more than {self.limiter.per_minute} restarts within a minute; "
                       "deferring further restarts to stay within the limit")
                logger.warning(f"StormDetected: {msg}")
                self._record("StormDetected", msg, f"first deferred: {name}")
        return ok

    # -- engine availability -----------------------------------------------------
    def engine_down(self, exc: Exception) -> None:
        with self._engine_lock:
            if self.engine_down_since is not None:
                return
            self.engine_down_since = self.clock()
        self.metrics.engine_up.set(0)
        self.metrics.engine_errors.inc()
        logger.error(f"Docker engine unavailable: {exc}; will keep retrying")
        self._record("EngineUnavailable", str(exc)[:300])

    def engine_up(self) -> None:
        with self._engine_lock:
            since, self.engine_down_since = self.engine_down_since, None
        self.metrics.engine_up.set(1)
        if since is not None:
            downtime = self.clock() - since
            logger.info(f"Docker engine is back after {downtime:.1f}s; resyncing everything")
            self._log_engine()  # it may be another version now (upgraded while away)
            self._record("EngineRestored", f"engine answered again after {downtime:.1f}s", "full resync")
        self.reconciler.invalidate_images()
        self.queue.add_all()

    def _log_engine(self) -> None:
        try:
            info = self.engine.info()
        except ReconcileError as exc:
            logger.warning(f"engine version unknown: {exc}")
            return
        logger.info(f"engine: {info.name} {info.version}, API {info.api_version} "
                    f"(engine speaks {info.min_api_version}-{info.engine_api_version})")

    def _wait_for_engine(self) -> None:
        delay = 0.5
        while not self.stopping.is_set():
            try:
                self.engine.ping()
                self.engine_up()
                return
            except ReconcileError:
                self.stopping.wait(delay)
                delay = min(delay * 2, 10.0)

    # -- threads -------------------------------------------------------------
    def _watch_events(self) -> None:
        """Turn engine events into names on the queue; survive engine restarts."""
        since: float | None = None
        while not self.stopping.is_set():
            if not self.leader.is_set():
                self.stopping.wait(0.5)
            elif self.engine_down_since is not None:
                self._wait_for_engine()
            else:
                since = self._follow_events(since)

    def _follow_events(self, since: float | None) -> float | None:
        """Follow the stream until it ends or fails; where to resume (None: from now)."""
        try:
            for ev in self.engine.events(self.reconciler.instance, since=since):
                if self.stopping.is_set():
                    return since
                since = ev.get("time") or since
                self._on_event(ev)
            raise EngineUnavailable("event stream ended")
        except ReconcileError as exc:
            if self.stopping.is_set():
                return since
            try:
                self.engine.ping()
                self.stopping.wait(0.5)  # stream hiccup; engine still answers: resubscribe
            except ReconcileError:
                self.engine_down(exc)
                return None
        return since

    def _on_event(self, ev: dict[str, Any]) -> None:
        base = watched_action(ev)
        name = ((ev.get("Actor") or {}).get("Attributes") or {}).get(L.SERVICE)
        if not name or not base:
            return
        logger.debug(f"event {ev.get('Action') or ev.get('status')} for {name}")
        self.queue.add(name)
        if base in ("die", "kill", "oom", "stop"):
            # the engine reports the death a moment before a list shows the container
            # exited (longer on a loaded host): look again shortly, then twice more as a
            # safety net (merged if already queued)
            for after in RECHECKS_AFTER_DEATH:
                self.queue.add_after(name, after)

    def _dispatch(self) -> None:
        while not self.stopping.is_set():
            batch = self.queue.get(timeout=0.5)
            if batch is None:
                continue
            if not self._acting() or self.engine_down_since is not None:
                for key in batch.keys:  # dropped: leadership or the engine's return resyncs all
                    self.queue.done(key)
                continue
            self._pass(batch)

    def _pass(self, batch: Batch) -> None:
        started = time.perf_counter()
        try:
            result = self.reconciler.reconcile_batch(batch)
        except EngineUnavailable as exc:
            self.engine_down(exc)
            return
        except EngineTimeout as exc:
            self._pass_timed_out(batch, exc)
            return
        except Exception as exc:  # noqa: BLE001 - the loop must not die
            if isinstance(exc, StoreError) or StoreError.wraps(exc):
                self._store_unavailable(batch, exc)
                return
            logger.exception(f"reconcile pass failed: {exc}")
            self.stopping.wait(1.0)
            return
        if self.store_down_since is not None:
            logger.info(f"the store answers again after {self.clock() - self.store_down_since:.0f}s; reconciling")
            self.store_down_since, self._store_failures = None, 0
        self._degraded = False
        self.last_pass_at = self.clock()
        self.metrics.passes.inc()
        self.metrics.pass_seconds.observe(time.perf_counter() - started)
        if batch.full:
            self.metrics.not_converged.set(_not_converged(result))

    def _store_unavailable(self, batch: Batch, exc: Exception) -> None:
        """The pass could not read the store (a PostgreSQL server gone, a locked or broken
        file): it stopped before planning, so nothing was done to any container. One line
        per episode (and once a minute), then the batch again after a bounded backoff."""
        now = self.clock()
        self._store_failures += 1
        delay = store_retry_delay(self._store_failures)
        if self.store_down_since is None or now - self._store_warned_at >= 60.0:
            self._store_warned_at = now
            logger.error(f"cannot read the store {self.store.shown_url} ({StoreError.describe(exc)}); "
                         f"containers are left as they are; retrying in {delay:g}s")
        if self.store_down_since is None:
            self.store_down_since = now
        for n in batch.keys:
            self.queue.add_after(n, delay)
        if batch.full:
            self.stopping.wait(delay)
            self.queue.add_all()

    def _pass_timed_out(self, batch: Batch, exc: EngineTimeout) -> None:
        """The pass's own look (a list) hung: audited once per episode, retried soon."""
        if not self._degraded:
            self._degraded = True
            logger.warning(f"engine degraded: {exc}; retrying in {exc.retry_after:g}s")
            self._record("EngineDegraded", f"{exc.call} timed out after {exc.timeout:g}s", str(exc))
        for n in batch.keys:
            self.queue.add_after(n, exc.retry_after)
        if batch.full:
            self.stopping.wait(exc.retry_after)
            self.queue.add_all()

    # -- scheduled jobs --------------------------------------------------------
    def _acting(self) -> bool:
        """May this process act on the engine now (the lease; on a node, its local deadline)?"""
        if self.agent is not None and self.leader.is_set() and not self.agent.may_act():
            why = "the fence began" if self.agent.fencing else "local lease deadline passed"
            logger.warning(f"node {self.agent.node}: {why} without a renewal; "
                           "not acting until the lease is held again")
            self.leader.clear()
            self.metrics.leader.set(0)
        return self.leader.is_set()

    def _node_lease_job(self) -> None:
        """Agent mode: acquire or renew the node lease. On (re)acquiring it, first remove
        what was moved away from this node, then act."""
        assert self.agent is not None
        with self._node_lock:
            self._node_tick(self.agent)

    def _node_tick(self, agent: Agent) -> None:
        try:
            tick = agent.tick()
        except Exception as exc:  # noqa: BLE001 - the store may be unreachable: the deadline decides
            logger.error(f"node {agent.node}: cannot renew the node lease ({exc}); "
                         "containers keep running, acting stops at the local deadline")
            self._acting()
            return
        if tick.kind in ("acquired", "regained"):
            self.refused_by = ""
            self.leader.clear()  # nothing acts until the moved-away replicas are gone
            try:
                removed = agent.remove_moved_away(self.reconciler.instance)
                restarted = agent.settle_fenced(self.reconciler.instance)  # what the fence stopped
            except Exception as exc:  # noqa: BLE001 - retried at the next tick, before acting
                logger.error(f"node {agent.node}: cannot remove the replicas moved away or settle what the fence "
                             f"stopped ({exc}); not acting yet")
                agent.ownership.deadline = 0.0  # the next tick counts as a regain again
                return
            logger.info(f"node {agent.node}: holds the node lease as {self.holder} (token {tick.token})"
                        + (f"; removed {len(removed)} moved away" if removed else "")
                        + (f"; started {len(restarted)} the fence had stopped" if restarted else ""))
            self.leader.set()
            self.metrics.leader.set(1)
            self._record("ControllerStarted", f"{self.holder} holds node {agent.node} (token {tick.token})",
                         "adopting labelled containers")
            self.queue.add_all()
        elif tick.kind in ("lost", "refused"):
            self.refused_by = tick.holder
            if self.leader.is_set():
                logger.warning(f"node {agent.node}: lost the node lease; another agent acts now")
                self.leader.clear()
                self.metrics.leader.set(0)

    def _fence_job(self) -> None:
        """Agent mode: stop the movable containers before an unrenewed lease can expire
        (controller.fence; the engine only: the store may be out of reach)."""
        assert self.agent is not None
        try:
            self.agent.fence_check(self.reconciler.instance)
        except Exception as exc:  # noqa: BLE001 - the next look tries again
            logger.error(f"node {self.agent.node}: fence: cannot list the engine's containers ({exc})")
        if self.agent.fencing:
            self._acting()

    def _schedule_job(self) -> None:
        if self.agent is None or not self._acting():
            return
        try:
            self.agent.schedule()
        except Exception as exc:  # noqa: BLE001 - the next pass tries again
            logger.warning(f"scheduler pass failed: {exc}")

    def _lease_job(self) -> None:
        if self.agent is not None:
            self._node_lease_job()
            return
        try:
            claim = self.lease.claim()
            held = claim.held
            if claim.took_over_from:
                logger.info(f"took over the lease of {claim.took_over_from}: that process is gone")
                self._record("LeaseTakenOver", f"{self.holder} took over the lease of {claim.took_over_from}",
                             "that process is gone")
        except Exception as exc:  # noqa: BLE001
            logger.error(f"cannot renew the lease in the store ({StoreError.describe(exc)}); "
                         "keeping the containers running")
            return
        if held and not self.leader.is_set():
            logger.info(f"acquired the controller lease as {self.holder}")
            self.leader.set()
            self.metrics.leader.set(1)
            self._record("ControllerStarted", f"{self.holder} holds the lease", "adopting labelled containers")
            self.queue.add_all()
        elif not held and self.leader.is_set():
            logger.warning("lost the controller lease; another controller acts now")
            self.leader.clear()
            self.metrics.leader.set(0)

    def _notify_job(self) -> None:
        # only the lease holder sends (on many hosts: the scheduler): two controllers never both do
        if self.leader.is_set() and (self.agent is None or self.agent.scheduling):
            self.sender.tick()

    def _resync_job(self) -> None:
        if self.files is not None and self.files.needs_rearm():
            self._rearm_files()  # a referenced file's directory may exist by now
        self.queue.add_all()

    # -- referenced files ------------------------------------------------------
    def _files_changed(self, services: frozenset[str], paths: frozenset[str]) -> None:
        for p in paths:  # the pass must re-read them, whatever their size and mtime say
            self.reconciler.refs.invalidate(p)
        for name in sorted(services):
            self.queue.add(name)

    def _rearm_files(self) -> None:
        if self.files is None:
            return
        try:
            specs = {name: svc.spec for name, svc in self.reconciler.desired().items()}
        except Exception as exc:  # noqa: BLE001 - the store may be failing; the resync still runs
            logger.debug(f"file notifications not re-armed: {exc}")
            return
        self.files.update(index(specs))

    def _store_poll_job(self) -> None:
        try:
            rev = self.store.desired_revision()
        except Exception:  # noqa: BLE001
            return
        if rev != self._desired_rev:
            self._desired_rev = rev
            self._rearm_files()  # an apply may add or remove references
            self.queue.add_all()

    def _images_job(self) -> None:
        self.reconciler.invalidate_images()
        if self.leader.is_set() and self.engine_down_since is None:
            try:
                self.reconciler.gc_networks()
            except ReconcileError as exc:
                logger.debug(f"network cleanup skipped: {exc}")

    def _prune_job(self) -> None:
        before = None if self.opts.history_retention is None else self.clock() - self.opts.history_retention
        total = 0
        for _ in range(200):  # bounded: at most 200 small batches per run
            try:
                n = self.store.prune_history(before=before, keep_rows=self.opts.history_max_rows)
            except Exception as exc:  # noqa: BLE001
                logger.warning(f"history pruning failed: {exc}")
                return
            total += n
            if n == 0 or self.stopping.is_set():
                break
            time.sleep(0.05)  # let the loop's writes in between batches
        if total:
            logger.info(f"pruned {total} audit rows (retention)")

    def health(self) -> dict[str, Any]:
        ticking = self.clock() - self.last_pass_at < max(3 * self.opts.resync_interval, 15)
        engine_ok = self.engine_down_since is None
        leader = self.leader.is_set()
        return {"ok": engine_ok and (ticking or not leader), "loopTicking": ticking, "engineReachable": engine_ok,
                "leader": leader, "holder": self.holder, "lastPassAt": self.last_pass_at}

    # -- run -------------------------------------------------------------------
    def _serve(self) -> None:
        if self.opts.metrics_addr:
            self._page = StatusPage(self.store, PageOptions(token=self.opts.ui_token), self.clock)
            self._server = serve(self.opts.metrics_addr, self.metrics, self.health, self._page)
            logger.info(f"serving the status page, /metrics and /healthz on http://{self.opts.metrics_addr}/"
                        + (" (bearer token required)" if self.opts.ui_token else ""))

    def _first_ping(self) -> None:
        try:
            self.engine.ping()
            self.metrics.engine_up.set(1)
            self._log_engine()
        except ReconcileError as exc:
            self.engine_down(exc)

    def _add_jobs(self) -> None:
        s = self.scheduler
        renew = self.agent.opts.renew_every if self.agent is not None else max(1.0, self.opts.lease_ttl / 3)
        s.add_job(self._lease_job, "interval", seconds=renew, id="lease", max_instances=1, coalesce=True)
        if self.agent is not None:
            s.add_job(self._schedule_job, "interval", seconds=1.0, id="schedule", max_instances=1, coalesce=True)
            s.add_job(self._fence_job, "interval", seconds=FENCE_TICK, id="fence", max_instances=1, coalesce=True)
        s.add_job(self._resync_job, "interval", seconds=self.opts.resync_interval, id="resync",
                  max_instances=1, coalesce=True)
        s.add_job(self._store_poll_job, "interval", seconds=self.opts.store_poll, id="store-poll",
                  max_instances=1, coalesce=True)
        s.add_job(self._images_job, "interval", seconds=60, id="images", max_instances=1, coalesce=True)
        s.add_job(self._prune_job, "interval", seconds=3600, id="prune-history", max_instances=1, coalesce=True)
        s.add_job(self._notify_job, "interval", seconds=self.opts.notify_interval, id="notify", max_instances=1,
                  coalesce=True)

    def _refused(self) -> bool:
        """Agent mode: another live agent holds this node (the second one exits 1)."""
        if self.agent is None or not self.refused_by:
            return False
        logger.error(f"node {self.agent.node} is held by {self.refused_by}, whose lease is live; "
                     "not starting a second agent for it")
        self.stopping.set()
        self.scheduler.shutdown(wait=False)
        self.reconciler.close()
        return True

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stopping.set())
        self._serve()
        self._first_ping()
        self._add_jobs()
        o = self.opts  # at DEBUG, the settings this loop runs with (never the page's token)
        logger.debug(f"loop: resync every {o.resync_interval:g} s, {o.workers} workers, lease ttl "
                     f"{o.lease_ttl:g} s, store poll {o.store_poll:g} s, at most {o.restarts_per_minute} restarts/min")
        threads = [threading.Thread(target=self._dispatch, name="dispatch", daemon=True),
                   threading.Thread(target=self._watch_events, name="events", daemon=True)]
        for t in threads:
            t.start()
        self.scheduler.start()
        self._lease_job()
        if self._refused():
            return 1
        if not self.leader.is_set() and self.agent is None:
            try:
                lease = self.store.lease(now=self.clock())
            except Exception:  # noqa: BLE001 - the store may be unreachable: _lease_job said so
                lease = None
            logger.info(f"waiting for the controller lease held by {lease[0] if lease else 'another controller'}")
        threading.Thread(target=self._prune_job, name="prune", daemon=True).start()
        while not self.stopping.wait(1.0):
            if not self.leader.is_set() and self.agent is None:  # an agent's lease job has its own interval
                self._lease_job()
        logger.info("stopping: finishing in-flight actions; containers keep running")
        self.scheduler.shutdown(wait=False)
        threads[0].join(timeout=5)
        self._stop()
        return 0

    def _stop(self) -> None:
        if self.files is not None:
            self.files.stop()
        self.reconciler.close()
        if self.leader.is_set():
            self._record("ControllerStopped", f"{self.holder} stopped (signal)", "containers left running")
            if self.agent is None:
                self.store.release_lease(self.holder)
        if self.agent is not None:
            self.agent.release()
        if self._page is not None:
            self._page.close()
        if self._server is not None:
            self._server.shutdown()


STORE_RETRY_MAX = 30.0  # seconds: the longest wait between two passes while the store is unreachable


def store_retry_delay(failures: int) -> float:
    """Pure: the wait after the ``failures``-th consecutive pass that could not read the
    store: 1 s, 2 s, 4 s ... at most ``STORE_RETRY_MAX``."""
    return float(min(STORE_RETRY_MAX, 2.0 ** (max(failures, 1) - 1)))


def _not_converged(result: PassResult) -> int:
    """Services not converged in a full pass (those in flight or backing off are not)."""
    return sum(1 for sp in result.plan.services.values() if not sp.converged) + len(result.skipped)
