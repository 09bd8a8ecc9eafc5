"""7. The CLI as a user types it: whole-command wall time of the read verbs and the trivial
ones, next to ``docker ps`` and ``docker-compose ps`` measured in the same run.

Set-up (not timed as a figure):
- 200 services as real applied records. When the shared 200-service stack is already up in
  this run (after ``steady``/``footprint``), its store is copied (SQLite backup API) into a
  throwaway file and its compose project is the ``docker-compose ps`` peer: real records,
  real statuses, real containers on both sides. Otherwise (``--only cli``) the records are
  stored through ``Store.apply`` from a 200-service manifest (the CLI's own loading path)
  with a ``Running`` status each and no containers, and ``docker-compose ps`` runs on the
  equivalent 200-service compose file as its own (empty) project. ``docker ps`` always
  lists whatever the engine runs. The table's note says which set-up a run used.
- 1,000,000 audit events (quick mode: 200,000) added to that throwaway store with SQLAlchemy
  Core bulk inserts (``insert(events)`` executemany in batches of 50,000), spread over 7 days,
  ~95 % on the 200 services.

Figures: ``--help``, ``version`` (when the verb exists), ``status``, ``status --json``,
``get -o wide`` (when the verb exists), ``describe NAME`` and ``history NAME --since 1h``:
each a subprocess (``python -m controller.cli``, as every benchmark here runs the CLI), its
wall time median/p95 over the repetitions (quick 5, full 15). Every repetition runs every
command once, the order rotating, with ``docker ps`` and ``docker-compose ps`` in the same
rotation. The ratio is against ``docker ps``; the note gives ``docker-compose ps`` and the
ratio to it. Targets: ``--help``/``version`` <= 120 ms; the read verbs <= 8x ``docker ps``.
``python -c pass`` runs in the same rotation: the interpreter's start-up on this machine,
under every verb.

``python -m bench.cli --populate DIR`` builds the store alone (records only, no engine
writes) and prints its path: for profiling a verb by hand.
"""

from __future__ import annotations

import random
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import BASE_IMAGE, PEER_LABEL, SLEEP_CMD, Bench, BenchError, Figure, compose_bin, median, pct

NAME = "cli"
SERVICES = 200
DAYS = 7
BATCH = 50_000
HELP_TARGET_MS = 120.0
READ_TARGET_RATIO = 8.0
_TYPES = [("Restarted", "container exited with code 137 (killed (SIGKILL or out of memory))", "restart #{n}"),
          ("HealthChanged", "healthy -> unhealthy", "exit 1: wget: server returned error: HTTP/1.1 404 Not Found"),
          ("HealthChanged", "unhealthy -> healthy", "exit 0: ok"),
          ("Died", "container exited with code 1", ""),
          ("Created", "container missing", "container {cid} created and started"),
          ("Applied", "spec changed", "Service generation {n}")]


def add_events(path: Path, names: list[str], n_events: int, now: float) -> float:
    """Insert ``n_events`` audit rows through SQLAlchemy Core (bulk executemany); seconds taken."""
    from sqlalchemy import insert

    from store import Store
    from store.models import EventRow

    rng = random.Random(11)
    span = DAYS * 86400.0
    store = Store.open(str(path), migrate=False)
    t0 = time.perf_counter()
    try:
        stmt = insert(EventRow.__table__)
        with store._write.begin() as conn:
            batch: list[dict[str, Any]] = []
            for i in range(n_events):
                svc = names[rng.randrange(len(names))] if rng.random() < 0.95 else ""
                etype, reason, msg = _TYPES[rng.randrange(len(_TYPES))] if svc else ("ControllerStarted", "lease", "")
                cid = f"{rng.getrandbits(48):012x}" if svc else ""
                batch.append({"ts": now - span + span * i / n_events, "service": svc, "container_id": cid,
                              "type": etype, "reason": reason, "message": msg.format(n=i % 97, cid=cid),
                              "generation": 1, "actor": "controller"})
                if len(batch) == BATCH:
                    conn.execute(stmt, batch)
                    batch = []
            if batch:
                conn.execute(stmt, batch)
    finally:
        store.close()
    con = sqlite3.connect(str(path))  # fold the WAL into the file: every verb then reads one file
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    return time.perf_counter() - t0


def records_store(path: Path, manifest: Path, names: list[str], now: float) -> None:
    """200 applied records (``Store.apply`` of the manifest, the CLI's path) with a status each."""
    from controller.operations import load_inputs, source_key
    from store import Status, Store

    store = Store.open(str(path))
    try:
        store.apply(load_inputs([str(manifest)]), source=source_key([str(manifest)]), actor="bench", now=now)
        store.record([], [Status(name=n, observed_generation=1, state="Running", container_id=f"{i:064x}",
                                 last_transition_at=now - 3600, updated_at=now) for i, n in enumerate(names)])
    finally:
        store.close()


def _copy_store(src: Path, dst: Path) -> None:
    s, d = sqlite3.connect(str(src), timeout=30), sqlite3.connect(str(dst))
    try:
        s.backup(d)
    finally:
        d.close()
        s.close()


def _manifests(b: Bench, d: Path, names: list[str]) -> tuple[Path, Path]:
    manifest = b.write_yaml(d / "services.yaml", [
        b.service(n, {"image": BASE_IMAGE, "command": SLEEP_CMD, "init": True}, peer="cli") for n in names])
    services = {n: {"image": BASE_IMAGE, "command": SLEEP_CMD, "init": True, "network_mode": "bridge",
                    "labels": {**b.labels, PEER_LABEL: "cli-compose"}} for n in names}
    compose_file = b.write_yaml(d / "compose" / "docker-compose.yml", {"version": "2.4", "services": services})
    return manifest, compose_file


def _has_verb(b: Bench, db: Path, verb: str) -> bool:
    return b.cli(db, verb, "--help").rc == 0


def run(b: Bench) -> list[Figure]:
    n_events = 200_000 if b.quick else 1_000_000
    reps = b.reps(5, 15)
    d = b.dir(NAME)
    (d / "compose").mkdir(exist_ok=True)
    now = time.time()
    db = d / "store.db"
    stack = b.shared.get("stack200")
    if stack is not None:
        names = list(stack.names)
        _copy_store(stack.db, db)
        compose_file, project, cdir = stack.compose_file, stack.compose_project, stack.compose_dir
        setup = f"the run's 200-service stack (real containers, {SERVICES} each side)"
    else:
        names = [b.name(f"c{i:03d}") for i in range(SERVICES)]
        manifest, compose_file = _manifests(b, d, names)
        records_store(db, manifest, names, now)
        project, cdir = f"{b.prefix}cli", compose_file.parent
        setup = f"{SERVICES} applied records, no containers; compose ps on an empty {SERVICES}-service project"
    secs = add_events(db, names, n_events, now)
    b.log(f"cli: {n_events:,} events added in {secs:.1f} s ({n_events / secs:,.0f}/s, Core bulk insert); "
          f"store {db.stat().st_size / 1e6:.0f} MB; {setup}")
    if not compose_bin():
        raise BenchError("docker-compose is not installed (bench/run.py installs it)")
    target = names[17]

    cmds: dict[str, list[str]] = {"--help": ["--help"]}
    if _has_verb(b, db, "version"):
        cmds["version"] = ["version"]
    cmds.update({"status": ["status"], "status --json": ["status", "--json"]})
    if _has_verb(b, db, "get"):
        cmds["get -o wide"] = ["get", "-o", "wide"]
    cmds.update({"describe NAME": ["describe", target], "history NAME --since 1h": ["history", target, "--since", "1h"]})
    peers = {"docker ps": ["docker", "ps"],
             "docker-compose ps": ["-p", project, "-f", str(compose_file), "ps"],
             "python -c pass": [sys.executable, "-c", "pass"]}

    def once(key: str) -> float:
        if key == "docker ps":
            p = b.run(peers[key]).check()
        elif key == "python -c pass":  # the interpreter's own start-up, in the CLI's environment
            p = b.run(peers[key], env=b.env(db)).check()
        elif key == "docker-compose ps":
            p = b.compose(*peers[key], cwd=cdir).check()
        else:
            p = b.cli(db, *cmds[key]).check()
            if key in ("status", "get -o wide") and target not in p.stdout:
                raise BenchError(f"reconcile {key} did not list {target}")
        return p.wall * 1000

    keys = [*cmds, *peers]
    for k in keys:  # warm-up: page cache, .pyc files
        once(k)
    samples: dict[str, list[float]] = {k: [] for k in keys}
    for i in range(reps):
        order = keys[i % len(keys):] + keys[: i % len(keys)]
        for k in order:
            samples[k].append(once(k))
    dps, cps = median(samples["docker ps"]), median(samples["docker-compose ps"])
    size = f"{n_events // 1000}k" if n_events < 1_000_000 else "1M"
    figures = []
    for k in cmds:
        v = median(samples[k])
        if k in ("--help", "version"):
            tgt, met = f"<= {HELP_TARGET_MS:.0f} ms", v <= HELP_TARGET_MS
        else:
            tgt, met = f"<= {READ_TARGET_RATIO:.0f}x docker ps", v <= READ_TARGET_RATIO * dps
        figures.append(Figure(NAME, f"`reconcile {k}` wall ({SERVICES} services, {size} events)", v, "ms",
                              "docker ps", dps, tgt, met, reps,
                              f"docker-compose ps {cps:.0f} ms ({v / cps:.2f}x)", p95=pct(samples[k], 95),
                              peer_p95=pct(samples["docker ps"], 95)))
    figures.append(Figure(NAME, "`docker-compose ps` wall (the second peer)", cps, "ms", "docker ps", dps, "", None,
                          reps, setup, p95=pct(samples["docker-compose ps"], 95),
                          peer_p95=pct(samples["docker ps"], 95)))
    figures.append(Figure(NAME, "`python -c pass` wall (interpreter start-up, the floor of every verb)",
                          median(samples["python -c pass"]), "ms", "docker ps", dps, "", None, reps,
                          "site-packages' .pth start-up hooks included", p95=pct(samples["python -c pass"], 95),
                          peer_p95=pct(samples["docker ps"], 95)))
    return figures


def _populate_only(out_dir: str) -> None:
    """``python -m bench.cli --populate DIR``: the records-only store, for profiling by hand."""
    import yaml

    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    names = [f"svc{i:03d}" for i in range(SERVICES)]
    docs = [{"apiVersion": "reconcile/v1alpha1", "kind": "Service", "metadata": {"name": n},
             "spec": {"image": BASE_IMAGE, "command": SLEEP_CMD, "init": True}} for n in names]
    manifest = d / "services.yaml"
    manifest.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    db = d / "store.db"
    now = time.time()
    records_store(db, manifest, names, now)
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 1_000_000
    secs = add_events(db, names, n, now)
    print(f"{db} ({n:,} events in {secs:.1f} s)")


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--populate":
        _populate_only(sys.argv[2])
    else:
        sys.exit("usage: python -m bench.cli --populate DIR [EVENTS]   (the benchmark runs from bench/run.py)")
