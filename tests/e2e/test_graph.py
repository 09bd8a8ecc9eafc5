"""Dependencies, jobs, networks, scaling, runtime settings, volumes and restart cascades
against the real engine (issue 4).

The stack used throughout mirrors examples/stack/stack.yaml under this test's own names:
a db-like and a cache-like server (busybox httpd with wget healthchecks), a migration
Job, a backend that waits for db and cache healthy and the job completed, a frontend
that waits for the backend healthy and a proxy in front, all on one network.

Ordering is asserted from two independent sources: the audit (``Created`` /
``Restarted`` rows and the health and completion rows the controller recorded before
acting) and the engine itself (``State.StartedAt``, ``State.FinishedAt`` and the first
passing healthcheck probe, sampled while the controller works, because the engine keeps
only the last five probes).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

from tests.e2e import faults_util as fu
from tests.e2e.conftest import (
    BASE_IMAGE,
    JOB_IMAGE,
    RUN_ID,
    TEST_LABEL,
    WEB_IMAGE,
    WEB_IMAGE_2,
    WORKER_IMAGE,
    Harness,
    engine_is_podman,
    parse_docker_time,
    store_digest,
    wait_for,
)

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
FAST = ("--resync-interval", "1s")
WEB_HEALTH = {"test": ["CMD", "wget", "-q", "-O-", "http://127.0.0.1/health"], "interval": "1s", "timeout": "2s",
              "retries": 2}


# -- documents ---------------------------------------------------------------------------
def server_health(port: int) -> dict[str, Any]:
    return {"test": ["CMD", "wget", "-q", "-O", "/dev/null", f"http://127.0.0.1:{port}/"], "interval": "1s",
            "timeout": "2s", "retries": 3}


def server(rc: Harness, base: str, port: int, body: str, **spec: Any) -> dict[str, Any]:
    """A busybox httpd on ``port`` answering ``body`` at / (a db or cache stand-in)."""
    cmd = f"mkdir -p /srv && echo {body} > /srv/index.html && exec httpd -f -p {port} -h /srv"
    spec.setdefault("healthcheck", server_health(port))
    return rc.service(base, BASE_IMAGE, command=["sh", "-c", cmd], init=True, **spec)


def job(rc: Harness, base: str, image: str = JOB_IMAGE, **spec: Any) -> dict[str, Any]:
    labels = {TEST_LABEL: RUN_ID, **spec.pop("labels", {})}
    return {"apiVersion": "reconcile/v1alpha1", "kind": "Job", "metadata": {"name": rc.name(base)},
            "spec": {"image": image, "labels": labels, **spec}}


def shop(rc: Harness, *, job_exit: str = "0", backoff_limit: int = 2, proxy_restart: bool = True) -> list[dict[str, Any]]:
    """The example stack under this test's names: db, cache, migrate (Job), backend, frontend, proxy."""
    net = [rc.name("net")]
    n = rc.name
    return [
        server(rc, "db", 5432, "db-ok", networks=net, volumes=[f"{n('dbdata')}:/var/lib/db"],
               resources={"limits": {"memory": "128m", "cpus": 0.5}}),
        server(rc, "cache", 6379, "PONG", networks=net),
        job(rc, "migrate", env={"JOB_EXIT_CODE": job_exit, "DATABASE_HOST": n("db")}, networks=net,
            backoffLimit=backoff_limit, dependsOn={n("db"): {"condition": "healthy"}}),
        rc.service("backend", WEB_IMAGE, env={"DATABASE_HOST": n("db"), "CACHE_HOST": n("cache")}, networks=net,
                   healthcheck=WEB_HEALTH,
                   dependsOn={n("db"): {"condition": "healthy"}, n("cache"): {"condition": "healthy"},
                              n("migrate"): {"condition": "completed"}}),
        rc.service("frontend", WEB_IMAGE_2, networks=net, healthcheck=WEB_HEALTH,
                   dependsOn={n("backend"): {"condition": "healthy"}}),
        server(rc, "proxy", 80, "proxy", networks=net, ports=["127.0.0.1::80"],
               dependsOn={n("frontend"): {"condition": "started"},
                          n("backend"): {"condition": "healthy", "restart": proxy_restart}}),
    ]


# What each service of shop() waits for: base name -> {dependency base name: condition}.
SHOP_DEPS = {
    "db": {}, "cache": {},
    "migrate": {"db": "healthy"},
    "backend": {"db": "healthy", "cache": "healthy", "migrate": "completed"},
    "frontend": {"backend": "healthy"},
    "proxy": {"frontend": "started", "backend": "healthy"},
}
SHOP_SERVICES = ("db", "cache", "backend", "frontend", "proxy")


# -- engine observations ----------------------------------------------------------------
@dataclass
class Track:
    """What the engine said about one container, sampled over time."""

    started_at: float = 0.0
    healthy_at: float | None = None  # End of the first passing probe after started_at
    finished_at: float | None = None
    exit_code: int | None = None
    running: bool = False
    starts: list[float] = field(default_factory=list)


class EngineWatch:
    """Samples ``docker inspect`` of some containers; keeps every start and the first
    passing probe after each start (the engine itself keeps only five probes)."""

    def __init__(self, client: docker.DockerClient, names: dict[str, str]):
        self.client = client
        self.names = names  # key -> container name
        self.tracks: dict[str, Track] = {k: Track() for k in names}

    def sample(self) -> None:
        for key, cname in self.names.items():
            try:
                info = self.client.api.inspect_container(cname)
            except docker.errors.NotFound:
                continue
            st = info["State"]
            t = self.tracks[key]
            started = parse_docker_time(st["StartedAt"]) if not st["StartedAt"].startswith("0001") else 0.0
            if started and started != t.started_at:
                t.started_at, t.healthy_at = started, None
                t.starts.append(started)
            t.running = bool(st["Running"])
            t.exit_code = st.get("ExitCode")
            fin = st.get("FinishedAt") or ""
            t.finished_at = parse_docker_time(fin) if fin and not fin.startswith("0001") else None
            for probe in (st.get("Health") or {}).get("Log") or []:
                if probe.get("ExitCode") == 0 and parse_docker_time(probe["Start"]) >= t.started_at:
                    end = parse_docker_time(probe["End"])
                    t.healthy_at = end if t.healthy_at is None else min(t.healthy_at, end)

    def until(self, done: Callable[[], bool], timeout: float, what: str, interval: float = 0.2) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.sample()
            if done():
                return
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout}s waiting for {what}; engine view: {self.tracks}")
            time.sleep(interval)


def shop_watch(rc: Harness, client: docker.DockerClient | None = None) -> EngineWatch:
    return EngineWatch(client or rc.client, {b: rc.cname(b) for b in SHOP_DEPS})


def assert_started_after_dependencies(w: EngineWatch, deps: dict[str, dict[str, str]],
                                      since: float = 0.0) -> None:
    """Every (re)start at or after ``since`` happened once its dependencies met their condition."""
    for svc, needs in deps.items():
        t = w.tracks[svc]
        starts = [s for s in t.starts if s >= since]
        if not starts:
            continue
        start = min(starts)
        for dep, cond in needs.items():
            d = w.tracks[dep]
            ref: float | None
            if cond == "started":
                ref = max((s for s in d.starts if s <= start), default=None)
            elif cond == "healthy":
                ref = d.healthy_at
            else:  # completed: the job's container exited 0 before
                ref = d.finished_at if d.exit_code == 0 else None
            assert ref is not None and ref <= start, \
                f"{svc} started at {start:.3f} before {dep} was {cond} (at {ref}); engine view {w.tracks}"


def cli_bg(rc: Harness, *args: str) -> subprocess.Popen[str]:
    """A CLI call in the background (so the engine can be sampled while it works)."""
    return subprocess.Popen([sys.executable, "-m", "controller.cli", *args], env=rc.env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(proc: subprocess.Popen[str], expect: int = 0, timeout: float = 120) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == expect, f"exit {proc.returncode}, expected {expect}\nstdout:\n{out}\nstderr:\n{err}"
    return out


def first(rows: list[dict[str, Any]], service: str, etype: str, after: float = 0.0) -> dict[str, Any]:
    found = [r for r in rows if r["service"] == service and r["type"] == etype and r["ts"] >= after]
    assert found, f"no {etype} row for {service} after {after}: {[(r['service'], r['type']) for r in rows]}"
    return found[0]


def wget(rc: Harness, container: str, url: str) -> tuple[int, str]:
    code, out = rc.client.containers.get(container).exec_run(["wget", "-q", "-O-", url])
    return code, out.decode(errors="replace").strip()


def all_running(rc: Harness, rows: dict[str, dict[str, Any]], bases: tuple[str, ...]) -> bool:
    return all(rows.get(rc.name(b), {}).get("state") == "Running" for b in bases)


# 1 ---------------------------------------------------------------------------------------
PODMAN_NO_PROBE_LOG = pytest.mark.podman_unsupported(
    "times the dependency order from the engine's health-probe log (State.Health.Log); Podman 4.3 without "
    "systemd runs no health probes, so the engine keeps no record of when a dependency became healthy (the "
    "controller's own probes stand in for it: test_loop.py's health tests cover them on Podman)")


@PODMAN_NO_PROBE_LOG
def test_stack_comes_up_in_dependency_order(rc: Harness) -> None:
    f = rc.write(shop(rc))
    rc.instance  # noqa: B018 - the store exists before the CLI and the sampler race for it
    w = shop_watch(rc)
    proc = cli_bg(rc, "apply", "-f", f, "--wait", "--timeout", "90s")
    w.until(lambda: proc.poll() is not None, 100, "apply --wait to return")
    out = finish(proc)
    for b in SHOP_SERVICES:
        assert f"created {rc.name(b)}#1" in out

    # the engine's view: each start came after its dependencies' condition held
    assert_started_after_dependencies(w, SHOP_DEPS)
    assert all(w.tracks[b].running for b in SHOP_SERVICES)
    assert w.tracks["migrate"].exit_code == 0 and not w.tracks["migrate"].running

    # the audit's view: created in dependency order, each after the controller saw its
    # dependencies healthy / completed
    rows = rc.events()
    created = {b: first(rows, rc.name(b), "Created")["ts"] for b in SHOP_DEPS}
    for svc, needs in SHOP_DEPS.items():
        for dep in needs:
            assert created[dep] < created[svc], f"{svc} created before its dependency {dep}"
    for svc, needs in SHOP_DEPS.items():
        for dep, cond in needs.items():
            if cond == "healthy":
                seen = first(rows, rc.name(dep), "HealthChanged")
                healthy = [r for r in rows if r["service"] == rc.name(dep) and r["type"] == "HealthChanged"
                           and r["reason"].endswith("-> healthy")]
                assert healthy and healthy[0]["ts"] <= created[svc], (svc, dep, seen)
    done = first(rows, rc.name("migrate"), "Completed")
    assert done["reason"] == "job exited with code 0"
    assert "migrating" in done["message"] and done["message"].startswith("output tail:")
    assert done["ts"] <= created["backend"]

    st = rc.rows()
    assert st[rc.name("migrate")]["state"] == "Completed"
    for b in SHOP_SERVICES:
        assert st[rc.name(b)]["state"] == "Running", st[rc.name(b)]
    for b in ("db", "cache", "backend", "frontend"):
        assert st[rc.name(b)]["health"] == "healthy"

    # one network, names (service names as aliases) resolve between services
    net = rc.client.networks.get(rc.name("net"))
    assert net.attrs["Labels"]["io.reconcile.instance"] == rc.instance
    assert wget(rc, rc.cname("backend"), f"http://{rc.name('db')}:5432/") == (0, "db-ok")
    assert wget(rc, rc.cname("backend"), f"http://{rc.name('cache')}:6379/") == (0, "PONG")
    assert wget(rc, rc.cname("proxy"), f"http://{rc.name('backend')}/health") == (0, "ok")
    assert wget(rc, rc.cname("proxy"), f"http://{rc.name('frontend')}/version") == (0, "2")


# 2 ---------------------------------------------------------------------------------------
def _job_stack(rc: Harness, code: str) -> list[dict[str, Any]]:
    n = rc.name
    net = [n("net")]
    return [
        job(rc, "migrate", env={"JOB_EXIT_CODE": code}, networks=net, backoffLimit=1),
        rc.service("backend", WEB_IMAGE, networks=net, healthcheck=WEB_HEALTH,
                   dependsOn={n("migrate"): {"condition": "completed"}}),
        rc.service("worker", WORKER_IMAGE, networks=net, dependsOn={n("migrate"): "completed"}),
        # waits for the job only through the backend
        rc.service("frontend", WEB_IMAGE_2, networks=net, healthcheck=WEB_HEALTH,
                   dependsOn={n("backend"): {"condition": "healthy"}}),
    ]


def test_failing_job_holds_dependents_until_fixed(rc: Harness) -> None:
    n = rc.name
    f = rc.write(_job_stack(rc, "3"))
    # nothing can progress once the job gives up: apply returns (exit 0) well before its timeout
    started = time.monotonic()
    rc.run("apply", "-f", f, "--timeout", "60s", timeout=120)
    assert time.monotonic() - started < 45
    st = rc.status()
    mig = st[n("migrate")]
    assert mig["state"] == "Failed", mig
    assert "backoffLimit 1" in mig["message"] and "code 3" in mig["message"], mig
    for dep in ("backend", "worker"):
        assert st[n(dep)]["state"] == "Waiting", st[n(dep)]
        assert f"waiting for {n('migrate')} (completed: it failed)" in st[n(dep)]["message"], st[n(dep)]
    assert st[n("frontend")]["state"] == "Waiting" and n("backend") in st[n("frontend")]["message"]
    for dep in ("backend", "worker", "frontend"):
        assert rc.containers(n(dep)) == []
    # exactly one retry, then it gave up
    restarted = rc.events(n("migrate"), "Restarted")
    assert len(restarted) == 1 and "retry 1 of 1" in restarted[0]["reason"], restarted
    failed = rc.events(n("migrate"), "JobFailed")
    assert failed and "code 3" in failed[-1]["reason"] and "migrating" in failed[-1]["message"], failed
    gave_up = rc.events(n("migrate"), "GaveUp")
    assert len(gave_up) == 1 and "gave up after 1 retries" in gave_up[0]["reason"], gave_up
    (c,) = rc.containers(n("migrate"))
    assert c.attrs["State"]["ExitCode"] == 3

    # fixed spec: a new generation runs to completion and releases the dependents
    rc.write(_job_stack(rc, "0"))
    rc.run("apply", "-f", f, "--wait", "--timeout", "90s", timeout=150)
    st = rc.rows()
    assert st[n("migrate")]["state"] == "Completed" and st[n("migrate")]["generation"] == 2
    for dep in ("backend", "worker", "frontend"):
        assert st[n(dep)]["state"] == "Running", st[n(dep)]
    assert st[n("backend")]["health"] == st[n("frontend")]["health"] == "healthy"
    done = rc.events(n("migrate"), "Completed")
    assert len(done) == 1 and "migrating" in done[0]["message"] and done[0]["generation"] == 2
    (c,) = rc.containers(n("migrate"))
    assert c.attrs["State"]["ExitCode"] == 0 and c.labels["io.reconcile.generation"] == "2"
    assert len(rc.events(n("migrate"), "Restarted")) == 1, "the fixed job ran once, without retries"
    for dep in ("backend", "worker"):
        assert done[0]["ts"] <= rc.events(n(dep), "Created")[0]["ts"]


# 3 ---------------------------------------------------------------------------------------
def _doc(name: str, deps: list[str]) -> str:
    lines = ["apiVersion: reconcile/v1alpha1", "kind: Service", "metadata:", f"  name: {name}", "spec:",
             f"  image: {WORKER_IMAGE}"]
    if deps:
        lines.append("  dependsOn:")
        lines += [f"    {d}: {{condition: started}}" for d in deps]
    return "\n".join(lines) + "\n"


def test_cycles_and_unknown_dependencies_are_rejected(rc: Harness) -> None:
    rc.run("apply", "-f", rc.write([rc.service("keep", WORKER_IMAGE),
                                    rc.service("x", WORKER_IMAGE, dependsOn=[rc.name("keep")])]))
    digest = store_digest(rc)
    a, b, c, d, ghost = (rc.name(x) for x in ("a", "b", "c", "d", "ghost"))
    # a (document 1, lines 1-8) -> b (doc 2, lines 10-17) -> c (doc 3, lines 19-26) -> a; d (doc 4,
    # lines 28-35) names a service that does not exist. Each first dependsOn entry is on its document's 8th line.
    bad = rc.write("---\n".join([_doc(a, [b]), _doc(b, [c]), _doc(c, [a]), _doc(d, [ghost])]), name="bad.yaml")
    proc = rc.run("apply", "-f", bad, expect=2)
    assert "dependency cycle" in proc.stderr, proc.stderr
    assert f"{bad}:8: {a}: spec.dependsOn.{b}: dependency cycle: {a} -> {b} -> {c} -> {a}" in proc.stderr, proc.stderr
    assert f"{bad}:35: {d}: spec.dependsOn.{ghost}: unknown dependency {ghost!r}" in proc.stderr, proc.stderr
    proc = rc.run("diff", "-f", bad, expect=2)
    assert "dependency cycle" in proc.stderr and "unknown dependency" in proc.stderr

    # a cycle closed through a service already in the store is caught as well
    closing = rc.write(_doc(rc.name("keep"), [rc.name("x")]), name="closing.yaml")
    proc = rc.run("apply", "-f", closing, expect=2)
    assert f"{closing}:8: {rc.name('keep')}: spec.dependsOn.{rc.name('x')}: dependency cycle" in proc.stderr, \
        proc.stderr
    assert f"{rc.name('keep')} -> {rc.name('x')} -> {rc.name('keep')}" in proc.stderr or \
        f"{rc.name('x')} -> {rc.name('keep')} -> {rc.name('x')}" in proc.stderr, proc.stderr

    assert store_digest(rc) == digest
    assert {c.labels["io.reconcile.service"] for c in rc.containers()} == {rc.name("keep"), rc.name("x")}


# 4 ---------------------------------------------------------------------------------------
@pytest.mark.engine_restart
@pytest.mark.podman_unsupported(
    "the fault cannot be made: restarting Podman's API service does not stop a container (conmon runs them, "
    "not the service), so there is no stack to bring back in dependency order; and the order is read from the "
    "engine's health-probe log, which Podman without systemd never writes. test_engine_restart.py checks on "
    "Podman that the containers outlive the service's restart untouched")
def test_engine_restart_brings_the_stack_back_in_dependency_order(rc: Harness) -> None:
    if not fu.engine_is_local():
        pytest.skip("DOCKER_HOST is not an engine ensure-docker.sh manages: it cannot restart it")
    f = rc.write(shop(rc))
    daemon = rc.start_daemon(*FAST)
    rc.run("apply", "-f", f, "--wait", "--timeout", "90s", timeout=150)
    job_started = rc.inspect(rc.cname("migrate"))["State"]["StartedAt"]
    ids = {c.name: c.id for c in rc.containers()}
    assert len(ids) == 6

    fu.claim_engine_or_skip(rc.client, rc.instance)  # stopping dockerd stops every container on it

    session = rc.client
    fresh: docker.DockerClient | None = None
    try:
        pid = fu.dockerd_pid()
        stopped_at = time.time()
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not fu.engine_answers(), timeout=60, interval=0.5, what="`docker info` to fail")
        wait_for(lambda: not fu.pid_alive(pid), timeout=90, interval=0.5, what=f"dockerd (pid {pid}) to exit")
        wait_for(lambda: rc.events(None, "EngineUnavailable"), timeout=30, what="an EngineUnavailable row")
        assert daemon.poll() is None, f"the controller died with the engine:\n{rc.daemon_log()}"
    finally:
        fu.ensure_engine()
    assert fu.engine_answers(), "ensure-docker.sh did not bring the engine back"
    try:
        session.api.close()  # drop the session client's pooled connections to the old engine
        fresh = docker.from_env(timeout=60)
        rc.client = fresh
        w = shop_watch(rc, fresh)

        # started again since the engine was stopped: the controller may have brought the stack
        # back before ensure-docker.sh returned (seen in CI: every service up 1 s after dockerd)
        def up() -> bool:
            return all(w.tracks[b].running and w.tracks[b].started_at > stopped_at for b in SHOP_SERVICES) and all(
                w.tracks[b].healthy_at is not None for b in ("db", "cache", "backend", "frontend"))

        try:
            w.until(up, 120, "the stack to run again after the engine restart")
        except BaseException:
            rows = [f"{r['service']} {r['type']}: {r['reason']} {r['message']}" for r in rc.events() if r["ts"] >= stopped_at]
            print("audit since the engine stopped:\n  " + "\n  ".join(rows) + "\ncontroller log (tail):\n"
                  + "\n".join(rc.daemon_log().splitlines()[-60:]))
            raise
        restored = wait_for(lambda: rc.events(None, "EngineRestored"), timeout=20, what="an EngineRestored row")[-1]

        # engine view: every service came back only after its dependencies
        assert_started_after_dependencies(w, SHOP_DEPS, since=stopped_at)
        # the completed job is not run again; containers are restarted in place, but for one
        # the engine refuses to start again (its runtime kept the task from before the
        # restart, seen on 20.10): that one is replaced, audited with the engine's reason
        assert rc.inspect(rc.cname("migrate"))["State"]["StartedAt"] == job_started
        stale = {r["service"] for r in rc.events() if r["type"] == "Recreated" and r["ts"] >= stopped_at
                 and "cannot start it again" in r["reason"] and "runtime state" in r["message"]}
        now = {c.name: c.id for c in rc.containers()}
        assert set(now) == set(ids)
        for cname, cid in ids.items():
            svc = next(c.labels["io.reconcile.service"] for c in rc.containers() if c.name == cname)
            assert (now[cname] != cid) if svc in stale else (now[cname] == cid), (cname, svc, stale)

        # audit view: restarted by the controller after the engine came back, in dependency order
        def restarts() -> dict[str, float] | None:
            rows = [r for r in rc.events() if r["ts"] >= restored["ts"] and r["type"] in ("Restarted", "Started")
                    or r["service"] in stale and r["type"] == "Recreated" and r["ts"] >= stopped_at]
            out: dict[str, float] = {}
            for r in rows:
                out.setdefault(r["service"], r["ts"])
            return out if all(rc.name(b) in out for b in SHOP_SERVICES) else None

        again = wait_for(restarts, timeout=15, what="Restarted rows for every service")
        assert rc.name("migrate") not in again
        for svc, needs in SHOP_DEPS.items():
            for dep in needs:
                if svc != "migrate" and dep != "migrate":
                    assert again[rc.name(dep)] < again[rc.name(svc)], (svc, dep, again)
        rows = rc.events()
        for r in rows:
            if r["type"] == "Restarted" and r["ts"] >= restored["ts"]:
                assert r["actor"] == "controller" and r["reason"], r
        assert daemon.poll() is None
        log = rc.daemon_log()
        assert "Docker engine unavailable" in log and "Docker engine is back" in log
    finally:
        rc.client = session
        if fresh is not None:
            fresh.close()


# 7 ---------------------------------------------------------------------------------------
def test_resources_and_runtime_settings_reach_the_engine(rc: Harness) -> None:
    svc = rc.service(
        "tuned", WORKER_IMAGE, init=True,
        resources={"limits": {"memory": "64m", "cpus": 0.5}, "reservations": {"memory": "32m", "cpus": 0.25}},
        user="1000:1000", workingDir="/tmp", readOnly=True, capDrop=["NET_RAW", "CHOWN"], capAdd=["SYS_TIME"],
        tmpfs=["/scratch:size=1m,mode=1777"], extraHosts=["db.example:10.1.2.3"], stopSignal="SIGINT",
        stopGracePeriod="3s", hostname="tuned-host",
        logging={"driver": "json-file", "options": {"max-size": "1m", "max-file": 2}},
    )
    rc.run("apply", "-f", rc.write([svc]))
    info = rc.inspect(rc.cname("tuned"))
    hc, cfg = info["HostConfig"], info["Config"]
    assert hc["Memory"] == 64 * 1024 * 1024
    assert hc["NanoCpus"] == 500_000_000
    assert hc["MemoryReservation"] == 32 * 1024 * 1024
    assert hc["CpuShares"] == 256
    assert hc["ReadonlyRootfs"] is True
    assert set(hc["CapDrop"]) == {"NET_RAW", "CHOWN"} and hc["CapAdd"] == ["SYS_TIME"]
    if engine_is_podman():
        # Podman lists its own tmpfs mounts (/run, /tmp, /var/tmp) beside ours and spells the
        # options out ("size=1m,mode=1777,rw,rprivate,nosuid,nodev,tmpcopyup"): ours must be there
        # with every option we sent, under the same values.
        assert "/scratch" in hc["Tmpfs"], hc["Tmpfs"]
        opts = hc["Tmpfs"]["/scratch"].split(",")
        assert {"size=1m", "mode=1777"} <= set(opts), opts
        sized = [o for o in opts if o.startswith(("size=", "mode="))]
        assert sorted(sized) == ["mode=1777", "size=1m"], opts
    else:
        assert hc["Tmpfs"] == {"/scratch": "size=1m,mode=1777"}
    assert hc["ExtraHosts"] == ["db.example:10.1.2.3"]
    if engine_is_podman():
        # Podman's Docker-compatible inspect has no log options (Config: null); its own inspect
        # shows the size limit (Podman 4.3 keeps no rotation count: max-file has no equivalent)
        assert hc["LogConfig"]["Type"] == "json-file", hc["LogConfig"]
        libpod = rc.client.api.get(f"{rc.client.api.base_url}/v4.0.0/libpod/containers/{rc.cname('tuned')}/json")
        assert libpod.status_code == 200, libpod.text
        assert libpod.json()["HostConfig"]["LogConfig"]["Size"] == "1MB", libpod.json()["HostConfig"]["LogConfig"]
    else:
        assert hc["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "1m", "max-file": "2"}}
    assert hc["Init"] is True
    assert hc["RestartPolicy"]["Name"] in ("no", "")
    assert cfg["User"] == "1000:1000" and cfg["WorkingDir"] == "/tmp"
    # (Podman's Docker-compatible inspect gives the signal's number: "2")
    assert cfg["StopSignal"] == (str(int(signal.SIGINT)) if engine_is_podman() else "SIGINT")
    assert cfg["StopTimeout"] == 3
    assert cfg["Hostname"] == "tuned-host"

    # and they are in force inside the container
    c = rc.client.containers.get(rc.cname("tuned"))

    def sh(cmd: str) -> tuple[int, str]:
        code, out = c.exec_run(["sh", "-c", cmd])
        return code, out.decode(errors="replace").strip()

    assert sh("id -u; id -g") == (0, "1000\n1000")
    assert sh("pwd") == (0, "/tmp")
    assert sh("hostname") == (0, "tuned-host")
    assert sh("grep db.example /etc/hosts")[1].split() == ["10.1.2.3", "db.example"]
    assert sh("touch /rootfs-write")[0] != 0, "the root filesystem is read-only"
    assert sh("echo x > /scratch/f && cat /scratch/f") == (0, "x")
    assert sh("cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes")[1] \
        == str(64 * 1024 * 1024)
    assert rc.rows()[rc.name("tuned")]["state"] == "Running"


# 8 ---------------------------------------------------------------------------------------
def test_named_volumes_are_removed_only_when_asked(rc: Harness) -> None:
    vol = rc.name("vol")

    def docs(with_store: bool, v: str = "1") -> list[dict[str, Any]]:
        other = rc.service("other", WORKER_IMAGE)
        if not with_store:
            return [other]
        return [rc.service("store", WORKER_IMAGE, env={"V": v}, volumes=[f"{vol}:/data"]), other]

    def read_keep() -> str:
        code, out = rc.client.containers.get(rc.cname("store")).exec_run(["cat", "/data/keep"])
        return out.decode().strip() if code == 0 else f"<exit {code}>"

    f = rc.write(docs(True))
    rc.run("apply", "-f", f)
    old = rc.client.containers.get(rc.cname("store"))
    assert old.exec_run(["sh", "-c", "echo precious > /data/keep"])[0] == 0
    assert rc.client.volumes.get(vol).attrs["Labels"]["io.reconcile.instance"] == rc.instance

    # a recreate (env change) keeps the data
    rc.write(docs(True, v="2"))
    out = rc.run("apply", "-f", f).stdout
    assert f"recreated {rc.name('store')}#1" in out
    assert rc.client.containers.get(rc.cname("store")).id != old.id
    assert read_keep() == "precious"

    # --volumes needs --prune
    assert rc.run("apply", "-f", f, "--volumes", expect=2).returncode == 2

    # --prune alone never removes a named volume
    rc.write(docs(False))
    out = rc.run("apply", "-f", f, "--prune").stdout
    assert rc.containers(rc.name("store")) == []
    assert "volume" not in out, out
    assert rc.client.volumes.get(vol).name == vol
    rc.write(docs(True, v="2"))
    rc.run("apply", "-f", f)
    assert read_keep() == "precious", "a re-created service finds its data again"

    # --prune --volumes removes it and says so
    rc.write(docs(False))
    out = rc.run("apply", "-f", f, "--prune", "--volumes").stdout
    assert f"removed volume {vol} (--volumes)" in out, out
    with pytest.raises(docker.errors.NotFound):
        rc.client.volumes.get(vol)
    removed = rc.events(rc.name("store"), "VolumeRemoved")
    assert len(removed) == 1 and vol in removed[0]["message"]

    # delete --volumes too; plain delete keeps it
    rc.write(docs(True))
    rc.run("apply", "-f", f)
    assert read_keep() == "<exit 1>", "a new volume starts empty"
    out = rc.run("delete", rc.name("store"), "--volumes").stdout
    assert f"removed volume {vol} (--volumes)" in out, out
    with pytest.raises(docker.errors.NotFound):
        rc.client.volumes.get(vol)
    rc.run("apply", "-f", f)
    rc.run("delete", rc.name("store"))
    assert rc.client.volumes.get(vol).name == vol
    assert rc.containers(rc.name("other")), "the other service is untouched throughout"


# 9 ---------------------------------------------------------------------------------------
CASCADE_DEPS = {"db": {}, "backend": {"db": "healthy"}, "frontend": {"backend": "healthy"},
                "proxy": {"backend": "started"}}


def _cascade_stack(rc: Harness) -> list[dict[str, Any]]:
    n = rc.name
    net = [n("net")]
    return [
        server(rc, "db", 5432, "db-ok", networks=net),
        rc.service("backend", WEB_IMAGE, networks=net, healthcheck=WEB_HEALTH,
                   dependsOn={n("db"): {"condition": "healthy"}}),
        rc.service("frontend", WEB_IMAGE_2, networks=net, healthcheck=WEB_HEALTH,
                   dependsOn={n("backend"): {"condition": "healthy"}}),
        server(rc, "proxy", 80, "proxy", networks=net,
               dependsOn={n("backend"): {"condition": "started", "restart": True}}),
    ]


def _start_times(rc: Harness) -> dict[str, str]:
    return {b: rc.inspect(rc.cname(b))["State"]["StartedAt"] for b in CASCADE_DEPS}


@PODMAN_NO_PROBE_LOG
def test_restart_cascades_to_dependents(rc: Harness) -> None:
    n = rc.name
    f = rc.write(_cascade_stack(rc))
    rc.run("apply", "-f", f, "--wait", "--timeout", "60s", timeout=120)
    ids = {c.name: c.id for c in rc.containers()}
    before = _start_times(rc)
    t0 = time.time()
    w = EngineWatch(rc.client, {b: rc.cname(b) for b in CASCADE_DEPS})
    proc = cli_bg(rc, "restart", n("db"), "--with-dependents", "--reason", "maintenance window")
    w.until(lambda: proc.poll() is not None, 120, "restart --with-dependents to return")
    out = finish(proc)
    for b in CASCADE_DEPS:
        assert f"restarted {n(b)}#1" in out, out
    after = _start_times(rc)
    assert all(after[b] != before[b] for b in CASCADE_DEPS)
    assert {c.name: c.id for c in rc.containers()} == ids, "restarted in place, not recreated"
    # the engine's view: NAME first, then each dependent once its dependencies were back
    assert_started_after_dependencies(w, CASCADE_DEPS, since=t0)
    started = {b: parse_docker_time(after[b]) for b in CASCADE_DEPS}
    assert started["db"] < started["backend"] < started["frontend"]
    assert started["backend"] < started["proxy"]

    # the audit links each cascade restart to its cause
    rows = [r for r in rc.events() if r["ts"] >= t0]
    asked = {r["service"]: r for r in rows if r["type"] == "RestartRequested"}
    assert asked[n("db")]["reason"] == "maintenance window"
    for b in ("backend", "frontend", "proxy"):
        assert asked[n(b)]["reason"] == f"cascade: {n('db')} restarted (maintenance window)", asked[n(b)]
    restarted = {b: [r for r in rows if r["type"] == "Restarted" and r["service"] == n(b)] for b in CASCADE_DEPS}
    for b in CASCADE_DEPS:
        assert len(restarted[b]) == 1, (b, restarted[b])
        assert restarted[b][0]["actor"] == "cli"
    assert "maintenance window" in restarted["db"][0]["reason"]
    for b in ("backend", "frontend", "proxy"):
        assert f"cascade: {n('db')} restarted" in restarted[b][0]["reason"], restarted[b]
    assert restarted["db"][0]["ts"] < restarted["backend"][0]["ts"] < restarted["frontend"][0]["ts"]

    # dependsOn.restart: restarting the backend alone takes the proxy (restart: true) along,
    # after it; the frontend (no restart flag) and the db are left alone
    before = _start_times(rc)
    t1 = time.time()
    out = rc.run("restart", n("backend"), timeout=120).stdout
    assert f"restarted {n('proxy')}#1" in out, out
    after = _start_times(rc)
    assert after["backend"] != before["backend"] and after["proxy"] != before["proxy"]
    assert parse_docker_time(after["proxy"]) > parse_docker_time(after["backend"])
    assert after["db"] == before["db"] and after["frontend"] == before["frontend"]
    rows = [r for r in rc.events(n("proxy"), "Restarted") if r["ts"] >= t1]
    assert len(rows) == 1 and n("backend") in rows[0]["reason"] and "dependsOn.restart" in rows[0]["reason"], rows
    assert not [r for r in rc.events(n("frontend"), "Restarted") if r["ts"] >= t1]


# the example itself ---------------------------------------------------------------------
def test_example_stack_applies_serves_and_deletes(rc: Harness) -> None:
    example = str(ROOT / "examples" / "stack" / "stack.yaml")
    names = ["shop-proxy", "shop-frontend", "shop-backend", "shop-migrate", "shop-cache", "shop-db"]
    held = [n for c in rc.client.api.containers(all=True) for n in [(c.get("Names") or ["/"])[0].lstrip("/")]
            if n in {f"{s}-1" for s in names}]
    held += [f"network {nw.name}" for nw in rc.client.networks.list(names=["shop"]) if nw.name == "shop"]
    if held:
        pytest.skip(f"the example's fixed names are in use on this engine (another store applied it?): {held}")
    try:
        rc.run("apply", "-f", example, "--wait", "--timeout", "120s", timeout=180)
        st = rc.status()
        assert st["shop-migrate"]["state"] == "Completed", st["shop-migrate"]
        for s in names:
            if s != "shop-migrate":
                assert st[s]["state"] == "Running", st[s]
        with urllib.request.urlopen("http://127.0.0.1:8081/cgi-bin/api", timeout=10) as resp:
            assert resp.status == 200 and resp.read().decode().strip() == "ok"
        with urllib.request.urlopen("http://127.0.0.1:8081/cgi-bin/front", timeout=10) as resp:
            assert "demo-web v2" in resp.read().decode()
        vol = rc.client.volumes.get("shop_db_data")
        assert vol.attrs["Labels"]["io.reconcile.instance"] == rc.instance
        net = rc.client.networks.get("shop")
        assert net.attrs["Labels"]["io.reconcile.instance"] == rc.instance
    finally:
        for s in names:
            rc.run("delete", s, *(["--volumes"] if s == "shop-db" else []), expect=None)
    assert rc.containers() == []
    assert not [v for v in rc.client.volumes.list() if v.name == "shop_db_data"]
    assert not [nw for nw in rc.client.networks.list(names=["shop"]) if nw.name == "shop"]
