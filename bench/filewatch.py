"""8. An edited config file -> its service being restarted (issue 13, point 9).

Two ``reconcile run`` daemons on two stores, same engine, same default resync interval
(5 s): one with the file notifications (the default), one with ``--no-watch-files`` (the
peer: only the periodic check notices edits). Each manages one service bind-mounting its
own ``proxy.conf`` (default ``onConfigChange: recreate``). In every round each file is
rewritten in place (alternating which goes first) and timed from the write to the first
engine event of the roll: a container of the service created or renamed, or the old one
killed, stopped or dead (the restart starting). Also reported: the write to the new
container running (inspect ``State.StartedAt``). Before each write both sides wait a
random part of the resync interval (seeded), so that the rounds do not fall into step
with the peer's resync and flatter or wrong it. One warm-up round is discarded; a round
is over when the ``Recreated`` audit row is in the store.

Bar: median < 2 s from the write to the restart starting (was 11-13 s on a held-out stack).
"""

from __future__ import annotations

import random
import time
from typing import Any

from bench.common import BASE_IMAGE, SLEEP_CMD, Bench, BenchError, Figure, docker_time, median, pct

NAME = "filewatch"
ROLL_EVENTS = ("create", "rename", "kill", "stop", "die")
BAR = 2.0
RESYNC = 5.0  # both daemons' --resync-interval (the default)


def run(b: Bench) -> list[Figure]:
    from store import Store

    rounds = b.reps(6, 12)
    sides: dict[str, dict[str, Any]] = {}
    for who, flags in (("watch", ()), ("periodic", ("--no-watch-files",))):
        d = b.dir(f"{NAME}-{who}")
        conf = d / "proxy.conf"
        conf.write_text("# revision 0\n")
        svc = b.name(f"fw-{who}")
        manifest = b.write_yaml(d / "stack.yaml", [b.service(svc, {
            "image": BASE_IMAGE, "command": SLEEP_CMD, "init": True,
            "volumes": [f"{conf}:/etc/proxy.conf:ro"],
        }, peer=who)])
        db = d / "store.db"
        b.cli(db, "apply", "-f", str(manifest), "--wait", "--timeout", "60s").check()
        b.daemon(db, "--resync-interval", f"{RESYNC:g}s", *flags)
        reader = Store.open(str(db), migrate=False)
        b.cleanups.append(reader.close)
        sides[who] = {"svc": svc, "conf": conf, "reader": reader, "starts": [], "running": []}
    time.sleep(1.5)  # the daemons' first passes and store polls (the watches armed)
    jitter = random.Random(rounds)

    def one(who: str, rev: int) -> tuple[float, float]:
        s = sides[who]
        svc, conf, reader = s["svc"], s["conf"], s["reader"]
        old = b.api.inspect_container(f"{svc}-1")["Id"]
        done = len(reader.history(svc, types=["Recreated"]))
        t0 = time.time()
        with open(conf, "w") as fh:
            fh.write(f"# revision {rev}\n")
        ev = b.events.wait(lambda e: _rolls(b, e, svc, old), t0, 60, f"the roll of {svc} after its edit")
        b.wait_until(lambda: len(reader.history(svc, types=["Recreated"])) > done, 60, f"the Recreated row of {svc}")
        new = b.api.inspect_container(f"{svc}-1")
        if new["Id"] == old or not new["State"]["Running"]:
            raise BenchError(f"{svc} was not recreated after the edit of {conf}")
        return b.events.ts(ev) - t0, docker_time(new["State"]["StartedAt"]) - t0

    for i in range(rounds + 1):
        order = ["watch", "periodic"] if i % 2 == 0 else ["periodic", "watch"]
        for who in order:
            time.sleep(jitter.uniform(0.0, RESYNC))
            start, running = one(who, i + 1)
            if i > 0:
                sides[who]["starts"].append(start)
                sides[who]["running"].append(running)
        if i:
            b.log(f"filewatch round {i}/{rounds}: watched {sides['watch']['starts'][-1] * 1000:.0f} ms, "
                  f"periodic {sides['periodic']['starts'][-1] * 1000:.0f} ms (write -> restart starting)")
    w, p = sides["watch"], sides["periodic"]
    n = len(w["starts"])
    return [
        Figure(NAME, "config file written -> restart starting (engine event)", median(w["starts"]), "s",
               "periodic check only (--no-watch-files, 5 s resync)", median(p["starts"]), f"< {BAR:g} s",
               median(w["starts"]) < BAR, n, p95=pct(w["starts"], 95), peer_p95=pct(p["starts"], 95)),
        Figure(NAME, "config file written -> new container running", median(w["running"]), "s",
               "periodic check only (--no-watch-files, 5 s resync)", median(p["running"]), "", None, n,
               p95=pct(w["running"], 95), peer_p95=pct(p["running"], 95)),
    ]


def _rolls(b: Bench, ev: dict[str, Any], svc: str, old: str) -> bool:
    """The first engine event of a roll of ``svc``: a container of it created or renamed,
    or the old one killed, stopped or dead."""
    action = b.events.action(ev).split(":")[0].strip()
    if action not in ROLL_EVENTS:
        return False
    name = str(((ev.get("Actor") or {}).get("Attributes") or {}).get("name", ""))
    return ev.get("id") == old or name.startswith((f"{svc}-", f"{svc}_"))



