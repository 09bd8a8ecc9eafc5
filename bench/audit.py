"""6. Audit at scale: queries and writes on a store holding 1,000,000 audit events
(quick mode: 200,000 - the table says which).

Set-up (not timed as a figure): a private store migrated by ``Store.open``, 200 desired
Services stored through ``Store.apply`` (the CLI's own loading path) with a status each,
then the events inserted with raw ``executemany`` in one transaction: spread evenly over
the last 7 days, ~95 % on the 200 services (about 30 per service per hour at 1M), the rest
controller-wide rows; realistic types, reasons and messages.

Figures, each next to the same thing on a small store (1,000 events) in the same run:
- ``reconcile history NAME --since 1h`` and ``reconcile status``: in-process timing of the
  store calls the CLI makes (``Store.history(name, since=...)``;
  ``controller.operations.status_rows(store)``), warm, median/p95 of 20; and the whole
  command's wall time as a user sees it (a subprocess: Python start-up included), median of
  5 (quick: 3), both judged against the 100 ms target, next to ``reconcile --help`` (the
  same start-up and imports, no query) measured in the same loop.
- the event write rate through ``Store.record``: batches of 100 events (as the loop
  writes a pass's events) and single-event records; peer: raw sqlite3 ``executemany``
  into the same file with the store's pragmas (the floor). Median of 5 runs.
"""

from __future__ import annotations

import random
import sqlite3
import time
from pathlib import Path
from typing import Any

from bench.common import BASE_IMAGE, SLEEP_CMD, Bench, BenchError, Figure, median, pct

NAME = "audit"
SERVICES = 200
DAYS = 7
TYPES = [("Restarted", "container exited with code 137 (killed (SIGKILL or out of memory))", "restart #{n}"),
         ("HealthChanged", "healthy -> unhealthy", "exit 1: wget: server returned error: HTTP/1.1 404 Not Found"),
         ("HealthChanged", "unhealthy -> healthy", "exit 0: ok"),
         ("Died", "container exited with code 1", ""),
         ("Created", "container missing", "container {cid} created and started"),
         ("Recreated", "spec changed: env.LOG_LEVEL", "changed: env.LOG_LEVEL; old {cid} -> new {cid}"),
         ("Applied", "spec changed", "Service generation {n}")]


def _populate(b: Bench, path: Path, n_events: int, names: list[str], manifest: Path, now: float) -> float:
    from controller.operations import load_inputs, source_key
    from store import Status, Store

    store = Store.open(str(path))
    store.apply(load_inputs([str(manifest)]), source=source_key([str(manifest)]), actor="bench", now=now)
    store.record([], [Status(name=n, observed_generation=1, state="Running", container_id=f"{i:064x}",
                             last_transition_at=now - 3600, updated_at=now) for i, n in enumerate(names)])
    store.close()
    rng = random.Random(7)
    span = DAYS * 86400.0
    t0 = time.perf_counter()
    con = sqlite3.connect(str(path))
    con.execute("PRAGMA synchronous=NORMAL")
    batch: list[tuple[Any, ...]] = []
    with con:
        for i in range(n_events):
            ts = now - span + span * i / n_events
            svc = names[rng.randrange(SERVICES)] if rng.random() < 0.95 else ""
            etype, reason, msg = TYPES[rng.randrange(len(TYPES))] if svc else ("ControllerStarted", "lease", "")
            cid = f"{rng.getrandbits(48):012x}"
            batch.append((ts, svc, cid if svc else "", etype, reason, msg.format(n=i % 97, cid=cid), 1, "controller"))
            if len(batch) == 50_000:
                con.executemany("INSERT INTO events (ts, service, container_id, type, reason, message, generation, actor)"
                                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", batch)
                batch = []
        if batch:
            con.executemany("INSERT INTO events (ts, service, container_id, type, reason, message, generation, actor)"
                            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", batch)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    return time.perf_counter() - t0


def _timed(fn: Any, reps: int) -> tuple[list[float], Any]:
    out = fn()  # warm-up (connection pool, page cache)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return times, out


def _write_rates(path: Path, names: list[str], now: float, batches: int, singles: int, runs: int) -> dict[str, list[float]]:
    from store import Event, Store

    store = Store.open(str(path), migrate=False)
    con = sqlite3.connect(str(path), timeout=30, isolation_level=None)
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute("PRAGMA busy_timeout=30000")
    rates: dict[str, list[float]] = {"record_100": [], "record_1": [], "raw_100": [], "raw_1": []}

    def events(k: int) -> list[Event]:
        return [Event(ts=now, service=names[i % len(names)], type="HealthChanged", reason="healthy -> unhealthy",
                      message="exit 1: wget: server returned error: HTTP/1.1 404 Not Found",
                      container_id=f"{i:012x}", generation=1) for i in range(k)]

    def raw(evs: list[Event]) -> None:
        con.execute("BEGIN IMMEDIATE")
        con.executemany("INSERT INTO events (ts, service, container_id, type, reason, message, generation, actor)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [(e.ts, e.service, e.container_id, e.type, e.reason, e.message, e.generation, e.actor)
                         for e in evs])
        con.execute("COMMIT")

    try:
        store.record(events(10))  # warm-up
        for _ in range(runs):
            batch = events(100)
            t0 = time.perf_counter()
            for _ in range(batches):
                store.record(batch)
            rates["record_100"].append(batches * 100 / (time.perf_counter() - t0))
            t0 = time.perf_counter()
            for _ in range(batches):
                raw(batch)
            rates["raw_100"].append(batches * 100 / (time.perf_counter() - t0))
            one = events(1)
            t0 = time.perf_counter()
            for _ in range(singles):
                store.record(one)
            rates["record_1"].append(singles / (time.perf_counter() - t0))
            t0 = time.perf_counter()
            for _ in range(singles):
                raw(one)
            rates["raw_1"].append(singles / (time.perf_counter() - t0))
    finally:
        con.close()
        store.close()
    return rates


def run(b: Bench) -> list[Figure]:
    from controller.operations import status_rows
    from store import Store

    n_big = 200_000 if b.quick else 1_000_000
    n_small = 1_000
    d = b.dir(NAME)
    now = time.time()
    names = [b.name(f"a{i:03d}") for i in range(SERVICES)]
    manifest = b.write_yaml(d / "services.yaml", [
        b.service(n, {"image": BASE_IMAGE, "command": SLEEP_CMD, "init": True}, peer="audit") for n in names])
    big, small = d / "big.db", d / "small.db"
    secs = _populate(b, big, n_big, names, manifest, now)
    b.log(f"audit: inserted {n_big:,} events in {secs:.1f} s ({n_big / secs:,.0f}/s, raw executemany); "
          f"store {big.stat().st_size / 1e6:.0f} MB")
    _populate(b, small, n_small, names, manifest, now)
    target_name = names[17]

    reps, cli_reps = 20, b.reps(3, 5)
    res: dict[str, dict[str, list[float]]] = {}
    rows: dict[str, int] = {}
    for label, path in (("big", big), ("small", small)):
        store = Store.open(str(path), migrate=False)
        try:
            h, out = _timed(lambda: store.history(target_name, since=time.time() - 3600), reps)
            rows[label] = len(out)
            s, out2 = _timed(lambda: status_rows(store), reps)
            if len(out2) != SERVICES:
                raise BenchError(f"status_rows returned {len(out2)} rows, expected {SERVICES}")
        finally:
            store.close()
        res[label] = {"history": h, "status": s, "history_cli": [], "status_cli": []}
    startup: list[float] = []
    for _ in range(cli_reps):
        # the same interpreter start-up and imports, no store query: what the command costs before it asks
        startup.append(b.cli(big, "--help").check().wall * 1000)
        for label, path in (("big", big), ("small", small)):
            p = b.cli(path, "history", target_name, "--since", "1h").check()
            res[label]["history_cli"].append(p.wall * 1000)
            p = b.cli(path, "status").check()
            if target_name not in p.stdout:
                raise BenchError("reconcile status did not list the services")
            res[label]["status_cli"].append(p.wall * 1000)
    b.log(f"audit: history --since 1h returns {rows['big']} rows on the big store, {rows['small']} on the small")

    rates = _write_rates(big, names, now, batches=b.reps(20, 50), singles=b.reps(200, 500), runs=5)
    size = f"{n_big // 1000}k" if n_big < 1_000_000 else "1M"
    peer = f"same, {n_small:,}-event store"
    B, S = res["big"], res["small"]
    return [
        Figure(NAME, f"history NAME --since 1h, store call ({size} events)", median(B["history"]), "ms", peer,
               median(S["history"]), "< 100 ms", median(B["history"]) < 100, reps, f"{rows['big']} rows",
               p95=pct(B["history"], 95), peer_p95=pct(S["history"], 95)),
        Figure(NAME, f"status, store calls ({size} events)", median(B["status"]), "ms", peer, median(S["status"]),
               "< 100 ms", median(B["status"]) < 100, reps, f"{SERVICES} services",
               p95=pct(B["status"], 95), peer_p95=pct(S["status"], 95)),
        Figure(NAME, f"`reconcile history NAME --since 1h` command wall ({size})", median(B["history_cli"]), "ms",
               peer, median(S["history_cli"]), "< 100 ms", median(B["history_cli"]) < 100, cli_reps,
               f"includes Python start-up: `reconcile --help` takes {median(startup):.0f} ms",
               p95=pct(B["history_cli"], 95), peer_p95=pct(S["history_cli"], 95)),
        Figure(NAME, f"`reconcile status` command wall ({size})", median(B["status_cli"]), "ms", peer,
               median(S["status_cli"]), "< 100 ms", median(B["status_cli"]) < 100, cli_reps,
               f"includes Python start-up: `reconcile --help` takes {median(startup):.0f} ms",
               p95=pct(B["status_cli"], 95), peer_p95=pct(S["status_cli"], 95)),
        Figure(NAME, "`reconcile --help` (start-up and imports only)", median(startup), "ms", "", None, "", None,
               cli_reps, "the floor of every reconcile command on this machine", p95=pct(startup, 95)),
        Figure(NAME, "Store.record, batches of 100", median(rates["record_100"]), "/s", "raw sqlite3 executemany",
               median(rates["raw_100"]), ">= 2,000/s", median(rates["record_100"]) >= 2000, 5,
               f"into the {size}-event store"),
        Figure(NAME, "Store.record, single events", median(rates["record_1"]), "/s", "raw sqlite3, 1 per commit",
               median(rates["raw_1"]), ">= 2,000/s", median(rates["record_1"]) >= 2000, 5,
               f"into the {size}-event store"),
    ]
