"""Secret values in specs: which env keys look secret, and the one redaction every output uses.

Where a secret value lives (documented in the README, "Secrets"):

- ``env: {KEY: {valueFrom: {file: PATH}}}`` and ``{valueFrom: {env: VAR}}`` keep only a
  reference; the controller reads the value when it creates the container.
- ``env: {KEY: {valueFrom: {secret: VALUE}}}`` keeps the value itself in the stored
  record (the store is the controller's own state, like the engine's container config),
  because nothing else can give it back at run time: the compose converter writes it for
  values interpolated from ``.env`` or the environment into keys that look secret
  (``looks_secret``). It is resolved by ``controller.refs``, part of the spec hash (a
  changed password recreates the container), and every output path (convert, diff,
  describe, history, status, export, logs) shows it as ``SECRET_PLACEHOLDER`` through
  ``redact_spec``. ``reconcile export --reveal-secrets`` prints the values, so that the
  export re-applies to identical hashes.
- a Notifier's ``url`` and ``secret`` (``crd_like.notifier``): ``{secret: VALUE}`` is kept
  the same way and redacted by the same function.
- ``files: {TARGET: {secret: TEXT}}`` (``crd_like.spec_files``): the content of a compose
  secret taken from the environment (``secrets: {NAME: {environment: VAR}}``), or of a
  config taken from a secret-looking variable, kept the same way and redacted by the same
  function; the controller writes it to a root-only file (``controller.files``).

Pure; must not import ``store`` or ``controller``.
"""

from __future__ import annotations

import re
from typing import Any

SECRET_PLACEHOLDER = "<redacted>"
_SECRET_KEY = re.compile(r"PASSWORD|PASSWD|PASSPHRASE|SECRET|TOKEN|KEY|CREDENTIAL|PRIVATE|AUTH|SALT|PWD|DSN",
                         re.IGNORECASE)


def looks_secret(key: str) -> bool:
    """Whether an environment variable's name says it holds a secret (case-insensitive:
    ``*PASSWORD*``, ``*PASSWD*``, ``*SECRET*``, ``*TOKEN*``, ``*KEY*``, ``*CREDENTIAL*``,
    ``*PRIVATE*``, ``*AUTH*``, ``*SALT*``, ``*PWD*``, ``*DSN*``...)."""
    return bool(_SECRET_KEY.search(key))


def secret_value(value: str) -> dict[str, Any]:
    """The env value source that stores ``value`` as a secret."""
    return {"valueFrom": {"secret": value}}


def is_secret(value: Any) -> bool:
    src = value.get("valueFrom") if isinstance(value, dict) else None
    return isinstance(src, dict) and src.get("secret") is not None


def _is_secret_file(value: Any) -> bool:
    return isinstance(value, dict) and value.get("secret") is not None


def redact_spec(spec: Any) -> Any:
    """A copy of a spec (plain JSON data) with every stored secret value replaced by the
    placeholder: env values (``valueFrom.secret``) and file contents (``files.*.secret``).
    The one function all output paths use."""
    if not isinstance(spec, dict):
        return spec
    out = spec
    env = spec.get("env")
    if isinstance(env, dict) and any(is_secret(v) for v in env.values()):
        out = {**out, "env": {k: ({"valueFrom": {"secret": SECRET_PLACEHOLDER}} if is_secret(v) else v)
                              for k, v in env.items()}}
    files = spec.get("files")
    if isinstance(files, dict) and any(_is_secret_file(v) for v in files.values()):
        out = {**out, "files": {k: ({**v, "secret": SECRET_PLACEHOLDER} if _is_secret_file(v) else v)
                                for k, v in files.items()}}
    for key in _notifier_secrets(spec):
        out = {**out, key: {"secret": SECRET_PLACEHOLDER}}
    return out


def _notifier_secrets(spec: dict[str, Any]) -> list[str]:
    """A Notifier spec's (``crd_like.notifier``) inline secrets: its ``url`` and HMAC ``secret``."""
    if "sink" not in spec:
        return []
    return [k for k in ("url", "secret") if _is_secret_file(spec.get(k))]


def secret_keys(spec: Any) -> list[str]:
    """The fields of ``spec`` that hold a stored secret: ``env.KEY`` and ``files.TARGET``."""
    if not isinstance(spec, dict):
        return []
    env, files = spec.get("env"), spec.get("files")
    env = env if isinstance(env, dict) else {}
    files = files if isinstance(files, dict) else {}
    return (sorted(f"env.{k}" for k, v in env.items() if is_secret(v))
            + sorted(f"files.{k}" for k, v in files.items() if _is_secret_file(v)) + _notifier_secrets(spec))


def redact_text(text: str, secrets: list[str]) -> str:
    """``text`` with every occurrence of the given secret values replaced (log lines)."""
    for value in sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True):
        text = text.replace(value, SECRET_PLACEHOLDER)
    return text
