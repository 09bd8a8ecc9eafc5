"""The store's side of notifications: Notifier records, the outbox, delivery state.

- ``Store.record`` (and ``Store.rollback``) write the outbox rows of their audit rows in the
  same transaction, through the rule the controller hands the store
  (``Store.notice_rule``, ``controller.notify_rules.notices``): the store persists what it
  is given and knows nothing of which rows are notable.
- ``NotifyStore`` keeps the Notifier resources (their own table: a Notifier is not a
  workload) and each one's delivery state; the sender (``controller.notify_send``) reads
  the outbox after a notifier's cursor and moves the cursor in the transaction that also
  writes its delivery audit rows.

Every public method is one transaction; time comes in as ``now``. Does not import
``controller``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from store.db import lock_desired
from store.models import EventRow, NotifierRow, OutboxRow
from store.records import AppliedChange, Event, Notice, NotifierState, ResourceInput

if TYPE_CHECKING:
    from store.repository import Store


def _dumps(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def add_notices(s: Session, notices: Iterable[Notice]) -> None:
    """Outbox rows, in the caller's transaction."""
    s.add_all(OutboxRow(ts=n.ts, service=n.service, event=n.event, reason=n.reason[:4000],
                        detail=n.detail[:4000], audit_type=n.audit_type) for n in notices)


def event_row(e: Event) -> dict[str, Any]:
    """An audit record's columns (``EventRow``), for the ORM or a Core insert."""
    return dict(ts=e.ts, service=e.service, container_id=e.container_id, type=e.type, reason=e.reason,
                message=e.message, generation=e.generation, actor=e.actor)


def add_events(s: Session, events: Iterable[Event]) -> None:
    s.add_all(EventRow(**event_row(e)) for e in events)


def _state(row: NotifierRow) -> NotifierState:
    return NotifierState(
        name=row.name, spec=json.loads(row.spec), generation=row.generation, source=row.source,
        cursor=row.cursor, attempts=row.attempts, next_attempt_at=row.next_attempt_at,
        last_delivery_at=row.last_delivery_at, last_error=row.last_error, last_error_at=row.last_error_at,
        damping=json.loads(row.damping or "{}"),
    )


def _notice(row: OutboxRow) -> Notice:
    return Notice(ts=row.ts, service=row.service, event=row.event, reason=row.reason, detail=row.detail,
                  audit_type=row.audit_type, id=row.id)


class NotifyStore:
    """Notifier records and delivery state in a ``Store``'s database."""

    def __init__(self, store: Store):
        self.store = store

    def put(self, inputs: Sequence[ResourceInput], *, source: str, actor: str, now: float,
            dry_run: bool = False) -> list[AppliedChange]:
        """Store Notifiers (one transaction). A new one starts at the outbox's end: it is
        sent what happens from now on, not the past."""
        changes: list[AppliedChange] = []
        with self.store.writing() as s, s.begin():
            lock_desired(s)
            end = int(s.scalar(select(func.max(OutboxRow.id))) or 0)
            for res in inputs:
                row = s.get(NotifierRow, res.name)
                if row is None:
                    s.add(NotifierRow(name=res.name, spec=_dumps(res.spec), spec_hash=res.spec_hash, generation=1,
                                      source=source, created_at=now, updated_at=now, cursor=end, damping="{}"))
                    changes.append(AppliedChange(res.name, res.kind, "created", 1, None, res.spec))
                elif row.spec_hash != res.spec_hash:
                    old = json.loads(row.spec)
                    row.spec, row.spec_hash, row.source, row.updated_at = _dumps(res.spec), res.spec_hash, source, now
                    row.generation += 1
                    changes.append(AppliedChange(res.name, res.kind, "updated", row.generation, old, res.spec))
                else:
                    changes.append(AppliedChange(res.name, res.kind, "unchanged", row.generation))
            add_events(s, (Event(ts=now, service=c.name, type="Applied",
                                 reason="new resource" if c.change == "created" else "spec changed",
                                 message=f"Notifier generation {c.generation}", generation=c.generation, actor=actor)
                           for c in changes if c.change != "unchanged"))
            if dry_run:
                s.rollback()
        return changes

    def delete(self, name: str, *, actor: str, now: float) -> bool:
        with self.store.writing() as s, s.begin():
            row = s.get(NotifierRow, name)
            if row is None:
                return False
            s.delete(row)
            add_events(s, [Event(ts=now, service=name, type="Deleted", reason="deleted by user",
                                 message=f"Notifier generation {row.generation}", generation=row.generation,
                                 actor=actor)])
            return True

    def notifiers(self) -> list[NotifierState]:
        with self.store.reading() as s:
            return [_state(r) for r in s.scalars(select(NotifierRow).order_by(NotifierRow.name))]

    def get(self, name: str) -> NotifierState | None:
        with self.store.reading() as s:
            row = s.get(NotifierRow, name)
            return _state(row) if row else None

    def pending(self, after_id: int, *, limit: int = 500) -> list[Notice]:
        """Outbox rows after ``after_id``, oldest first."""
        with self.store.reading() as s:
            q = select(OutboxRow).where(OutboxRow.id > after_id).order_by(OutboxRow.id).limit(limit)
            return [_notice(r) for r in s.scalars(q)]

    def outbox_end(self) -> int:
        with self.store.reading() as s:
            return int(s.scalar(select(func.max(OutboxRow.id))) or 0)

    def prune(self, *, batch: int = 5000) -> int:
        """Delete outbox rows every notifier has dealt with (all of them when there is no
        notifier: a new one starts at the end), in one bounded batch. Returns how many."""
        with self.store.writing() as s, s.begin():
            done = s.scalar(select(func.min(NotifierRow.cursor)))
            if done is None:
                done = s.scalar(select(func.max(OutboxRow.id)))
            if not done:
                return 0
            ids = s.scalars(select(OutboxRow.id).where(OutboxRow.id <= done).order_by(OutboxRow.id).limit(batch)).all()
            if ids:
                s.execute(delete(OutboxRow).where(OutboxRow.id.in_(ids)))
            return len(ids)

    def advance(self, name: str, *, cursor: int, damping: dict[str, Any], delivered_at: float | None,
                events: Sequence[Event] = ()) -> bool:
        """The sender dealt with the outbox up to ``cursor`` (a message delivered at
        ``delivered_at``, or rows only folded into the damping state): one transaction with
        its audit rows. False when the notifier is gone."""
        with self.store.writing() as s, s.begin():
            row = s.get(NotifierRow, name)
            if row is None:
                return False
            row.cursor, row.damping, row.attempts, row.next_attempt_at = max(row.cursor, cursor), _dumps(damping), 0, 0.0
            if delivered_at is not None:
                row.last_delivery_at = delivered_at
            add_events(s, events)
            return True

    def failed(self, name: str, *, attempts: int, next_attempt_at: float, error: str, now: float,
               events: Sequence[Event] = ()) -> None:
        """A delivery attempt failed: count it, say when to try again, keep the error."""
        with self.store.writing() as s, s.begin():
            row = s.get(NotifierRow, name)
            if row is None:
                return
            row.attempts, row.next_attempt_at = attempts, next_attempt_at
            row.last_error, row.last_error_at = error[:1000], now
            add_events(s, events)
