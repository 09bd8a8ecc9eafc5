"""The verbs and flags people who run containers type first — get/ps, logs, exec, up/down,
delete, events, version, diff exit codes, describe, completion, -H/--host and --context —
against the real engine. Each asserts the world (containers, labels, audit rows) as well
as what is printed."""

from __future__ import annotations

import hashlib
import json
import os
import re
import select
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import BASE_IMAGE, RUN_ID, TEST_LABEL, WEB_IMAGE, Harness, engine_is_podman, wait_for

pytestmark = pytest.mark.e2e

HTTPD = ["httpd", "-f", "-p", "80", "-h", "/www"]
HEALTH = {"test": ["CMD", "wget", "-q", "-O-", "http://127.0.0.1/health"], "interval": "1s", "timeout": "2s",
          "retries": 2}


def run_in(rc: Harness, cwd: Path, *args: str, expect: int | None = 0, env: dict[str, str] | None = None,
           timeout: float = 180) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "controller.cli", *args], capture_output=True, text=True,
                          env={**rc.env, **(env or {})}, cwd=str(cwd), timeout=timeout)
    if expect is not None and proc.returncode != expect:
        raise AssertionError(f"reconcile {' '.join(args)} exited {proc.returncode}, expected {expect}\n"
                             f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


class Stream:
    """A long-running CLI process (get -w, events, logs -f) whose stdout lines are timestamped."""

    def __init__(self, rc: Harness, *args: str):
        self.proc = subprocess.Popen([sys.executable, "-m", "controller.cli", *args], env=rc.env,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.lines: list[tuple[float, str]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append((time.time(), line.rstrip("\n")))

    def seen(self, pattern: str, after: float = 0.0) -> float | None:
        rx = re.compile(pattern)
        return next((ts for ts, line in list(self.lines) if ts >= after and rx.search(line)), None)

    def until(self, pattern: str, timeout: float = 30.0, after: float = 0.0) -> float:
        ts: float = wait_for(lambda: self.seen(pattern, after), timeout, 0.05,
                             what=f"{pattern!r} in the output:\n" + "\n".join(line for _t, line in self.lines))
        return ts

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def web(rc: Harness, base: str, **spec: Any) -> dict[str, Any]:
    doc = rc.service(base, WEB_IMAGE, command=HTTPD, **spec)
    return doc


def labelled(doc: dict[str, Any], **labels: str) -> dict[str, Any]:
    doc["metadata"]["labels"] = labels
    return doc


def talker(rc: Harness, base: str, replicas: int = 1, **spec: Any) -> dict[str, Any]:
    """A service that prints a line at start and then one every 0.3 s."""
    return rc.service(base, BASE_IMAGE, replicas=replicas, command=[
        "sh", "-c", "echo hello-from-$HOSTNAME; i=0; while true; do i=$((i+1)); echo tick-$i; sleep 0.3; done"],
        **spec)


# -- get / ps ----------------------------------------------------------------------------
def test_get_outputs_selectors_and_ps_alias(rc: Harness) -> None:
    n = rc.name
    f = rc.write([labelled(web(rc, "front", ports=["127.0.0.1::80"]), app="shop", tier="front"),
                  labelled(web(rc, "back"), app="shop", tier="back"),
                  labelled(web(rc, "other"), app="blog")])
    rc.run("apply", "-f", f, "--wait")
    table = rc.run("get").stdout.splitlines()
    assert table[0].split() == ["NAME", "KIND", "STATE", "HEALTH", "RESTARTS", "AGE"]
    assert {line.split()[0] for line in table[1:]} == {n("front"), n("back"), n("other")}
    assert rc.run("ps").stdout.splitlines()[0] == table[0]

    wide = rc.run("get", "-o", "wide", n("front")).stdout.splitlines()
    assert wide[0].split()[6:] == ["REPLICAS", "GEN", "IMAGE", "PORTS", "CONTAINER", "REASON"]
    [row] = wide[1:]
    cid = rc.client.containers.get(rc.cname("front")).id[:12]
    assert WEB_IMAGE in row and cid in row and "127.0.0.1::80" in row and "Running" in row

    names = rc.run("get", "-o", "name", "-l", "app=shop").stdout.split()
    assert names == [f"service/{n('back')}", f"service/{n('front')}"]
    assert rc.run("get", "-o", "name", "-l", "app=shop,tier!=front").stdout.split() == [f"service/{n('back')}"]
    assert rc.run("get", "-o", "name", "-l", "!tier").stdout.split() == [f"service/{n('other')}"]

    rows = json.loads(rc.run("get", "-o", "json", "-l", "app=blog").stdout)
    assert [r["name"] for r in rows] == [n("other")] and rows[0]["labels"] == {"app": "blog"}
    assert rows[0]["containerId"] == rc.client.containers.get(rc.cname("other")).id[:12]
    docs = yaml.safe_load(rc.run("get", "-o", "yaml", n("back")).stdout)
    assert docs[0]["name"] == n("back") and docs[0]["state"] == "Running"

    bad = rc.run("get", "-l", "a b=c", expect=2)
    assert "-l/--selector" in bad.stderr
    assert "no resource named nope" in rc.run("get", "nope", expect=2).stderr


def test_get_watch_shows_a_state_change_within_1s(rc: Harness) -> None:
    n = rc.name
    f = rc.write([web(rc, "web", restartPolicy="never")])
    rc.run("apply", "-f", f, "--wait")
    watch = Stream(rc, "get", "-w")
    try:
        watch.until(rf"^{n('web')}\s+Service\s+Running")
        time.sleep(0.5)
        # engine-side change, no controller running: the watch's own observation records it
        target = rc.client.containers.get(rc.cname("web"))
        before = time.time()
        target.kill()
        killed = time.time()  # the kill call returns once the engine has killed it
        shown = watch.until(rf"^{n('web')}\s+Service\s+Exited", 15, after=before)
        # the 1 s plus slack for this shared, loaded host (the engine's event wakes the
        # watch; its own safety-net look is every second)
        assert shown - killed <= 1.0 + 1.5, f"shown {shown - killed:.2f}s after the kill"
        st = rc.rows()[n("web")]
        assert st["state"] == "Exited"
        # store-side change (another CLI): suspended
        before = time.time()
        rc.run("suspend", n("web"))
        done = time.time()
        shown = watch.until(rf"^{n('web')}\s+Service\s+Suspended", 15, after=before)
        assert shown - done <= 1.0 + 0.5, f"shown {shown - done:.2f}s after suspend returned"
    finally:
        watch.stop()


# -- events / history --follow -------------------------------------------------------------
def test_events_and_history_follow_stream_new_rows(rc: Harness) -> None:
    n = rc.name
    rc.instance  # noqa: B018 - the store exists
    ev = Stream(rc, "events")
    follow = Stream(rc, "history", "--follow", "--type", "Created", "-o", "json")
    try:
        time.sleep(2.0)
        rc.run("apply", "-f", rc.write([web(rc, "web")]))
        ev.until(rf"{n('web')}\s+Applied")
        ev.until(rf"{n('web')}\s+Created")
        ts = follow.until(r'"type": "Created"')
        row = json.loads(next(line for t, line in follow.lines if t == ts))
        assert row["service"] == n("web") and row["container_id"] == rc.client.containers.get(rc.cname("web")).id
        assert not follow.seen('"type": "Applied"'), "the --type filter applies to followed rows"
        # every row written meanwhile reached `events`, in order
        ids = [e["id"] for e in rc.events()]
        assert len([line for _t, line in ev.lines if n("web") in line]) == len(ids)
    finally:
        ev.stop()
        follow.stop()


# -- logs ------------------------------------------------------------------------------------
def test_logs_all_replicas_prefixed_tail_since_timestamps_follow(rc: Harness) -> None:
    n = rc.name
    rc.run("apply", "-f", rc.write([talker(rc, "talk", replicas=2)]), "--wait")
    wait_for(lambda: "tick-3" in rc.client.containers.get(rc.cname("talk", 2)).logs().decode(), 20, what="ticks")
    out = rc.run("logs", n("talk")).stdout.splitlines()
    for r in (1, 2):
        cname = rc.cname("talk", r)
        host = rc.client.containers.get(cname).attrs["Config"]["Hostname"]
        assert any(re.match(rf"^{cname}\s+\| hello-from-{host}$", line) for line in out), out
    tail = rc.run("logs", n("talk"), "--tail", "1").stdout.splitlines()
    assert len(tail) == 2 and all("| tick-" in line for line in tail), tail
    stamped = rc.run("logs", n("talk"), "--tail", "1", "--timestamps").stdout.splitlines()
    assert all(re.search(r"\| \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", line) for line in stamped), stamped
    assert rc.run("logs", n("talk"), "--since", "1s").stdout.count("hello-from") == 0
    follow = Stream(rc, "logs", "-f", "--tail", "0", n("talk"))
    try:
        start = time.time()
        follow.until(rf"^{rc.cname('talk', 1)}\s+\| tick-", 15, after=start)
        follow.until(rf"^{rc.cname('talk', 2)}\s+\| tick-", 15, after=start)
    finally:
        follow.stop()
    assert "no resource named nope" in rc.run("logs", "nope", expect=2).stderr


def test_logs_of_a_compose_project(rc: Harness) -> None:
    project = rc.name("proj")
    d = rc.tmp / "proj"
    d.mkdir()
    (d / "compose.yaml").write_text(yaml.safe_dump({"name": project, "services": {
        "a": {"image": BASE_IMAGE, "command": ["sh", "-c", "echo from-a; sleep 3600"],
              "labels": {TEST_LABEL: RUN_ID}},
        "b": {"image": BASE_IMAGE, "command": ["sh", "-c", "echo from-b; sleep 3600"],
              "labels": {TEST_LABEL: RUN_ID}}}}))
    run_in(rc, d, "up", "--timeout", "60s")
    rc.run("apply", "-f", rc.write([talker(rc, "outsider")]))
    wait_for(lambda: "from-b" in rc.client.containers.get(f"{project}-b-1").logs().decode(), 20, what="output")
    out = rc.run("logs", "-p", project).stdout
    assert re.search(rf"^{project}-a-1\s+\| from-a$", out, re.M) and re.search(rf"^{project}-b-1\s+\| from-b$", out, re.M)
    assert "hello-from" not in out and "tick-" not in out


# -- exec ------------------------------------------------------------------------------------
def test_exec_runs_in_the_replica_and_returns_its_exit_code(rc: Harness) -> None:
    n = rc.name
    rc.run("apply", "-f", rc.write([talker(rc, "box", replicas=2)]), "--wait")
    proc = rc.run("exec", n("box"), "--", "sh", "-c", "echo out-line; echo err-line >&2; exit 7", expect=7)
    assert proc.stdout == "out-line\n" and "err-line" in proc.stderr
    host2 = rc.client.containers.get(rc.cname("box", 2)).attrs["Config"]["Hostname"]
    assert rc.run("exec", n("box"), "--replica", "2", "--", "hostname").stdout.strip() == host2
    piped = rc.run("exec", "-i", n("box"), "--", "sh", "-c", "read x; echo got-$x", stdin="piped\n")
    assert piped.stdout.strip() == "got-piped"
    assert "no running container for replica 3" in rc.run("exec", n("box"), "--replica", "3", "--", "true",
                                                           expect=1).stderr


def test_exec_allocates_a_tty_when_interactive(rc: Harness) -> None:
    n = rc.name
    rc.run("apply", "-f", rc.write([talker(rc, "box")]), "--wait")
    master, slave = os.openpty()
    script = "tty -s && echo is-a-tty-$((6*7)); read x; echo got-$x; exit 3"
    proc = subprocess.Popen([sys.executable, "-m", "controller.cli", "exec", n("box"), "--", "sh", "-c", script],
                            stdin=slave, stdout=slave, stderr=slave, env=rc.env)
    os.close(slave)
    out = b""
    sent = False
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            if not sent and b"is-a-tty-42" in out:
                os.write(master, b"typed\r")  # a key press on a raw terminal
                sent = True
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            out += data
        assert proc.wait(30) == 3, out
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    assert b"got-typed" in out, out
    assert b"is-a-tty-42" in out, out


# -- up / down / delete --------------------------------------------------------------------
def test_up_finds_the_compose_file_and_down_removes_exactly_its_services(rc: Harness) -> None:
    project = rc.name("stack")
    d = rc.tmp / "stack"
    d.mkdir()
    (d / "compose.yaml").write_text(yaml.safe_dump({"name": project, "services": {
        "web": {"image": WEB_IMAGE, "command": HTTPD, "init": True, "labels": {TEST_LABEL: RUN_ID},
                "volumes": [f"data:/data"]},
        "worker": {"image": BASE_IMAGE, "command": ["sleep", "3600"], "labels": {TEST_LABEL: RUN_ID}}},
        "volumes": {"data": {}}}))
    up = run_in(rc, d, "up", "--timeout", "90s")
    assert "converged" in up.stdout
    for svc in ("web", "worker"):
        assert rc.client.containers.get(f"{project}-{svc}-1").status == "running"
    rc.run("apply", "-f", rc.write([web(rc, "keep")]), "--wait")
    volumes = [v.name for v in rc.client.volumes.list(filters={"label": f"io.reconcile.instance={rc.instance}"})]
    assert volumes, "the named volume exists"

    # down by project: exactly its services; the other service and the named volume stay
    out = rc.run("down", "-p", project).stdout
    assert f"deleted service/{project}-web" in out and f"deleted service/{project}-worker" in out
    assert {c.name for c in rc.containers()} == {rc.cname("keep")}
    assert set(rc.rows()) == {rc.name("keep")}
    assert [v.name for v in rc.client.volumes.list(filters={"label": f"io.reconcile.instance={rc.instance}"})] == volumes

    # up again, down -f FILE -v: the volume goes too
    run_in(rc, d, "up", "-q")
    run_in(rc, d, "down", "-f", "compose.yaml", "-v")
    assert {c.name for c in rc.containers()} == {rc.cname("keep")}
    assert rc.client.volumes.list(filters={"label": f"io.reconcile.instance={rc.instance}"}) == []
    assert "no input file" in run_in(rc, rc.tmp, "up", expect=2).stderr


def test_delete_several_by_name_file_selector_and_all(rc: Harness) -> None:
    n = rc.name
    docs = [labelled(web(rc, f"s{i}"), group="a" if i < 3 else "b") for i in range(5)]
    f = rc.write(docs)
    rc.run("apply", "-f", f)
    out = rc.run("delete", n("s0"), n("s1")).stdout
    assert f"deleted service/{n('s0')}" in out and f"deleted service/{n('s1')}" in out
    assert sorted(rc.rows()) == [n("s2"), n("s3"), n("s4")]
    assert rc.containers(n("s0")) == [] and rc.containers(n("s1")) == []
    rc.run("delete", "-l", "group=a")
    assert sorted(rc.rows()) == [n("s3"), n("s4")]
    rc.run("delete", "-f", rc.write([docs[3]], "one.yaml"))
    assert sorted(rc.rows()) == [n("s4")]
    proc = rc.run("delete", n("s4"), "nope", expect=2)
    assert "no resource named nope" in proc.stderr and rc.rows() == {}
    rc.run("apply", "-f", f)
    rc.run("delete", "--all", "--yes")
    assert rc.rows() == {} and rc.containers() == []
    assert rc.run("delete", expect=2).returncode == 2
    deleted = rc.events(None, "Deleted")
    assert len(deleted) == 10


# -- version, diff, describe, status/history -o, completion -------------------------------
def test_version_names_client_engine_and_store(rc: Harness) -> None:
    engine = rc.client.version()
    rc.instance  # noqa: B018 - a store at head
    text = rc.run("version").stdout
    assert re.search(r"^Client:\s+reconcile \d+\.\d+", text, re.M)
    assert f"Docker {engine['Version']}, API {engine['ApiVersion']}" in text
    from store.db import HEAD

    assert f"schema revision {HEAD}, at head" in text and rc.db in text
    assert rc.run("--version").stdout == text
    data = json.loads(rc.run("version", "-o", "json").stdout)
    assert data["engine"]["apiVersion"] == engine["ApiVersion"] and data["store"]["atHead"] is True


def test_diff_exit_codes(rc: Harness) -> None:
    f = rc.write([web(rc, "web")])
    assert rc.run("diff", "-f", f, expect=1).stdout.startswith(f"service/{rc.name('web')}: created")
    rc.run("apply", "-f", f)
    assert "no engine actions needed" in rc.run("diff", "-f", f, expect=0).stdout
    rc.client.containers.get(rc.cname("web")).remove(force=True)  # drift alone is a difference
    assert "create" in rc.run("diff", "-f", f, expect=1).stdout
    bad = rc.write("apiVersion: reconcile/v1alpha1\nkind: Service\nmetadata: {name: x}\nspec: {image: 3, nope: 1}\n",
                   "bad.yaml")
    assert "bad.yaml" in rc.run("diff", "-f", bad, expect=2).stderr
    assert rc.run("--db", "/proc/no/such/store.db", "diff", "-f", f, expect=3).returncode == 3


def test_describe_reads_like_kubectl(rc: Harness) -> None:
    n = rc.name
    rc.run("apply", "-f", rc.write([labelled(web(rc, "web", healthcheck=HEALTH), app="shop")]), "--wait")
    if engine_is_podman():  # no engine probes: `apply --wait` returned once the controller's probe made it healthy
        assert rc.health(rc.cname("web")) == "healthy"
    else:
        wait_for(lambda: (rc.client.api.inspect_container(rc.cname("web"))["State"].get("Health") or {}).get("Log"),
                 20, what="a health probe")
    text = rc.run("describe", n("web")).stdout
    assert re.search(rf"^Name:\s+{n('web')}$", text, re.M) and re.search(r"^Labels:\s+app=shop$", text, re.M)
    assert re.search(r"^State:\s+Running since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(\d+(\.\d)?s ago\)$", text, re.M), text
    assert re.search(r"^\s+interval: 1s$", text, re.M) and re.search(r"^\s+timeout: 2s$", text, re.M)
    assert "None" not in text and not re.search(r"\d{10}\.\d", text), text
    probe = text.split("Last probe:")[1]
    assert re.search(r"Exit code:\s+0", probe) and "ok" in probe.split("Events:")[0], text
    assert re.search(r"^\s+\S+ ago\s+Created\s+cli\s+container missing", text, re.M), text
    doc = yaml.safe_load(rc.run("describe", n("web"), "-o", "yaml").stdout)
    assert doc["status"]["state"] == "Running" and doc["lastProbe"]["exitCode"] == 0
    assert doc["lastProbe"]["checkedBy"] == ("controller" if engine_is_podman() else "engine")
    if engine_is_podman():
        assert re.search(r"^\s+Run by:\s+controller, ", probe, re.M), text
    assert json.loads(rc.run("describe", n("web"), "--json").stdout)["metadata"]["labels"] == {"app": "shop"}
    assert yaml.safe_load(rc.run("status", "-o", "yaml").stdout)[0]["name"] == n("web")
    hist = yaml.safe_load(rc.run("history", n("web"), "-o", "yaml").stdout)
    assert [e["type"] for e in hist][:2] == ["Applied", "Created"]


def test_completion_scripts_and_completions(rc: Harness) -> None:
    for shell in ("bash", "zsh", "fish"):
        assert "_RECONCILE_COMPLETE" in rc.run("completion", shell).stdout
    rc.run("apply", "-f", rc.write([web(rc, "alpha"), web(rc, "beta")]))
    env = {**rc.env, "_RECONCILE_COMPLETE": "bash_complete", "COMP_WORDS": "reconcile ge", "COMP_CWORD": "1"}
    verbs = subprocess.run([sys.executable, "-m", "controller.cli"], env=env, capture_output=True, text=True,
                           timeout=60).stdout
    assert "plain,get" in verbs.splitlines()
    env.update(COMP_WORDS=f"reconcile describe {rc.name('al')}", COMP_CWORD="2")
    names = subprocess.run([sys.executable, "-m", "controller.cli"], env=env, capture_output=True, text=True,
                           timeout=60).stdout.splitlines()
    assert names == [f"plain,{rc.name('alpha')}"]
    assert rc.run("completion", "tcsh", expect=2).returncode == 2


# -- choosing the engine ---------------------------------------------------------------------
def test_host_flag_and_docker_context_choose_the_engine(rc: Harness, tmp_path: Path) -> None:
    cfg = tmp_path / "docker-config"
    engine = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"  # the engine this run tests
    for name, host in (("cv-good", engine), ("cv-dead", f"unix://{tmp_path}/none.sock")):
        meta = cfg / "contexts" / "meta" / hashlib.sha256(name.encode()).hexdigest()
        meta.mkdir(parents=True)
        (meta / "meta.json").write_text(json.dumps({"Name": name, "Endpoints": {"docker": {"Host": host}}}))
    env = {"DOCKER_CONFIG": str(cfg)}
    env_no_host = {k: v for k, v in rc.env.items() if k != "DOCKER_HOST"}
    f = rc.write([web(rc, "web")])

    def run(*args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "controller.cli", *args], capture_output=True, text=True,
                              env={**env_no_host, **env}, timeout=120)
        assert proc.returncode == expect, (args, proc.stdout, proc.stderr)
        return proc

    dead = run("-H", f"unix://{tmp_path}/none.sock", "apply", "-f", f, expect=1)
    assert "Docker engine unavailable" in dead.stderr and rc.containers() == []
    assert "unavailable" in run("--context", "cv-dead", "version", expect=1).stdout
    run("--context", "cv-good", "apply", "-f", f)
    assert rc.client.containers.get(rc.cname("web")).status == "running"
    assert f"at {engine}" in run("-H", engine, "version").stdout
    unknown = run("--context", "nope", "apply", "-f", f, expect=1)
    assert "no docker context named 'nope'" in unknown.stderr
    # the current context of config.json applies when nothing else is given
    (cfg / "config.json").write_text(json.dumps({"currentContext": "cv-dead"}))
    assert "unavailable" in run("version", expect=1).stdout
    assert "Docker " in run("--context", "default", "version").stdout
