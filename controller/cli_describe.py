"""``describe NAME``: one resource as `kubectl describe` prints one — aligned fields,
durations as ``2s``, times as local time plus "3m ago", no ``None``, no raw epoch
floats — with its spec, status, the last health probe's output and recent events.

``-o json|yaml`` gives the same data as a document (times as epoch seconds there).
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Mapping
from typing import Any

import click

from controller import cli_output as fmt

# spec fields that are durations in seconds (crd_like's Duration type)
DURATION_KEYS = frozenset({"interval", "timeout", "startPeriod", "initial", "max", "window", "resetAfter",
                           "monitor", "stopGracePeriod", "delay"})


def _value(key: str, v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)) and key in DURATION_KEYS:
        return fmt.duration(float(v))
    if isinstance(v, float) and v == int(v):
        return str(int(v))
    if isinstance(v, list) and all(not isinstance(i, (dict, list)) for i in v):
        return ", ".join(str(i) for i in v) if v else "-"
    return "-" if v is None or v == "" else str(v)


def spec_lines(data: Mapping[str, Any], indent: int = 2) -> list[str]:
    """A spec as indented ``key: value`` lines, durations as ``30s``; the caller passes the
    spec through ``redact_spec`` first (stored secret values print as a placeholder)."""
    lines: list[str] = []
    pad = " " * indent
    for key, v in data.items():
        if isinstance(v, dict):
            if not v:
                continue
            lines.append(f"{pad}{key}:")
            lines.extend(spec_lines(v, indent + 2))
        elif isinstance(v, list) and any(isinstance(i, (dict, list)) for i in v):
            lines.append(f"{pad}{key}:")
            for item in v:
                if isinstance(item, dict):
                    sub = spec_lines(item, indent + 4)
                    if sub:
                        lines.append(f"{pad}  - {sub[0].strip()}")
                        lines.extend(sub[1:])
                else:
                    lines.append(f"{pad}  - {_value(key, item)}")
        else:
            lines.append(f"{pad}{key}: {_value(key, v)}")
    return lines


_PROBE_TAIL = re.compile(r"^exit (-?\d+): (.*)$", re.S)  # a HealthChanged row's message (probes.ProbeResult.tail)


def last_probe(obj: Any, container_id: str) -> dict[str, Any] | None:
    """The engine's last health probe of the container: exit code, when, output."""
    if not container_id:
        return None
    try:
        health = obj.engine.detail(container_id).health
    except Exception:  # noqa: BLE001 - container gone or engine away: nothing to show
        return None
    if health is None or not health.log:
        return None
    last = health.log[-1]
    return {"exitCode": last.exit_code, "start": last.start, "end": last.end,
            "output": last.output.strip(), "checkedBy": "engine"}


def controller_probe(obj: Any, name: str, container_id: str) -> dict[str, Any] | None:
    """Where the controller runs the check (an engine that runs none: Podman without
    systemd), the engine has no probe log; the controller's probe is the one behind the
    container's last ``HealthChanged`` row (its message is the probe's ``exit N: output``)."""
    if not container_id:
        return None
    rows = obj.store.history(name, types=["HealthChanged"], limit=50)
    for e in reversed(rows):
        m = _PROBE_TAIL.match(e.message or "")
        if m and (e.container_id.startswith(container_id) or container_id.startswith(e.container_id)):
            return {"exitCode": int(m.group(1)), "start": None, "end": e.ts, "output": m.group(2).strip(),
                    "checkedBy": "controller"}
    return None


def describe_resource(obj: Any, name: str, output: str) -> None:
    from controller import operations as ops

    from crd_like.secrets import redact_spec

    rec = obj.reader.get(name)
    if rec is None:
        click.echo(f"error: no resource named {name!r}", err=True)
        sys.exit(2)
    spec = redact_spec(rec.spec)  # stored secret values print as a placeholder
    row = next(r for r in ops.status_rows(obj.reader) if r["name"] == name)
    events = obj.reader.history(name, limit=20)
    probe = _probe(obj, name, rec.spec, row)
    from controller.overview import placement_of

    placement = placement_of(obj.reader).get(name, {"assignments": [], "pending": None})
    if output in ("json", "yaml"):
        fmt.dump({"apiVersion": rec.api_version, "kind": rec.kind, "metadata": {**rec.metadata, "name": name},
                  "spec": spec, "generation": rec.generation, "status": row, "placement": placement,
                  "lastProbe": probe, "events": [e.to_json() for e in events]}, output)
        return
    now = time.time()
    fields = _fields(name, rec, row, now)
    if placement["assignments"] or placement["pending"]:
        fields.append(("Placement", "; ".join(f"replica {a['replica']} on {a['node']}"
                                              for a in placement["assignments"]) or "-"))
        if placement["pending"]:
            fields.append(("Pending", placement["pending"]))
    width = max(len(k) for k, _ in fields) + 2
    for k, v in fields:
        click.echo(f"{k + ':':<{width}}{v}")
    click.echo("Spec:")
    for line in spec_lines(spec):
        click.echo(line)
    if rec.spec.get("healthcheck"):
        _echo_probe(probe, now)
    _echo_events(events, now)


def _probe(obj: Any, name: str, spec: Mapping[str, Any], row: Mapping[str, Any]) -> dict[str, Any] | None:
    """The last health probe of a service with a healthcheck: the engine's, else (where the
    controller runs the check) the controller's."""
    if not spec.get("healthcheck"):
        return None
    probe = last_probe(obj, row["containerId"])
    if probe is None and row.get("healthCheckedBy") == "controller":
        probe = controller_probe(obj, name, row["containerId"])
    return probe


# The optional fields, in their order: (label, the status row's key, how its value prints).
_OPTIONAL_FIELDS: tuple[tuple[str, str, Any], ...] = (
    ("Reason", "reason", str),
    ("Message", "message", str),
    ("Waiting for", "waitingFor", lambda w: ", ".join(f"{d} ({c})" for d, c in w.items())),
)


def _fields(name: str, rec: Any, row: Mapping[str, Any], now: float) -> list[tuple[str, str]]:
    """The aligned ``Label: value`` lines at the top of the text output."""
    labels = row.get("labels") or {}
    since = f" since {fmt.when(row['lastTransitionAt'], now)}" if row.get("lastTransitionAt") else ""
    fields: list[tuple[str, str]] = [
        ("Name", name), ("Kind", rec.kind),
        ("Labels", ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or "-"),
        ("Generation", f"{rec.generation} (observed {row['observedGeneration'] or '-'})"),
        ("Applied", fmt.when(rec.updated_at, now)),
        ("State", row["state"] + since),
    ]
    fields += [(label, show(row[key])) for label, key, show in _OPTIONAL_FIELDS if row.get(key)]
    if rec.spec.get("healthcheck"):
        fields.append(("Health", row["health"] or "-"))
    fields += [("Container", row["containerId"] or "-"), ("Restarts", str(row["restartCount"]))]
    if row.get("nextAttemptAt"):
        fields.append(("Next attempt", f"in {fmt.duration(row['nextAttemptAt'] - now)}"))
    return fields


def _echo_probe(probe: Mapping[str, Any] | None, now: float) -> None:
    click.echo("Last probe:")
    if probe is None:
        click.echo("  - (none recorded)")
        return
    click.echo(f"  Exit code:  {probe['exitCode']}")
    click.echo(f"  Output:     {probe['output'] or '-'}")
    if probe["checkedBy"] == "controller":
        click.echo(f"  Run by:     controller, {fmt.when(probe['end'], now)} (its last change of health)")


def _echo_events(events: list[Any], now: float) -> None:
    click.echo("Events:")
    if not events:
        click.echo("  <none>")
        return
    rows = [[fmt.ago(e.ts, now), e.type, e.actor,
             (e.reason + (f" — {e.message}" if e.message else "")).replace("\n", " ")[:200] or "-"]
            for e in events]
    for line in fmt.table(["AGE", "TYPE", "FROM", "REASON"], rows):
        click.echo(f"  {line}")
