"""Output formatting shared by every read verb: ``-o json|yaml|wide|name``, durations
(``2s``, ``3m4s``), times (local time plus "3m ago"), aligned tables, label selectors.

Terminal output only; imports nothing heavy at module level (``yaml`` is loaded when a
YAML output is asked for), so ``reconcile --help`` stays fast.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import click

# -o values each verb accepts
LIST_FORMATS = ("table", "wide", "json", "yaml", "name")
DOC_FORMATS = ("text", "json", "yaml")


def output_option(choices: Sequence[str], default: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``-o/--output`` plus ``--json`` kept as a synonym of ``-o json``."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn = click.option("--json", "as_json", is_flag=True, help="Same as -o json.")(fn)
        fn = click.option("-o", "--output", "output", type=click.Choice(list(choices)), default=default,
                          show_default=True, help="Output format.")(fn)
        return fn

    return deco


def pick_format(output: str, as_json: bool) -> str:
    return "json" if as_json else output


def duration(seconds: float | None) -> str:
    """``0s``, ``2s``, ``1.5s``, ``3m4s``, ``2h5m``, ``3d4h`` (kubectl's style)."""
    if seconds is None:
        return "-"
    if seconds < 0:
        seconds = 0.0
    if seconds < 10 and seconds != int(seconds):
        return f"{seconds:.1f}".rstrip("0").rstrip(".") + "s"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        m, r = divmod(s, 60)
        return f"{m}m{r}s" if r else f"{m}m"
    if s < 86400:
        h, r = divmod(s, 3600)
        return f"{h}h{r // 60}m" if r // 60 else f"{h}h"
    d, r = divmod(s, 86400)
    return f"{d}d{r // 3600}h" if r // 3600 else f"{d}d"


def ago(ts: float | None, now: float | None = None) -> str:
    if not ts:
        return "-"
    return duration(max(0.0, (now if now is not None else time.time()) - ts)) + " ago"


def local(ts: float | None) -> str:
    if not ts:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def when(ts: float | None, now: float | None = None) -> str:
    """Local time plus how long ago: ``2026-12-01 10:02:03 (3m ago)``."""
    if not ts:
        return "-"
    return f"{local(ts)} ({ago(ts, now)})"


def dump(data: Any, fmt: str) -> None:
    if fmt == "yaml":
        import yaml

        click.echo(yaml.safe_dump(data, sort_keys=False, default_flow_style=False).rstrip())
    else:
        click.echo(json.dumps(data, indent=2, default=str))


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """Left-aligned columns separated by three spaces (kubectl's look); lines without newline."""
    rows = [[str(c) for c in r] for r in rows]
    widths = [len(h) for h in headers]
    for r in rows:
        for i, c in enumerate(r):
            widths[i] = max(widths[i], len(c))
    fmt = "   ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*headers).rstrip()] + [fmt.format(*r).rstrip() for r in rows]


# -- label selectors (kubectl's equality-based subset) ---------------------------------
@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "exists", "!exists"
    value: str = ""

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.op == "exists":
            return self.key in labels
        if self.op == "!exists":
            return self.key not in labels
        if self.op == "=":
            return labels.get(self.key) == self.value
        return labels.get(self.key) != self.value


def parse_selector(text: str) -> list[Requirement]:
    """``key=value,key!=value,key,!key`` -> requirements; a malformed one is a usage error."""
    out: list[Requirement] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            raise click.BadParameter(f"empty requirement in {text!r}", param_hint="'-l/--selector'")
        if "!=" in part:
            key, value = part.split("!=", 1)
            op = "!="
        elif "==" in part:
            key, value = part.split("==", 1)
            op = "="
        elif "=" in part:
            key, value = part.split("=", 1)
            op = "="
        elif part.startswith("!"):
            key, value, op = part[1:], "", "!exists"
        else:
            key, value, op = part, "", "exists"
        key, value = key.strip(), value.strip()
        if not key or any(c in key for c in " =!"):
            raise click.BadParameter(f"bad label key in {part!r} (expected key=value, key!=value, key or !key)",
                                     param_hint="'-l/--selector'")
        out.append(Requirement(key, op, value))
    return out


def selected(labels: Mapping[str, str], selector: Sequence[Requirement]) -> bool:
    return all(r.matches(labels) for r in selector)


def selector_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    def convert(_ctx: click.Context, _param: click.Parameter, value: str | None) -> list[Requirement] | None:
        return None if value is None else parse_selector(value)

    return click.option("-l", "--selector", "selector", default=None, callback=convert,
                        help="Only resources whose labels match: key=value,key!=value,key,!key.")(fn)
