"""Issue 6: the fault suite. Real engine, real processes, real faults; never a mock.

Every test is seeded: one seed per run, printed in the header (``reconcile fault seed``)
and in each test's output, replayed with ``RECONCILE_FAULT_SEED=N``. Each test derives its
own generator from the seed and its name, so a single test replays on its own. Each has
a short version (the default suite) and a long one behind ``--run-slow``; the trial count
of either can be forced with ``RECONCILE_FAULT_TRIALS``. What each test measured is
printed and kept as JSON under ``RECONCILE_FAULT_FIGURES`` (default
/tmp/reconcile-fault-figures); docs/RELIABILITY.md quotes those figures.

1. the controller SIGKILLed while it converges a 30-service stack, restarted (trials)
2. the Docker engine stopped and started under a running controller
3. tampering: containers removed, stopped, renamed, a foreign squatter, a network removed
4. two concurrent writers plus a running controller on one store
5. the store on a full and on a read-only filesystem
6. audit completeness: every engine lifecycle event of a managed container has its row
7. backups mid-chaos restore and converge, export round-trips, audit retention
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

from tests.e2e import faults_util as fu
from tests.e2e.conftest import (BASE_IMAGE, DAEMON_START_TIMEOUT, RUN_ID, TEST_LABEL, WORKER_IMAGE, Harness,
                                parse_docker_time, wait_for)

pytestmark = pytest.mark.e2e

MODES = ["short", pytest.param("long", marks=pytest.mark.slow)]
FAST = ("--resync-interval", "1s")
SLEEPER = ["sh", "-c", "touch /tmp/ready; exec sleep 86400"]
READY_CHECK = {"test": ["CMD", "test", "-f", "/tmp/ready"], "interval": "1s", "timeout": "2s", "retries": 1}
TRUE_CHECK = {"test": ["CMD", "true"], "interval": "1s", "timeout": "2s", "retries": 1}
QUICK_BACKOFF = {"backoff": {"initial": 0.5, "max": 2}}


@pytest.fixture(scope="module", autouse=True)
def _announce_seed(request: pytest.FixtureRequest) -> None:
    line = (f"reconcile fault seed: {fu.SEED} (replay: RECONCILE_FAULT_SEED={fu.SEED}); "
            f"figures in {fu.FIGURES_DIR}")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("")
        reporter.write_line(line)
    print(line)


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Any:
    f = fu.Figures(request.node.name)
    print(f"\n{request.node.name}: seed {fu.SEED}")
    yield f
    f.save()


def sleeper(rc: Harness, base: str, **spec: Any) -> dict[str, Any]:
    """A busybox service that stops at once on SIGTERM (tini forwards it) and is 'ready'."""
    spec.setdefault("init", True)
    spec.setdefault("stopGracePeriod", "2s")
    return rc.service(base, BASE_IMAGE, command=SLEEPER, **spec)


def worker(rc: Harness, base: str, **spec: Any) -> dict[str, Any]:
    spec.setdefault("stopGracePeriod", "2s")
    return rc.service(base, WORKER_IMAGE, **spec)


def job(rc: Harness, base: str, **spec: Any) -> dict[str, Any]:
    labels = {TEST_LABEL: RUN_ID, **spec.pop("labels", {})}
    return {"apiVersion": "reconcile/v1alpha1", "kind": "Job", "metadata": {"name": rc.name(base)},
            "spec": {"image": BASE_IMAGE, "command": ["sh", "-c", "sleep 1; echo done"], "labels": labels, **spec}}


def alive(proc: subprocess.Popen[str], rc: Harness) -> Any:
    def check() -> None:
        assert proc.poll() is None, f"the controller exited {proc.returncode}:\n{rc.daemon_log()[-4000:]}"
    return check


# 1 ---------------------------------------------------------------------------------------
def _big_stack_shape(rng: Any) -> dict[str, dict[str, Any]]:
    """30 services in 4 layers: 6 'l0' sleepers with a readiness healthcheck; 8 'l1'
    workers gated on 1-2 of them healthy (half checked themselves); 8 'l2' sleepers gated
    on 1-2 'l1'; 8 'l3' leaves (two with 2 replicas) gated on an 'l2' started and
    sometimes an 'l0' healthy. Only leaves are ever dropped from the file."""
    shape: dict[str, dict[str, Any]] = {}
    l0 = [f"l0-{i}" for i in range(6)]
    l1 = [f"l1-{i}" for i in range(8)]
    l2 = [f"l2-{i}" for i in range(8)]
    l3 = [f"l3-{i}" for i in range(8)]
    for n in l0:
        shape[n] = {"kind": "sleeper", "hc": True, "deps": {}}
    for n in l1:
        shape[n] = {"kind": "worker", "hc": rng.random() < 0.5,
                    "deps": {d: "healthy" for d in rng.sample(l0, rng.randint(1, 2))}}
    for n in l2:
        shape[n] = {"kind": "sleeper", "hc": rng.random() < 0.3,
                    "deps": {d: ("healthy" if shape[d]["hc"] else "started") for d in rng.sample(l1, rng.randint(1, 2))}}
    for i, n in enumerate(l3):
        deps = {rng.choice(l2): "started"}
        if rng.random() < 0.4:
            deps[rng.choice(l0)] = "healthy"
        shape[n] = {"kind": "worker", "hc": False, "deps": deps, "replicas": 2 if i < 2 else 1}
    return shape


def _big_stack(rc: Harness, shape: dict[str, dict[str, Any]], envs: dict[str, str], absent: set[str]) -> list[dict[str, Any]]:
    docs = []
    net = [rc.name("net")]
    for base, s in shape.items():
        if base in absent:
            continue
        spec: dict[str, Any] = {"env": {"TRIAL": envs.get(base, "0")}, "networks": net,
                                "dependsOn": {rc.name(d): {"condition": c} for d, c in s["deps"].items()}}
        if s.get("replicas"):
            spec["replicas"] = s["replicas"]
        if s["kind"] == "sleeper":
            if s["hc"]:
                spec["healthcheck"] = READY_CHECK
            docs.append(sleeper(rc, base, **spec))
        else:
            if s["hc"]:
                spec["healthcheck"] = TRUE_CHECK
            docs.append(worker(rc, base, **spec))
    return docs



# A controller SIGKILLed between creating a container and recording it used to lose the
# container's Created/Recreated row (found by this suite; fixed by the controller's adoption
# rows, see the deterministic test below): a missing row fails the trial.


@pytest.mark.parametrize("mode", MODES)
def test_controller_sigkilled_mid_convergence_leaves_no_duplicates_or_orphans(
        rc: Harness, mode: str, figures: fu.Figures) -> None:
    rng = fu.rng_for("controller-kill")
    n_trials = fu.trials(mode, 3, 20)
    shape = _big_stack_shape(rng)
    leaves = [n for n in shape if n.startswith("l3-")]
    envs: dict[str, str] = {}
    absent: set[str] = set()
    figures["trials"] = n_trials
    figures["services"] = len(shape)
    figures["containers"] = sum(s.get("replicas", 1) for s in shape.values())
    client = rc.client
    proc = rc.start_daemon(*FAST)
    totals: dict[str, int] = defaultdict(int)
    problems: list[str] = []
    reported: set[str] = set()
    for trial in range(n_trials):
        if trial:
            for base in fu.pick(rng, [n for n in shape if n not in absent], 6):
                envs[base] = str(trial)  # a spec change: these are recreated
            back = set(absent)  # the leaves dropped last time come back (created again) ...
            absent = set(fu.pick(rng, [n for n in leaves if n not in back], 2))  # ... two others are pruned
        f = rc.write(_big_stack(rc, shape, envs, absent))
        out = rc.run("apply", "-f", f, "--prune").stdout
        assert "the running controller" in out, out
        delay = rng.uniform(0.05, 3.0)
        time.sleep(delay)
        at_kill = fu.boxes(client, rc.instance)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        t_restart = time.monotonic()
        proc = rc.start_daemon(*FAST)
        fu.wait_converged(rc, client, 180, f"trial {trial} to converge after the controller was killed",
                          alive=alive(proc, rc))
        to_converge = time.monotonic() - t_restart
        want = fu.wanted(rc.reader)
        seen = fu.boxes(client, rc.instance)
        last = trial == n_trials - 1
        # the CLI's `history --json` on the last trial; the same rows in-process before (a CLI call costs ~1 s)
        inv = fu.check_invariants(want, seen, rc.history() if last else rc.events())
        inv.missing_created_rows = [m for m in inv.missing_created_rows if m.split("(")[1][:12] not in reported]
        reported.update(m.split("(")[1][:12] for m in inv.missing_created_rows)
        check = rc.run("db", "check", expect=None)
        for k, v in inv.counts().items():
            totals[k] += v
        if check.returncode != 0:
            totals["db_check_failures"] += 1
            problems.append(f"trial {trial}: db check exited {check.returncode}: {check.stdout}{check.stderr}")
        if not inv.ok():
            problems.append(f"trial {trial} (kill after {delay:.2f}s): {inv}")
        figures.add("per_trial", {"trial": trial, "kill_after_s": round(delay, 3), "containers_at_kill": len(at_kill),
                                  "converge_after_restart_s": round(to_converge, 2), **inv.counts()})
    figures["totals"] = dict(totals)
    conv = [t["converge_after_restart_s"] for t in figures["per_trial"]]
    figures["converge_s_max"] = max(conv)
    figures["converge_s_mean"] = round(sum(conv) / len(conv), 2)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("mode", MODES)
def test_container_created_just_before_a_controller_kill_keeps_its_created_row(
        rc: Harness, mode: str, figures: fu.Figures) -> None:
    """Deterministic version of the trial test's window: SIGKILL the controller the moment the
    engine lists its first new container (created, its row not yet written)."""
    n_trials = fu.trials(mode, 1, 5)
    client = rc.client
    proc = rc.start_daemon(*FAST)
    problems = []
    for trial in range(n_trials):
        f = rc.write([sleeper(rc, f"s{i}", env={"TRIAL": str(trial)}) for i in range(4)])
        before = {b.id for b in fu.boxes(client, rc.instance)}
        rc.run("apply", "-f", f)
        new = wait_for(lambda: [b for b in fu.boxes(client, rc.instance) if b.id not in before],
                       timeout=60, interval=0.01, what="the controller's first new container")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc = rc.start_daemon(*FAST)
        fu.wait_converged(rc, client, 90, "convergence after the kill", alive=alive(proc, rc))
        inv = fu.check_invariants(fu.wanted(rc.reader), fu.boxes(client, rc.instance), rc.history())
        figures.add("per_trial", {"trial": trial, "killed_with": [(b.name, b.state) for b in new], **inv.counts()})
        if inv.duplicates or inv.orphans or inv.old_leftovers:  # not the known bug: a real failure
            pytest.fail(f"trial {trial}: {inv}")
        if inv.missing_created_rows:
            problems.append(f"trial {trial}: killed when {[(b.name, b.id[:12], b.state) for b in new]} "
                            f"existed; containers without a Created/Recreated row: {inv.missing_created_rows}")
    assert not problems, "\n".join(problems)


# 2 ---------------------------------------------------------------------------------------
def small_stack(rc: Harness, env: str = "0") -> list[dict[str, Any]]:
    """db and cache (healthchecked) <- migrate (Job) <- api (healthchecked) <- web <- edge."""
    n = rc.name
    net = [n("net")]
    e = {"REV": env}
    return [
        sleeper(rc, "db", healthcheck=READY_CHECK, networks=net, env=e),
        sleeper(rc, "cache", healthcheck=READY_CHECK, networks=net, env=e),
        job(rc, "migrate", networks=net, dependsOn={n("db"): {"condition": "healthy"}}),
        worker(rc, "api", healthcheck=TRUE_CHECK, networks=net, env=e,
               dependsOn={n("db"): {"condition": "healthy"}, n("cache"): {"condition": "healthy"},
                          n("migrate"): {"condition": "completed"}}),
        sleeper(rc, "web", networks=net, env=e, dependsOn={n("api"): {"condition": "healthy"}}),
        worker(rc, "edge", networks=net, env=e, dependsOn={n("web"): {"condition": "started"}}),
    ]


SMALL_DEPS = {"db": {}, "cache": {}, "migrate": {"db": "healthy"},
              "api": {"db": "healthy", "cache": "healthy", "migrate": "completed"},
              "web": {"api": "healthy"}, "edge": {"web": "started"}}


class StartWatch:
    """Samples `docker inspect`: each container's latest start and the first passing probe
    after it (the engine keeps only five probes, so it is sampled while things happen)."""

    def __init__(self, client: docker.DockerClient, names: dict[str, str]):
        self.client, self.names = client, names
        self.started: dict[str, float] = {}
        self.healthy: dict[str, float] = {}
        self.finished: dict[str, float] = {}
        self.exit: dict[str, int | None] = {}

    def sample(self) -> None:
        for key, cname in self.names.items():
            try:
                st = fu.retry_engine(lambda c=cname: self.client.api.inspect_container(c))["State"]
            except docker.errors.NotFound:
                continue
            started = parse_docker_time(st["StartedAt"]) if not st["StartedAt"].startswith("0001") else 0.0
            if started != self.started.get(key):
                self.started[key] = started
                self.healthy.pop(key, None)
            fin = st.get("FinishedAt") or ""
            if fin and not fin.startswith("0001"):
                self.finished[key] = parse_docker_time(fin)
            self.exit[key] = st.get("ExitCode")
            for probe in (st.get("Health") or {}).get("Log") or []:
                if probe.get("ExitCode") == 0 and parse_docker_time(probe["Start"]) >= started:
                    end = parse_docker_time(probe["End"])
                    self.healthy[key] = min(self.healthy.get(key, end), end)

    def order_violations(self, deps: dict[str, dict[str, str]], since: float) -> list[str]:
        out = []
        for svc, needs in deps.items():
            first = self.started.get(svc, 0.0)
            if first < since:
                continue  # not (re)started in this window (a completed Job)
            for dep, cond in needs.items():
                if cond == "started":
                    ref = self.started.get(dep)
                elif cond == "healthy":
                    ref = self.healthy.get(dep)
                else:
                    ref = self.finished.get(dep) if self.exit.get(dep) == 0 else None
                if ref is None or ref > first:
                    out.append(f"{svc} started at {first:.3f} before {dep} was {cond} (at {ref})")
        return out


@pytest.mark.engine_restart
@pytest.mark.parametrize("mode", MODES)
def test_engine_restarts_are_survived_and_the_stack_comes_back_in_dependency_order(
        rc: Harness, mode: str, figures: fu.Figures, dclient: docker.DockerClient) -> None:
    if not fu.engine_is_local():
        pytest.skip("DOCKER_HOST is not an engine ensure-docker.sh manages: it cannot restart it")
    if os.environ.get("RECONCILE_FAULT_ENGINE_RESTART") == "0":
        pytest.skip("RECONCILE_FAULT_ENGINE_RESTART=0: engine restarts disabled on this host")
    rng = fu.rng_for("engine-restart")
    n_restarts = fu.trials(mode, 1, 3)
    figures["restarts"] = n_restarts
    proc = rc.start_daemon(*FAST)
    check_alive = alive(proc, rc)
    rc.run("apply", "-f", rc.write(small_stack(rc)))
    fu.wait_converged(rc, rc.client, 120, "the stack to converge", alive=check_alive)
    fu.claim_engine_or_skip(rc.client, rc.instance)  # stopping dockerd stops every container on it
    client: docker.DockerClient | None = None
    # another suite may restart the engine too: every dockerd pid change that is not ours
    # adds one EngineUnavailable/EngineRestored pair to what is expected
    known_pid = fu.dockerd_pid_or_none()
    foreign_restarts = 0

    def note_pid() -> None:
        nonlocal known_pid, foreign_restarts
        pid = fu.dockerd_pid_or_none()
        if pid is not None and pid != known_pid:
            foreign_restarts += 1
            known_pid = pid

    try:
        for i in range(n_restarts):
            time.sleep(rng.uniform(0.5, 3.0))  # somewhere in the stack's life, not right after a pass
            note_pid()
            pairs_before = len(rc.events(None, "EngineRestored"))
            t_stop = time.time()
            try:
                fu.stop_engine()
                down_for = time.time() - t_stop
                wait_for(lambda: [e for e in rc.events(None, "EngineUnavailable") if e["ts"] >= t_stop - 1],
                         timeout=30, what="an EngineUnavailable row")
                time.sleep(rng.uniform(0.0, 2.0))  # the engine stays away a little
                check_alive()
            finally:
                t_ensure = time.time()
                engine_back = fu.ensure_engine()
                ensure_s = time.time() - t_ensure
            assert engine_back, "ensure-docker.sh did not bring the engine back within 5 minutes"
            known_pid = fu.dockerd_pid_or_none()
            t_back = time.time()
            if client is not None:
                client.close()
            dclient.api.close()  # the session client's pooled connections went with the old engine
            client = fu.fresh_client()
            rc.client = client
            watch = StartWatch(client, {b: rc.cname(b) for b in SMALL_DEPS})

            def converged_sampling() -> bool:
                check_alive()
                note_pid()
                watch.sample()
                return not fu.convergence_gaps(fu.wanted(rc.reader), fu.boxes(client, rc.instance), rc.rows())

            wait_for(converged_sampling, timeout=120, interval=0.25, what=f"convergence after engine restart {i + 1}")
            back_s = time.time() - t_back
            violations = watch.order_violations(SMALL_DEPS, since=t_stop)
            assert not violations, violations
            assert watch.started.get("migrate", 0) < t_stop, "the completed Job was run again"
            restored = wait_for(lambda: [e for e in rc.events(None, "EngineRestored") if e["ts"] >= t_stop],
                                timeout=20, what="an EngineRestored row")
            downs = [e for e in rc.events(None, "EngineUnavailable") if e["ts"] >= t_stop - 1]
            figures.add("per_restart", {"restart": i + 1, "engine_stop_s": round(down_for, 2),
                                        "ensure_docker_s": round(ensure_s, 2),
                                        "converged_after_engine_back_s": round(back_s, 2),
                                        "restored_row_after_stop_s": round(restored[0]["ts"] - t_stop, 2)})
            if not foreign_restarts:
                assert len(downs) == 1 and len(restored) == 1, (downs, restored)
            assert len(rc.events(None, "EngineRestored")) > pairs_before
        check_alive()
        note_pid()
        pairs = [e["type"] for e in rc.history(None, "EngineUnavailable", "EngineRestored")]
        figures["engine_rows"] = pairs
        figures["foreign_engine_restarts"] = foreign_restarts
        assert pairs == ["EngineUnavailable", "EngineRestored"] * (n_restarts + foreign_restarts), pairs
        assert "Traceback" not in rc.daemon_log()
    finally:
        fu.ensure_engine()
        rc.client = dclient
        if client is not None:
            client.close()


# 3 ---------------------------------------------------------------------------------------
def _current(rc: Harness, service: str) -> fu.Box:
    boxes = [b for b in fu.boxes(rc.client, rc.instance) if b.service == service]
    assert len(boxes) == 1, boxes
    return boxes[0]


def _rows_since(rc: Harness, service: str, since: float, *types: str) -> list[dict[str, Any]]:
    return [e for e in rc.events(service, *types) if e["ts"] >= since]


def _tamper_stack(rc: Harness, *bases: str) -> list[dict[str, Any]]:
    net = [rc.name("net")]
    return [worker(rc, b, networks=net, restartPolicy=QUICK_BACKOFF) for b in bases]


@pytest.mark.parametrize("mode", MODES)
def test_removed_and_stopped_containers_are_healed_and_audited(rc: Harness, mode: str, figures: fu.Figures) -> None:
    rng = fu.rng_for("tamper-rm-stop")
    rounds = fu.trials(mode, 1, 8)
    proc = rc.start_daemon(*FAST)
    rc.run("apply", "-f", rc.write(_tamper_stack(rc, "gone", "halted", "bystander")))
    fu.wait_converged(rc, rc.client, 90, "the stack", alive=alive(proc, rc))
    gone, halted = rc.name("gone"), rc.name("halted")
    bystander = _current(rc, rc.name("bystander"))
    for r in range(rounds):
        time.sleep(rng.uniform(0.2, 2.0))
        old = _current(rc, gone)
        t0 = time.time()
        rc.client.api.remove_container(old.id, force=True)  # docker rm -f
        new = wait_for(lambda: [b for b in fu.boxes(rc.client, rc.instance) if b.service == gone
                                and b.id != old.id and b.state == "running"], timeout=30, what="a new container")
        took_rm = time.time() - t0
        rows = wait_for(lambda: _rows_since(rc, gone, t0, "Created"), timeout=10, what="a Created row")
        assert rows[-1]["container_id"] == new[0].id
        assert f"previous container {old.id[:12]} is gone" in rows[-1]["reason"], rows[-1]

        time.sleep(rng.uniform(0.2, 2.0))
        before = _current(rc, halted)
        was_started = rc.inspect(before.id)["State"]["StartedAt"]
        t0 = time.time()
        rc.client.api.stop(before.id, timeout=5)  # docker stop: the worker exits 0 on SIGTERM
        started_again = wait_for(lambda: (b := _current(rc, halted)).state == "running"
                                 and rc.inspect(b.id)["State"]["StartedAt"] != was_started and b,
                                 timeout=30, what="the stopped container to run")
        took_stop = time.time() - t0
        assert started_again.id == before.id, "a stopped container is restarted, not replaced"
        rows = wait_for(lambda: _rows_since(rc, halted, t0, "Restarted"), timeout=10, what="a Restarted row")
        assert rows[-1]["container_id"] == before.id and "exited with code" in rows[-1]["reason"], rows[-1]
        figures.add("per_round", {"round": r, "rm_to_running_s": round(took_rm, 2), "stop_to_running_s": round(took_stop, 2)})
    fu.wait_converged(rc, rc.client, 60, "convergence", alive=alive(proc, rc))
    assert _current(rc, rc.name("bystander")).id == bystander.id, "the bystander was not touched"
    assert not [e for e in rc.history(rc.name("bystander")) if e["type"] not in ("Applied", "Created")]


@pytest.mark.parametrize("mode", MODES)
def test_renamed_container_is_noticed_audited_and_given_its_name_back(rc: Harness, mode: str, figures: fu.Figures) -> None:
    rounds = fu.trials(mode, 1, 3)
    proc = rc.start_daemon(*FAST)
    rc.run("apply", "-f", rc.write(_tamper_stack(rc, "named")))
    fu.wait_converged(rc, rc.client, 60, "the stack", alive=alive(proc, rc))
    svc = rc.name("named")
    for r in range(rounds):
        old = _current(rc, svc)
        t0 = time.time()
        rc.client.api.rename(old.id, f"{old.name}-renamed-{r}")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # ten resync intervals
            boxes = [b for b in fu.boxes(rc.client, rc.instance) if b.service == svc]
            if len(boxes) == 1 and boxes[0].name == rc.cname("named") and boxes[0].state == "running":
                break
            time.sleep(0.25)
        boxes = [b for b in fu.boxes(rc.client, rc.instance) if b.service == svc]
        rows = [(e["type"], e["reason"]) for e in _rows_since(rc, svc, t0)]
        figures.add("per_round", {"round": r, "containers": [(b.name, b.id[:12]) for b in boxes], "rows": rows})
        assert len(boxes) == 1, f"one container for the service, found {[(b.name, b.state) for b in boxes]}"
        assert boxes[0].name == rc.cname("named"), (
            f"10 s after `docker rename {old.name} {old.name}-renamed-{r}` the service's only container is still "
            f"named {boxes[0].name!r}; audit rows since: {rows}")
        assert rows, "the rename was handled but not audited"


@pytest.mark.parametrize("mode", MODES)
def test_container_with_altered_labels_is_replaced_and_audited(rc: Harness, mode: str, figures: fu.Figures) -> None:
    """Docker cannot edit a container's labels, so 'altered labels' means a container put in
    the place of ours by hand, with our labels copied and changed (here: the spec hash and the
    command), while the controller was stopped. It claims to be ours and does not match the
    spec: the restarted controller replaces it, audits that, and leaves the bystander alone."""
    rounds = fu.trials(mode, 1, 3)
    proc = rc.start_daemon(*FAST)
    rc.run("apply", "-f", rc.write(_tamper_stack(rc, "forged", "bystander")))
    fu.wait_converged(rc, rc.client, 60, "the stack", alive=alive(proc, rc))
    svc, cname = rc.name("forged"), rc.cname("forged")
    bystander = _current(rc, rc.name("bystander"))
    for r in range(rounds):
        ours = _current(rc, svc)
        proc.terminate()
        assert proc.wait(30) == 0
        labels = dict(ours.labels, **{"io.reconcile.spec-hash": f"forged{r:010d}"})
        rc.client.api.remove_container(ours.id, force=True)
        forged = rc.client.api.create_container(BASE_IMAGE, ["sleep", "86400"], name=cname, labels=labels,
                                                host_config=rc.client.api.create_host_config(init=True))["Id"]
        rc.client.api.start(forged)
        t0 = time.time()
        proc = rc.start_daemon(*FAST)
        # The swap is stop old -> start new -> remove old (the old one is kept until the new
        # one runs, to roll back to): a list taken the moment the new one runs may still show
        # the stopped look-alike for a moment. On Docker 26 this test's list hit that window
        # (on 20.10 it had not; docs/ENGINES.md). Wait for the end state instead: one
        # container of the service, the replacement, running - the look-alike removed.
        def only_the_replacement() -> list[fu.Box]:
            mine = [b for b in fu.boxes(rc.client, rc.instance) if b.service == svc]
            return mine if len(mine) == 1 and mine[0].id != forged and mine[0].state == "running" else []

        replaced = wait_for(only_the_replacement, timeout=30, what="the look-alike to be replaced")[0]
        took = time.time() - t0
        assert replaced.spec_hash == ours.spec_hash, "the replacement carries the spec's hash again"
        assert forged not in {b.id for b in fu.boxes(rc.client, rc.instance)}, "the look-alike is removed"
        rows = wait_for(lambda: [e for e in _rows_since(rc, svc, t0 - 1, "Recreated")
                                 if e["container_id"] == replaced.id], timeout=10, what="a Recreated row")
        assert f"old {forged[:12]}" in rows[-1]["message"], rows[-1]
        assert "altered outside reconcile" in rows[-1]["reason"], rows[-1]
        figures.add("per_round", {"round": r, "daemon_start_to_replaced_s": round(took, 2), "reason": rows[-1]["reason"]})
    assert _current(rc, rc.name("bystander")).id == bystander.id, "the bystander was not touched"


@pytest.mark.parametrize("mode", MODES)
def test_foreign_container_squatting_a_managed_name_is_reported_and_never_removed(
        rc: Harness, mode: str, figures: fu.Figures) -> None:
    rounds = fu.trials(mode, 1, 3)
    proc = rc.start_daemon(*FAST)
    rc.run("apply", "-f", rc.write(_tamper_stack(rc, "squatted", "bystander")))
    fu.wait_converged(rc, rc.client, 60, "the stack", alive=alive(proc, rc))
    svc, cname = rc.name("squatted"), rc.cname("squatted")
    for r in range(rounds):
        ours = _current(rc, svc)
        # our container steps aside, a look-alike without io.reconcile.* labels takes its name,
        # then ours is removed: the controller must recreate NAME-1 and finds the name taken.
        # The controller is frozen (SIGSTOP) for the swap: awake, it gives a renamed container
        # its name back at once (the test above), which could win the race for the name.
        t0 = time.time()
        proc.send_signal(signal.SIGSTOP)
        try:
            rc.client.api.rename(ours.id, f"{cname}-aside")
            foreign = rc.client.containers.run(BASE_IMAGE, ["sleep", "86400"], name=cname, detach=True, init=True,
                                               labels={TEST_LABEL: f"{RUN_ID}-{rc.prefix}", "purpose": "squatter"})
        finally:
            proc.send_signal(signal.SIGCONT)
        try:
            rc.client.api.remove_container(ours.id, force=True)
            failed = wait_for(lambda: [e for e in _rows_since(rc, svc, t0, "Failed") if "does not own" in e["message"]],
                              timeout=30, what="a Failed row saying the name is taken by a container it does not own")
            assert foreign.short_id in failed[0]["message"], failed[0]
            time.sleep(4)  # several resyncs later: still there, still not ours, never removed
            foreign.reload()
            assert foreign.status == "running", foreign.status
            assert not [b for b in fu.boxes(rc.client, rc.instance) if b.service == svc], "no second container"
            n_failed = len([e for e in _rows_since(rc, svc, t0, "Failed")])
            figures.add("per_round", {"round": r, "failed_rows_per_s": round(n_failed / (time.time() - t0), 1)})
        finally:
            foreign.remove(force=True)
        t1 = time.time()
        fu.wait_converged(rc, rc.client, 60, "our container once the squatter is gone", alive=alive(proc, rc))
        created = _rows_since(rc, svc, t1, "Created")
        assert created and created[-1]["container_id"] == _current(rc, svc).id
    out = rc.run("status").stdout
    assert svc in out


@pytest.mark.parametrize("mode", MODES)
def test_persistent_name_conflict_is_retried_with_backoff_not_in_a_hot_loop(
        rc: Harness, mode: str, figures: fu.Figures) -> None:
    seconds = 5.0 if mode == "short" else 30.0
    cname = rc.cname("blocked")
    foreign = rc.client.containers.run(BASE_IMAGE, ["sleep", "86400"], name=cname, detach=True, init=True,
                                       labels={TEST_LABEL: f"{RUN_ID}-{rc.prefix}", "purpose": "squatter"})
    try:
        proc = rc.start_daemon(*FAST)  # resync every second
        rc.run("apply", "-f", rc.write([worker(rc, "blocked")]))
        svc = rc.name("blocked")
        wait_for(lambda: rc.events(svc, "Failed"), timeout=30, what="the first Failed row")
        t0 = time.time()
        time.sleep(seconds)
        n = len(_rows_since(rc, svc, t0, "Failed"))
        alive(proc, rc)()
        figures["failed_rows"] = n
        figures["failed_rows_per_s"] = round(n / seconds, 1)
        foreign.reload()
        assert foreign.status == "running"
        # one attempt per resync interval (1 s) at most; a backoff would make it fewer
        assert n <= seconds + 2, f"{n} Failed rows in {seconds:g} s for one unchanged conflict"
    finally:
        foreign.remove(force=True)


def _attached(rc: Harness, container: str, network: str) -> bool:
    info = rc.client.api.inspect_container(container)
    return network in (info["NetworkSettings"].get("Networks") or {})


def _remove_network_when_unused(rc: Harness, net: str, timeout: float = 5.0) -> None:
    """The engine releases a dead container's endpoint a moment after its 'die': retry briefly."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            rc.client.api.remove_network(net)
            return
        except docker.errors.APIError as exc:
            if "active endpoints" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


SLOW_SECOND_RESTART = {"backoff": {"initial": 10, "max": 10}}


@pytest.mark.podman_unsupported(
    "the fault cannot be made: Podman refuses to remove a network that stopped containers still reference "
    "(\"has associated containers with it ... network is being used\"; only -f, which removes the containers "
    "too), where Docker removes it and leaves the stopped containers unable to start")
@pytest.mark.parametrize("mode", MODES)
def test_network_removed_under_stopped_containers_is_recreated_and_they_are_reattached(
        rc: Harness, mode: str, figures: fu.Figures) -> None:
    """`docker network rm` once its containers are stopped: they cannot start on a network that
    is gone, so the controller recreates the network and the containers, audited.
    The containers are killed twice: the first death is restarted at once, the second waits
    out a 10 s backoff, the window in which the network is removed (no race with the controller);
    the time to heal therefore includes the rest of that backoff."""
    rng = fu.rng_for("network-stopped")
    rounds = fu.trials(mode, 1, 3)
    net = rc.name("net")
    bases = ["n1", "n2", "n3"]
    proc = rc.start_daemon(*FAST)
    rc.run("apply", "-f", rc.write([worker(rc, b, networks=[net], restartPolicy=SLOW_SECOND_RESTART) for b in bases]))
    fu.wait_converged(rc, rc.client, 60, "the stack", alive=alive(proc, rc))
    for r in range(rounds):
        old = {b: _current(rc, rc.name(b)) for b in bases}
        first = {b: rc.inspect(old[b].id)["State"]["StartedAt"] for b in bases}
        for b in rng.sample(bases, len(bases)):
            rc.client.api.kill(old[b].id)
        t0 = time.time()
        pending = set(bases)
        deadline = time.monotonic() + 30
        while pending:  # each one killed again the moment its (immediate) first restart shows
            assert time.monotonic() < deadline, f"no first restart of {pending}"
            for b in sorted(pending):
                st = rc.inspect(old[b].id)["State"]
                if st["Running"] and st["StartedAt"] != first[b]:
                    rc.client.api.kill(old[b].id)
                    pending.discard(b)
            time.sleep(0.02)
        wait_for(lambda: all(not rc.inspect(old[b].id)["State"]["Running"] for b in bases), timeout=10,
                 what="all three stopped (their second restart waits out the backoff)")
        _remove_network_when_unused(rc, net)  # docker network rm: nothing attached is running
        removed_at = time.time()
        took = fu.wait_converged(rc, rc.client, 60, "the network and its containers to be healed", alive=alive(proc, rc))
        nets = rc.client.api.networks(names=[net])
        assert [n["Name"] for n in nets] == [net], nets
        assert nets[0]["Labels"].get("io.reconcile.instance") == rc.instance
        for b in bases:
            cur = _current(rc, rc.name(b))
            assert _attached(rc, cur.name, net), f"{cur.name} is not attached to {net}"
            rows = _rows_since(rc, rc.name(b), t0)
            healed = [e for e in rows if e["container_id"] == cur.id and e["type"] == "Recreated"]
            assert healed and "network" in healed[-1]["reason"], [(e["type"], e["reason"]) for e in rows]
            assert f"old {old[b].id[:12]}" in healed[-1]["message"], healed[-1]
        figures.add("per_round", {"round": r, "healed_after_network_rm_s": round(time.time() - removed_at, 2),
                                  "converged_s": round(took, 2)})


@pytest.mark.parametrize("mode", MODES)
def test_network_removed_under_running_containers_is_healed(rc: Harness, mode: str, figures: fu.Figures) -> None:
    net = rc.name("net")
    bases = ["r1", "r2"]
    proc = rc.start_daemon(*FAST)
    rc.run("apply", "-f", rc.write([worker(rc, b, networks=[net], restartPolicy=QUICK_BACKOFF) for b in bases]))
    fu.wait_converged(rc, rc.client, 60, "the stack", alive=alive(proc, rc))
    old = {b: _current(rc, rc.name(b)) for b in bases}
    # the controller re-attaches a detached container within a resync, so it may win the race
    # between our disconnect and our `network rm`: try again (bounded) until the rm lands
    for attempt in range(10):
        for b in old.values():
            with contextlib.suppress(docker.errors.APIError):
                rc.client.api.disconnect_container_from_network(b.id, net, force=True)
        try:
            rc.client.api.remove_network(net)
            break
        except docker.errors.APIError as exc:
            if "active endpoints" not in str(exc) or attempt == 9:
                raise
    t0 = time.time()

    def healed() -> bool:
        if not rc.client.api.networks(names=[net]):
            return False
        boxes = fu.boxes(rc.client, rc.instance)
        for b in bases:
            mine = [x for x in boxes if x.service == rc.name(b)]
            if len(mine) != 1 or mine[0].state != "running" or not _attached(rc, mine[0].id, net):
                return False
        return True

    def watch(seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if healed():
                return True
            time.sleep(0.5)
        return healed()

    ok = watch(10)
    killed = False
    if not ok:  # then a death (restart) must heal it at least
        killed = True
        for b in bases:
            rc.client.api.kill(_current(rc, rc.name(b)).id)
        ok = watch(10)
    alive(proc, rc)()
    healed_s = time.time() - t0
    rows = {b: [(e["type"], e["reason"][:100]) for e in _rows_since(rc, rc.name(b), t0)] for b in bases}
    state = {b: [(c.name, c.state, list((rc.inspect(c.id)["NetworkSettings"].get("Networks") or {})))
                 for c in fu.boxes(rc.client, rc.instance) if c.service == rc.name(b)] for b in bases}
    figures["healed_s"] = round(healed_s, 2)
    figures["healed_without_a_death"] = bool(ok) and not killed
    assert ok, (f"{net} removed under running containers is not healed (6 s, then 10 s after they were killed): "
                f"containers (name, state, networks) {state}; audit rows since: {rows}")
    assert not killed, f"healed only after the containers died: {rows}"
    for b in bases:
        cur = _current(rc, rc.name(b))
        healed_rows = [e for e in _rows_since(rc, rc.name(b), t0) if e["container_id"] == cur.id]
        assert healed_rows and "network" in healed_rows[-1]["reason"], (b, rows[b])


# 4 ---------------------------------------------------------------------------------------
def _writer(rc: Harness, files: list[str], n: int, results: list[dict[str, Any]], who: str) -> None:
    for i in range(n):
        f = files[i % 2]
        t0 = time.time()
        p = subprocess.run([sys.executable, "-m", "controller.cli", "apply", "-f", f, "--json"], env=rc.env,
                           capture_output=True, text=True, timeout=300)
        res: dict[str, Any] = {"who": who, "i": i, "file": os.path.basename(f), "start": t0, "end": time.time(),
                               "rc": p.returncode, "stderr": p.stderr[-2000:], "stdout": p.stdout[-2000:]}
        try:
            res["changes"] = json.loads(p.stdout)["changes"]
        except (ValueError, KeyError):
            res["changes"] = None
        results.append(res)


@pytest.mark.parametrize("mode", MODES)
def test_concurrent_writers_and_a_daemon_lose_nothing(rc: Harness, mode: str, figures: fu.Figures) -> None:
    n = fu.trials(mode, 10, 50)
    svc = rc.name("contended")
    files = {v: rc.write([worker(rc, "contended", env={"VALUE": v})], f"{v}.yaml") for v in "AB"}
    proc = rc.start_daemon(*FAST)
    results: list[dict[str, Any]] = []
    threads = [threading.Thread(target=_writer, args=(rc, [files["A"], files["B"]], n, results, "w1")),
               threading.Thread(target=_writer, args=(rc, [files["B"], files["A"]], n, results, "w2"))]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join(900)
    elapsed = time.time() - t0
    assert len(results) == 2 * n
    failures = [r for r in results if r["rc"] != 0 or "locked" in r["stderr"].lower() or "Traceback" in r["stderr"]
                or r["changes"] is None]
    assert not failures, failures[:3]
    alive(proc, rc)()
    changed = [r for r in results if r["changes"][0]["change"] in ("created", "updated")]
    gens = sorted(r["changes"][0]["generation"] for r in changed)
    assert gens == list(range(1, len(changed) + 1)), f"each change took the next generation: {gens}"
    applied = rc.history(svc, "Applied")  # the CLI's order: by timestamp
    figures["applies"] = len(results)
    figures["changed_applies"] = len(changed)
    figures["applied_rows"] = len(applied)
    figures["elapsed_s"] = round(elapsed, 1)
    figures["apply_s_max"] = round(max(r["end"] - r["start"] for r in results), 2)
    assert len(applied) == len(changed), f"{len(changed)} applies changed the spec, {len(applied)} Applied rows"
    by_id = sorted(applied, key=lambda e: e["id"])
    assert [e["generation"] for e in by_id] == gens, "Applied rows in commit order carry increasing generations"
    listed = [e["generation"] for e in applied]
    figures["out_of_order_in_history"] = sum(1 for a, b in zip(listed, listed[1:]) if b <= a)
    assert all(b > a for a, b in zip(listed, listed[1:])), f"history lists generations out of order: {listed}"
    last = max(changed, key=lambda r: r["changes"][0]["generation"])
    want = "A" if last["file"] == "A.yaml" else "B"
    rec = rc.reader.get(svc)
    assert rec is not None and rec.spec["env"]["VALUE"] == want, (rec, last)
    # the last apply to finish found (or made) the final spec too
    final = max(results, key=lambda r: r["end"])
    assert final["changes"][0]["generation"] <= rec.generation
    fu.wait_converged(rc, rc.client, 90, "the daemon to converge to the last write", alive=alive(proc, rc))
    env = rc.inspect(rc.cname("contended"))["Config"]["Env"]
    assert f"VALUE={want}" in env, env
    assert rc.run("db", "check").returncode == 0
    assert "database is locked" not in rc.daemon_log()


# 5 ---------------------------------------------------------------------------------------
def _fill(directory: Path) -> int:
    """Take every free byte of the filesystem; returns how many were taken."""
    taken = 0
    with open(directory / "filler", "wb", buffering=0) as fh:
        for size in (1 << 16, 1 << 12, 1 << 9, 1):
            chunk = b"\0" * size
            while True:
                try:
                    taken += fh.write(chunk) or 0
                except OSError:
                    break
    return taken


class TinyStore:
    """The test's store on a filesystem of its own, so it can fail under a running controller.

    ``full``: a 2 MiB tmpfs, filled up (after emptying the store's WAL, whose old frames a
    small write could otherwise reuse). ``readonly``: a small ext4 image on a loop device,
    mounted ``errors=remount-ro``; writing ``/sys/fs/ext4/<dev>/trigger_fs_error`` makes the
    kernel turn it read-only under open files, which is how a real disk error does it (a plain
    ``mount -o remount,ro`` is refused while the controller holds the store open for writing).
    Always unmounted (and the loop device detached) in ``close``."""

    def __init__(self, rc: Harness, tmp: Path, kind: str):
        self.rc, self.kind, self.dir = rc, kind, tmp / "tiny"
        self.dir.mkdir()
        self.image = tmp / "tiny.ext4"
        self.loop = ""
        if kind == "full":
            self._sh("mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(self.dir))
        else:
            self._sh("truncate", "-s", "16M", str(self.image))
            self._sh("mkfs.ext4", "-q", "-F", str(self.image))
            self.loop = self._sh("losetup", "--find", "--show", str(self.image)).strip()
            self._sh("mount", "-o", "errors=remount-ro", self.loop, str(self.dir))
        rc.db = str(self.dir / "store.db")

    @staticmethod
    def _sh(*cmd: str) -> str:
        return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=60).stdout

    def break_(self) -> None:
        import sqlite3

        if self.kind == "full":
            deadline = time.monotonic() + 20
            while True:
                con = sqlite3.connect(self.rc.db, timeout=30)
                busy = con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
                con.close()
                if not busy or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert _fill(self.dir) > 0
        else:
            Path(f"/sys/fs/ext4/{os.path.basename(self.loop)}/trigger_fs_error").write_text("reconcile fault test\n")
            opts = self._sh("findmnt", "-n", "-o", "OPTIONS", str(self.dir))
            assert opts.startswith("ro") or "emergency_ro" in opts, opts
        with pytest.raises(OSError):
            with open(self.dir / "probe", "wb", buffering=0) as fh:
                fh.write(b"x" * 65536)

    def close(self) -> None:
        rc = self.rc
        for p in rc.procs:  # they hold the store open
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)
        if rc._reader is not None:
            rc._reader.close()
            rc._reader = None
        (self.dir / "filler").unlink(missing_ok=True) if self.kind == "full" else None
        # the harness's teardown finds this store's containers by its (cached) instance id
        # and needs the store file to exist: keep a copy outside the mount
        keep = self.dir.parent / "store-kept.db"
        for suffix in ("", "-wal"):
            if os.path.exists(str(self.dir / "store.db") + suffix):
                subprocess.run(["cp", str(self.dir / "store.db") + suffix, str(keep) + suffix], check=False)
        rc.db = str(keep)
        if subprocess.run(["umount", str(self.dir)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(self.dir)], capture_output=True)
        if self.loop:
            subprocess.run(["losetup", "-d", self.loop], capture_output=True)
        self.image.unlink(missing_ok=True)


STORE_FAULTS = ["full", "readonly"]


def _start_on_tiny_store(rc: Harness) -> subprocess.Popen[str]:
    proc = rc.start_daemon(*FAST)
    rc.run("apply", "-f", rc.write([worker(rc, "steady"), worker(rc, "victim", restartPolicy=QUICK_BACKOFF)]))
    fu.wait_converged(rc, rc.client, 60, "the stack", alive=alive(proc, rc))
    return proc


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fault", STORE_FAULTS)
def test_apply_on_a_full_or_read_only_store_fails_clearly_and_changes_nothing(
        rc: Harness, tmp_path: Path, fault: str, mode: str, figures: fu.Figures) -> None:
    n = fu.trials(mode, 1, 5)
    tiny = TinyStore(rc, tmp_path, fault)
    try:
        proc = _start_on_tiny_store(rc)
        before = {b.name: (b.id, rc.inspect(b.id)["State"]["StartedAt"]) for b in fu.boxes(rc.client, rc.instance)}
        applied_before = len(rc.events(None, "Applied"))
        gen_before = rc.reader.get(rc.name("steady")).generation  # type: ignore[union-attr]
        changed = rc.write([worker(rc, "steady", env={"CHANGED": "yes"}), worker(rc, "victim"),
                            worker(rc, "newcomer")], "changed.yaml")
        tiny.break_()
        for i in range(n):
            p = rc.run("apply", "-f", changed, expect=None)
            figures.add("apply", {"exit": p.returncode, "stderr": p.stderr.strip()[-300:]})
            assert p.returncode == 1, f"exit {p.returncode}\n{p.stdout}\n{p.stderr}"
            assert "Traceback" not in p.stderr, p.stderr
            msg = p.stderr.lower()
            assert "error" in msg and "store" in msg and any(w in msg for w in (
                "full", "disk", "read-only", "readonly")), f"unclear message: {p.stderr}"
        time.sleep(3)  # several resyncs: nothing may have been acted on
        after = {b.name: (b.id, rc.inspect(b.id)["State"]["StartedAt"]) for b in fu.boxes(rc.client, rc.instance)}
        assert after == before, "containers changed although the apply failed"
        alive(proc, rc)()
        # the store still reads, and holds what it held before
        assert rc.reader.get(rc.name("steady")).generation == gen_before  # type: ignore[union-attr]
        assert rc.reader.get(rc.name("newcomer")) is None
        assert len(rc.events(None, "Applied")) == applied_before
        if fault == "full":
            (tiny.dir / "filler").unlink()
            assert rc.run("db", "check").returncode == 0
    finally:
        tiny.close()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fault", STORE_FAULTS)
def test_daemon_keeps_restarting_containers_when_the_store_cannot_record(
        rc: Harness, tmp_path: Path, fault: str, mode: str, figures: fu.Figures) -> None:
    n = fu.trials(mode, 1, 5)
    tiny = TinyStore(rc, tmp_path, fault)
    try:
        proc = _start_on_tiny_store(rc)
        victim = rc.cname("victim")
        tiny.break_()
        time.sleep(1)
        for i in range(n):
            before = rc.inspect(victim)
            started = before["State"]["StartedAt"]
            t0 = time.time()
            rc.client.api.kill(victim)
            wait_for(lambda: (st := rc.inspect(victim)["State"])["Running"] and st["StartedAt"] != started and st,
                            timeout=15, interval=0.1, what="the killed container to be restarted with the store broken")
            figures.add("restarts", {"round": i, "kill_to_running_s": round(time.time() - t0, 2)})
            assert rc.inspect(victim)["Id"] == before["Id"], "restarted in place, not replaced"
            time.sleep(1)
        alive(proc, rc)()
        log = rc.daemon_log()
        lines = [ln for ln in log.splitlines() if "cannot record" in ln.lower()]
        figures["cannot_record_lines"] = len(lines)
        assert lines, f"the daemon's log never says it cannot record:\n{log[-3000:]}"
    finally:
        tiny.close()


# 6 ---------------------------------------------------------------------------------------
class EventTap:
    """The engine's own record: `docker events` for this store's containers, captured in a
    thread with its own client, bounded by ``until`` and closed on ``stop``."""

    def __init__(self, instance: str, max_seconds: float):
        self.client = fu.fresh_client()
        self.since = int(time.time()) - 1
        self.until = int(time.time() + max_seconds)
        self.stream = self.client.events(decode=True, since=self.since, until=self.until,
                                         filters={"label": f"io.reconcile.instance={instance}", "type": "container"})
        self.events: list[dict[str, Any]] = []
        self.thread = threading.Thread(target=self._run, name="event-tap", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for ev in self.stream:
                self.events.append(ev)
        except Exception as exc:  # noqa: BLE001 - closed under our feet: that is how it stops
            self.error = exc

    def stop(self) -> list[dict[str, Any]]:
        """The events seen. ``expired``: the engine had already ended the stream at ``until``,
        so whatever came later was missed (a comparison of those events would be partial)."""
        self.expired = time.time() >= self.until
        self.stream.close()
        self.thread.join(10)
        self.client.close()
        return list(self.events)


LIFECYCLE = ("create", "start", "die", "destroy", "health_status")
# Podman 4.3's compatible API streams a container's removal as `remove` (Docker: `destroy`);
# read in Docker's word so that Podman's removals are matched too, not skipped as unknown.
PODMAN_WORDS = {"remove": "destroy"}


def _explains(kind: str, cid: str, action: str, row: dict[str, Any]) -> bool:
    """Does audit ``row`` account for engine event ``kind`` of container ``cid``?"""
    own = row["container_id"] == cid
    t = row["type"]
    old_of_recreate = t == "Recreated" and f"old {cid[:12]}" in row["message"]
    gone_then_created = t == "Created" and f"previous container {cid[:12]}" in row["reason"]
    if kind == "create":
        return own and t in ("Created", "Recreated")
    if kind == "start":
        return own and t in ("Created", "Started", "Restarted", "Recreated")
    if kind == "die":
        return (own and t in ("Died", "Restarted", "Removed")) or old_of_recreate or gone_then_created
    if kind == "destroy":
        return (own and t == "Removed") or old_of_recreate or gone_then_created
    status = action.split(":", 1)[1].strip()  # health_status: healthy | unhealthy
    return own and t == "HealthChanged" and row["reason"].endswith(f"-> {status}")


def match_events(events: list[dict[str, Any]], rows: list[dict[str, Any]], skew: float = 1.0) -> tuple[int, list[str]]:
    """Each lifecycle event needs its own audit row (per kind a row explains one event), in
    time order: the earliest unused row that explains it and is not older than the event
    (minus ``skew``: an observation row carries the time its pass began)."""
    used: dict[str, set[int]] = defaultdict(set)
    matched, unmatched = 0, []
    for ev in sorted(events, key=lambda e: e["timeNano"]):
        action = ev.get("Action") or ""
        kind = action.split(":")[0]
        kind = PODMAN_WORDS.get(kind, kind)
        if kind not in LIFECYCLE or kind == "health_status" and action.split(":")[-1].strip() not in ("healthy", "unhealthy"):
            continue
        cid = ev["Actor"]["ID"]
        t = ev["timeNano"] / 1e9
        found = None
        for row in rows:
            if row["id"] in used[kind] or row["ts"] < t - skew:
                continue
            if _explains(kind, cid, action, row):
                found = row
                break
        if found is None:
            attrs = ev["Actor"].get("Attributes") or {}
            svc = attrs.get("io.reconcile.service", "")
            near = [(round(r["ts"] - t, 2), r["type"], r["container_id"][:12], r["reason"][:60]) for r in rows
                    if r["service"] == svc and abs(r["ts"] - t) < 10]
            unmatched.append(f"{action} of {attrs.get('name')} ({cid[:12]}) at {time.strftime('%H:%M:%S', time.localtime(t))}"
                             f".{int(t * 1000) % 1000:03d}; exitCode={attrs.get('exitCode', '-')}; "
                             f"rows of {svc} within 10 s (dt, type, id, reason): {near}")
        else:
            used[kind].add(found["id"])
            matched += 1
    return matched, unmatched


@pytest.mark.parametrize("mode", MODES)
def test_every_engine_lifecycle_event_of_a_managed_container_has_an_audit_row(
        rc: Harness, mode: str, figures: fu.Figures) -> None:
    rng = fu.rng_for("audit-chaos")
    n_actions = fu.trials(mode, 8, 60)
    bases = ["w1", "w2", "w3", "h1", "d1"]
    net = [rc.name("net")]
    docs = [worker(rc, b, networks=net, restartPolicy=QUICK_BACKOFF) for b in ("w1", "w2", "w3")]
    docs.append(sleeper(rc, "h1", healthcheck=READY_CHECK, networks=net, restartPolicy=QUICK_BACKOFF))
    docs.append(worker(rc, "d1", networks=net, restartPolicy=QUICK_BACKOFF,
                       dependsOn={rc.name("h1"): {"condition": "healthy"}}))
    rc.instance  # noqa: B018 - the store (and its instance id) exists before the tap filters on it
    # The tap stays open for the test's own worst case: the daemon's start-up bound, two 90 s
    # convergence waits, the actions, a minute to spare (stop() closes it as soon as the test is
    # done). It was 60 s + 6 s an action, shorter than the test itself: 117 s on Podman at load 30
    # (the tap already closed before the end); at load 90-110 it ran out before the first create.
    tap = EventTap(rc.instance, max_seconds=DAEMON_START_TIMEOUT + 90 + n_actions * 6 + 90 + 60)
    try:
        proc = rc.start_daemon(*FAST, "--max-restarts-per-minute", "1000")
        rc.run("apply", "-f", rc.write(docs))
        fu.wait_converged(rc, rc.client, 90, "the stack", alive=alive(proc, rc))
        done: dict[str, int] = defaultdict(int)
        for _ in range(n_actions):
            time.sleep(rng.uniform(1.0, 3.0))
            base = rng.choice(bases)
            what = rng.choice(["kill", "stop", "rm"])
            boxes = [b for b in fu.boxes(rc.client, rc.instance) if b.service == rc.name(base) and b.state == "running"]
            if not boxes:
                done["skipped"] += 1
                continue
            try:
                if what == "kill":
                    rc.client.api.kill(boxes[0].id)
                elif what == "stop":
                    rc.client.api.stop(boxes[0].id, timeout=1)
                else:
                    rc.client.api.remove_container(boxes[0].id, force=True)
                done[what] += 1
            except docker.errors.APIError as exc:  # it was being acted on (e.g. removed) right now
                done[f"{what}-refused"] += 1
                figures.add("refused", str(exc)[:200])
        took = fu.wait_converged(rc, rc.client, 90, "convergence after the chaos", alive=alive(proc, rc))
        time.sleep(3)  # trailing health events and the rows of the last passes
    finally:
        events = tap.stop()
    rows = rc.history()
    kinds: dict[str, int] = defaultdict(int)
    for ev in events:
        kinds[(ev.get("Action") or "").split(":")[0]] += 1
    matched, unmatched = match_events(events, rows)
    figures["tampering"] = dict(done)
    figures["engine_events"] = dict(kinds)
    figures["audit_rows"] = len(rows)
    figures["lifecycle_events_matched"] = matched
    figures["unmatched"] = len(unmatched)
    figures["unmatched_events"] = unmatched
    figures["converge_after_chaos_s"] = round(took, 2)
    assert not tap.expired, f"the event tap's bound ({tap.until - tap.since - 1} s) ran out before the test ended"
    assert events and matched, "the tap saw nothing: the comparison would be vacuous"
    assert not unmatched, f"{len(unmatched)} engine events without an audit row:\n" + "\n".join(unmatched)


# 7 ---------------------------------------------------------------------------------------
def _hashes(rc: Harness) -> dict[str, str]:
    return {b.name: b.spec_hash for b in fu.boxes(rc.client, rc.instance)}


class Chaos:
    """Kills a random running container of the store every 0.5-1.5 s until stopped."""

    def __init__(self, rc: Harness, rng: Any):
        self.rc, self.rng, self.stop_flag, self.kills = rc, rng, threading.Event(), 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop_flag.wait(self.rng.uniform(0.5, 1.5)):
            running = [b for b in fu.boxes(self.rc.client, self.rc.instance) if b.state == "running"]
            if running:
                try:
                    self.rc.client.api.kill(self.rng.choice(sorted(running, key=lambda b: b.name)).id)
                    self.kills += 1
                except docker.errors.APIError:
                    pass

    def stop(self) -> int:
        self.stop_flag.set()
        self.thread.join(10)
        return self.kills


@pytest.mark.parametrize("mode", MODES)
def test_backup_taken_mid_chaos_restores_and_converges_and_export_round_trips(
        rc: Harness, tmp_path: Path, mode: str, figures: fu.Figures) -> None:
    rng = fu.rng_for("backup-restore")
    rounds = fu.trials(mode, 1, 4)
    proc = rc.start_daemon(*FAST, "--max-restarts-per-minute", "1000")
    rc.run("apply", "-f", rc.write(small_stack(rc)))
    fu.wait_converged(rc, rc.client, 120, "the stack", alive=alive(proc, rc))
    for r in range(rounds):
        snapshot = _hashes(rc)  # the desired state the backup will hold, as the engine shows it
        backup = str(tmp_path / f"backup-{r}.db")
        chaos = Chaos(rc, rng)
        try:
            time.sleep(rng.uniform(1.0, 3.0))
            t_b = time.monotonic()
            rc.run("db", "backup", backup)
            backup_s = time.monotonic() - t_b
            assert rc.run("db", "check", expect=None).returncode == 0, "the live store checks out mid-chaos"
            time.sleep(rng.uniform(0.5, 1.5))
        finally:
            kills = chaos.stop()
        # the host moves on after the backup: a changed spec and a new service
        rc.run("apply", "-f", rc.write(small_stack(rc, env=f"after-{r}") + [worker(rc, f"later-{r}")]))
        fu.wait_converged(rc, rc.client, 120, "the post-backup state", alive=alive(proc, rc))
        assert _hashes(rc) != snapshot
        refused = rc.run("db", "restore", backup, expect=None)
        assert refused.returncode == 1 and "refusing" in refused.stderr, refused
        assert rc.reader.integrity_check() == [], "the refused restore left the store alone"
        alive(proc, rc)()
        assert rc.stop_daemon(proc) == 0
        rc.run("db", "restore", backup)
        assert rc.run("db", "check").returncode == 0
        t_r = time.monotonic()
        proc = rc.start_daemon(*FAST, "--max-restarts-per-minute", "1000")
        fu.wait_converged(rc, rc.client, 120, "the restored desired state", alive=alive(proc, rc))
        restored_s = time.monotonic() - t_r
        assert _hashes(rc) == snapshot, "same services, same spec hashes as when the backup was taken"
        figures.add("per_round", {"round": r, "kills_during_backup": kills, "backup_s": round(backup_s, 2),
                                  "restore_to_converged_s": round(restored_s, 2), "services": len(snapshot)})

    # export re-applies to a fresh store with identical spec hashes
    exported = rc.run("export").stdout
    path = rc.write(exported, "export.yaml")
    fresh = str(tmp_path / "fresh.db")
    from controller.lease import holder_id
    from store import Store

    other = Store.open(fresh)
    try:
        # a live holder (this test process) so the apply only stores: a second controller
        # acting on the same host would fight the first over the same container names
        assert other.acquire_lease(holder_id("controller"), ttl=600, now=time.time())
        out = rc.run("--db", fresh, "apply", "-f", path).stdout
        assert "the running controller" in out
        mine, theirs = rc.reader.desired(), other.desired()
        assert {n: r.spec_hash for n, r in theirs.items()} == {n: r.spec_hash for n, r in mine.items()}
        want_fresh = fu.wanted(other)
        labels = {b.service: b.spec_hash for b in fu.boxes(rc.client, rc.instance)}
        assert {n: w.container_hash for n, w in want_fresh.items()} == labels
    finally:
        other.close()
    figures["exported_services"] = len(mine)


@pytest.mark.parametrize("mode", MODES)
def test_history_max_rows_prunes_the_audit_without_blocking_the_loop(
        rc: Harness, mode: str, figures: fu.Figures) -> None:
    n_rows = fu.trials(mode, 50_000, 500_000) if not os.environ.get("RECONCILE_FAULT_TRIALS") else 50_000
    proc = rc.start_daemon(*FAST)
    rc.run("apply", "-f", rc.write([worker(rc, "kept"), worker(rc, "victim", restartPolicy=QUICK_BACKOFF)]))
    fu.wait_converged(rc, rc.client, 60, "the stack", alive=alive(proc, rc))
    assert rc.stop_daemon(proc) == 0
    from store import Event

    svc = rc.name("kept")
    t = time.time() - 3600
    for start in range(0, n_rows, 10_000):
        rc.reader.record([Event(ts=t + (start + i) * 1e-3, service=svc, type="Synthetic", reason=f"row {start + i}")
                          for i in range(min(10_000, n_rows - start))])
    before = fu.count_rows(rc.reader)
    max_before = rc.reader.history(limit=1)[-1].id or 0
    t0 = time.monotonic()
    proc = rc.start_daemon(*FAST, "--history-max-rows", "50")
    victim = rc.cname("victim")
    started = rc.inspect(victim)["State"]["StartedAt"]
    rows_at_kill = fu.count_rows(rc.reader)
    t_kill = time.monotonic()
    rc.client.api.kill(victim)
    wait_for(lambda: (st := rc.inspect(victim)["State"])["Running"] and st["StartedAt"] != started,
             timeout=15, interval=0.05, what="the killed container to be restarted while the audit is pruned")
    heal_s = time.monotonic() - t_kill
    wait_for(lambda: fu.count_rows(rc.reader) <= 70, timeout=120, interval=0.2, what="the audit to be pruned to ~50 rows")
    prune_s = time.monotonic() - t0
    time.sleep(1)
    after = fu.count_rows(rc.reader)
    rows = rc.history()
    figures["rows_before"] = before
    figures["rows_after"] = after
    figures["prune_s"] = round(prune_s, 2)
    figures["rows_at_kill"] = rows_at_kill  # > 70: the kill landed while the pruning was under way
    figures["kill_to_running_during_prune_s"] = round(heal_s, 2)
    assert heal_s < 5, "the loop heals while the audit is pruned"
    assert 50 <= after <= 70, after
    types = [e["type"] for e in rows]
    assert "ControllerStarted" in types and "Restarted" in types, "the newest rows are the ones kept"
    assert min(e["id"] for e in rows) > max_before - 50, "only the newest rows are kept"
    alive(proc, rc)()
