"""1. Crash -> running again: ``docker kill`` of a managed container with ``reconcile run``
versus the same image under the engine's own ``--restart always``, interleaved.

Figure: death-to-running = ``State.FinishedAt`` -> ``State.StartedAt`` of the restarted
container (inspect after the ``start`` event); also kill call -> ``start`` event.

How the container is crashed: the engine treats ``docker kill`` as a *manual* stop
(it sets HasBeenManuallyStopped), so its own ``--restart always`` never restarts a
``docker kill``ed container. The like-for-like crash for both is therefore SIGKILL to
the container's PID 1 (``State.Pid``, tini) from the host: the process dies without the
engine being asked. Reconcile is also crashed with ``docker kill`` in every round (a
reconcile-only figure; the engine peer has no equivalent).

Both restarters back off on consecutive failures, and the target is for a *first*
restart, so every kill waits for the backoff to be forgotten: reconcile's service has
``restartPolicy: {condition: always, resetAfter: 2s}`` and is killed only once its stored
status shows ``failures == 0`` again (a pass after 2 s of running resets it); the
engine's policy resets after 10 s of running (and otherwise doubles from 100 ms), so its
container is killed only after 10.5 s of running. One warm-up round is discarded.
"""

from __future__ import annotations

import os
import signal
import time

from bench.common import BASE_IMAGE, PEER_LABEL, SLEEP_CMD, Bench, BenchError, Figure, docker_time, median, pct

NAME = "crash"
ENGINE_RESET = 10.5  # dockerd resets its restart backoff after 10 s of running


def run(b: Bench) -> list[Figure]:
    from store import Store

    rounds = b.reps(6, 20)
    d = b.dir(NAME)
    db = d / "store.db"
    svc = b.name("crash")
    manifest = b.write_yaml(d / "crash.yaml", [b.service(svc, {
        "image": BASE_IMAGE, "command": SLEEP_CMD, "init": True,
        "restartPolicy": {"condition": "always", "resetAfter": "2s"},
    })])
    b.daemon(db, "--resync-interval", "5s")
    b.cli(db, "apply", "-f", str(manifest), "--wait", "--timeout", "60s").check()
    rc_id = b.api.inspect_container(f"{svc}-1")["Id"]
    peer = b.api.create_container(
        BASE_IMAGE, SLEEP_CMD, name=b.name("crash-engine"), labels={**b.labels, PEER_LABEL: "engine"},
        host_config=b.api.create_host_config(restart_policy={"Name": "always"}, init=True))["Id"]
    b.api.start(peer)
    reader = Store.open(str(db), migrate=False)
    b.cleanups.append(reader.close)

    def started_for(cid: str) -> float:
        st = b.api.inspect_container(cid)["State"]
        return time.time() - docker_time(st["StartedAt"]) if st.get("Running") else -1.0

    def rc_ready() -> bool:
        st = reader.status(svc)
        return started_for(rc_id) > 2.2 and st is not None and st.failures == 0

    def engine_ready() -> bool:
        return started_for(peer) > ENGINE_RESET

    def kill(cid: str, how: str) -> tuple[float, float]:
        pid = b.api.inspect_container(cid)["State"]["Pid"]
        t0 = time.time()
        if how == "docker kill":
            b.api.kill(cid)
        else:
            os.kill(pid, signal.SIGKILL)
        b.events.wait(b.events.container(cid, "die"), t0, 30, f"die of {cid[:12]}")
        ev = b.events.wait(b.events.container(cid, "start"), t0, 60, f"restart of {cid[:12]}")
        st = b.api.inspect_container(cid)["State"]
        finished, started = docker_time(st["FinishedAt"]), docker_time(st["StartedAt"])
        if started < t0 - 0.05 or finished < t0 - 0.05:
            raise BenchError(f"inspect of {cid[:12]} does not show the restart after the kill: {st}")
        return started - finished, b.events.ts(ev) - t0

    res: dict[str, list[tuple[float, float]]] = {"reconcile": [], "engine": [], "reconcile-docker-kill": []}
    steps = [("reconcile", rc_id, rc_ready, "sigkill"), ("engine", peer, engine_ready, "sigkill"),
             ("reconcile-docker-kill", rc_id, rc_ready, "docker kill")]
    for i in range(rounds + 1):
        order = steps if i % 2 == 0 else [steps[1], steps[0], steps[2]]
        for who, cid, ready, how in order:
            b.wait_until(ready, 60, f"{who} container ready for the next kill (backoff reset)", interval=0.2)
            d2r, k2s = kill(cid, how)
            if i > 0:  # round 0 warms both paths up
                res[who].append((d2r, k2s))
        if i:
            b.log(f"crash round {i}/{rounds}: reconcile {res['reconcile'][-1][0] * 1000:.0f} ms, "
                  f"engine {res['engine'][-1][0] * 1000:.0f} ms, "
                  f"reconcile after docker kill {res['reconcile-docker-kill'][-1][0] * 1000:.0f} ms")
    # the audit row is written just after the start call returns
    want = 2 * (rounds + 1)
    try:
        b.wait_until(lambda: len(reader.history(svc, types=["Restarted"])) >= want, 15, "Restarted audit rows")
    except BenchError:
        got = len(reader.history(svc, types=["Restarted"]))
        raise BenchError(f"reconcile recorded {got} Restarted events for {want} crashes") from None

    rc = [x[0] for x in res["reconcile"]]
    en = [x[0] for x in res["engine"]]
    rk = [x[1] for x in res["reconcile"]]
    ek = [x[1] for x in res["engine"]]
    dk = [x[0] for x in res["reconcile-docker-kill"]]
    n = len(rc)
    med_ok = median(rc) < 1.0 and median(rc) <= 2 * median(en)
    return [
        Figure(NAME, "death->running (FinishedAt->StartedAt), SIGKILL crash", median(rc), "s",
               "engine --restart always", median(en), "< 1 s and <= 2x engine", med_ok, n,
               p95=pct(rc, 95), peer_p95=pct(en, 95)),
        Figure(NAME, "kill call->start event, SIGKILL crash", median(rk), "s", "engine --restart always", median(ek),
               "", None, n, p95=pct(rk, 95), peer_p95=pct(ek, 95)),
        Figure(NAME, "death->running after `docker kill`", median(dk), "s", "engine (SIGKILL crash)", median(en),
               "< 1 s", median(dk) < 1.0, len(dk), "the engine never restarts a docker-killed container",
               p95=pct(dk, 95), peer_p95=pct(en, 95)),
    ]
