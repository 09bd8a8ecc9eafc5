#!/usr/bin/env python3
"""Summarise the figures the fault suite wrote (tests/e2e/test_faults.py) as Markdown.

    python3 scripts/fault-report.py [DIR] [--mode short|long]

DIR defaults to $RECONCILE_FAULT_FIGURES or /tmp/reconcile-fault-figures: one JSON file per
test run (the last run of each test wins). Numbers are printed as measured; lists of
per-trial records are summarised per numeric field as count / median / max, and counters
(duplicates, orphans, lost rows, ...) as their sum. docs/RELIABILITY.md quotes this output.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

SKIP = {"test", "started", "finished"}
COUNTERS = ("duplicates", "orphans", "old_leftovers", "missing_created_rows", "containers_without_created_row",
            "unmatched", "lost", "out_of_order")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.2f}".rstrip("0").rstrip(".") if v != int(v) else str(int(v))
    if isinstance(v, (dict, list)):
        text = json.dumps(v, default=str)
        return text if len(text) <= 120 else text[:117] + "..."
    return str(v)


def _summarise_records(records: list[dict[str, Any]]) -> list[str]:
    out = []
    keys = sorted({k for r in records for k, v in r.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
    for k in keys:
        if k in ("trial", "round", "restart"):
            continue
        vals = [r[k] for r in records if isinstance(r.get(k), (int, float))]
        if any(k.startswith(c) for c in COUNTERS):
            out.append(f"{k}: total {_fmt(sum(vals))}")
        else:
            out.append(f"{k}: n={len(vals)} median {_fmt(statistics.median(vals))} max {_fmt(max(vals))}")
    return out


def summarise(data: dict[str, Any]) -> list[str]:
    lines = []
    for key, value in data.items():
        if key in SKIP:
            continue
        if isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
            parts = _summarise_records(value)
            lines.append(f"{key} ({len(value)}): " + ("; ".join(parts) if parts else _fmt(value)))
        else:
            lines.append(f"{key}: {_fmt(value)}")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", nargs="?", default=os.environ.get("RECONCILE_FAULT_FIGURES", "/tmp/reconcile-fault-figures"))
    ap.add_argument("--mode", choices=("short", "long"), help="only runs of this mode")
    args = ap.parse_args(argv)
    files = sorted(Path(args.dir).glob("*.json"))
    if args.mode:
        files = [f for f in files if f.stem.endswith(f"{args.mode}]")]
    if not files:
        print(f"no figures in {args.dir}", file=sys.stderr)
        return 1
    for f in files:
        data = json.loads(f.read_text())
        print(f"#### `{data.get('test', f.stem)}`")
        print(f"run {data.get('started', '?')} – {data.get('finished', '?')}\n")
        for line in summarise(data):
            print(f"- {line}")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
