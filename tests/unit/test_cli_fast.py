"""controller.cli_fast and controller.versions: the fast ``--help``/``completion``/``version``
answers must be exactly what the click commands print, and step aside whenever they
cannot be (a changed verb, a narrow terminal, an unusual engine or store)."""

from __future__ import annotations

import importlib.metadata
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from controller import cli_fast, cli_help, versions
from store.location import HEAD

REPO = Path(__file__).resolve().parents[2]
REGENERATE = "run `python -m controller.cli_fast --write` and commit controller/cli_help.py"


def test_the_committed_snapshot_is_current() -> None:
    assert cli_help.FINGERPRINT == cli_fast.fingerprint(), f"the CLI changed since the help snapshot: {REGENERATE}"
    assert (REPO / "controller" / "cli_help.py").read_text() == cli_fast.snapshot_source(), REGENERATE


def test_the_snapshot_has_every_verb() -> None:
    paths = set(cli_fast.snapshot_paths())
    assert set(cli_help.HELP) == paths
    assert {(), ("status",), ("db",), ("db", "upgrade"), ("ps",), ("version",), ("completion",)} <= paths
    assert set(cli_help.COMPLETION) == {("bash",), ("zsh",), ("fish",)}


@pytest.mark.parametrize("path", cli_fast.snapshot_paths(), ids=lambda p: " ".join(p) or "(root)")
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_fast_help_is_the_real_help(path: tuple[str, ...], flag: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    real, code = cli_fast.real_output([*path, "--help"])
    assert code == 0
    assert cli_fast.answer([*path, flag]) == (real, 0)


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_fast_completion_is_the_real_script(shell: str) -> None:
    real, code = cli_fast.real_output(["completion", shell])
    assert code == 0 and "_RECONCILE_COMPLETE" in real
    assert cli_fast.answer(["completion", shell]) == (real, 0)


def _full(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    """The CLI through click itself in a fresh process (not the fast path)."""
    return subprocess.run([sys.executable, "-c", "from controller.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=60, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO), **env})


def _entry(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m controller.cli``: the console entry point's path."""
    return subprocess.run([sys.executable, "-m", "controller.cli", *args], capture_output=True, text=True,
                          timeout=60, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), **env})


@pytest.mark.parametrize("args", [["--help"], ["status", "--help"], ["db", "backup", "-h"], ["completion", "fish"]])
@pytest.mark.parametrize("columns", ["80", "200", "60"])
def test_the_entry_point_prints_what_click_prints(args: list[str], columns: str) -> None:
    fast, full = _entry(args, COLUMNS=columns), _full(args, COLUMNS=columns)
    assert (fast.stdout, fast.stderr, fast.returncode) == (full.stdout, full.stderr, full.returncode)
    assert fast.returncode == 0 and fast.stdout


def test_a_narrow_terminal_gets_click_not_the_snapshot(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "79")
    assert cli_fast.answer(["--help"]) is None
    assert cli_fast.answer(["completion", "bash"]) is not None  # no width in a script


def test_a_stale_snapshot_steps_aside(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    assert cli_fast.answer(["--help"]) is not None
    monkeypatch.setattr(cli_help, "FINGERPRINT", "00000000")
    assert cli_fast.answer(["--help"]) is None
    assert cli_fast.answer(["completion", "zsh"]) is None


@pytest.mark.parametrize("argv", [[], ["status"], ["--db", "x", "--help"], ["status", "-o", "json", "--help"],
                                  ["nope", "--help"], ["completion"], ["completion", "tcsh"], ["version", "-o", "yaml"],
                                  ["--log-json", "version"]])
def test_what_is_not_a_fast_case_goes_to_click(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.setattr(versions, "engine_version", lambda *_a, **_k: pytest.fail("asked the engine"))
    assert cli_fast.answer(argv) is None


def test_shell_completion_requests_go_to_click(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("_RECONCILE_COMPLETE", "bash_complete")
    assert cli_fast.answer(["--help"]) is None


@pytest.mark.parametrize("name", ["reconcile", "click", "pydantic", "SQLAlchemy", "sqlalchemy", "PyYAML"])
def test_dist_version_is_importlib_metadata_s(name: str) -> None:
    assert versions.dist_version(name) == importlib.metadata.version(name)


def test_dist_version_of_a_missing_distribution() -> None:
    assert versions.dist_version("no-such-distribution-here") is None


def test_client_version() -> None:
    assert versions.client_version() == importlib.metadata.version("reconcile")


@pytest.mark.parametrize(
    ("host", "env", "expected"),
    [
        (None, {}, ("/var/run/docker.sock", "default")),
        (None, {"DOCKER_HOST": "unix:///run/x/docker.sock"}, ("/run/x/docker.sock", "unix:///run/x/docker.sock")),
        (None, {"DOCKER_HOST": "http+unix:///run/d.sock"}, ("/run/d.sock", "http+unix:///run/d.sock")),
        ("unix:///tmp/h.sock", {"DOCKER_HOST": "unix:///run/x.sock"}, ("/tmp/h.sock", "unix:///tmp/h.sock")),
        (None, {"DOCKER_HOST": "tcp://127.0.0.1:2375"}, None),
        ("ssh://me@box", {}, None),
        (None, {"DOCKER_HOST": "unix://relative.sock"}, None),
        (None, {"DOCKER_TLS_VERIFY": "1"}, None),
        (None, {"DOCKER_CERT_PATH": "/certs"}, None),
        (None, {"RECONCILE_ENGINE_TIMEOUTS": "read=5"}, None),
        (None, {"DOCKER_CONTEXT": "no-such-context"}, None),
    ],
)
def test_engine_socket(host: str | None, env: dict[str, str], expected: tuple[str, str] | None,
                       tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))  # no current context
    assert versions.engine_socket(host, None, env) == expected


def test_engine_socket_of_a_docker_context(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    meta = tmp_path / "contexts" / "meta" / hashlib.sha256(b"box").hexdigest()
    meta.mkdir(parents=True)
    (meta / "meta.json").write_text(json.dumps({"Name": "box", "Endpoints": {"docker": {"Host": "unix:///b.sock"}}}))
    (tmp_path / "config.json").write_text(json.dumps({"currentContext": "box"}))
    assert versions.engine_socket(None, None, {}) == ("/b.sock", "unix:///b.sock")
    assert versions.engine_socket(None, None, {"DOCKER_HOST": "unix:///h.sock"}) == ("/h.sock", "unix:///h.sock")


def test_store_info(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    assert versions.store_info(str(path)) == {"url": f"sqlite:///{path}", "schemaRevision": None, "head": HEAD,
                                              "atHead": False, "exists": False}
    assert not path.exists()  # asking does not create it
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE other (x)")
    con.commit()
    assert versions.store_info(str(path))["schemaRevision"] is None  # type: ignore[index]
    con.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
    con.execute("INSERT INTO alembic_version VALUES (?)", (HEAD,))
    con.commit()
    con.close()
    assert versions.store_info(str(path)) == {"url": f"sqlite:///{path}", "schemaRevision": HEAD, "head": HEAD,
                                              "atHead": True}
    assert versions.store_info(f"sqlite:///{path}?timeout=3") is None  # SQLAlchemy's URL: the store decides
    assert versions.store_info("postgresql://u@h/db") is None


def _serve_once(sock_path: str, response: bytes, connections: int = 1) -> Any:
    """A fake engine on a unix socket: answers ``connections`` requests (waits at most 60 s
    for each: a CLI subprocess on a busy host can take more than 10 s to connect)."""
    import socket
    import threading

    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(sock_path)
    srv.listen(4)
    srv.settimeout(60)

    def run() -> None:
        try:
            for _ in range(connections):
                conn, _ = srv.accept()
                with conn:
                    conn.recv(65536)
                    conn.sendall(response)
        except OSError:
            pass
        finally:
            srv.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


VERSION = {"Version": "20.10.24", "ApiVersion": "1.41", "MinAPIVersion": "1.12", "Os": "linux", "Arch": "amd64"}


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + json.dumps(VERSION).encode(), VERSION),
        (b"HTTP/1.0 500 Internal Server Error\r\n\r\n{}", None),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{}", None),
        (b"HTTP/1.0 200 OK\r\n\r\nnot json", None),
        (b"HTTP/1.0 200 OK\r\n\r\n" + json.dumps({**VERSION, "ApiVersion": "1.23"}).encode(), None),  # below the SDK's floor
        (b"garbage", None),
    ],
)
def test_engine_version(response: bytes, expected: dict[str, Any] | None, tmp_path: Path) -> None:
    sock = str(tmp_path / "d.sock")
    t = _serve_once(sock, response)
    assert versions.engine_version(sock, timeout=5) == expected
    t.join(5)


def test_engine_version_with_no_engine(tmp_path: Path) -> None:
    assert versions.engine_version(str(tmp_path / "none.sock"), timeout=1) is None


@pytest.mark.parametrize(
    ("store", "line"),
    [
        ({"url": "sqlite:////s.db", "schemaRevision": HEAD, "head": HEAD, "atHead": True},
         f"Store:   sqlite:////s.db, schema revision {HEAD}, at head"),
        ({"url": "sqlite:////s.db", "schemaRevision": None, "head": HEAD, "atHead": False, "exists": False},
         f"Store:   sqlite:////s.db, schema revision none, not created yet (created at head {HEAD} on first use)"),
        ({"url": "u", "schemaRevision": "0001", "head": HEAD, "atHead": False},
         f"Store:   u, schema revision 0001, behind head {HEAD} (`reconcile db upgrade`, or any write upgrades it)"),
        ({"error": "boom"}, "Store:   unavailable: boom"),
    ],
)
def test_version_text(store: dict[str, Any], line: str) -> None:
    data = {"client": {"version": "0.1.0", "python": "3.11.7"},
            "engine": versions.engine_record("default", VERSION), "store": store}
    assert versions.version_text(data) == [
        "Client:  reconcile 0.1.0 (Python 3.11.7)",
        "Engine:  Docker 20.10.24, API 1.41 (min 1.12), linux/amd64 at default", line]
    assert versions.version_text({**data, "engine": {"error": "down"}})[1] == "Engine:  unavailable: down"


def test_fast_version_against_a_fake_engine_is_the_verb_s(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast ``version`` and the click verb, on the same (fake) engine and store."""
    sock = str(tmp_path / "d.sock")
    db = str(tmp_path / "s.db")
    payload = json.dumps(VERSION).encode()
    body = (b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n" % len(payload)) + payload
    env = {"DOCKER_HOST": f"unix://{sock}", "RECONCILE_DB": db, "DOCKER_CONFIG": str(tmp_path)}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    for argv in (["version"], ["--version"], ["version", "-o", "json"]):
        t = _serve_once(sock, body)
        fast = cli_fast.answer(argv)
        t.join(60)
        os.unlink(sock)
        assert fast is not None
        t = _serve_once(sock, body, connections=2)  # the SDK asks twice (negotiation, then the call)
        full = _full(argv, **env)
        t.join(60)
        os.unlink(sock)
        assert full.returncode == 0, full.stderr
        assert fast == (full.stdout, 0)
        assert "20.10.24" in fast[0]
