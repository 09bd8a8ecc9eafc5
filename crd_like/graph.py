"""The dependency graph between resources: unknown targets and cycles. Pure."""

from __future__ import annotations

from collections.abc import Mapping


def problems(deps: Mapping[str, list[str]], known: set[str]) -> list[tuple[str, str, str]]:
    """[(service, dependency, message)] for unknown targets and cycles.

    ``deps`` maps each service being applied (and every stored one) to what it depends on;
    ``known`` are all names that will exist after the apply."""
    out: list[tuple[str, str, str]] = []
    for name in sorted(deps):
        for dep in deps[name]:
            if dep == name:
                out.append((name, dep, f"{name!r} depends on itself"))
            elif dep not in known:
                out.append((name, dep, f"unknown dependency {dep!r}: no service or job of that name "
                                       f"(known: {', '.join(sorted(known)) or 'none'})"))
    reported: set[frozenset[str]] = set()
    for cycle in _cycles(deps):
        key = frozenset(cycle)
        if key in reported or len(cycle) < 2:
            continue
        reported.add(key)
        path = " -> ".join([*cycle, cycle[0]])
        out.append((cycle[0], cycle[1], f"dependency cycle: {path}"))
    return out


def _cycles(deps: Mapping[str, list[str]]) -> list[list[str]]:
    """One representative cycle per strongly connected component (iterative Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    counter = 0
    found: list[list[str]] = []
    for root in sorted(deps):
        if root in index:
            continue
        work = [(root, iter(sorted(deps.get(root, []))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, it = work[-1]
            advanced = False
            for nxt in it:
                if nxt not in deps:
                    continue
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(deps.get(nxt, [])))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                if len(comp) > 1:
                    found.append(_order_cycle(sorted(comp), deps))
    return found


def _order_cycle(members: list[str], deps: Mapping[str, list[str]]) -> list[str]:
    """Walk the component from its first member to name the cycle in edge order."""
    inside = set(members)
    path = [members[0]]
    while True:
        nxt = next((d for d in sorted(deps.get(path[-1], [])) if d in inside), None)
        if nxt is None or nxt in path:
            return path
        path.append(nxt)
