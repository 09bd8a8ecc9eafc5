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
