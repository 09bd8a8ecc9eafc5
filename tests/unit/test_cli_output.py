"""The CLI's lean paths print exactly what the Rich path printed, and read verbs stay lean.

``controller.cli`` writes plain text itself instead of through Rich (which costs ~40 ms to
import); these tests hold that shortcut to Rich's own output, character for character, and
check in a fresh interpreter which heavy modules a read verb's imports load.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from controller import cli

REPO = Path(__file__).resolve().parents[2]

TEXTS = [
    "deployment/web created, generation 1 (spec.image)",
    "2026-12-01 09:00:00 web                  Restarted      controller container exited — restart #3 [0123456789ab]",
    "  spec: {'image': 'x'}",
    "",
    "   trailing spaces   ",
    "unicode: ünïcödé ✓ 日本語",
    "[red]not markup[/red] :warning: :smile:",
    "two\nlines",
    "a very long line " * 40,
]


def _rich(text: str) -> str:
    buf = io.StringIO()
    Console(file=buf, highlight=False, emoji=False, soft_wrap=True, width=200).print(text, markup=False)
    return buf.getvalue()


@pytest.mark.parametrize("text", TEXTS)
def test_plain_print_matches_rich(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.plain_text(text)
    cli._LazyConsole(stderr=False).print(text, markup=False)
    cli._LazyConsole(stderr=True).print(text, markup=False)
    got = capsys.readouterr()
    assert got.out == _rich(text)
    assert got.err == _rich(text)


@pytest.mark.parametrize("text", ["tab\there", "bell\a", "esc \x1b[31mred", "cr\rreturn"])
def test_text_with_control_characters_goes_through_rich(text: str) -> None:
    assert not cli.plain_text(text)


def _fresh(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO,
                          check=True, timeout=60).stdout


HEAVY = ["sqlalchemy", "sqlalchemy.orm", "alembic", "docker", "pydantic", "rich", "loguru", "yaml",
         "crd_like.models", "controller.planner", "controller.engine", "store.repository"]


def test_importing_the_cli_loads_no_heavy_module() -> None:
    loaded = json.loads(_fresh(f"import sys, json, controller.cli; print(json.dumps([m for m in {HEAVY!r} "
                               "if m in sys.modules]))"))
    assert loaded == []


def test_store_records_import_without_sqlalchemy() -> None:
    loaded = json.loads(_fresh("import sys, json, store.records, store; "
                               "print(json.dumps([m for m in ('sqlalchemy', 'store.repository') if m in sys.modules]))"))
    assert loaded == []


@pytest.mark.parametrize("as_json", [False, True])
def test_logging_set_up_before_loguru_is_imported_applies_when_it_is(as_json: bool) -> None:
    code = ("import sys; from controller.cli import setup_logging; "
            f"setup_logging('WARNING', {as_json}); assert 'loguru' not in sys.modules; "
            "from loguru import logger; logger.info('hidden'); logger.warning('shown')")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO,
                         check=True, timeout=60)
    assert "hidden" not in res.stderr
    lines = [line for line in res.stderr.splitlines() if "shown" in line]
    assert len(lines) == 1
    if as_json:
        assert json.loads(lines[0])["record"]["level"]["name"] == "WARNING"
    else:
        assert "WARNING" in lines[0] and not lines[0].startswith("{")


HEADERS = ["NAME", "KIND", "GEN", "OBSERVED", "STATE", "HEALTH", "CONTAINER", "RESTARTS", "LAST EVENT"]
ROW = ["web", "Service", "3", "3", "Running", "healthy", "0123456789ab", "0", "Restarted 5s ago: container exited"]


def _rich_table(headers: list[str], rows: list[list[str]], width: int = 200) -> str:
    from rich.table import Table

    buf = io.StringIO()
    table = Table(box=None, pad_edge=False)
    for h in headers:
        table.add_column(h)
    for r in rows:
        table.add_row(*r)
    Console(file=buf, highlight=False, emoji=False, soft_wrap=True, width=width).print(table)
    return buf.getvalue()


@pytest.mark.parametrize("rows", [
    [ROW],
    [ROW, ["a-much-longer-service-name-0001", "Job", "12", "11", "CrashLoopBackOff (next 10:00:01)", "-", "-", "14",
           "-"]],
    [[f"s{i:03d}", "Service", "1", "1", "Running", "-", f"{i:012x}", str(i), f"Applied {i}m ago: new resource"]
     for i in range(200)],
    [["x" * 60, "Service", "1", "1", "Running", "-", "-", "0", "y" * 76]],  # exactly 200 wide
    [["", "", "", "", "", "", "", "", ""]],
    [[" lead", "trail ", "1", "1", "a  b", "-", "-", "0", "-"]],
])
def test_plain_table_matches_rich(rows: list[list[str]]) -> None:
    assert cli.plain_table(HEADERS, rows) == _rich_table(HEADERS, rows)


@pytest.mark.parametrize("cell", ["x" * 120, "[red]markup[/red]", "café", "tab\tcell", "wide 日本"])
def test_plain_table_leaves_what_only_rich_renders_to_rich(cell: str) -> None:
    assert cli.plain_table(HEADERS, [[cell, *ROW[1:8], "y" * 90]]) is None


def test_print_table_on_a_pipe_prints_rich_characters(capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    cli.print_table(HEADERS, [ROW])
    assert capsys.readouterr().out == _rich_table(HEADERS, [ROW])


def test_a_table_one_column_wider_than_the_console_goes_to_rich() -> None:
    assert cli.plain_table(HEADERS, [["x" * 60, "Service", "1", "1", "Running", "-", "-", "0", "y" * 77]]) is None
