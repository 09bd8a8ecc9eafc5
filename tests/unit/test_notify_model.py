"""The Notifier kind: validation with file:line errors, defaults, redaction, JSON Schema."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from crd_like.errors import InvalidSpec
from crd_like.hashing import spec_hash
from crd_like.formats import LoadOptions, load_any
from crd_like.notifier import Notifier, NotifierSpec
from crd_like.schema import json_schema
from crd_like.secrets import SECRET_PLACEHOLDER, redact_spec, secret_keys

HEAD = "apiVersion: reconcile/v1alpha1\nkind: Notifier\nmetadata: {name: ops}\nspec:\n"


def _load(tmp_path: Path, spec: str) -> list[Any]:
    raw = (HEAD + textwrap.indent(textwrap.dedent(spec), "  ")).encode()
    return load_any([(raw, str(tmp_path / "n.yaml"), str(tmp_path))], LoadOptions(fmt="native"))


@pytest.mark.parametrize(("spec", "line", "field", "words"), [
    ("sink: email\nurl: http://x/\n", 5, "spec.sink", "webhook"),
    ("sink: webhook\n", 4, "spec", "needs `url`"),
    ("sink: command\nurl: http://x/\n", 4, "spec", "needs `command`"),
    ("sink: command\ncommand: []\n", 6, "spec.command", "at least 1"),
    ("sink: slack\nurl: http://x/\nsecret: k\n", 4, "spec", "for sink webhook only"),
    ("sink: webhook\nurl: {env: A, file: /b}\n", 6, "spec.url", "exactly one of file, env or secret"),
    ("sink: webhook\nurl: {env: 1bad}\n", 6, "spec.url.env", "expected a string matching"),
    ("sink: webhook\nurl: http://x/\nevents: [Nope]\n", 7, "spec.events[0]", "GaveUp"),
    ("sink: webhook\nurl: http://x/\nselector: 'a=b,,c'\n", 7, "spec.selector", "bad requirement"),
    ("sink: webhook\nurl: http://x/\nretry: {initial: 10s, max: 1s}\n", 7, "spec.retry", "retry.max"),
    ("sink: webhook\nurl: http://x/\ndamping: {digestAfter: 0}\n", 7, "spec.damping.digestAfter", "greater"),
    ("sink: webhook\nurl: http://x/\ntimeout: 0s\n", 7, "spec.timeout", ""),
    ("sink: webhook\nurl: http://x/\nextra: 1\n", 7, "spec.extra", "unknown field"),
])
def test_bad_notifier(tmp_path: Path, spec: str, line: int, field: str, words: str) -> None:
    with pytest.raises(InvalidSpec) as exc:
        _load(tmp_path, spec)
    issue = exc.value.issues[0]
    assert (issue.line, issue.field) == (line, field), str(exc.value)
    assert words in issue.message and issue.file.endswith("n.yaml")


def test_a_good_notifier_and_its_defaults(tmp_path: Path) -> None:
    [n] = _load(tmp_path, "sink: webhook\nurl: https://hooks.example/T0K3N\nsecret: {file: /etc/hmac}\n"
                          "events: [GaveUp]\nselector: tier=web,!canary\n")
    assert isinstance(n, Notifier) and n.spec.url is not None and n.spec.url.secret == "https://hooks.example/T0K3N"
    assert n.spec.retry.max == 300.0 and n.spec.damping.window == 60.0 and n.spec.damping.digestAfter == 10
    stored = n.spec.model_dump(mode="json", exclude_defaults=True)
    assert stored == {"sink": "webhook", "url": {"secret": "https://hooks.example/T0K3N"},
                      "secret": {"file": "/etc/hmac"}, "events": ["GaveUp"], "selector": "tier=web,!canary"}
    # spelling a default out hashes the same
    same = NotifierSpec.model_validate({**stored, "timeout": "10s", "damping": {"window": 60}})
    assert spec_hash(same) == spec_hash(n.spec)


def test_inline_secrets_are_redacted_everywhere() -> None:
    spec = {"sink": "webhook", "url": {"secret": "https://h/T0K3N"}, "secret": {"secret": "hmac-key"},
            "events": ["GaveUp"]}
    out = redact_spec(spec)
    assert out["url"] == {"secret": SECRET_PLACEHOLDER} and out["secret"] == {"secret": SECRET_PLACEHOLDER}
    assert "T0K3N" not in json.dumps(out) and "hmac-key" not in json.dumps(out)
    assert secret_keys(spec) == ["url", "secret"]
    refs = {"sink": "webhook", "url": {"env": "HOOK_URL"}}
    assert redact_spec(refs) == refs and secret_keys(refs) == []


def test_the_json_schema_has_the_kind() -> None:
    assert "Notifier" in json.dumps(json_schema())
