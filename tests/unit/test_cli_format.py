"""controller.cli_output (formatting, selectors) and controller.contexts (engine choice)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import click
import pytest

from controller import cli_output as fmt
from controller.contexts import UnknownContext, resolve_host


@pytest.mark.parametrize("seconds,text", [
    (0, "0s"), (2, "2s"), (1.5, "1.5s"), (59.9, "59s"), (60, "1m"), (184, "3m4s"), (3600, "1h"),
    (7500, "2h5m"), (86400, "1d"), (3 * 86400 + 4 * 3600 + 5, "3d4h"), (-3, "0s"), (None, "-"),
])
def test_duration(seconds: float | None, text: str) -> None:
    assert fmt.duration(seconds) == text


@pytest.mark.parametrize("ts,now,text", [(1000.0, 1180.0, "3m ago"), (0.0, 5.0, "-"), (100.0, 90.0, "0s ago")])
def test_ago(ts: float, now: float, text: str) -> None:
    assert fmt.ago(ts, now) == text


def test_when_is_local_time_plus_ago() -> None:
    text = fmt.when(1000.0, 1180.0)
    assert text.endswith("(3m ago)") and "1970" in text and "." not in text


@pytest.mark.parametrize("selector,labels,match", [
    ("app=web", {"app": "web"}, True),
    ("app=web", {"app": "db"}, False),
    ("app==web", {"app": "web"}, True),
    ("app!=web", {"app": "db"}, True),
    ("app!=web", {}, True),
    ("app=web,tier!=front", {"app": "web", "tier": "front"}, False),
    ("app=web,tier!=front", {"app": "web", "tier": "back"}, True),
    ("compose.project=shop", {"compose.project": "shop"}, True),
    ("app", {"app": ""}, True),
    ("!app", {"app": "x"}, False),
    ("!app", {}, True),
])
def test_selector(selector: str, labels: dict[str, str], match: bool) -> None:
    assert fmt.selected(labels, fmt.parse_selector(selector)) is match


@pytest.mark.parametrize("bad", ["", "a=b,", "=x", "a b=c", "!=x"])
def test_bad_selector_is_a_usage_error(bad: str) -> None:
    with pytest.raises(click.BadParameter):
        fmt.parse_selector(bad)


def test_table_aligns_columns() -> None:
    lines = fmt.table(["NAME", "STATE"], [["a", "Running"], ["longer", "-"]])
    assert lines == ["NAME     STATE", "a        Running", "longer   -"]


def _context(root: Path, name: str, host: str) -> None:
    d = root / "contexts" / "meta" / hashlib.sha256(name.encode()).hexdigest()
    d.mkdir(parents=True)
    (d / "meta.json").write_text(json.dumps({"Name": name, "Endpoints": {"docker": {"Host": host}}}))


@pytest.mark.parametrize("host,context,env,current,want", [
    ("tcp://h:1", "remote", {"DOCKER_HOST": "unix:///x"}, None, "tcp://h:1"),
    (None, "remote", {"DOCKER_HOST": "unix:///x"}, None, "ssh://remote"),
    (None, None, {"DOCKER_CONTEXT": "remote"}, None, "ssh://remote"),
    (None, None, {"DOCKER_HOST": "unix:///x"}, "remote", None),  # DOCKER_HOST: the SDK reads it
    (None, None, {}, "remote", "ssh://remote"),
    (None, None, {}, None, None),
    (None, "default", {}, "remote", None),
])
def test_resolve_host(tmp_path: Path, host: str | None, context: str | None, env: dict[str, str],
                      current: str | None, want: str | None) -> None:
    _context(tmp_path, "remote", "ssh://remote")
    if current:
        (tmp_path / "config.json").write_text(json.dumps({"currentContext": current}))
    assert resolve_host(host, context, env, tmp_path) == want


def test_unknown_context_names_itself(tmp_path: Path) -> None:
    with pytest.raises(UnknownContext, match="nope"):
        resolve_host(None, "nope", {}, tmp_path)
