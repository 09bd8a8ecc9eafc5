"""The sinks over loopback (a receiver on 127.0.0.1, a random port) and a real command:
what each sends, the HMAC signature, the idempotency key, errors without secrets."""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from controller import notify_rules as rules
from controller import notify_sinks as sinks
from store.records import Notice

BODY = rules.message(Notice(ts=0.0, service="web", event="GaveUp", reason="3 restarts", id=1),
                     notifier="ops", host="h1", key="ops:1", count=1)


class Got:
    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.status = 200


@pytest.fixture
def receiver() -> Iterator[tuple[str, Got]]:
    got = Got()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            got.requests.append((self.path, dict(self.headers.items()), data))
            self.send_response(got.status)
            self.end_headers()
            self.wfile.write(b"no thanks" if got.status >= 400 else b"ok")

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", got
    server.shutdown()
    server.server_close()


def test_webhook_is_signed_over_the_exact_body(receiver: tuple[str, Got]) -> None:
    base, got = receiver
    spec = {"sink": "webhook", "url": {"secret": f"{base}/hook/T0K3N"}, "secret": {"secret": "hmac-key"}}
    sinks.deliver(spec, BODY)
    [(path, headers, data)] = got.requests
    assert path == "/hook/T0K3N" and json.loads(data) == BODY
    expected = "sha256=" + hmac.new(b"hmac-key", data, hashlib.sha256).hexdigest()
    assert headers["X-Reconcile-Signature"] == expected and headers["Idempotency-Key"] == "ops:1"


def test_webhook_without_a_secret_is_unsigned(receiver: tuple[str, Got]) -> None:
    base, got = receiver
    sinks.deliver({"sink": "webhook", "url": {"secret": base + "/h"}}, BODY)
    assert "X-Reconcile-Signature" not in got.requests[0][1]


def test_slack_payload(receiver: tuple[str, Got]) -> None:
    base, got = receiver
    sinks.deliver({"sink": "slack", "url": {"secret": base + "/services/T/B/X"}}, BODY)
    payload = json.loads(got.requests[0][2])
    assert list(payload) == ["text"] and "web: gave up" in payload["text"] and "ops:1" in payload["text"]


def test_ntfy_headers(receiver: tuple[str, Got], monkeypatch: pytest.MonkeyPatch) -> None:
    base, got = receiver
    monkeypatch.setenv("NTFY_URL", base + "/alerts")
    sinks.deliver({"sink": "ntfy", "url": {"env": "NTFY_URL"}}, BODY)
    _, headers, data = got.requests[0]
    assert headers["Title"] == "web: gave up" and headers["Priority"] == "high"
    assert headers["Tags"] == "reconcile,GaveUp" and data.decode().startswith("[h1] web: gave up")


def test_an_error_never_shows_the_url_path(receiver: tuple[str, Got], tmp_path: Path) -> None:
    base, got = receiver
    got.status = 500
    url_file = tmp_path / "url"
    url_file.write_text(base + "/hook/T0K3N?token=S3CR3T\n")
    with pytest.raises(sinks.DeliveryFailed) as exc:
        sinks.deliver({"sink": "webhook", "url": {"file": str(url_file)}}, BODY)
    assert "HTTP 500 no thanks" in str(exc.value) and "T0K3N" not in str(exc.value) and "S3CR3T" not in str(exc.value)


@pytest.mark.parametrize(("spec", "words"), [
    ({"sink": "webhook", "url": {"env": "NOT_SET_ANYWHERE_X"}}, "NOT_SET_ANYWHERE_X is not set"),
    ({"sink": "webhook", "url": {"file": "/nonexistent/url"}}, "cannot read /nonexistent/url"),
    ({"sink": "webhook", "url": {"secret": "http://127.0.0.1:1/T0K3N"}, "timeout": 2}, "http://127.0.0.1:1/…"),
    ({"sink": "command", "command": ["/nonexistent/prog"]}, "cannot run"),
    ({"sink": "command", "command": [sys.executable, "-c", "import sys; sys.exit(3)"]}, "exited with code 3"),
    ({"sink": "command", "command": [sys.executable, "-c", "import time; time.sleep(5)"], "timeout": 0.5},
     "did not finish within 0.5s"),
])
def test_failures_say_why(spec: dict[str, Any], words: str) -> None:
    with pytest.raises(sinks.DeliveryFailed) as exc:
        sinks.deliver(spec, BODY)
    assert words in str(exc.value) and "T0K3N" not in str(exc.value)


def test_command_gets_the_message_on_stdin(tmp_path: Path) -> None:
    out = tmp_path / "got.json"
    argv = [sys.executable, "-c", "import sys, pathlib; pathlib.Path(sys.argv[1]).write_bytes(sys.stdin.buffer.read())",
            str(out)]
    sinks.deliver({"sink": "command", "command": argv}, BODY)
    assert json.loads(out.read_text()) == BODY


@pytest.mark.parametrize(("url", "shown"), [
    ("https://hooks.slack.com/services/T0/B0/XYZ", "https://hooks.slack.com/…"),
    ("http://127.0.0.1:8080/hook?token=abc", "http://127.0.0.1:8080/…"),
    ("https://user:pw@ntfy.sh/topic", "https://ntfy.sh/…"),
    ("garbage", "?://?/…"),
])
def test_shown_url(url: str, shown: str) -> None:
    assert sinks.shown_url(url) == shown


@pytest.mark.parametrize(("spec", "shown"), [
    ({"sink": "webhook", "url": {"secret": "https://h.example/T0K3N"}}, "webhook https://h.example/…"),
    ({"sink": "ntfy", "url": {"env": "NTFY_URL"}}, "ntfy url from env NTFY_URL"),
    ({"sink": "slack", "url": {"file": "/etc/slack"}}, "slack url from file /etc/slack"),
    ({"sink": "command", "command": ["/usr/local/bin/page", "--loud"]}, "command /usr/local/bin/page"),
])
def test_shown_sink(spec: dict[str, Any], shown: str) -> None:
    assert sinks.shown_sink(spec) == shown
