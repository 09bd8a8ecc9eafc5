"""A recreate keeps the old container's anonymous volumes (controller.render.inherit_anonymous),
as compose does: table-driven over the mounts an engine reports in a container's inspect."""

from __future__ import annotations

from typing import Any

import pytest

from controller.render import inherit_anonymous, prepare, render

VOL_A = "a" * 64
VOL_B = "b" * 64


def _cfg(**spec: Any) -> Any:
    return render(prepare("db", "Service", 1, {"image": "img", **spec}), "inst", 1)


def _mount(dest: str, name: str = VOL_A, *, kind: str = "volume", rw: bool = True) -> dict[str, Any]:
    return {"Type": kind, "Name": name, "Source": f"/var/lib/docker/volumes/{name}/_data",
            "Destination": dest, "RW": rw}


CASES = [
    # (spec, old mounts, image volumes, expected extra binds, expected anonymous left)
    ({"volumes": ["/data"]}, [_mount("/data")], (), [f"{VOL_A}:/data:rw"], []),
    ({"volumes": ["/data/"]}, [_mount("/data")], (), [f"{VOL_A}:/data:rw"], []),  # the same path, spelt apart
    ({}, [_mount("/var/lib/db")], ("/var/lib/db",), [f"{VOL_A}:/var/lib/db:rw"], []),  # the image's VOLUME
    ({"volumes": ["/data"]}, [_mount("/data", rw=False)], (), [f"{VOL_A}:/data:ro"], []),
    ({"volumes": ["/data"]}, [], (), [], ["/data"]),  # nothing to keep: a new anonymous volume
    ({"volumes": ["/new"]}, [_mount("/data")], (), [], ["/new"]),  # the path is no longer wanted
    ({"volumes": ["store:/data"]}, [_mount("/data")], ("/data",), [], []),  # a named volume claims it now
    ({"volumes": ["/srv:/data"]}, [_mount("/data")], ("/data",), [], []),  # a bind claims it
    ({"tmpfs": ["/data"]}, [_mount("/data")], ("/data",), [], []),  # a tmpfs claims it
    ({}, [_mount("/shared")], (), [], []),  # from volumes_from: not the spec's, left alone
    ({"volumes": ["/data"]}, [_mount("/data", kind="bind", name="")], (), [], ["/data"]),
    ({"volumes": ["/a", "/b"]}, [_mount("/a"), _mount("/b", VOL_B)], (),
     [f"{VOL_A}:/a:rw", f"{VOL_B}:/b:rw"], []),
]


@pytest.mark.parametrize(("spec", "mounts", "image_volumes", "binds", "anonymous"), CASES)
def test_inherit_anonymous(spec: dict[str, Any], mounts: list[dict[str, Any]], image_volumes: tuple[str, ...],
                           binds: list[str], anonymous: list[str]) -> None:
    cfg = _cfg(**spec)
    got = inherit_anonymous(cfg, mounts, image_volumes)
    assert got.binds == [*cfg.binds, *binds]
    assert got.anonymous == anonymous
    assert got.labels == cfg.labels  # the spec hash (and so drift) is untouched
