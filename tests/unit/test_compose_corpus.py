"""The compose corpus (tests/compose/<name>/): every project, with each of its overlays,
loads and converts without warnings, follows the corpus rules (README.md), and survives
the round trip to native YAML with identical spec hashes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from crd_like import spec_hash, units
from crd_like.formats import LoadOptions, load_any, to_native_yaml

CORPUS = Path(__file__).resolve().parent.parent / "compose"
PROJECTS = sorted(p.name for p in CORPUS.iterdir() if (p / "docker-compose.yml").is_file())
OVERLAYS = ("docker-compose.override.yml", "prod.yml")
IMAGES = {"reconcile/busybox:latest", "reconcile/demo-web:1", "reconcile/demo-worker:1", "reconcile/demo-job:1"}
PROFILES = {"analytics": ("debug", "ops")}  # projects whose profiled services are loaded too


def read(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def variants(project: str) -> list[tuple[str, ...]]:
    """The file sets a user would pass: the base alone, then with each overlay, then all."""
    present = [o for o in OVERLAYS if (CORPUS / project / o).is_file()]
    out = [("docker-compose.yml",)] + [("docker-compose.yml", o) for o in present]
    if len(present) > 1:
        out.append(("docker-compose.yml", *present))
    return out


CASES = [(p, files) for p in PROJECTS for files in variants(p)]


def load(project: str, files: tuple[str, ...], warnings: list[str] | None = None) -> list[Any]:
    base = CORPUS / project
    sources = [(read(str(base / f)), f"tests/compose/{project}/{f}", str(base)) for f in files]
    opts = LoadOptions(environ={}, read_file=read, profiles=PROFILES.get(project, ()),
                       warnings=warnings if warnings is not None else [])
    return load_any(sources, opts)


def test_the_corpus_is_big_enough() -> None:
    assert len(PROJECTS) >= 15
    assert sum(len(variants(p)) > 1 for p in PROJECTS) >= 4  # some projects have overlays


def test_readme_lists_every_project() -> None:
    readme = (CORPUS / "README.md").read_text()
    for project in PROJECTS:
        assert f"`{project}/`" in readme, project


@pytest.mark.parametrize(("project", "files"), CASES, ids=["/".join((p, *f[1:])) for p, f in CASES])
def test_corpus_file_converts_cleanly(project: str, files: tuple[str, ...]) -> None:
    warnings: list[str] = []
    resources = load(project, files, warnings)
    assert warnings == []
    assert resources
    names = {r.metadata.labels["compose.project"] for r in resources}
    assert names == {f"ct-{project}"}, "each project is named ct-<directory>"
    for res in resources:
        spec = res.spec
        assert res.name.startswith(f"ct-{project}-")
        assert spec.image in IMAGES, f"{res.name}: only the offline images exist here"
        for port in spec.ports:
            mapping = units.parse_port(port)
            assert mapping.host_port_start is None or mapping.host_ip == "127.0.0.1", f"{res.name}: {port}"
        for volume in spec.volumes:
            mount = units.parse_volume(volume)
            if mount.kind == "bind":
                assert os.path.exists(mount.source), f"{res.name}: bind source {mount.source} is missing"
            elif mount.kind == "volume":
                assert mount.source.startswith(f"ct-{project}_"), f"{res.name}: volume {mount.source}"
        for path in spec.envFiles:
            assert os.path.isfile(path)
        if res.kind == "Service" and spec.image in ("reconcile/busybox:latest", "reconcile/demo-web:1"):
            # sh and httpd as PID 1 ignore SIGTERM: an init makes them stop at once
            assert spec.init, f"{res.name}: long-running busybox services use init: true to stop promptly"
        if res.kind == "Job":
            assert spec.image == "reconcile/demo-job:1"
        assert all(n.startswith(f"ct-{project}") for n in spec.networks)


@pytest.mark.parametrize(("project", "files"), CASES, ids=["/".join((p, *f[1:])) for p, f in CASES])
def test_dependencies_can_be_satisfied(project: str, files: tuple[str, ...]) -> None:
    by_name = {r.name: r for r in load(project, files)}
    for res in by_name.values():
        for target, dep in res.spec.dependsOn.items():
            assert target in by_name, f"{res.name} depends on {target}"
            if dep.condition == "healthy":
                assert by_name[target].spec.healthcheck is not None, f"{target} has no healthcheck"
            if dep.condition == "completed":
                assert by_name[target].kind == "Job"


def test_published_host_ports_are_unique_across_the_corpus() -> None:
    seen: dict[int, str] = {}
    for project, files in CASES:
        for res in load(project, files):
            for port in res.spec.ports:
                for _, (_, host_port) in units.parse_port(port).bindings():
                    if host_port is None:
                        continue
                    owner = seen.setdefault(host_port, project)
                    assert owner == project, f"port {host_port} is used by {owner} and {project}"


@pytest.mark.parametrize(("project", "files"), CASES, ids=["/".join((p, *f[1:])) for p, f in CASES])
def test_round_trip_to_native_keeps_spec_hashes(project: str, files: tuple[str, ...]) -> None:
    resources = load(project, files)
    text = to_native_yaml(resources, header=f"converted from tests/compose/{project}", reveal_secrets=True)
    again = load_any([(text.encode(), "converted.yaml", "/nonexistent")], LoadOptions(fmt="native"))
    assert [(r.kind, r.name) for r in again] == [(r.kind, r.name) for r in resources]
    assert [spec_hash(r.spec) for r in again] == [spec_hash(r.spec) for r in resources]
    assert [r.metadata for r in again] == [r.metadata for r in resources]


def test_profiles_change_what_is_loaded() -> None:
    base = CORPUS / "analytics"
    source = [(read(str(base / "docker-compose.yml")), "docker-compose.yml", str(base))]
    default = {r.name for r in load_any(source, LoadOptions(read_file=read))}
    ops = {r.name for r in load_any(source, LoadOptions(read_file=read, profiles=("ops",)))}
    assert default == {"ct-analytics-collector", "ct-analytics-aggregator", "ct-analytics-store"}
    assert ops - default == {"ct-analytics-exporter", "ct-analytics-backup"}


def test_overlays_change_the_result() -> None:
    """Each overlay in the corpus changes at least one spec (an overlay that does nothing is a mistake)."""
    for project in PROJECTS:
        base = {r.name: spec_hash(r.spec) for r in load(project, ("docker-compose.yml",))}
        for files in variants(project)[1:]:
            merged = {r.name: spec_hash(r.spec) for r in load(project, files)}
            assert merged != base, (project, files)
