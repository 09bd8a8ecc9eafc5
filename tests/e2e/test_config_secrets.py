"""Referenced files and secrets end to end (issue 5), against the real engine.

- Config-change detection with ``reconcile run --resync-interval 1s``: editing a
  bind-mounted config file or an ``envFiles`` file on the host rolls exactly the service
  that references it within about one resync (recreated, audited with the file's path),
  ``onConfigChange: restart`` restarts in place, ``onConfigChange: ignore`` does nothing.
- Secrets (``valueFrom: {file}``, ``valueFrom: {env}``, ``envFiles``, compose
  ``secrets:`` and ``env_file:``) reach the container, and no value is ever shown: not in
  the daemon's log (DEBUG), ``history``, ``status``, ``describe``, ``diff``, ``convert``,
  ``apply`` output, nor in the store. Changing one rolls the service; the audit names the
  file, never the value. The store file is created owner-only (0600).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
import yaml

from tests.e2e.conftest import BASE_IMAGE, RUN_ID, TEST_LABEL, WORKER_IMAGE, Harness, wait_for
from tests.e2e.test_compose_e2e import engine_pid, must, retry_engine, wait_engine

pytestmark = pytest.mark.e2e

FAST = ("--resync-interval", "1s")
ROLL_WITHIN = 10.0  # "within about one resync": generous for a loaded host, far below a second resync cycle of 5 s


# ---------------------------------------------------------------------------- helpers
def start_daemon(rc: Harness, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """``rc.start_daemon`` with extra environment (e.g. RECONCILE_LOG_LEVEL=DEBUG, which
    the harness pins to INFO); same log file naming, so ``rc.daemon_log`` and the
    harness's cleanup work as usual."""
    rc.instance  # noqa: B018 - the store exists and is migrated before the daemon opens it
    index = len(rc.procs)
    log = open(rc.tmp / f"daemon-{index}.log", "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen([sys.executable, "-m", "controller.cli", "run", *args], env={**rc.env, **(env or {})},
                            stdout=log, stderr=subprocess.STDOUT, text=True)
    rc.procs.append(proc)
    rc.wait_leader(index)
    return proc


def state(rc: Harness, container: str) -> dict[str, Any] | None:
    """Id, running flag and StartedAt of a container, or None while it does not exist
    under that name (a recreate renames the old one aside first)."""
    try:
        info = retry_engine(rc.client, lambda: rc.inspect(container))
    except docker.errors.NotFound:
        return None
    return {"id": info["Id"], "running": info["State"]["Running"], "started": info["State"]["StartedAt"]}


def running(rc: Harness, container: str) -> dict[str, Any]:
    now = state(rc, container)
    assert now is not None and now["running"], f"{container} is not running: {now}"
    return now


class Engine:
    """Whether dockerd was restarted (by another test) since this object was made: such a
    restart stops every container, and the daemon starts them again (same ids, new
    StartedAt, extra Restarted rows), which is not what these tests are about."""

    def __init__(self) -> None:
        self.pid = engine_pid()

    @property
    def restarted(self) -> bool:
        return engine_pid() != self.pid


def untouched(now: dict[str, Any] | None, before: dict[str, Any] | None, engine: Engine) -> bool:
    """The same container, not restarted either (unless the engine itself was)."""
    return bool(now and before and now["id"] == before["id"] and now["running"]
                and (now["started"] == before["started"] or engine.restarted))


class Env(dict[str, str]):
    """A container's environment as its processes see it (``env`` inside it); a missing
    key says what the engine was told at create time, to tell the two apart."""

    def __init__(self, rc: Harness, container: str):
        self.container = container
        code, output = retry_engine(rc.client, lambda: rc.client.containers.get(container).exec_run(["env"]))
        assert code == 0, f"env in {container} exited {code}: {output!r}"
        super().__init__(line.split("=", 1) for line in output.decode().splitlines() if "=" in line)
        self.created_with = retry_engine(rc.client, lambda: rc.inspect(container))["Config"]["Env"]

    def __missing__(self, key: str) -> str:
        raise AssertionError(f"{key} is not in the environment of {self.container}: {sorted(self)}; "
                             f"the container was created with {self.created_with}")


def container_env(rc: Harness, container: str) -> Env:
    return Env(rc, container)


def cat(rc: Harness, container: str, path: str) -> str:
    code, output = retry_engine(rc.client, lambda: rc.client.containers.get(container).exec_run(["cat", path]))
    assert code == 0, f"cat {path} in {container}: {output!r}"
    return output.decode()


def within(rc: Harness, seconds: float, pred: Any, what: str) -> float:
    """Wait for ``pred`` at most ``seconds``; returns how long it took. If the engine was
    restarted meanwhile (another test), the clock starts again once it answers (once)."""
    pid, started = engine_pid(), time.monotonic()
    deadline = started + seconds
    extended = False
    while True:
        if pred():
            return time.monotonic() - started
        if time.monotonic() > deadline:
            if not extended and pid != engine_pid():
                wait_engine(rc.client)
                deadline, extended = time.monotonic() + seconds + 20, True
                continue
            pytest.fail(f"not within {seconds:.0f}s: {what}")
        time.sleep(0.2)


def audited(rc: Harness, service: str, etype: str, count: int = 1) -> list[dict[str, Any]]:
    """The service's ``etype`` rows once there are ``count`` (the row is written when the
    action is complete, a moment after the new container runs)."""
    def rows() -> list[dict[str, Any]] | None:
        found = rc.events(service, etype)
        return found if len(found) >= count else None

    return wait_for(rows, 15, 0.2, f"{count} {etype} row(s) for {service}")


def recreated(rc: Harness, container: str, old_id: str) -> bool:
    now = state(rc, container)
    return bool(now and now["running"] and now["id"] != old_id)


# ---------------------------------------------------------------------------- config-change detection
HTTPD_CONF = "# proxy rules, revision {rev}\nA:127.0.0.1\nA:172.16.0.0/12\n.html:text/html\n"


def _proxy_stack(rc: Harness, root: Path, on_config_change: str | None = None) -> str:
    (root / "site").mkdir(parents=True, exist_ok=True)
    (root / "site" / "index.html").write_text("<h1>hello</h1>\n")
    (root / "site" / "health").write_text("ok\n")
    (root / "proxy.conf").write_text(HTTPD_CONF.format(rev=1))
    (root / "app.env").write_text("# app settings\nMODE=one\nFEATURE_X=on\n")
    proxy = rc.service("proxy", BASE_IMAGE, init=True,
                       command=["httpd", "-f", "-p", "8080", "-h", "/www", "-c", "/etc/httpd.conf"],
                       volumes=["./site:/www:ro", "./proxy.conf:/etc/httpd.conf:ro"],
                       healthcheck={"test": ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/health"],
                                    "interval": "1s", "timeout": "2s", "retries": 3})
    app = rc.service("app", WORKER_IMAGE, envFiles=["./app.env"], env={"APP_NAME": "shop"})
    worker = rc.service("worker", WORKER_IMAGE, env={"QUEUE": "default"})
    if on_config_change:
        for doc in (proxy, app):
            doc["spec"]["onConfigChange"] = on_config_change
    return rc.write([proxy, app, worker], str(root.relative_to(rc.tmp) / "stack.yaml"))


def test_edited_bind_mount_or_env_file_recreates_exactly_that_service(rc: Harness) -> None:
    root = rc.tmp / "stack"
    stack = _proxy_stack(rc, root)
    must(rc, "apply", "-f", stack, "--wait", "--timeout", "90s")
    names = {base: rc.cname(base) for base in ("proxy", "app", "worker")}
    services = {base: rc.name(base) for base in names}
    before = {base: running(rc, c) for base, c in names.items()}
    assert container_env(rc, names["app"])["MODE"] == "one"
    engine = Engine()
    start_daemon(rc, *FAST)
    time.sleep(2)  # a couple of quiet resyncs first: nothing may change by itself
    assert all(untouched(state(rc, c), before[b], engine) for b, c in names.items()), "nothing changed yet"

    # the bind-mounted config file
    conf = str(root / "proxy.conf")
    (root / "proxy.conf").write_text(HTTPD_CONF.format(rev=2))
    took = within(rc, ROLL_WITHIN, lambda: recreated(rc, names["proxy"], before["proxy"]["id"]),
                  "the proxy recreated after its config file changed")
    print(f"proxy recreated {took:.1f}s after its config file changed")
    rows = audited(rc, services["proxy"], "Recreated")
    assert len(rows) == 1 and conf in rows[0]["reason"], rows
    assert "revision 2" in cat(rc, names["proxy"], "/etc/httpd.conf")
    for base in ("app", "worker"):
        assert untouched(state(rc, names[base]), before[base], engine), f"{base} must be left alone"
        assert rc.events(services[base], "Recreated") == []

    # the env file
    proxy_now = running(rc, names["proxy"])
    env_file = str(root / "app.env")
    (root / "app.env").write_text("# app settings\nMODE=two\nFEATURE_X=on\n")
    took = within(rc, ROLL_WITHIN, lambda: recreated(rc, names["app"], before["app"]["id"]),
                  "the app recreated after its env file changed")
    print(f"app recreated {took:.1f}s after its env file changed")
    rows = audited(rc, services["app"], "Recreated")
    assert len(rows) == 1 and env_file in rows[0]["reason"] and conf not in rows[0]["reason"], rows
    assert container_env(rc, names["app"])["MODE"] == "two"
    assert untouched(state(rc, names["proxy"]), proxy_now, engine)
    assert untouched(state(rc, names["worker"]), before["worker"], engine)

    # settled: no further rolls without further edits, and the CLI's audit agrees
    time.sleep(3)
    history = rc.history()
    assert [(e["service"], e["type"]) for e in history if e["type"] == "Recreated"] == [
        (services["proxy"], "Recreated"), (services["app"], "Recreated")]
    if not engine.restarted:
        assert [e for e in history if e["type"] == "Restarted"] == []
    status = rc.status()
    assert all(status[services[b]]["state"] == "Running" for b in names), status


def test_on_config_change_restart_restarts_in_place_and_ignore_does_nothing(rc: Harness) -> None:
    root = rc.tmp / "stack"
    (root / "site").mkdir(parents=True)
    (root / "site" / "health").write_text("ok\n")
    (root / "restart.conf").write_text(HTTPD_CONF.format(rev=1))
    (root / "ignore.conf").write_text(HTTPD_CONF.format(rev=1))
    (root / "ignore.env").write_text("LEVEL=1\n")
    httpd = ["httpd", "-f", "-p", "8080", "-h", "/www", "-c", "/etc/httpd.conf"]
    stack = rc.write([
        rc.service("restarter", BASE_IMAGE, init=True, command=httpd, onConfigChange="restart",
                   volumes=["./site:/www:ro", "./restart.conf:/etc/httpd.conf:ro"]),
        rc.service("ignorer", BASE_IMAGE, init=True, command=httpd, onConfigChange="ignore",
                   volumes=["./site:/www:ro", "./ignore.conf:/etc/httpd.conf:ro"], envFiles=["./ignore.env"]),
    ], "stack/stack.yaml")
    must(rc, "apply", "-f", stack, "--wait", "--timeout", "90s")
    restarter, ignorer = rc.cname("restarter"), rc.cname("ignorer")
    before = {c: running(rc, c) for c in (restarter, ignorer)}
    engine = Engine()
    start_daemon(rc, *FAST)
    time.sleep(2)
    assert all(untouched(state(rc, c), before[c], engine) for c in before), "nothing changed yet"

    conf = str(root / "restart.conf")
    (root / "restart.conf").write_text(HTTPD_CONF.format(rev=2))
    (root / "ignore.conf").write_text(HTTPD_CONF.format(rev=2))
    (root / "ignore.env").write_text("LEVEL=2\n")

    def naming(rows: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
        return [r for r in rows if text in r["reason"]]

    def restarted() -> bool:
        now = state(rc, restarter)
        return bool(now and now["running"] and now["started"] != before[restarter]["started"]
                    and naming(rc.events(rc.name("restarter"), "Restarted"), conf))

    within(rc, ROLL_WITHIN, restarted, "the restarter restarted after its config file changed")
    now = state(rc, restarter)
    assert now is not None and now["id"] == before[restarter]["id"], "restarted in place, not recreated"
    rows = rc.events(rc.name("restarter"), "Restarted")
    assert len(naming(rows, conf)) == 1 and "onConfigChange: restart" in naming(rows, conf)[0]["reason"], rows
    assert engine.restarted or len(rows) == 1, rows
    assert rc.events(rc.name("restarter"), "Recreated") == []
    assert "revision 2" in cat(rc, restarter, "/etc/httpd.conf"), "a bind-mounted file is seen live"

    time.sleep(4)  # several resyncs: the restart must not repeat, the ignorer must stay as it is
    assert len(naming(rc.events(rc.name("restarter"), "Restarted"), conf)) == 1, "restarted once, not every pass"
    assert rc.events(rc.name("ignorer"), "Recreated") == []
    ignorer_rows = rc.events(rc.name("ignorer"), "Restarted")
    assert engine.restarted or ignorer_rows == [], ignorer_rows
    assert naming(ignorer_rows, "ignore.") == [], ignorer_rows
    assert untouched(state(rc, ignorer), before[ignorer], engine)
    assert container_env(rc, ignorer)["LEVEL"] == "1", "ignore: the container keeps the old env"
    status = rc.status()
    assert status[rc.name("restarter")]["state"] == status[rc.name("ignorer")]["state"] == "Running", status


# ---------------------------------------------------------------------------- secrets
def _secret(kind: str) -> str:
    return f"s3cr3t-{kind}-{uuid.uuid4()}"


def _write_secrets(root: Path, values: dict[str, str]) -> None:
    (root / "secret.txt").write_text(values["file"] + "\n")
    (root / "app.env").write_text(f"# credentials\nDB_USER=app\nDB_PASSWORD={values['envfile']}\n")
    (root / "secrets").mkdir(exist_ok=True)
    (root / "secrets" / "api_key.txt").write_text(values["compose_secret"])
    (root / "compose.env").write_text(f"SMTP_PASSWORD='{values['compose_envfile']}'\n")


def _write_secret_stacks(rc: Harness, root: Path, var: str) -> tuple[str, str, str]:
    native = rc.service("app", WORKER_IMAGE, env={
        "PLAIN": "visible",
        "FILE_SECRET": {"valueFrom": {"file": "./secret.txt"}},
        "ENV_SECRET": {"valueFrom": {"env": var}},
    }, envFiles=["./app.env"])
    project = rc.name("vault")
    compose = {
        "name": project,
        "services": {"api": {
            "image": WORKER_IMAGE,
            "environment": {"API_KEY_FILE": "/run/secrets/api_key"},
            "env_file": ["./compose.env"],
            "secrets": ["api_key"],
            "labels": {TEST_LABEL: RUN_ID},
        }},
        "secrets": {"api_key": {"file": "./secrets/api_key.txt"}},
    }
    (root / "docker-compose.yml").write_text(yaml.safe_dump(compose, sort_keys=False))
    return (rc.write([native], str((root / "stack.yaml").relative_to(rc.tmp))), str(root / "docker-compose.yml"),
            f"{project}-api")


def _leaks(texts: dict[str, str], values: list[str]) -> list[str]:
    return [f"{where} shows {value}" for where, text in texts.items() for value in values if value in text]


def _outputs(rc: Harness, files: list[str], names: list[str]) -> dict[str, str]:
    """Everything the CLI shows about the stack (stdout and stderr)."""
    def both(proc: subprocess.CompletedProcess[str]) -> str:
        return proc.stdout + proc.stderr

    out = {"history --json": both(must(rc, "history", "--json")), "history": both(must(rc, "history")),
           "status --json": both(must(rc, "status", "--json")), "status": both(must(rc, "status")),
           "convert": both(must(rc, "convert", *files))}
    for name in names:
        out[f"describe {name}"] = both(must(rc, "describe", name))
        out[f"describe {name} --json"] = both(must(rc, "describe", name, "--json"))
    return out


def _store_bytes(db: str) -> str:
    return "".join(Path(db + s).read_bytes().decode("latin-1") for s in ("", "-wal") if Path(db + s).exists())


def test_secrets_are_delivered_and_never_shown(rc: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    root = rc.tmp / "vault"
    root.mkdir()
    var = f"RECONCILE_E2E_SECRET_{uuid.uuid4().hex[:8].upper()}"
    old = {k: _secret(k) for k in ("file", "env", "envfile", "compose_secret", "compose_envfile")}
    new = {k: _secret(k) for k in old}
    values = [*old.values(), *new.values()]
    _write_secrets(root, old)
    monkeypatch.setenv(var, old["env"])  # the CLI's environment (rc.env copies os.environ)
    stack, compose, api = _write_secret_stacks(rc, root, var)
    files = ["-f", stack, "-f", compose]
    app = rc.cname("app")
    names = [rc.name("app"), api]

    # the first command creates the store, owner-only
    assert not os.path.exists(rc.db)
    applied = must(rc, "--log-level", "DEBUG", "apply", *files, "--wait", "--timeout", "90s")
    assert stat.S_IMODE(os.stat(rc.db).st_mode) == 0o600, oct(os.stat(rc.db).st_mode)
    texts = {"apply": applied.stdout + applied.stderr}

    # delivered
    env = container_env(rc, app)
    assert (env["FILE_SECRET"], env["ENV_SECRET"], env["DB_PASSWORD"], env["PLAIN"]) == (
        old["file"], old["env"], old["envfile"], "visible")
    assert cat(rc, f"{api}-1", "/run/secrets/api_key") == old["compose_secret"]
    assert container_env(rc, f"{api}-1")["SMTP_PASSWORD"] == old["compose_envfile"]
    ids = {c: running(rc, c)["id"] for c in (app, f"{api}-1")}

    # the secrets change: diff shows the plan (with file names) but no value
    _write_secrets(root, new)
    monkeypatch.setenv(var, new["env"])
    diff = must(rc, "--log-level", "DEBUG", "diff", *files, expect=1)  # 1: differences
    texts["diff"] = diff.stdout + diff.stderr
    assert f"recreate {rc.name('app')}#1" in diff.stdout and f"recreate {api}#1" in diff.stdout, diff.stdout
    assert str(root / "secret.txt") in diff.stdout and str(root / "secrets" / "api_key.txt") in diff.stdout
    diff_json = must(rc, "diff", *files, "--json", expect=1)
    texts["diff --json"] = diff_json.stdout + diff_json.stderr
    assert {a["service"] for a in json.loads(diff_json.stdout)["actions"]} == set(names)

    # the daemon (DEBUG, with the new value of the variable) rolls both services
    start_daemon(rc, *FAST, env={"RECONCILE_LOG_LEVEL": "DEBUG"})
    within(rc, 2 * ROLL_WITHIN, lambda: recreated(rc, app, ids[app]) and recreated(rc, f"{api}-1", ids[f"{api}-1"]),
           "both services recreated after their secrets changed")
    env = container_env(rc, app)
    assert (env["FILE_SECRET"], env["ENV_SECRET"], env["DB_PASSWORD"]) == (new["file"], new["env"], new["envfile"])
    assert cat(rc, f"{api}-1", "/run/secrets/api_key") == new["compose_secret"]
    assert container_env(rc, f"{api}-1")["SMTP_PASSWORD"] == new["compose_envfile"]

    # the audit names the files, not the values
    audited(rc, rc.name("app"), "Recreated")
    audited(rc, api, "Recreated")
    app_rows = rc.history(rc.name("app"), "Recreated")
    assert len(app_rows) == 1, app_rows
    assert str(root / "secret.txt") in app_rows[0]["reason"] and str(root / "app.env") in app_rows[0]["reason"]
    api_rows = rc.history(api, "Recreated")
    assert len(api_rows) == 1 and str(root / "secrets" / "api_key.txt") in api_rows[0]["reason"], api_rows

    # nothing shows a value: CLI output, the daemon's DEBUG log, the store
    texts.update(_outputs(rc, files, names))
    texts["daemon log (DEBUG)"] = rc.daemon_log()
    assert "DEBUG" in texts["daemon log (DEBUG)"], "the daemon ran at DEBUG"
    texts["store"] = _store_bytes(rc.db)
    assert _leaks(texts, values) == []
    # and the checks above looked at real output
    assert str(root / "secret.txt") in texts["describe " + rc.name("app")]
    assert "valueFrom" in texts["convert"] and str(root / "app.env") in texts["convert"]
