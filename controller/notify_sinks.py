"""The four sinks a message is delivered to: one attempt each, bounded by the notifier's
timeout, raising ``DeliveryFailed`` with a reason that never holds a secret.

- ``webhook``: the message as JSON (POST); with a ``secret``, the header
  ``X-Reconcile-Signature: sha256=<hex HMAC-SHA256 of the exact body>``;
- ``slack``: a Slack/Mattermost incoming-webhook payload ``{"text": ...}``;
- ``ntfy``: the text as the body, with ``Title``, ``Tags`` and ``Priority`` headers;
- ``command``: an argv (never a shell), the message JSON on its stdin; exit 0 = delivered.

Every HTTP sink sends ``Idempotency-Key``; the body carries it too. Secret references
(``{file}``, ``{env}``, ``{secret}``) are resolved here, when sending, and ``shown_url``
is the only form of a URL any output uses (scheme://host/…).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from controller import notify_rules as rules
from crd_like.secrets import redact_text

_PRIORITY = {"GaveUp": "high", "Failed": "high", "JobFailed": "high", "CrashLoopBackOff": "high",
             "EngineUnavailable": "urgent", "Unhealthy": "high", "RestartStorm": "high"}
MAX_OUTPUT = 300  # characters of a failing sink's answer kept in the error


class DeliveryFailed(Exception):
    """One attempt failed; the message says why (no secret in it)."""


@dataclass(frozen=True)
class Resolved:
    url: str = ""
    secret: str = ""

    def values(self) -> list[str]:
        return [v for v in (self.url, self.secret) if v]


def resolve_ref(ref: Mapping[str, Any] | None, what: str) -> str:
    if not ref:
        return ""
    if ref.get("secret") is not None:
        return str(ref["secret"])
    if ref.get("env"):
        value = os.environ.get(str(ref["env"]))
        if not value:
            raise DeliveryFailed(f"{what}: environment variable {ref['env']} is not set")
        return value
    path = str(ref.get("file") or "")
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read().strip()
    except OSError as exc:
        raise DeliveryFailed(f"{what}: cannot read {path}: {exc.strerror}") from None


def resolve(spec: Mapping[str, Any]) -> Resolved:
    return Resolved(resolve_ref(spec.get("url"), "url"), resolve_ref(spec.get("secret"), "secret"))


def shown_url(url: str) -> str:
    """scheme://host/… : the token-bearing path and query never shown."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme or '?'}://{host}/…"


def shown_sink(spec: Mapping[str, Any]) -> str:
    """How outputs show a notifier's sink: the kind and where, without a secret."""
    if spec.get("sink") == "command":
        argv = spec.get("command") or []
        return f"command {argv[0] if argv else '?'}"
    ref = spec.get("url") or {}
    if ref.get("env"):
        where = f"url from env {ref['env']}"
    elif ref.get("file"):
        where = f"url from file {ref['file']}"
    else:
        where = shown_url(str(ref.get("secret") or ""))
    return f"{spec.get('sink')} {where}"


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _request(spec: Mapping[str, Any], body: dict[str, Any], sec: Resolved) -> urllib.request.Request:
    key = str(body["idempotencyKey"])
    headers = {"Idempotency-Key": key, "User-Agent": "reconcile-notify"}
    sink = spec["sink"]
    if sink == "ntfy":
        data = rules.text(body).encode()
        headers.update({"Content-Type": "text/plain; charset=utf-8", "Title": str(body["summary"])[:200],
                        "Tags": f"reconcile,{body['event']}", "Priority": _PRIORITY.get(str(body["event"]), "default")})
    else:
        payload: dict[str, Any] = {"text": rules.text(body)} if sink == "slack" else body
        data = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        headers["Content-Type"] = "application/json"
        if sink == "webhook" and sec.secret:
            headers["X-Reconcile-Signature"] = signature(sec.secret, data)
    return urllib.request.Request(sec.url, data=data, headers=headers, method="POST")


def _http(spec: Mapping[str, Any], body: dict[str, Any], sec: Resolved, timeout: float) -> None:
    req = _request(spec, body, sec)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            resp.read(4096)
    except urllib.error.HTTPError as exc:
        answer = exc.read(MAX_OUTPUT).decode("utf-8", "replace") if exc.fp is not None else ""
        raise DeliveryFailed(f"{shown_url(sec.url)} answered HTTP {exc.code} {answer}".strip()) from None
    except urllib.error.URLError as exc:
        raise DeliveryFailed(f"{shown_url(sec.url)}: {exc.reason}") from None
    except (OSError, ValueError) as exc:  # timeouts, resets, a malformed URL
        raise DeliveryFailed(f"{shown_url(sec.url)}: {type(exc).__name__}: {exc}") from None


def _command(spec: Mapping[str, Any], body: dict[str, Any], timeout: float) -> None:
    argv = [str(a) for a in spec["command"]]
    data = json.dumps(body, sort_keys=True).encode()
    try:
        proc = subprocess.run(argv, input=data, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise DeliveryFailed(f"command {argv[0]} did not finish within {timeout:g}s") from None
    except OSError as exc:
        raise DeliveryFailed(f"command {argv[0]} cannot run: {exc.strerror}") from None
    if proc.returncode != 0:
        tail = proc.stderr.decode("utf-8", "replace")[-MAX_OUTPUT:].strip()
        raise DeliveryFailed(f"command {argv[0]} exited with code {proc.returncode}: {tail}".rstrip(": "))


def deliver(spec: Mapping[str, Any], body: dict[str, Any]) -> None:
    """One delivery attempt of ``body`` to the notifier ``spec``. Raises DeliveryFailed."""
    timeout = float(spec.get("timeout", 10.0))
    sec = resolve(spec)
    try:
        if spec["sink"] == "command":
            _command(spec, body, timeout)
        else:
            _http(spec, body, sec, timeout)
    except DeliveryFailed as exc:
        raise DeliveryFailed(redact_text(str(exc), sec.values())) from None
