"""2. Unhealthy -> restarted: from the engine's ``health_status: unhealthy`` event to the
``start`` event of the restarted container, with ``reconcile run``, versus a
docker-autoheal-style poller (``bench/peers/autoheal.py``: ``docker ps --filter
health=unhealthy`` every 5 s, then ``docker restart``), interleaved in one run.

Both containers run ``reconcile/demo-web:1`` (busybox httpd) with the same healthcheck:
``wget -q -O- http://127.0.0.1/health`` every 1 s, timeout 1 s, retries 1. A round makes
one unhealthy with ``make-unhealthy`` (removes /www/health), waits for the unhealthy
event and the following start event, then puts /www/health back (``make-healthy``) before
the first probe of the restarted container. Reconcile's service has ``resetAfter: 2s`` and
the next round waits for its stored ``failures`` to be back at 0 (a first restart every
time). One warm-up round is discarded.
"""

from __future__ import annotations

import sys
import time

from bench.common import PEER_LABEL, REPO, WEB_IMAGE, Bench, BenchError, Figure, median, pct

NAME = "unhealthy"
PROBE = ["CMD", "wget", "-q", "-O-", "http://127.0.0.1/health"]
NANO = 1_000_000_000


def run(b: Bench) -> list[Figure]:
    from store import Store

    rounds = b.reps(6, 20)
    d = b.dir(NAME)
    db = d / "store.db"
    svc = b.name("sick")
    manifest = b.write_yaml(d / "web.yaml", [b.service(svc, {
        "image": WEB_IMAGE, "init": True,
        "healthcheck": {"test": PROBE, "interval": "1s", "timeout": "1s", "retries": 1},
        "restartPolicy": {"condition": "always", "resetAfter": "2s"},
    })])
    b.daemon(db, "--resync-interval", "5s")
    b.cli(db, "apply", "-f", str(manifest), "--wait", "--timeout", "60s").check()
    rc_id = b.api.inspect_container(f"{svc}-1")["Id"]

    heal_label = f"reconcile.bench.autoheal={b.run_id}"
    peer = b.api.create_container(
        WEB_IMAGE, name=b.name("sick-autoheal"),
        labels={**b.labels, PEER_LABEL: "autoheal", "reconcile.bench.autoheal": b.run_id},
        healthcheck={"test": PROBE, "interval": NANO, "timeout": NANO, "retries": 1},
        host_config=b.api.create_host_config(restart_policy={"Name": "no"}, init=True))["Id"]
    b.api.start(peer)
    b.spawn([sys.executable, str(REPO / "bench" / "peers" / "autoheal.py"), "--label", heal_label,
             "--interval", "5"], "autoheal.log")
    reader = Store.open(str(db), migrate=False)
    b.cleanups.append(reader.close)

    def healthy(cid: str) -> bool:
        st = b.api.inspect_container(cid)["State"]
        return bool(st.get("Running")) and (st.get("Health") or {}).get("Status") == "healthy"

    def rc_ready() -> bool:
        st = reader.status(svc)
        return healthy(rc_id) and st is not None and st.failures == 0

    def exec_in(cid: str, cmd: str) -> None:
        ex = b.api.exec_create(cid, [cmd])
        b.api.exec_start(ex["Id"])
        code = b.api.exec_inspect(ex["Id"]).get("ExitCode")
        if code not in (0, None):
            raise BenchError(f"{cmd} in {cid[:12]} exited {code}")

    def sicken(cid: str) -> float:
        t0 = time.time()
        exec_in(cid, "/usr/local/bin/make-unhealthy")
        ev_u = b.events.wait(b.events.container(cid, "health_status: unhealthy"), t0, 30, f"{cid[:12]} unhealthy")
        tu = b.events.ts(ev_u)
        ev_s = b.events.wait(b.events.container(cid, "start"), tu, 60, f"{cid[:12]} restarted after unhealthy")
        ts = b.events.ts(ev_s)
        # the restarted container keeps its filesystem: put /www/health back before its first probe
        for _ in range(50):
            try:
                exec_in(cid, "/usr/local/bin/make-healthy")
                break
            except Exception:  # noqa: BLE001 - may still be starting
                time.sleep(0.05)
        return ts - tu

    res: dict[str, list[float]] = {"reconcile": [], "autoheal": []}
    steps = [("reconcile", rc_id, rc_ready), ("autoheal", peer, lambda: healthy(peer))]
    for i in range(rounds + 1):
        for who, cid, ready in (steps if i % 2 == 0 else steps[::-1]):
            b.wait_until(ready, 90, f"{who} container healthy (and backoff reset)", interval=0.2)
            dt = sicken(cid)
            if i > 0:
                res[who].append(dt)
        if i:
            b.log(f"unhealthy round {i}/{rounds}: reconcile {res['reconcile'][-1] * 1000:.0f} ms, "
                  f"autoheal {res['autoheal'][-1] * 1000:.0f} ms")
    rc, ah = res["reconcile"], res["autoheal"]
    n = len(rc)
    return [
        Figure(NAME, "unhealthy event->start event", median(rc), "s", "autoheal-style poller (5 s)", median(ah),
               "< 1 s", median(rc) < 1.0, n, p95=pct(rc, 95), peer_p95=pct(ah, 95)),
    ]
