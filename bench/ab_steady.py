"""The steady-state pass of two source trees, against one 200-service stack, interleaved.

    git worktree add /tmp/old REV
    python3 bench/ab_steady.py --old /tmp/old [--rounds 6]

A before/after comparison for a change to the controller's middle: the same containers and
the same store, each tree's own pass loop (``bench.steady._passes``: 20 ``reconcile()``
passes after 2 warm-ups, ``time.process_time()`` and wall time around each), the trees
alternated round by round so that a load that drifts hits both alike. Prints the median and
p95 per tree and the ratio this tree / old tree, with the load average of each round.
Everything created carries the run's ``reconcile.bench`` label and is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import BASE_IMAGE, SLEEP_CMD, Bench, BenchError, ensure_images, median, pct  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SIZE = 200
PASS_LOOP = """
import json, sys
from bench.steady import _passes
calls, lists, cpu, wall, kinds = _passes(None, sys.argv[1])
print(json.dumps({"cpu": cpu, "wall": wall, "lists": lists}))
"""


def _round(tree: Path, db: Path) -> dict[str, list[float]]:
    env = {**os.environ, "PYTHONPATH": str(tree), "RECONCILE_LOG_LEVEL": "WARNING"}
    p = subprocess.run([sys.executable, "-c", PASS_LOOP, str(db)], cwd=tree, env=env, capture_output=True,
                       text=True, timeout=900, check=False)
    if p.returncode != 0:
        raise BenchError(f"the pass loop of {tree} failed:\n{p.stderr[-2000:]}")
    data: dict[str, list[float]] = json.loads(p.stdout.strip().splitlines()[-1])
    return data


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", required=True, type=Path, help="a checkout of the revision to compare against")
    ap.add_argument("--rounds", type=int, default=6, help="rounds per tree (each 20 passes) [6]")
    args = ap.parse_args(argv)
    trees = {"new": REPO, "old": args.old.resolve()}
    b = Bench(quick=True)
    try:
        ensure_images(b.api, b.log)
        names = [b.name(f"s{i:03d}") for i in range(1, SIZE + 1)]
        docs = [b.service(n, {"image": BASE_IMAGE, "command": SLEEP_CMD, "init": True}) for n in names]
        manifest = b.write_yaml(b.dir("ab") / "stack.yaml", docs)
        db = b.dir("ab") / "store.db"
        b.log(f"creating the {SIZE}-service stack with reconcile apply --wait")
        b.cli(db, "apply", "-f", str(manifest), "--wait", "--timeout", "15m", timeout=1200).check()
        got: dict[str, dict[str, list[float]]] = {k: {"cpu": [], "wall": []} for k in trees}
        for i in range(args.rounds):
            order = ["old", "new"] if i % 2 == 0 else ["new", "old"]
            for who in order:
                r = _round(trees[who], db)
                if set(r["lists"]) != {1}:
                    raise BenchError(f"{who}: a pass did not make exactly one list call: {r['lists']}")
                got[who]["cpu"] += r["cpu"]
                got[who]["wall"] += r["wall"]
                b.log(f"round {i + 1}/{args.rounds} {who}: CPU {median(r['cpu']):.1f} ms, wall "
                      f"{median(r['wall']):.1f} ms per pass (load {os.getloadavg()[0]:.1f})")
        print(f"{'metric':<28} {'old':>10} {'old p95':>9} {'new':>10} {'new p95':>9} {'new/old':>8}  n")
        for metric in ("cpu", "wall"):
            o, n = got["old"][metric], got["new"][metric]
            print(f"{metric + ' per pass (ms)':<28} {median(o):>10.1f} {pct(o, 95):>9.1f} {median(n):>10.1f} "
                  f"{pct(n, 95):>9.1f} {median(n) / median(o):>7.2f}x  {len(n)}")
        return 0
    except BenchError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    finally:
        left = b.cleanup()
        print(f"cleanup: {'left ' + ', '.join(left) if left else 'nothing labelled ' + b.label + ' is left'}",
              file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
