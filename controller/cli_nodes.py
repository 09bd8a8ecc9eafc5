"""Node verbs (many hosts, docs/MULTI-HOST.md): ``nodes`` lists the registered nodes with
their state, heartbeat, lease holder and the replicas assigned to them; ``cordon`` /
``uncordon`` stop / resume placing new work on a node; ``drain`` moves its movable replicas
away (the scheduler does it). Thin: the store (``store.nodes``) and the scheduler's
``node_state`` do the work. Only click at module level.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from controller import cli_output as fmt
from controller.cli import EXIT_INVALID, Ctx, handled

# placement's states -> what `nodes` shows (a lost node is "notready")
_SHOWN = {"ready": "ready", "cordoned": "cordoned", "draining": "draining", "lost": "notready"}


def node_rows(obj: Ctx) -> list[dict[str, Any]]:
    """One object per node (the JSON of ``nodes -o json``), judged by the database's clock."""
    from controller.scheduler import node_state

    snap = obj.store.nodes.snapshot()
    replicas: dict[str, list[dict[str, Any]]] = {}
    for p in snap.assignments:
        if p.node:
            replicas.setdefault(p.node, []).append({"service": p.service, "replica": p.replica})
    out = []
    for n in snap.nodes:
        lease = snap.leases.get(n.name)
        state = node_state(n, lease, snap.now)
        live = state != "lost"
        out.append({"name": n.name, "state": _SHOWN[state], "ready": live, "labels": dict(n.labels),
                    "engine": n.engine_version, "cpus": n.cpus, "memory": n.memory, "heartbeat": n.heartbeat_at,
                    "holder": lease.holder if lease is not None and live else "",
                    "token": lease.token if lease is not None else 0,
                    "cordoned": n.cordoned, "draining": n.draining,
                    "replicas": replicas.get(n.name, [])})
    return out


@click.command("nodes")
@fmt.output_option(("table", "wide", "json", "yaml"), "table")
@click.pass_obj
@handled
def nodes(obj: Ctx, output: str, as_json: bool) -> None:
    """List the registered nodes: state (ready, notready, cordoned, draining), last
    heartbeat, and what is assigned there (-o wide: labels, engine, capacity, holder)."""
    rows = node_rows(obj)
    how = fmt.pick_format(output, as_json)
    if how in ("json", "yaml"):
        fmt.dump(rows, how)
        return
    if not rows:
        click.echo("no nodes registered (single-host mode: `reconcile run --node NAME` registers one)")
        return
    now = time.time()
    headers = ["NAME", "STATE", "HEARTBEAT", "REPLICAS"]
    if how == "wide":
        headers += ["LABELS", "ENGINE", "CPUS", "MEMORY", "HOLDER"]
    table = []
    for r in rows:
        line = [r["name"], r["state"], fmt.ago(r["heartbeat"], now) if r["heartbeat"] else "never",
                str(len(r["replicas"]))]
        if how == "wide":
            line += [",".join(f"{k}={v}" for k, v in sorted(r["labels"].items())) or "-", r["engine"] or "-",
                     f"{r['cpus']:g}" if r["cpus"] else "-",
                     f"{r['memory'] / 2**30:.1f}Gi" if r["memory"] else "-", r["holder"] or "-"]
        table.append(line)
    for text in fmt.table(headers, table):
        click.echo(text)


def _set(obj: Ctx, name: str, verb: str, **flags: bool) -> None:
    node = obj.store.nodes.set_flags(name, actor="cli", now=time.time(), **flags)
    if node is None:
        click.echo(f"error: no node named {name} (see `reconcile nodes`)", err=True)
        sys.exit(EXIT_INVALID)
    click.echo(f"node/{name} {verb}")


@click.command("cordon")
@click.argument("node")
@click.pass_obj
@handled
def cordon(obj: Ctx, node: str) -> None:
    """Place no new replicas on NODE (what runs there stays); exit 2 for an unknown node."""
    _set(obj, node, "cordoned", cordoned=True)


@click.command("uncordon")
@click.argument("node")
@click.pass_obj
@handled
def uncordon(obj: Ctx, node: str) -> None:
    """Place new replicas on NODE again (ends a cordon or a drain); exit 2 for an unknown node."""
    _set(obj, node, "uncordoned", cordoned=False, draining=False)


@click.command("drain")
@click.argument("node")
@click.pass_obj
@handled
def drain(obj: Ctx, node: str) -> None:
    """Move NODE's replicas that can run elsewhere to other nodes (the scheduler does it,
    within a second or so) and place nothing new there; exit 2 for an unknown node."""
    _set(obj, node, "draining", draining=True)
