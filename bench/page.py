"""The status page's first render at scale: 200 services and 1,000,000 audit rows
(quick mode: 200,000 - the table says which).

Set-up (not timed): the store of the audit benchmark (``bench.audit._populate``: 200
Services stored through ``Store.apply`` with a status each, the rows spread over 7 days),
then the page served the way ``reconcile run --metrics-addr`` serves it
(``controller.metrics.serve`` with ``controller.statuspage.StatusPage`` over the store) on
127.0.0.1, in this process.

Figures, each next to the same on a small store (1,000 rows) in the same run:
- first render, server time: the requests the page makes before it shows anything, in
  its order (``/``, ``/ui/app.css``, ``/ui/app.js``, ``/api/services``,
  ``/api/events?since=24h&limit=100``, ``/api/services/FIRST`` with its 24 h timeline),
  timed from an HTTP client on the same host (loopback: what it measures is the server's
  answer, with the HTTP exchange), summed; median and p95 of 20 (quick: 10), warm;
- the CPU time this process (server and client threads) spent on one first render
  (``time.process_time``): the work itself, which a loaded machine does not inflate the way
  it inflates the wall time (the wait for a core);
- the two heaviest of those alone (the service list; one service's detail with its timeline);
- page weight: the bytes of the three static files (target < 200 KB), and of the JSON.

Run: ``python bench/run.py --only page`` (``--quick`` for the 200k store).
"""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

from bench.audit import SERVICES, _populate
from bench.common import BASE_IMAGE, SLEEP_CMD, Bench, BenchError, Figure, median, pct

NAME = "page"
FIRST_RENDER = ["/", "/ui/app.css", "/ui/app.js", "/api/services", "/api/events?since=24h&limit=100"]
STATIC = ("/", "/ui/app.css", "/ui/app.js")


def _get(base: str, path: str) -> bytes:
    with urllib.request.urlopen(base + path, timeout=30) as resp:
        if resp.status != 200:
            raise BenchError(f"{path}: HTTP {resp.status}")
        return bytes(resp.read())


def _measure(path: Path, first: str, reps: int) -> dict[str, list[float] | int]:
    from controller.metrics import Metrics, serve
    from controller.statuspage import PageOptions, StatusPage
    from store import Store

    store = Store.open(str(path), migrate=False)
    page = StatusPage(store, PageOptions())
    server = serve("127.0.0.1:0", Metrics(), lambda: {"ok": True}, page)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    paths = [*FIRST_RENDER, f"/api/services/{first}"]
    out: dict[str, list[float] | int] = {"render": [], "services": [], "detail": [], "cpu": []}
    try:
        sizes = {p: len(_get(base, p)) for p in paths}  # warm-up, and the sizes
        for _ in range(reps):
            took: dict[str, float] = {}
            cpu0 = time.process_time()
            for p in paths:
                t0 = time.perf_counter()
                _get(base, p)
                took[p] = (time.perf_counter() - t0) * 1000
            out["cpu"].append((time.process_time() - cpu0) * 1000)  # type: ignore[union-attr]
            out["render"].append(sum(took.values()))  # type: ignore[union-attr]
            out["services"].append(took["/api/services"])  # type: ignore[union-attr]
            out["detail"].append(took[paths[-1]])  # type: ignore[union-attr]
        out["static_bytes"] = sum(sizes[p] for p in STATIC)
        out["json_bytes"] = sum(v for p, v in sizes.items() if p not in STATIC)
    finally:
        page.close()
        server.shutdown()
        server.server_close()
        store.close()
    return out


def run(b: Bench) -> list[Figure]:
    n_big = 200_000 if b.quick else 1_000_000
    n_small = 1_000
    d = b.dir(NAME)
    now = time.time()
    names = [b.name(f"p{i:03d}") for i in range(SERVICES)]
    manifest = b.write_yaml(d / "services.yaml", [
        b.service(n, {"image": BASE_IMAGE, "command": SLEEP_CMD, "init": True}, peer="page") for n in names])
    big, small = d / "big.db", d / "small.db"
    secs = _populate(b, big, n_big, names, manifest, now)
    b.log(f"page: inserted {n_big:,} events in {secs:.1f} s; store {big.stat().st_size / 1e6:.0f} MB")
    _populate(b, small, n_small, names, manifest, now)
    reps = b.reps(10, 20)
    first = sorted(names)[0]
    B = _measure(big, first, reps)
    S = _measure(small, first, reps)
    size = f"{n_big // 1000}k" if n_big < 1_000_000 else "1M"
    peer = f"same, {n_small:,}-row store"
    render, services, detail, cpu = B["render"], B["services"], B["detail"], B["cpu"]
    assert isinstance(render, list) and isinstance(services, list) and isinstance(detail, list)
    assert isinstance(cpu, list)
    s_render, s_services, s_detail, s_cpu = S["render"], S["services"], S["detail"], S["cpu"]
    assert isinstance(s_render, list) and isinstance(s_services, list) and isinstance(s_detail, list)
    assert isinstance(s_cpu, list)
    weight = float(B["static_bytes"]) / 1000
    return [
        Figure(NAME, f"first render, server time ({SERVICES} services, {size} rows)", median(render), "ms", peer,
               median(s_render), "< 300 ms", median(render) < 300, reps,
               f"{len(FIRST_RENDER) + 1} requests summed", p95=pct(render, 95), peer_p95=pct(s_render, 95)),
        Figure(NAME, f"first render, CPU time of server + client ({size} rows)", median(cpu), "ms", peer,
               median(s_cpu), "", None, reps, "work done, whatever the wait for a core",
               p95=pct(cpu, 95), peer_p95=pct(s_cpu, 95)),
        Figure(NAME, f"/api/services ({SERVICES} rows, {size})", median(services), "ms", peer, median(s_services),
               "", None, reps, "", p95=pct(services, 95), peer_p95=pct(s_services, 95)),
        Figure(NAME, f"/api/services/NAME with its 24 h timeline ({size})", median(detail), "ms", peer,
               median(s_detail), "", None, reps, "", p95=pct(detail, 95), peer_p95=pct(s_detail, 95)),
        Figure(NAME, "page weight (HTML + CSS + JS)", weight, "KB", "", None, "< 200 KB", weight < 200, 1,
               f"JSON of the first render: {float(B['json_bytes']) / 1000:.0f} KB"),
    ]
