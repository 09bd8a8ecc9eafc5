"""Run the benchmark suite and print the machine and a table of figures.

    python bench/run.py                 # everything, full mode
    python bench/run.py --quick         # everything, a few minutes
    python bench/run.py --only crash    # one (or a comma list: crash,audit)
    python bench/run.py --only placement  # pure functions only: no engine, images or compose
    python bench/run.py --only nodes    # the idle pass of a node's agent (run --node) vs the single host's

Every figure is a median (p95 where asked) over repeated runs, next to a peer measured
in the same run; the ratio is always reconcile / peer. Everything created carries the
label reconcile.bench=<run id> and is removed at the end, also on Ctrl-C / SIGTERM.
Before anything runs, the offline test images are built if missing
(scripts/build-images.sh) and Debian's docker-compose is installed if missing
(apt-get install -y --no-install-recommends docker-compose); the run stops with a clear
error when either cannot be done. The whole run is bounded (--budget-minutes: 30 quick,
90 full): past it the run stops, cleans up and exits 1.
Exit status: 0 when every benchmark produced its figures (missed targets are reported,
not fatal; --strict makes them fatal), 1 on an error, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    Bench, BenchError, Figure, Offline, dump_json, ensure_compose, ensure_images, machine, print_machine, table,
)

BENCHES = ["crash", "unhealthy", "cold", "steady", "nodes", "footprint", "audit", "cli", "filewatch", "page", "placement"]
# pure functions timed in this process: no engine, images or docker-compose needed
ENGINELESS = {"placement"}
# footprint shares the 200-service stack (both sides); cli has docker-compose ps as a peer
NEEDS_COMPOSE = {"cold", "steady", "footprint", "cli"}


class BudgetExceeded(KeyboardInterrupt):
    """The run's time budget is spent: stop like an interrupt (clean up), exit 1."""


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _budget(_signum: int, _frame: object) -> None:
    raise BudgetExceeded("time budget exceeded")


_ENGINE_TROUBLE = ("Docker engine unavailable", "Read timed out", "Connection aborted", "timed out",
                   "No such file or directory", "connection refused", "An HTTP request took too long",
                   "Couldn't connect to Docker daemon", "Pool is closed")


def _engine_trouble(exc: BaseException) -> bool:
    """Did the engine go away or stall (others restart dockerd on this host)?"""
    seen: BaseException | None = exc
    while seen is not None:
        text = f"{type(seen).__name__}: {seen}"
        if isinstance(seen, (ConnectionError, TimeoutError)) or any(t in text for t in _ENGINE_TROUBLE):
            return True
        if type(seen).__module__.startswith(("requests", "urllib3")):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer repetitions and smaller data (a few minutes)")
    ap.add_argument("--only", action="append", default=[], help=f"run only these ({', '.join(BENCHES)}); repeatable or comma list")
    ap.add_argument("--json", dest="json_out", help="also write machine + figures as JSON to this file")
    ap.add_argument("--keep-tmp", action="store_true", help="keep the temporary directory (stores, logs)")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    ap.add_argument("--attempts", type=int, default=2, help="start a benchmark again (from nothing) when the "
                    "engine went away or timed out under it; at most this many attempts [2]")
    ap.add_argument("--budget-minutes", type=float, help="stop (and clean up) after this long [30 quick, 90 full]")
    ap.add_argument("--run-id", help="the run's id (labels reconcile.bench=ID, names bID-...) [random]")
    args = ap.parse_args(argv)
    only = [x.strip() for o in args.only for x in o.split(",") if x.strip()] or BENCHES
    unknown = [x for x in only if x not in BENCHES]
    if unknown:
        ap.error(f"unknown benchmark(s) {unknown}; choose from {BENCHES}")
    signal.signal(signal.SIGTERM, _interrupt)
    budget = args.budget_minutes or (30.0 if args.quick else 90.0)

    b: Bench | Offline = Offline(quick=args.quick) if set(only) <= ENGINELESS else \
        Bench(quick=args.quick, keep_tmp=args.keep_tmp, run_id=args.run_id)
    try:
        if isinstance(b, Bench):
            ensure_images(b.api, b.log)
        if NEEDS_COMPOSE & set(only):
            ensure_compose(b.log)
    except BenchError as exc:
        print(f"ERROR: {exc}", file=sys.stderr, flush=True)
        b.cleanup()
        return 1
    signal.signal(signal.SIGALRM, _budget)
    signal.alarm(max(1, int(budget * 60)))
    m = machine(b.client if isinstance(b, Bench) else None)
    print(print_machine(m), flush=True)
    print(f"run {b.run_id} ({'quick' if args.quick else 'full'} mode): {', '.join(only)}; "
          f"label {b.label}; temp {b.tmp}", flush=True)
    figures: list[Figure] = []
    errors: dict[str, str] = {}
    retried: dict[str, int] = {}
    load: dict[str, float] = {}
    durations: dict[str, float] = {}
    interrupted = False
    over_budget = False
    started = time.monotonic()
    try:
        for name in only:
            mod = importlib.import_module(f"bench.{name}")
            t0 = time.monotonic()
            for attempt in range(1, args.attempts + 1):
                load[name] = os.getloadavg()[0]
                print(f"== {name} (attempt {attempt}; load average {load[name]:.2f})", file=sys.stderr, flush=True)
                try:
                    with b.scope():
                        got = mod.run(b)
                    figures.extend(got)
                    print(table(got), file=sys.stderr, flush=True)
                    errors.pop(name, None)
                    break
                except KeyboardInterrupt:
                    raise
                except Exception as exc:  # noqa: BLE001 - report, go on with the others
                    errors[name] = f"{type(exc).__name__}: {exc}"
                    traceback.print_exc()
                    if attempt == args.attempts or not _engine_trouble(exc):
                        break
                    print(f"== {name}: the engine failed under us (restarted or overloaded by other users of "
                          "this host); starting the benchmark again from nothing", file=sys.stderr, flush=True)
                    retried[name] = attempt
                    b.reset_after_failure()
            durations[name] = time.monotonic() - t0
    except KeyboardInterrupt as exc:
        over_budget = isinstance(exc, BudgetExceeded)
        interrupted = not over_budget
        print(f"\n{f'time budget of {budget:g} min spent' if over_budget else 'interrupted'}; cleaning up",
              file=sys.stderr, flush=True)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        problems = b.cleanup()
    print()
    print(table(figures))
    total = time.monotonic() - started
    print(f"\n{len(figures)} figures; " + ", ".join(f"{k} {v:.0f}s" for k, v in durations.items()) + f"; total {total:.0f}s")
    print("load average (1 min) at the start of each: " + ", ".join(f"{k} {v:.2f}" for k, v in load.items())
          + f" on {os.cpu_count()} cores")
    for name, n in retried.items():
        print(f"note: {name} was started again after attempt {n} failed with an engine error")
    missed = [f for f in figures if f.met is False]
    if missed:
        print("targets missed: " + "; ".join(f"{f.bench}: {f.metric}" for f in missed))
    for name, msg in errors.items():
        print(f"ERROR {name}: {msg}")
    for p in problems:
        print(f"CLEANUP: {p}")
    if not problems:
        print(f"cleanup: nothing labelled {b.label} is left")
    if args.json_out:
        dump_json(Path(args.json_out), {"machine": m, "mode": "quick" if args.quick else "full", "run_id": b.run_id,
                                        "figures": [f.as_dict() for f in figures], "errors": errors,
                                        "durations": durations, "load": load, "retried": retried,
                                        "shared": {k: v for k, v in b.shared.items() if k != "stack200"},
                                        "cleanup_problems": problems})
    if over_budget:
        print(f"ERROR: stopped after the time budget of {budget:g} min (--budget-minutes)")
    if interrupted:
        return 130
    if over_budget or errors or problems or (args.strict and missed):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
