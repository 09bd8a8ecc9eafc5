"""Which audit rows make which notification, for which notifier, and what a message says.

Pure: no store, no engine, no clock, no logging. ``notices`` is the rule the store applies
to every audit row it writes (``Store.notice_rule``, set by ``install``), so outbox rows are
written in the audit row's transaction; ``wants`` is a notifier's filter (event types and
a label selector, the grammar of ``-l``); ``message`` and ``digest`` build the message
body every sink is given (``controller.notify_send``). Secret values never reach here:
a message is made of audit rows, which never hold one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from store.records import Event, Notice

# event type -> what happened, in words
SUMMARIES: Final[dict[str, str]] = {
    "CrashLoopBackOff": "entered CrashLoopBackOff",
    "BackOffEnded": "left CrashLoopBackOff",
    "GaveUp": "gave up",
    "Failed": "an action failed",
    "Unhealthy": "turned unhealthy",
    "Recovered": "recovered (healthy again)",
    "JobFailed": "job failed",
    "RolledBack": "rollout rolled back",
    "EngineUnavailable": "engine unavailable",
    "EngineRestored": "engine restored",
    "RestartStorm": "restart storm: restarts deferred",
    "LeaseTakenOver": "a controller took over the lease",
    "NodeLost": "a node was lost (its agent's lease expired)",
    "NodeReady": "a lost node is back",
    "FencedStop": "a node cut off from the store stopped a container that may be rescheduled",
    "Test": "test message",
}
EVENT_TYPES: Final = tuple(SUMMARIES)
DIGEST: Final = "Digest"
# the two ends of one state change share a damping family: a flap is one family's changes
FAMILIES: Final[dict[str, str]] = {
    "CrashLoopBackOff": "crashloop", "BackOffEnded": "crashloop",
    "Unhealthy": "health", "Recovered": "health",
    "EngineUnavailable": "engine", "EngineRestored": "engine",
}
ENDINGS: Final = frozenset({"BackOffEnded", "Recovered", "EngineRestored"})
_DIRECT: Final[dict[str, str]] = {
    "BackOff": "CrashLoopBackOff", "BackOffEnded": "BackOffEnded", "GaveUp": "GaveUp", "Failed": "Failed",
    "JobFailed": "JobFailed", "RolledBack": "RolledBack", "EngineUnavailable": "EngineUnavailable",
    "EngineRestored": "EngineRestored", "StormDetected": "RestartStorm", "LeaseTakenOver": "LeaseTakenOver",
    "NodeLost": "NodeLost", "NodeReady": "NodeReady", "FencedStop": "FencedStop",
}
DETAIL_LIMIT: Final = 1000  # characters of an audit row's message a notice keeps (a probe's output tail)


def event_type(e: Event) -> str | None:
    """The notification event type of an audit row, or None (not worth a message).
    Delivery rows (``Notify*``) never are: a failing sink must not feed itself."""
    if e.type.startswith("Notify"):
        return None
    if e.type == "HealthChanged":
        new = e.reason.rsplit("-> ", 1)[-1].split(" ", 1)[0]
        old = e.reason.split(" ", 1)[0]
        if new == "unhealthy":
            return "Unhealthy"
        if new == "healthy" and old == "unhealthy":
            return "Recovered"
        return None
    return _DIRECT.get(e.type)


def notices(events: Sequence[Event]) -> list[Notice]:
    """The outbox rows of these audit rows (the store's ``notice_rule``)."""
    out = []
    for e in events:
        kind = event_type(e)
        if kind is not None:
            out.append(Notice(ts=e.ts, service=e.service, event=kind, reason=e.reason,
                              detail=e.message[-DETAIL_LIMIT:], audit_type=e.type))
    return out


def install(store: Any) -> None:
    """Make ``store`` write the outbox rows of the audit rows it writes."""
    store.notice_rule = notices


def family(notice: Notice) -> str:
    return FAMILIES.get(notice.event, notice.event)


def wants(spec: Mapping[str, Any], notice: Notice, labels: Mapping[str, str] | None) -> bool:
    """Whether a notifier (its stored spec) is sent this notice. ``labels``: the service's
    labels (None: not a stored service, e.g. a host-wide event, which a selector does not
    filter out)."""
    types = spec.get("events")
    if types and notice.event not in types:
        return False
    selector = spec.get("selector")
    if selector and labels is not None:
        from controller.cli_output import parse_selector, selected

        return selected(labels, parse_selector(selector))
    return True


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def message(n: Notice, *, notifier: str, host: str, key: str, count: int) -> dict[str, Any]:
    """The body of one notice's message. ``count``: the related events (this service,
    this notifier) since the last message about it, this one included."""
    what = SUMMARIES.get(n.event, n.event)
    subject = n.service or host
    return {
        "idempotencyKey": key, "notifier": notifier, "host": host, "service": n.service, "event": n.event,
        "summary": f"{subject}: {what}", "reason": n.reason, "detail": n.detail, "at": _when(n.ts), "ts": n.ts,
        "count": count,
    }


def digest(held: Sequence[Mapping[str, Any]], *, notifier: str, host: str, key: str, total: int,
           now: float) -> dict[str, Any]:
    """The body of a digest: the damped notices (``held``, oldest first; ``total`` counts
    those beyond the kept ones too)."""
    services = sorted({str(h.get("service") or host) for h in held})
    kinds: dict[str, int] = {}
    for h in held:
        kinds[str(h["event"])] = kinds.get(str(h["event"]), 0) + 1
    counts = ", ".join(f"{k} x{v}" for k, v in sorted(kinds.items()))
    return {
        "idempotencyKey": key, "notifier": notifier, "host": host, "service": services[0] if len(services) == 1 else "",
        "event": DIGEST, "summary": f"{', '.join(services)}: {total} more event(s) while damped ({counts})",
        "reason": "flap damping / rate limit", "detail": "", "at": _when(now), "ts": now, "count": total,
        "events": [{"service": h.get("service", ""), "event": h["event"], "reason": h.get("reason", ""),
                    "at": _when(float(h["ts"]))} for h in held],
    }


def text(msg: Mapping[str, Any]) -> str:
    """A message as a few lines of text (slack, ntfy)."""
    lines = [f"[{msg['host']}] {msg['summary']}"]
    if msg.get("reason"):
        lines.append(f"why: {msg['reason']}")
    if msg.get("detail"):
        lines.append(str(msg["detail"])[-500:])
    for e in msg.get("events") or []:
        lines.append(f"- {e['at']} {e['service'] or msg['host']}: {e['event']} {e['reason']}".rstrip())
    lines.append(f"at {msg['at']}; {msg['count']} related event(s) since the last message; key {msg['idempotencyKey']}")
    return "\n".join(lines)
