"""The engine seam's pure parts: call timeouts (RECONCILE_ENGINE_TIMEOUTS), which timeout
class each call gets, the engine's identity from ``GET /version`` (Docker 20.10, 26.1,
Podman 4.3 as they answer it), and the EngineTimeout error."""

from __future__ import annotations

import tarfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from controller.engine import (_CLASS, CallTimeouts, _docker_state, _inline_context, _podman_ignores,
                               engine_info_from_version)
from controller.errors import EngineTimeout, EngineUnavailable, TransientError


@pytest.mark.parametrize(("text", "want"), [
    ("", CallTimeouts()),
    ("act=3", CallTimeouts(act=3.0)),
    ("read=5, act=20s,stop=10,build=1200", CallTimeouts(read=5.0, act=20.0, stop=10.0, build=1200.0)),
    ("read=0.5,", CallTimeouts(read=0.5)),
])
def test_call_timeouts_parse(text: str, want: CallTimeouts) -> None:
    assert CallTimeouts.parse(text) == want


@pytest.mark.parametrize(("text", "message"), [
    ("act", "'act': expected CLASS=SECONDS with CLASS one of read, act, stop, build"),
    ("write=3", "'write=3': expected CLASS=SECONDS"),
    ("act=soon", "act='soon': expected a number of seconds"),
    ("act=0", "act='0': expected seconds above 0"),
    ("read=-1", "read='-1': expected seconds above 0"),
])
def test_call_timeouts_reject_bad_values_naming_the_variable(text: str, message: str) -> None:
    with pytest.raises(ValueError) as err:
        CallTimeouts.parse(text)
    assert str(err.value).startswith("RECONCILE_ENGINE_TIMEOUTS: ")
    assert message in str(err.value)


@pytest.mark.parametrize(("call", "cls"), [
    ("ping", "read"), ("containers.list", "read"), ("containers.inspect", "read"), ("images.list", "read"),
    ("containers.stop", "stop"), ("containers.restart", "stop"), ("images.build", "build"),
])
def test_timeout_class_of_each_call(call: str, cls: str) -> None:
    assert _CLASS[call] == cls


@pytest.mark.parametrize("call", ["containers.create", "containers.start", "containers.remove", "containers.rename",
                                  "networks.connect", "volumes.create"])
def test_acting_calls_get_the_act_timeout(call: str) -> None:
    assert _CLASS.get(call, "act") == "act"


DOCKER_20 = {"Platform": {"Name": ""}, "Version": "20.10.24+dfsg1", "ApiVersion": "1.41", "MinAPIVersion": "1.12",
             "Os": "linux", "Arch": "amd64", "Components": [{"Name": "Engine"}, {"Name": "containerd"}]}
DOCKER_26 = {"Platform": {"Name": ""}, "Version": "26.1.5+dfsg1", "ApiVersion": "1.45", "MinAPIVersion": "1.24",
             "Os": "linux", "Arch": "amd64", "Components": [{"Name": "Engine"}, {"Name": "runc"}]}
PODMAN_43 = {"Platform": {"Name": "linux/amd64/debian-12"}, "Version": "4.3.1", "ApiVersion": "1.41",
             "MinAPIVersion": "1.24", "Os": "linux", "Arch": "amd64",
             "Components": [{"Name": "Podman Engine", "Version": "4.3.1"}]}


@pytest.mark.parametrize(("version", "negotiated", "name", "describe"), [
    (DOCKER_20, "1.41", "docker", "docker 20.10.24+dfsg1 (API 1.41)"),
    (DOCKER_26, "1.45", "docker", "docker 26.1.5+dfsg1 (API 1.45)"),
    (DOCKER_26, "1.41", "docker", "docker 26.1.5+dfsg1 (API 1.41)"),
    (PODMAN_43, "1.41", "podman", "podman 4.3.1 (API 1.41)"),
    ({}, "1.41", "docker", "docker ? (API 1.41)"),
])
def test_engine_info_names_the_engine(version: dict[str, Any], negotiated: str, name: str, describe: str) -> None:
    info = engine_info_from_version(version, negotiated)
    assert info.name == name
    assert info.describe() == describe
    assert info.engine_api_version == version.get("ApiVersion", "?")


@pytest.mark.parametrize(("timeout", "queued", "message", "retry_after"), [
    (3.0, False, "engine call containers.remove 0123456789ab did not answer within 3s", 1.0),
    (60.0, False, "engine call containers.remove 0123456789ab did not answer within 60s", 15.0),
    (900.0, False, "engine call containers.remove 0123456789ab did not answer within 900s", 30.0),
    (60.0, True, "engine call containers.remove 0123456789ab found no free slot within 60s", 15.0),
])
def test_engine_timeout_is_transient_and_names_call_and_container(timeout: float, queued: bool, message: str,
                                                                 retry_after: float) -> None:
    exc = EngineTimeout("containers.remove", "0123456789abcdef" * 4, timeout, queued=queued)
    assert isinstance(exc, TransientError) and not isinstance(exc, EngineUnavailable)
    assert str(exc) == message
    assert exc.retry_after == retry_after
    assert exc.call == "containers.remove" and exc.target.startswith("0123456789ab")


@pytest.mark.parametrize(("listed", "docker"), [
    # Docker's own states pass through unchanged
    *[(s, s) for s in ("created", "running", "paused", "restarting", "removing", "exited", "dead")],
    # Podman's libpod states, as Docker would report them
    ("stopped", "exited"),  # exited, Podman's cleanup not run yet (about 0.3-1 s)
    ("configured", "created"),
    ("stopping", "running"),
    ("", ""),
])
def test_container_states_are_read_in_dockers_vocabulary(listed: str, docker: str) -> None:
    assert _docker_state(listed) == docker


@pytest.mark.parametrize(("host", "endpoints", "create", "ignored"), [
    ({}, {}, {}, []),
    ({}, {"front": {"aliases": ["web"]}}, {"hostname": "h"}, []),
    ({}, {"front": {"aliases": ["web"], "links": [("db", "legacydb")]}}, {}, ["links"]),
    ({"links": {"db": "legacydb"}}, {}, {}, ["links"]),  # legacy links on the default bridge
    ({}, {}, {"domainname": "example.test"}, ["domainname"]),
    ({}, {"a": {"links": [("db", "x")]}}, {"domainname": "d"}, ["links", "domainname"]),
])
def test_keys_podman_accepts_and_ignores_are_named(host: dict[str, Any], endpoints: dict[str, Any],
                                                    create: dict[str, Any], ignored: list[str]) -> None:
    cfg = SimpleNamespace(host=host, endpoints=endpoints, create=create)
    assert _podman_ignores(cast(Any, cfg)) == ignored


def test_an_inline_dockerfile_travels_inside_the_context_tar_honouring_dockerignore(tmp_path: Path) -> None:
    (tmp_path / "app.txt").write_text("app\n")
    (tmp_path / "secret.env").write_text("TOKEN=x\n")
    (tmp_path / ".dockerignore").write_text("# comment\n\nsecret.env\n")
    fh, name = _inline_context(str(tmp_path), "FROM scratch\nCOPY app.txt /\n")
    try:
        with tarfile.open(fileobj=fh) as tar:
            names = tar.getnames()
            member = tar.extractfile(name)
            assert member is not None and member.read() == b"FROM scratch\nCOPY app.txt /\n"
    finally:
        fh.close()
    assert name.startswith(".dockerfile.") and "/" not in name
    assert "app.txt" in names and "secret.env" not in names
