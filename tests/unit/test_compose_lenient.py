"""What compose itself accepts from real files and reconcile now reads the same way, each
with the warning that says so: empty (unset-variable) values of scalar keys, an empty
volume source, traefik-style label keys, build.platforms."""

from __future__ import annotations

from typing import Any

import pytest

from crd_like import InvalidSpec
from crd_like.formats import LoadOptions, load_any

DIR = "/srv/ct"


def convert(body: str, environ: dict[str, str] | None = None) -> tuple[dict[str, Any], list[str]]:
    text = f"name: ct\nservices:\n  s:\n{body}"
    warnings: list[str] = []
    opts = LoadOptions(environ=environ or {}, warnings=warnings)
    res = {r.name: r for r in load_any([(text.encode(), "ct/compose.yaml", DIR)], opts)}
    return res["ct-s"].spec.model_dump(mode="json", exclude_defaults=True), warnings


@pytest.mark.parametrize(("body", "absent", "key"), [
    ("    image: img\n    platform: ${PLATFORM}\n", "platform", "platform"),
    ("    image: img\n    container_name: ${NAME}\n", "containerName", "container_name"),
    ("    image: img\n    hostname: ''\n", "hostname", "hostname"),
    ("    image: img\n    user: ${RUN_AS}\n", "user", "user"),
])
def test_an_empty_scalar_is_not_set_with_a_warning(body: str, absent: str, key: str) -> None:
    spec, warnings = convert(body)
    assert absent not in spec
    assert any(f"compose key '{key}': empty" in w and "ct/compose.yaml:5" in w for w in warnings), warnings


def test_an_empty_image_with_build_takes_the_default_name() -> None:
    spec, warnings = convert("    image: ${TAG}\n    build: .\n")
    assert spec["image"] == "ct-s"
    assert any("compose key 'image': empty" in w for w in warnings)


def test_an_empty_image_without_build_is_still_an_error() -> None:
    with pytest.raises(InvalidSpec):
        convert("    image: ''\n")


@pytest.mark.parametrize(("volume", "target"), [(":/mnt/data", "/mnt/data"), ("${SRC}:/data:rw", "/data")])
def test_an_empty_volume_source_is_an_anonymous_volume(volume: str, target: str) -> None:
    spec, warnings = convert(f"    image: img\n    volumes: ['{volume}']\n")
    assert spec["volumes"] == [target]
    assert any("empty source" in w and "anonymous" in w for w in warnings), warnings


def test_traefik_label_keys_are_container_labels() -> None:
    key = "traefik.http.routers.web.tls.domains[0].main"
    spec, _ = convert(f"    image: img\n    labels: ['{key}=example.org']\n")
    assert spec["labels"][key] == "example.org"


@pytest.mark.parametrize("key", ["has space", "a=b", "io.reconcile.service"])
def test_container_label_keys_still_reject_what_cannot_be_a_key(key: str) -> None:
    with pytest.raises(InvalidSpec):
        convert(f"    image: img\n    labels: {{'{key}': x}}\n")


def test_build_platforms_warns_that_only_the_local_platform_is_built() -> None:
    spec, warnings = convert("    image: img\n    build:\n      context: .\n      platforms: [linux/amd64, linux/arm64]\n")
    assert "platforms" not in spec.get("build", {})
    assert any("build.platforms" in w and "own platform" in w for w in warnings), warnings
