"""5. Footprint: the ``reconcile run`` daemon's memory and CPU while idle with 200 services.

The daemon runs with its defaults (resync every 5 s) on the 200-service stack's store,
talking to the engine through a counting proxy (so its engine calls per minute are known
too). After a warm-up (the first full pass), for WINDOW seconds (quick: 60, full: 300) the
bench samples ``/proc/<pid>/status`` VmRSS every second and reads ``/proc/<pid>/stat``
utime+stime at the start and end of the window (the CPU figure: CPU seconds / wall
seconds over the whole window) and of every 10 s slice (its spread, in the note).

The daemon's whole CPU time over the window divided by its resync passes (one list call
each, counted at the proxy) cross-checks steady's in-process CPU-per-pass figure.

Peer, sampled the same way over the same window: the docker-autoheal-style poller
(``bench/peers/autoheal.py``: a Python process with the Docker SDK that lists unhealthy
containers every 5 s) - about the least a Python watcher of this engine can do.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from bench.common import PEER_LABEL, REPO, Bench, BenchError, Figure, median
from bench.sockproxy import CountingProxy
from bench.stack import stack200

NAME = "footprint"
SLICE = 10.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise BenchError(f"no VmRSS for {pid}")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (/proc/PID/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15 of stat)


def run(b: Bench) -> list[Figure]:
    st = stack200(b)
    window = 60.0 if b.quick else 300.0
    proxy = CountingProxy(b.tmp / "footprint-proxy.sock").start()
    b.cleanups.append(proxy.close)
    daemon, log = b.daemon(st.db, docker_host=proxy.url)
    peer = b.spawn([sys.executable, str(REPO / "bench" / "peers" / "autoheal.py"),
                    "--label", f"{PEER_LABEL}=stack-compose", "--interval", "5"], "footprint-autoheal.log")
    warm = 15.0
    b.log(f"footprint: warm-up {warm:.0f} s, then {window:.0f} s idle")
    time.sleep(warm)
    for p in (daemon, peer):
        if p.poll() is not None:
            raise BenchError(f"process {p.args} exited {p.returncode}")
    proxy.reset()
    procs = {"reconcile": daemon.pid, "autoheal": peer.pid}
    rss: dict[str, list[float]] = {k: [] for k in procs}
    slices: dict[str, list[float]] = {k: [] for k in procs}
    t_start = time.monotonic()
    cpu_start = {k: cpu_s(pid) for k, pid in procs.items()}
    mark_t, mark_cpu = t_start, dict(cpu_start)
    while (now := time.monotonic()) - t_start < window:
        for k, pid in procs.items():
            rss[k].append(_rss_mb(pid))
        if now - mark_t >= SLICE:
            for k, pid in procs.items():
                c = cpu_s(pid)
                slices[k].append((c - mark_cpu[k]) / (now - mark_t) * 100)
                mark_cpu[k] = c
            mark_t = now
        time.sleep(1.0)
    elapsed = time.monotonic() - t_start
    total = {k: (cpu_s(pid) - cpu_start[k]) / elapsed * 100 for k, pid in procs.items()}
    cpu_total = {k: cpu_s(pid) - cpu_start[k] for k, pid in procs.items()}
    calls = proxy.snapshot()
    per_min = sum(calls.values()) / elapsed * 60
    passes = calls.get("GET /containers/json", 0)  # a resync pass is one label-filtered list call
    b.log(f"idle daemon engine calls over {elapsed:.0f} s: {dict(calls.most_common(8))}")
    b.shared["footprint_calls"] = {"seconds": elapsed, "calls": dict(calls)}
    if "Traceback" in log.read_text():
        raise BenchError(f"the daemon logged a traceback:\n{log.read_text()[-3000:]}")
    r, a = rss["reconcile"], rss["autoheal"]
    cr, ca = slices["reconcile"], slices["autoheal"]
    ns = len(r)
    return [
        Figure(NAME, "daemon RSS, idle, 200 services (median)", median(r), "MB", "autoheal-style poller", median(a),
               "< 100 MB", max(r) < 100, ns, f"max {max(r):.1f} MB vs {max(a):.1f} MB; 1 s samples"),
        Figure(NAME, f"daemon CPU, idle, over {elapsed:.0f} s (utime+stime)", total["reconcile"], "%",
               "autoheal-style poller", total["autoheal"], "< 2 % of one core", total["reconcile"] < 2, 1,
               f"10 s slices: median {median(cr):.2f} %, max {max(cr):.2f} % (peer max {max(ca):.2f} %)"),
        Figure(NAME, "daemon engine API calls per minute, idle", per_min, "", "", None, "", None, 1,
               f"socket count over {elapsed:.0f} s (resync every 5 s)"),
        Figure(NAME, "daemon CPU per resync pass (whole process / passes)",
               cpu_total["reconcile"] * 1000 / passes if passes else float("nan"), "ms", "", None,
               "(< 30 ms, cf. steady)", None, passes,
               "all of the daemon's CPU in the window (scheduler, lease renewal included) / list calls"),
    ]
