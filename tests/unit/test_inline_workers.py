"""How many workers an inline apply uses: the widest dependency layer, bounded."""

from __future__ import annotations

from typing import Any

import pytest

from controller.operations import INLINE_WORKERS_MAX, INLINE_WORKERS_MIN, inline_workers


def _specs(graph: dict[str, list[str]]) -> dict[str, dict[str, Any]]:
    return {n: ({"dependsOn": {d: {"condition": "healthy"} for d in deps}} if deps else {}) for n, deps in graph.items()}


def _layers(widths: list[int]) -> dict[str, list[str]]:
    """Layers of the given widths, every service depending on every service of the layer before."""
    graph: dict[str, list[str]] = {}
    before: list[str] = []
    for li, w in enumerate(widths):
        layer = [f"l{li}s{i}" for i in range(w)]
        graph.update({n: list(before) for n in layer})
        before = layer
    return graph


@pytest.mark.parametrize("graph, expected", [
    ({}, INLINE_WORKERS_MIN),
    ({"a": []}, INLINE_WORKERS_MIN),
    ({f"s{i}": [] for i in range(50)}, INLINE_WORKERS_MAX),  # 50 independent: bounded
    ({f"s{i}": [] for i in range(9)}, 9),
    (_layers([5, 5, 5, 5, 5, 5]), 5),  # bench/cold.py (b): 6 layers of 5
    (_layers([1, 7, 2]), 7),
    ({"db": [], "api": ["db"], "web": ["api"], "worker": ["db"], "cron": ["db"], "x": ["db"], "y": ["db"]}, 5),
    ({"a": ["gone"], "b": ["gone"], "c": [], "d": [], "e": []}, 5),  # a dependency outside the set
    ({"a": ["b"], "b": ["a"], "c": []}, INLINE_WORKERS_MIN),  # a cycle (refused earlier) does not hang
])
def test_inline_workers_is_the_widest_layer_bounded(graph: dict[str, list[str]], expected: int) -> None:
    assert inline_workers(_specs(graph)) == expected
