"""The store's repository API: desired records, revisions, statuses, audit events, lease.

Every public method is one transaction. Writes use the IMMEDIATE write engine on
SQLite, so concurrent writers wait on the lock (busy timeout) instead of failing. On
PostgreSQL (READ COMMITTED) writers do not queue on one lock: the lease is taken with
single conditional UPDATEs (``UPDATE ... WHERE holder = ? OR expires_at < ?``, re-checked
by PostgreSQL after any concurrent writer commits) and an INSERT that loses a race is an
IntegrityError answered as "not taken"; the rows a write reads to change (the
desired-state counter, the applied resources) are read ``FOR UPDATE``.
Time always comes in as a parameter (``now``); nothing here reads the clock.
"""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

from sqlalchemy import Row, Table, bindparam, case, delete, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store import db, pgtools
from store.models import EventRow, LeaseRow, Meta, ResourceRow, RevisionRow, StatusRow
from store.errors import StoreError
from store.nodes import Nodes, check_fence
from store.notify import add_notices, event_row
from store.records import AppliedChange, Desired, Event, Fence, Notice, ResourceInput, Revision, Status

if TYPE_CHECKING:
    from sqlalchemy.engine import CursorResult

__all__ = ["NoticeRule", "Store", "StoreError"]

# Which audit rows make outbox rows (``controller.notify_rules.notices``): handed in by the
# controller, so that the store persists them with their audit rows and knows no rule.
NoticeRule = Callable[[Sequence[Event]], list[Notice]]

LEASE_NAME = "controller"
_REQUEST_FIELDS = frozenset({"name", "restart_requested_at", "restart_reason"})


def _dumps(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def _desired(row: ResourceRow) -> Desired:
    return Desired(
        name=row.name, kind=row.kind, api_version=row.api_version, spec=json.loads(row.spec),
        metadata=json.loads(row.metadata_json), spec_hash=row.spec_hash,
        generation=row.generation, source=row.source, suspended=row.suspended,
        updated_at=row.updated_at,
    )


def _event(row: EventRow | Row[Any]) -> Event:
    """An audit record from an ORM row or a Core result row (the same columns)."""
    return Event(
        id=row.id, ts=row.ts, service=row.service, container_id=row.container_id, type=row.type,
        reason=row.reason, message=row.message, generation=row.generation, actor=row.actor,
    )


_Named = TypeVar("_Named", ResourceRow, StatusRow)


def _named(s: Session, model: type[_Named], names: set[str], *, lock: bool = False) -> dict[str, _Named]:
    """The rows of these names: one SELECT per 500 names, not one per row (a pass records
    every service's status; an apply stores every resource). ``lock``: ``FOR UPDATE``
    (PostgreSQL; SQLite's write transaction holds the whole database already), so two
    concurrent writers of one row take turns instead of both bumping from the same value."""
    ordered = sorted(names)
    rows: dict[str, _Named] = {}
    for i in range(0, len(ordered), 500):
        q = select(model).where(model.name.in_(ordered[i : i + 500])).order_by(model.name)
        rows.update((row.name, row) for row in s.scalars(q.with_for_update() if lock else q))
    return rows


_STATUSES = cast(Table, StatusRow.__table__)


def _last_generations(s: Session, names: set[str]) -> dict[str, int]:
    """The newest revision's generation of each of these names that has one: one SELECT
    per 500 names (an apply of new resources asked once per resource before)."""
    ordered, out = sorted(names), dict[str, int]()
    for i in range(0, len(ordered), 500):
        q = (select(RevisionRow.name, func.max(RevisionRow.generation))
             .where(RevisionRow.name.in_(ordered[i : i + 500])).group_by(RevisionRow.name))
        out.update((name, int(gen)) for name, gen in s.execute(q) if gen)
    return out


def _merged(statuses: list[Status]) -> dict[str, dict[str, Any]]:
    """The rows of these statuses by name; the same name twice in one call: the later one
    updates the first (its request fields stay the first's)."""
    merged: dict[str, dict[str, Any]] = {}
    for st in statuses:
        data = st.to_row()
        first = merged.get(st.name)
        if first is None:
            merged[st.name] = data
        else:
            first.update((k, v) for k, v in data.items() if k not in _REQUEST_FIELDS)
    return merged


def _write_statuses(s: Session, statuses: list[Status]) -> None:
    """Insert the statuses of new names, update the others (restart requests are written
    only by ``request_restart``: a status computed from an older read must not wipe one
    that arrived since)."""
    merged = _merged(statuses)
    if not merged:
        return
    names = sorted(merged)
    present: set[str] = set()
    for i in range(0, len(names), 500):  # one SELECT per 500 names, as _named
        present.update(s.scalars(select(_STATUSES.c.name).where(_STATUSES.c.name.in_(names[i : i + 500]))))
    new = [merged[n] for n in names if n not in present]
    if new:
        s.execute(insert(_STATUSES), new)
    changed = [{**{k: v for k, v in merged[n].items() if k not in _REQUEST_FIELDS}, "b_name": n}
               for n in names if n in present]
    if changed:
        cols = [k for k in changed[0] if k != "b_name"]
        s.execute(update(_STATUSES).where(_STATUSES.c.name == bindparam("b_name"))
                  .values({c: bindparam(c) for c in cols}), changed)


class Store:
    def __init__(self, url: str):
        self.url = url
        self._read, self._write = db.make_engines(url)
        self._instance_id: str | None = None
        self.notice_rule: NoticeRule | None = None
        # an agent's fencing token (store.nodes): when set, its status/audit writes are
        # refused (``Fenced``) once another agent holds its node
        self.fence: Fence | None = None
        self.nodes = Nodes(self)

    # -- lifecycle ---------------------------------------------------------
    @classmethod
    def open(cls, url: str | None = None, *, migrate: bool = True) -> Store:
        store = cls(db.to_url(url) if url else db.default_url())
        if migrate:
            try:
                db.upgrade(store._write)
            except Exception as exc:  # any failure to migrate: translated for the CLI
                raise StoreError(f"cannot open store {store.shown_url}: {StoreError.describe(exc)}") from exc
        return store

    @property
    def shown_url(self) -> str:
        """The URL with its password (if any) as ``***``: what messages and outputs show."""
        return db.redact(self.url)

    # -- schema (what `reconcile db` and `version` need, without reaching inside) ---------
    def schema_upgrade(self) -> tuple[str | None, str | None]:
        """Upgrade to the newest migration: (revision before, revision after)."""
        try:
            return db.upgrade(self._write)
        except Exception as exc:
            if StoreError.wraps(exc):
                raise StoreError(f"cannot upgrade store {self.shown_url}: {StoreError.describe(exc)}") from exc
            raise

    def schema_revision(self, *, quick: bool = False) -> str | None:
        """The store's schema revision (None: never migrated). ``quick`` reads the version
        table directly, without loading Alembic (for fast read-only verbs)."""
        if quick:
            return db._quick_current(self._read)
        try:
            return db.current_revision(self._read)
        except Exception as exc:
            if StoreError.wraps(exc):
                raise StoreError(f"cannot read store {self.shown_url}: {StoreError.describe(exc)}") from exc
            raise

    @staticmethod
    def schema_head() -> str | None:
        """The newest migration this code has."""
        return db.head_revision()

    def close(self) -> None:
        self._read.dispose()
        if self._write is not self._read:
            self._write.dispose()

    def reading(self) -> Session:
        return Session(self._read, expire_on_commit=False)

    def writing(self) -> Session:
        return Session(self._write, expire_on_commit=False)

    @property
    def instance_id(self) -> str:
        """A random id fixed at first use: containers carry it, so two stores on one
        host never touch each other's containers."""
        if self._instance_id is None:
            with self.reading() as s:
                row = s.get(Meta, "instance_id")
            if row is None:
                try:
                    with self.writing() as s, s.begin():
                        row = s.get(Meta, "instance_id")
                        if row is None:
                            row = Meta(key="instance_id", value=uuid.uuid4().hex[:12])
                            s.add(row)
                except IntegrityError:  # another process wrote it first (PostgreSQL): theirs it is
                    with self.reading() as s:
                        row = s.get(Meta, "instance_id")
                    if row is None:
                        raise
            self._instance_id = row.value
        return self._instance_id

    # -- desired state -----------------------------------------------------
    @staticmethod
    def _bump(s: Session) -> None:
        """Every write to the desired state bumps a counter the loop polls cheaply."""
        row = s.get(Meta, "desired_rev", with_for_update=True)
        if row is None:
            s.add(Meta(key="desired_rev", value="1"))
        else:
            row.value = str(int(row.value) + 1)

    def desired_revision(self) -> int:
        with self.reading() as s:
            row = s.get(Meta, "desired_rev")
            return int(row.value) if row else 0

    def apply(
        self, resources: list[ResourceInput], *, source: str, actor: str, now: float,
        prune: bool = False, dry_run: bool = False,
    ) -> list[AppliedChange]:
        """Store resources in one transaction; bump generations of changed specs,
        keep revisions, record an ``Applied`` event per change. With ``prune``, remove
        the records of the same source that this set no longer names."""
        if not dry_run:
            self.instance_id  # noqa: B018 - fix the id before a long write
        changes: list[AppliedChange] = []
        with self.writing() as s, s.begin():
            db.lock_desired(s)
            names = {r.name for r in resources}
            existing = self._rows_named(s, names)
            last = _last_generations(s, names - existing.keys())
            changes.extend(self._apply_one(s, res, existing, last, source, now) for res in resources)
            if prune:
                changes.extend(self._prune(s, source, names))
            self._applied_events(s, changes, actor, now)
            if any(ch.change != "unchanged" for ch in changes):
                self._bump(s)
            if dry_run:
                s.rollback()
        return changes

    @staticmethod
    def _rows_named(s: Session, names: set[str]) -> dict[str, ResourceRow]:
        return _named(s, ResourceRow, names, lock=True)

    @staticmethod
    def _apply_one(s: Session, res: ResourceInput, existing: dict[str, ResourceRow], last: dict[str, int],
                   source: str, now: float) -> AppliedChange:
        """One resource: created (its generation continues a deleted one's: ``last``, the
        newest revision of each name without a record), updated (a new generation and
        revision) or unchanged (metadata and source refreshed)."""
        row = existing.get(res.name)
        spec_json = _dumps(res.spec)
        if row is None:
            gen = last.get(res.name, 0) + 1  # re-created after a delete: generations keep increasing
            row = ResourceRow(
                name=res.name, kind=res.kind, api_version=res.api_version, spec=spec_json,
                metadata_json=_dumps(res.metadata), spec_hash=res.spec_hash, generation=gen,
                source=source, suspended=False, created_at=now, updated_at=now,
            )
            s.add(row)
            existing[res.name] = row  # the same name twice in one batch: the second updates it
            change = AppliedChange(res.name, res.kind, "created", gen, None, res.spec)
        elif row.spec_hash != res.spec_hash or row.kind != res.kind:
            old = json.loads(row.spec)
            row.generation += 1
            row.kind, row.api_version, row.spec = res.kind, res.api_version, spec_json
            row.spec_hash, row.updated_at, row.source = res.spec_hash, now, source
            row.metadata_json = _dumps(res.metadata)
            change = AppliedChange(res.name, res.kind, "updated", row.generation, old, res.spec)
        else:
            row.metadata_json = _dumps(res.metadata)
            row.source = source
            return AppliedChange(res.name, res.kind, "unchanged", row.generation)
        s.add(RevisionRow(name=res.name, generation=row.generation, kind=res.kind,
                          spec=spec_json, spec_hash=res.spec_hash, applied_at=now))
        return change

    @staticmethod
    def _prune(s: Session, source: str, names: set[str]) -> list[AppliedChange]:
        out = []
        for row in s.scalars(select(ResourceRow).where(ResourceRow.source == source)).all():
            if row.name not in names:
                out.append(AppliedChange(row.name, row.kind, "pruned", row.generation, json.loads(row.spec), None))
                s.delete(row)
        return out

    @staticmethod
    def _applied_events(s: Session, changes: list[AppliedChange], actor: str, now: float) -> None:
        for ch in changes:
            if ch.change == "unchanged":
                continue
            etype = "Deleted" if ch.change == "pruned" else "Applied"
            reason = {"created": "new resource", "updated": "spec changed",
                      "pruned": "pruned: no longer in the applied files"}[ch.change]
            s.add(EventRow(ts=now, service=ch.name, container_id="", type=etype, reason=reason,
                           message=f"{ch.kind} generation {ch.generation}", generation=ch.generation, actor=actor))

    def desired(self) -> dict[str, Desired]:
        with self.reading() as s:
            return {row.name: _desired(row) for row in s.scalars(select(ResourceRow))}

    def get(self, name: str) -> Desired | None:
        with self.reading() as s:
            row = s.get(ResourceRow, name)
            return _desired(row) if row else None

    def delete(self, name: str, *, actor: str, now: float, reason: str = "deleted by user") -> Desired | None:
        with self.writing() as s, s.begin():
            db.lock_desired(s)
            row = s.get(ResourceRow, name)
            if row is None:
                return None
            gone = _desired(row)
            s.delete(row)
            self._bump(s)
            s.add(EventRow(ts=now, service=name, container_id="", type="Deleted", reason=reason,
                           message=f"{row.kind} generation {row.generation}", generation=row.generation, actor=actor))
            return gone

    def set_suspended(self, name: str, suspended: bool, *, actor: str, now: float, reason: str) -> bool:
        with self.writing() as s, s.begin():
            db.lock_desired(s)
            row = s.get(ResourceRow, name)
            if row is None:
                return False
            row.suspended = suspended
            self._bump(s)
            s.add(EventRow(ts=now, service=name, container_id="", type="Suspended" if suspended else "Resumed",
                           reason=reason, message="", generation=row.generation, actor=actor))
            return True

    def request_restart(self, name: str, *, reason: str, actor: str, now: float) -> bool:
        """Ask the controller to restart NAME's containers (those started before ``now``)."""
        with self.writing() as s, s.begin():
            db.lock_desired(s)
            row = s.get(ResourceRow, name)
            if row is None:
                return False
            st = s.get(StatusRow, name)
            if st is None:
                st = StatusRow(**Status(name=name).to_row())
                s.add(st)
            st.restart_requested_at, st.restart_reason = now, f"{reason} (requested by {actor})"
            s.add(EventRow(ts=now, service=name, container_id="", type="RestartRequested", reason=reason,
                           message="", generation=row.generation, actor=actor))
            self._bump(s)
            return True

    def rollback(self, name: str, *, to_generation: int | None, actor: str, now: float, reason: str) -> int | None:
        """Store an earlier revision's spec as a new generation (the default target is the
        revision before the current one). Returns the new generation, or None."""
        with self.writing() as s, s.begin():
            if self.fence is not None:
                check_fence(s, self.fence)
            db.lock_desired(s)
            row = s.get(ResourceRow, name)
            if row is None:
                return None
            if to_generation is None:
                to_generation = s.scalar(select(func.max(RevisionRow.generation)).where(
                    RevisionRow.name == name, RevisionRow.generation < row.generation,
                    RevisionRow.spec_hash != row.spec_hash))
            rev = s.get(RevisionRow, (name, to_generation)) if to_generation else None
            if rev is None:
                return None
            row.generation += 1
            row.spec, row.spec_hash, row.kind, row.updated_at = rev.spec, rev.spec_hash, rev.kind, now
            s.add(RevisionRow(name=name, generation=row.generation, kind=rev.kind, spec=rev.spec,
                              spec_hash=rev.spec_hash, applied_at=now))
            st = s.get(StatusRow, name)
            if st is not None:
                st.rollout_from_generation, st.rollout_started_at = 0, 0.0
            rolled = Event(ts=now, service=name, container_id="", type="RolledBack", reason=reason,
                           message=f"generation {row.generation} = revision {to_generation}",
                           generation=row.generation, actor=actor)
            s.add(EventRow(ts=rolled.ts, service=name, container_id="", type=rolled.type, reason=reason,
                           message=rolled.message, generation=row.generation, actor=actor))
            self._notices(s, [rolled])
            self._bump(s)
            return row.generation

    def revision(self, name: str, generation: int) -> Revision | None:
        with self.reading() as s:
            row = s.get(RevisionRow, (name, generation))
            if row is None:
                return None
            return Revision(row.name, row.generation, row.kind, json.loads(row.spec), row.spec_hash, row.applied_at)

    def revisions(self, name: str) -> list[Revision]:
        with self.reading() as s:
            rows = s.scalars(select(RevisionRow).where(RevisionRow.name == name).order_by(RevisionRow.generation))
            return [Revision(r.name, r.generation, r.kind, json.loads(r.spec), r.spec_hash, r.applied_at) for r in rows]

    # -- status and audit --------------------------------------------------
    def statuses(self) -> dict[str, Status]:
        with self.reading() as s:
            return {row.name: Status.from_row(row) for row in s.scalars(select(StatusRow))}

    def status(self, name: str) -> Status | None:
        with self.reading() as s:
            row = s.get(StatusRow, name)
            return Status.from_row(row) if row else None

    def record(self, events: Iterable[Event] = (), statuses: Iterable[Status] = (),
               drop_statuses: Iterable[str] = ()) -> None:
        """Write events and status updates together, in one transaction.

        Core statements, not the ORM's unit of work: every pass records every service it
        acted on, and loading, diffing and flushing mapped rows cost about a third more
        CPU per call than one SELECT of the names present, one INSERT of the new rows and
        one UPDATE (by name) of the others, each executed for many rows at once."""
        events, statuses, drop = list(events), list(statuses), list(drop_statuses)
        if not (events or statuses or drop):
            return
        with self.writing() as s, s.begin():
            if self.fence is not None:
                check_fence(s, self.fence)
            _write_statuses(s, statuses)
            if drop:
                s.execute(delete(StatusRow).where(StatusRow.name.in_(drop)))
            if events:
                s.execute(insert(cast(Table, EventRow.__table__)), [event_row(e) for e in events])
            self._notices(s, events)

    def _notices(self, s: Session, events: Sequence[Event]) -> None:
        """The outbox rows of these audit rows, in their transaction."""
        if self.notice_rule is not None and events:
            add_notices(s, self.notice_rule(events))

    def history(self, service: str | None = None, *, since: float | None = None,
                types: list[str] | None = None, limit: int | None = None) -> list[Event]:
        """Events oldest first; with ``limit`` the newest ``limit`` of them."""
        with self.reading() as s:
            q = select(EventRow)
            if service:
                q = q.where(EventRow.service == service)
            if since is not None:
                q = q.where(EventRow.ts >= since)
            if types:
                q = q.where(EventRow.type.in_(types))
            q = q.order_by(EventRow.ts.desc(), EventRow.id.desc())
            if limit:
                q = q.limit(limit)
            rows = [_event(r) for r in s.scalars(q)]
        rows.reverse()
        return rows

    def last_event_id(self) -> int:
        """The id of the newest audit row (0 when there is none)."""
        with self.reading() as s:
            return int(s.scalar(select(func.max(EventRow.id))) or 0)

    def events_after(self, after_id: int, *, service: str | None = None, types: list[str] | None = None,
                     limit: int = 1000) -> list[Event]:
        """Rows written after ``after_id``, oldest first (for following the audit)."""
        with self.reading() as s:
            q = select(EventRow).where(EventRow.id > after_id)
            if service:
                q = q.where(EventRow.service == service)
            if types:
                q = q.where(EventRow.type.in_(types))
            return [_event(r) for r in s.scalars(q.order_by(EventRow.id).limit(limit))]

    def events_page(self, *, service: str | None = None, types: list[str] | None = None,
                    since: float | None = None, until: float | None = None,
                    before: tuple[float, int] | None = None, limit: int = 100) -> list[Event]:
        """One page of the audit, newest first (``ts`` then ``id``, as ``history``):
        rows strictly older than the cursor ``before`` = (ts, id) of the previous page's
        last row. The order is the one the (service, ts), (type, ts) and (ts) indexes
        keep (SQLite appends the row id to each), so a page costs ``limit`` index steps.
        Core rows, not ORM objects: the status page reads hundreds at a time."""
        ev = EventRow.__table__.c
        q = select(EventRow.__table__)
        if service:
            q = q.where(ev.service == service)
        if types:
            q = q.where(ev.type.in_(types))
        if since is not None:
            q = q.where(ev.ts >= since)
        if until is not None:
            q = q.where(ev.ts <= until)
        if before is not None:
            ts, row_id = before
            q = q.where((ev.ts < ts) | ((ev.ts == ts) & (ev.id < row_id)))
        with self._read.connect() as conn:
            return [_event(r) for r in conn.execute(q.order_by(ev.ts.desc(), ev.id.desc()).limit(limit))]

    def last_event_before(self, service: str, ts: float, types: Iterable[str]) -> Event | None:
        """The newest row of ``service`` older than ``ts`` among ``types`` (the state a
        timeline starts in), or None."""
        rows = self.events_page(service=service, types=list(types), before=(ts, 0), limit=1)
        return rows[0] if rows else None

    def last_events(self, names: Iterable[str]) -> dict[str, Event]:
        """The newest event (by ts, then id) of each named stored resource, in one statement
        per 500 names: a correlated ``ORDER BY ts DESC, id DESC LIMIT 1`` per resource, each
        an index lookup on (service, ts), so the cost does not grow with the history.
        Portable SQL (a scalar subquery: SQLite and PostgreSQL)."""
        events, resources = EventRow.__table__, ResourceRow.__table__
        newest = events.alias("newest")
        wanted = sorted(set(names))
        out: dict[str, Event] = {}
        with self._read.connect() as conn:
            for i in range(0, len(wanted), 500):
                pick = (select(newest.c.id).where(newest.c.service == resources.c.name)
                        .order_by(newest.c.ts.desc(), newest.c.id.desc()).limit(1)
                        .correlate(resources).scalar_subquery())
                ids = select(pick).where(resources.c.name.in_(wanted[i : i + 500]))
                for row in conn.execute(select(events).where(events.c.id.in_(ids))):
                    out[row.service] = _event(row)
        return out

    def containers_with_events(self, container_ids: list[str], types: tuple[str, ...]) -> set[str]:
        """Which of these containers have at least one event of these types."""
        out: set[str] = set()
        with self.reading() as s:
            for i in range(0, len(container_ids), 500):
                chunk = container_ids[i : i + 500]
                q = select(EventRow.container_id).where(EventRow.container_id.in_(chunk), EventRow.type.in_(types))
                out.update(s.scalars(q))
        return out

    def prune_history(self, *, before: float | None = None, keep_rows: int | None = None,
                      batch: int = 5000) -> int:
        """Delete audit rows older than ``before`` and beyond the newest ``keep_rows``,
        in small batches so a running loop is never blocked for long."""
        removed = 0
        with self.writing() as s, s.begin():
            cutoff_id = None
            if keep_rows is not None:
                cutoff_id = s.scalar(select(EventRow.id).order_by(EventRow.id.desc()).offset(keep_rows).limit(1))
            cond = []
            if before is not None:
                cond.append(EventRow.ts < before)
            if cutoff_id is not None:
                cond.append(EventRow.id <= cutoff_id)
            if not cond:
                return 0
            from sqlalchemy import or_

            ids = s.scalars(select(EventRow.id).where(or_(*cond)).order_by(EventRow.id).limit(batch)).all()
            if ids:
                s.execute(delete(EventRow).where(EventRow.id.in_(ids)))
                removed = len(ids)
        return removed

    def placements(self) -> list[tuple[str, int, str, str]]:
        """(service, replica, node, reason) of every assignment (as ``SqliteReader``)."""
        return [(p.service, p.replica, p.node, p.reason) for p in self.nodes.assignments()]

    # -- lease -------------------------------------------------------------
    def acquire_lease(self, holder: str, *, ttl: float, now: float) -> bool:
        """Take or renew the controller lease. True if ``holder`` holds it afterwards.

        One conditional UPDATE (renew ours, or take an expired one), else one INSERT (no
        row yet): never a read followed by a write, so two contenders on PostgreSQL cannot
        both win (the loser's UPDATE re-checks the row after the winner commits and matches
        nothing; its INSERT fails on the primary key)."""
        lease = LeaseRow.__table__.c
        with self.writing() as s, s.begin():
            taken = cast("CursorResult[Any]", s.execute(
                update(LeaseRow)
                .where(lease.name == LEASE_NAME, (lease.holder == holder) | (lease.expires_at < now))
                .values(acquired_at=case((lease.holder == holder, lease.acquired_at), else_=now),
                        holder=holder, renewed_at=now, expires_at=now + ttl)
                .execution_options(synchronize_session=False)))
            if taken.rowcount == 1:
                return True
            if s.get(LeaseRow, LEASE_NAME) is not None:
                return False
        try:
            with self.writing() as s, s.begin():
                s.add(LeaseRow(name=LEASE_NAME, holder=holder, acquired_at=now, renewed_at=now, expires_at=now + ttl))
        except IntegrityError:  # another contender inserted it first
            return False
        return True

    def take_over_lease(self, holder: str, *, dead_holder: str, ttl: float, now: float) -> bool:
        """Take the lease from ``dead_holder`` (known to be dead) before it expires: one
        conditional UPDATE, so of two contenders only one takes it."""
        lease = LeaseRow.__table__.c
        with self.writing() as s, s.begin():
            taken = cast("CursorResult[Any]", s.execute(
                update(LeaseRow).where(lease.name == LEASE_NAME, lease.holder == dead_holder)
                .values(holder=holder, acquired_at=now, renewed_at=now, expires_at=now + ttl)
                .execution_options(synchronize_session=False)))
            return bool(taken.rowcount == 1)

    def release_lease(self, holder: str) -> None:
        with self.writing() as s, s.begin():
            s.execute(delete(LeaseRow).where(LeaseRow.name == LEASE_NAME, LeaseRow.holder == holder))

    def lease(self, *, now: float) -> tuple[str, float] | None:
        """(holder, expires_at) of a live lease, or None."""
        with self.reading() as s:
            row = s.get(LeaseRow, LEASE_NAME)
            if row is None or row.expires_at < now:
                return None
            return row.holder, row.expires_at

    # -- maintenance ---------------------------------------------------------
    def integrity_check(self) -> list[str]:
        """SQLite's integrity_check (PostgreSQL keeps its own consistency) plus the store's
        own invariants. [] when sound."""
        problems: list[str] = []
        with self.reading() as s:
            if self._read.dialect.name == "sqlite":
                res = [r[0] for r in s.execute(text("PRAGMA integrity_check"))]
                if res != ["ok"]:
                    problems.extend(res)
            for row in s.scalars(select(ResourceRow)):
                rev = s.get(RevisionRow, (row.name, row.generation))
                if rev is None or rev.spec_hash != row.spec_hash:
                    problems.append(f"{row.name}: no revision for generation {row.generation}")
        return problems

    def restore_from(self, path: str) -> None:
        """Replace this store's content with a backup (SQLite backup API, consistent; on
        PostgreSQL ``pg_restore`` of a ``backup`` archive, in one transaction)."""
        if not os.path.exists(path):
            raise StoreError(f"no backup at {path}")
        dst_path = db.sqlite_path(self.url)
        if dst_path is None:
            self.close()  # no connection of ours holds a lock pg_restore's DROPs wait for
            try:
                pgtools.restore(self.url, path)
            finally:  # restored or not (one transaction: then unchanged), the store stays usable
                self._read, self._write = db.make_engines(self.url)
                self._instance_id = None
            db.upgrade(self._write)
            return
        src = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            res = src.execute("PRAGMA integrity_check").fetchall()
            if [r[0] for r in res] != ["ok"]:
                raise StoreError(f"backup {path} fails the integrity check: {res[:3]}")
            self.close()
            dst = sqlite3.connect(dst_path, timeout=db.BUSY_TIMEOUT_MS / 1000)
            try:
                src.backup(dst)
            finally:
                dst.close()
        finally:
            src.close()
        self._read, self._write = db.make_engines(self.url)
        self._instance_id = None
        db.upgrade(self._write)

    def backup(self, path: str) -> None:
        """A consistent online copy while others keep writing: SQLite's backup API, or on
        PostgreSQL ``pg_dump --format=custom`` (one snapshot)."""
        src_path = db.sqlite_path(self.url)
        try:
            fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        except OSError as exc:  # a directory, a missing parent, no permission: a message, not a traceback
            raise StoreError(f"cannot write the backup to {path}: {exc.strerror}") from exc
        os.close(fd)
        if src_path is None:
            pgtools.dump(self.url, path)
            return
        src = sqlite3.connect(src_path, timeout=db.BUSY_TIMEOUT_MS / 1000)
        dst = sqlite3.connect(path)
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()
