"""A docker-autoheal-style watcher: every INTERVAL seconds, list the containers that carry
LABEL and are ``unhealthy`` (one ``docker ps --filter health=unhealthy`` call) and restart
them. This is what willfarrell/docker-autoheal does (its default interval is 5 s).

    python bench/peers/autoheal.py --label reconcile.bench.autoheal=RUN [--interval 5]
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time

import docker


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--label", required=True)
    ap.add_argument("--interval", type=float, default=5.0)
    ap.add_argument("--stop-timeout", type=int, default=10)
    args = ap.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    api = docker.APIClient(version="auto", timeout=60, **docker.utils.kwargs_from_env())  # DOCKER_HOST: the engine under test
    while not stop.is_set():
        try:
            for c in api.containers(filters={"health": "unhealthy", "label": [args.label]}):
                print(f"{time.strftime('%H:%M:%S')} restarting {c['Names'][0]} (unhealthy)", flush=True)
                api.restart(c["Id"], timeout=args.stop_timeout)
        except docker.errors.DockerException as exc:
            print(f"engine error: {exc}", file=sys.stderr, flush=True)
        stop.wait(args.interval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
