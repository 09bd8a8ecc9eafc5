"""Notifications against the real engine, with a test receiver on 127.0.0.1 (a random port)
and a real ``reconcile run``: a crash loop makes one "entered CrashLoopBackOff" and one
"gave up"; a flapping health check inside the damping window one message and a digest;
the receiver down 30 s then back gets every message, in order, none twice; messages a
SIGKILLed controller left undelivered are delivered by the next one; the HMAC signature
verifies; no secret in any message, audit row or log.

Asserts what the receiver got (headers and bodies), the audit rows and the containers.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import BASE_IMAGE, Harness, free_port, wait_for

pytestmark = pytest.mark.e2e

FAST = ("--resync-interval", "1s")
TOKEN = "T0K3N-e2e-notify-path"  # in the sink URL's path: a secret
HMAC_KEY = "hmac-e2e-notify-key"  # the webhook secret


class Receiver:
    """An HTTP receiver on 127.0.0.1 that keeps every request; it can go away and come
    back on the same port (connection refused meanwhile)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.got: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        got, lock = self.got, self._lock

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:
                    got.append({"path": self.path, "headers": dict(self.headers.items()), "raw": raw,
                                "body": json.loads(raw), "at": time.time()})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook/{TOKEN}"

    def bodies(self, service: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [g["body"] for g in self.got if service is None or g["body"]["service"] == service]


@pytest.fixture
def receiver() -> Any:
    r = Receiver()
    yield r
    r.stop()


def notifier(rc: Harness, rx: Receiver, **spec: Any) -> dict[str, Any]:
    url_file = rc.tmp / "hook-url"
    url_file.write_text(rx.url + "\n")
    body = {"sink": "webhook", "url": {"file": str(url_file)}, "secret": {"env": "E2E_NOTIFY_HMAC"},
            "retry": {"initial": "500ms", "max": "2s"}, "timeout": "3s", **spec}
    return {"apiVersion": "reconcile/v1alpha1", "kind": "Notifier", "metadata": {"name": rc.name("hook")},
            "spec": body}


def crasher(rc: Harness, base: str, attempts: int) -> dict[str, Any]:
    return rc.service(base, BASE_IMAGE, command=["sh", "-c", "sleep 0.3; exit 3"],
                      restartPolicy={"maxAttempts": attempts, "backoff": {"initial": "1s", "max": "2s"}})


def no_secret_anywhere(rc: Harness, rx: Receiver) -> None:
    texts = [g["raw"].decode() + json.dumps(g["headers"]) for g in rx.got]
    texts += [json.dumps(rc.events())] + [rc.daemon_log(i) for i in range(len(rc.procs))]
    texts.append(rc.run("get", "notifiers", "-o", "json").stdout)
    for t in texts:
        assert TOKEN not in t and HMAC_KEY not in t


def verified(g: dict[str, Any]) -> bool:
    expected = "sha256=" + hmac.new(HMAC_KEY.encode(), g["raw"], hashlib.sha256).hexdigest()
    return hmac.compare_digest(g["headers"].get("X-Reconcile-Signature", ""), expected)


@pytest.fixture(autouse=True)
def _hmac_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("E2E_NOTIFY_HMAC", HMAC_KEY)  # the daemons' environment (Harness.env)


def test_crash_loop_is_one_crashloop_message_and_one_gave_up(rc: Harness, receiver: Receiver) -> None:
    receiver.start()
    name = rc.name("crash")
    rc.start_daemon(*FAST)
    rc.run("apply", "-f", rc.write([notifier(rc, receiver), crasher(rc, "crash", 3)]))
    wait_for(lambda: any(b["event"] == "GaveUp" for b in receiver.bodies(name)), timeout=120,
             what="the gave-up message")  # a loaded engine restarts slowly
    assert [c.status for c in rc.containers(name)] == ["exited"]
    assert rc.events(name, "BackOff"), "it went through a crash loop"
    time.sleep(3)  # nothing more comes
    got = receiver.bodies(name)
    assert [b["event"] for b in got] == ["CrashLoopBackOff", "GaveUp"], got
    crash, gave_up = got
    assert crash["summary"] == f"{name}: entered CrashLoopBackOff" and gave_up["summary"] == f"{name}: gave up"
    assert gave_up["reason"] and gave_up["count"] == len(rc.events(name, "BackOff")) and gave_up["host"]
    assert all(verified(g) for g in receiver.got)
    assert all(g["headers"]["Idempotency-Key"] == g["body"]["idempotencyKey"] for g in receiver.got)
    assert {g["path"] for g in receiver.got} == {f"/hook/{TOKEN}"}
    assert len(rc.events(rc.name("hook"), "NotifyDelivered")) == 2

    test = rc.run("notify", "test", rc.name("hook"))
    assert "delivered" in test.stdout and receiver.bodies()[-1]["event"] == "Test"
    assert rc.run("notify", "test", rc.name("nope"), expect=2).returncode == 2
    [row] = json.loads(rc.run("get", "notifiers", "-o", "json").stdout)
    assert row["backlog"] == 0 and row["lastDeliveryAt"] and row["sink"].endswith("url from file " + str(rc.tmp / "hook-url"))
    no_secret_anywhere(rc, receiver)


FLAP = ("touch /tmp/ok; sleep 4; i=0; while [ $i -lt 3 ]; do rm -f /tmp/ok; sleep 3; touch /tmp/ok; sleep 3; "
        "i=$((i+1)); done; exec sleep 3600")


def test_a_flapping_health_check_is_one_message_and_a_digest(rc: Harness, receiver: Receiver) -> None:
    receiver.start()
    name = rc.name("flap")
    svc = rc.service("flap", BASE_IMAGE, command=["sh", "-c", FLAP], onUnhealthy="ignore",
                     healthcheck={"test": ["CMD", "test", "-f", "/tmp/ok"], "interval": "1s", "timeout": "2s",
                                  "retries": 1})
    rc.start_daemon(*FAST)
    rc.run("apply", "-f", rc.write([notifier(rc, receiver, damping={"window": "25s"},
                                             events=["Unhealthy", "Recovered"]), svc]))
    digest = wait_for(lambda: [b for b in receiver.bodies(name) if b["event"] == "Digest"], timeout=90,
                      what="the digest")
    changes = [e for e in rc.events(name, "HealthChanged") if "unhealthy" in e["reason"]]
    assert len(changes) >= 4, f"the health check flapped: {[e['reason'] for e in changes]}"
    got = receiver.bodies(name)
    assert [b["event"] for b in got] == ["Unhealthy", "Digest"], [b["summary"] for b in got]
    assert digest[0]["count"] >= 3 and {e["event"] for e in digest[0]["events"]} == {"Unhealthy", "Recovered"}
    assert rc.containers(name)[0].status == "running"  # onUnhealthy: ignore
    assert all(verified(g) for g in receiver.got)


def _keys(rx: Receiver) -> list[int]:
    return [int(b["idempotencyKey"].rsplit(":", 1)[1]) for b in rx.bodies()]


def test_receiver_down_30s_then_back_gets_everything_in_order_once(rc: Harness, receiver: Receiver) -> None:
    names = [rc.name(f"c{i}") for i in range(3)]
    rc.start_daemon(*FAST)
    rc.run("apply", "-f", rc.write([notifier(rc, receiver, events=["GaveUp", "CrashLoopBackOff"])]
                                   + [crasher(rc, f"c{i}", 2) for i in range(3)]))
    wait_for(lambda: all(rc.events(n, "GaveUp") for n in names), timeout=120, what="three services to give up")
    down_until = time.time() + 30
    failed = wait_for(lambda: rc.events(rc.name("hook"), "NotifyFailed"), timeout=20, what="a failed delivery")
    assert "connection refused" in failed[0]["reason"].lower() or "refused" in failed[0]["reason"].lower()
    [row] = json.loads(rc.run("get", "notifiers", "-o", "json").stdout)
    assert row["backlog"] >= 3 and row["lastError"] and row["lastDeliveryAt"] is None
    time.sleep(max(0.0, down_until - time.time()))
    assert len(rc.events(rc.name("hook"), "NotifyFailed")) <= 2, "failures are audited once per streak"
    receiver.start()
    # what the audit says each service went through: a crash loop (once however often it was
    # re-entered), then giving up
    want = {n: (["CrashLoopBackOff"] if rc.events(n, "BackOff") else []) + ["GaveUp"] for n in names}
    expected = sum(len(v) for v in want.values())
    wait_for(lambda: len(receiver.bodies()) >= expected, timeout=40,
             what=f"every message once the receiver is back: {want}")
    time.sleep(2)
    keys = _keys(receiver)
    assert keys == sorted(keys) and len(keys) == len(set(keys)) == expected, keys  # in order, none twice
    assert {n: [b["event"] for b in receiver.bodies(n)] for n in names} == want
    assert all(verified(g) for g in receiver.got)
    no_secret_anywhere(rc, receiver)


def test_sigkilled_controller_leaves_messages_the_next_one_delivers(rc: Harness, receiver: Receiver) -> None:
    name = rc.name("crash")
    first = rc.start_daemon(*FAST, "--lease-ttl", "60s")  # still live when the next one starts: taken over
    rc.run("apply", "-f", rc.write([notifier(rc, receiver, events=["GaveUp", "LeaseTakenOver"]),
                                    crasher(rc, "crash", 1)]))
    wait_for(lambda: rc.events(name, "GaveUp"), timeout=120, what="the service to give up")
    wait_for(lambda: rc.events(rc.name("hook"), "NotifyFailed"), timeout=20, what="an undelivered message")
    first.send_signal(signal.SIGKILL)
    assert first.wait(10) == -signal.SIGKILL
    assert receiver.bodies() == []
    receiver.start()
    second = rc.daemon(*FAST)
    rc.wait_leader(timeout=30)
    assert rc.events(None, "LeaseTakenOver"), "the dead holder's live lease was taken over"
    wait_for(lambda: {b["event"] for b in receiver.bodies()} >= {"GaveUp", "LeaseTakenOver"}, timeout=30,
             what="the left messages, delivered by the next controller")
    gave_up = [b for b in receiver.bodies() if b["event"] == "GaveUp"]
    assert len(gave_up) == 1 and gave_up[0]["service"] == name
    delivered = rc.events(rc.name("hook"), "NotifyDelivered")
    assert delivered and all(str(second.pid) not in e["reason"] for e in delivered)
    keys = _keys(receiver)
    assert keys == sorted(keys) and len(keys) == len(set(keys))
    assert all(verified(g) for g in receiver.got)
    no_secret_anywhere(rc, receiver)


def test_bad_notifier_is_refused_with_file_line_and_nothing_applied(rc: Harness, tmp_path: Path) -> None:
    f = rc.write("apiVersion: reconcile/v1alpha1\nkind: Notifier\nmetadata: {name: bad}\nspec:\n"
                 "  sink: webhook\n  events: [Nope]\n", "bad.yaml")
    proc = rc.run("apply", "-f", f, expect=2)
    assert "bad.yaml:6: spec.events[0]" in proc.stderr and "needs `url`" not in proc.stdout
    assert rc.run("get", "notifiers", "-o", "json").stdout.strip() == "[]"


def test_export_includes_notifiers_redacted_and_re_applies_unchanged(rc: Harness) -> None:
    f = rc.write("apiVersion: reconcile/v1alpha1\nkind: Notifier\nmetadata: {name: ops}\nspec:\n"
                 "  sink: webhook\n  url: https://hooks.example/T0K3N\n  secret: {file: /etc/hmac}\n"
                 "  events: [GaveUp]\n", "ops.yaml")
    rc.run("apply", "-f", f)
    shown = rc.run("export")
    assert "T0K3N" not in shown.stdout + shown.stderr
    assert "kind: Notifier" in shown.stdout and "ops: url" in shown.stderr and "/etc/hmac" in shown.stdout
    [doc] = [d for d in json.loads(rc.run("export", "--json", "--reveal-secrets").stdout) if d["kind"] == "Notifier"]
    assert doc["metadata"] == {"name": "ops"} and doc["spec"]["url"] == {"secret": "https://hooks.example/T0K3N"}
    back = rc.write(rc.run("export", "--reveal-secrets").stdout, "back.yaml")
    assert "1 unchanged" in rc.run("apply", "-f", back).stdout
