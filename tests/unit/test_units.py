"""crd_like.units: the value notations users write (durations, memory, ports, volumes)."""

from __future__ import annotations

import pytest

from crd_like import units

GiB = 1024**3
MiB = 1024**2


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10s", 10.0),
        ("1m30s", 90.0),
        ("90s", 90.0),
        ("500ms", 0.5),
        ("250us", 0.00025),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("1h2m3s", 3723.0),
        ("1.5m", 90.0),
        (" 5s ", 5.0),
        ("10", 10.0),  # a bare number is seconds
        ("1.5", 1.5),
        ("0", 0.0),
        (10, 10.0),
        (2.5, 2.5),
        (0, 0.0),
    ],
)
def test_parse_duration(text: object, seconds: float) -> None:
    assert units.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text",
    ["10x", "", "   ", "-1", "1m30", "abc", "s", "1 m", "m30s", "1.s", -1, -0.5, True, None, [10], {"s": 1}],
)
def test_parse_duration_rejects(text: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        units.parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(90.0, "90s"), (0.5, "500ms"), (0.0, "0s"), (1.5, "1.5s"), (7200.0, "7200s")],
)
def test_format_duration_round_trips(seconds: float, text: str) -> None:
    assert units.format_duration(seconds) == text
    assert units.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("512m", 512 * MiB),
        ("512M", 512 * MiB),
        ("512MiB", 512 * MiB),
        ("512mb", 512 * MiB),
        ("4G", 4 * GiB),
        ("4g", 4 * GiB),
        ("1.5GiB", int(1.5 * GiB)),
        ("1k", 1024),
        ("2KiB", 2048),
        ("1t", 1024**4),
        ("1024", 1024),
        ("1024b", 1024),
        ("1 g", GiB),
        (2048, 2048),
    ],
)
def test_parse_memory(text: object, size: int) -> None:
    assert units.parse_memory(text) == size


@pytest.mark.parametrize(
    "text",
    ["12q", "m", "-5m", "1.5.5g", "", "0", "0.5", "5ib", "g4", "4 G B", 0, -3, 1.5, True, None],
)
def test_parse_memory_rejects(text: object) -> None:
    with pytest.raises(ValueError, match="memory size"):
        units.parse_memory(text)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("80", "80/tcp"),
        (80, "80/tcp"),
        ("80/tcp", "80/tcp"),
        ("53/udp", "53/udp"),
        ("9000/sctp", "9000/sctp"),
        ("8080:80", "8080:80/tcp"),
        ("8080:80/tcp", "8080:80/tcp"),
        (" 8080:80 ", "8080:80/tcp"),
        ("127.0.0.1:8080:80", "127.0.0.1:8080:80/tcp"),
        ("127.0.0.1:8080:80/udp", "127.0.0.1:8080:80/udp"),
        ("127.0.0.1::80", "127.0.0.1::80/tcp"),  # a random host port on one address
        ("8000-8002:80-82", "8000-8002:80-82/tcp"),
        ("80-82", "80-82/tcp"),
        ("65535:1", "65535:1/tcp"),
    ],
)
def test_parse_port_canonical(text: object, canonical: str) -> None:
    assert units.parse_port(text).canonical() == canonical


@pytest.mark.parametrize(
    "text",
    [
        "80",
        "8080:80/udp",
        "127.0.0.1:8080:80/udp",
        "127.0.0.1::80",
        "8000-8002:80-82",
        "[::1]:8080:80",
    ],
)
def test_parse_port_canonical_form_parses_back_to_itself(text: str) -> None:
    # Models store the canonical form and re-parse it (ServiceSpec._unique, render):
    # a canonical form that does not parse makes a valid spec unloadable.
    canonical = units.parse_port(text).canonical()
    assert units.parse_port(canonical).canonical() == canonical


@pytest.mark.parametrize(
    ("text", "bindings"),
    [
        ("80", [("80/tcp", ("", None))]),
        ("127.0.0.1:8080:80/udp", [("80/udp", ("127.0.0.1", 8080))]),
        ("8000-8002:80-82", [("80/tcp", ("", 8000)), ("81/tcp", ("", 8001)), ("82/tcp", ("", 8002))]),
        ("127.0.0.1::80", [("80/tcp", ("127.0.0.1", None))]),
    ],
)
def test_port_bindings(text: str, bindings: list[tuple[str, tuple[str, int | None]]]) -> None:
    assert units.parse_port(text).bindings() == bindings


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("99999:80", "out of range"),
        ("80:99999", "out of range"),
        ("0", "out of range"),
        ("abc", "not a port number"),
        ("1.2.3:80:80", "invalid host IP"),
        ("8000-8002:80-81", "ranges differ in size"),
        ("82-80", "reversed"),
        ("80/xyz", "protocol"),
        ("80:", "invalid port"),
        ("", "invalid port"),
        ("1:2:3:4", "invalid host IP"),
        (True, "invalid port"),
        (80.5, "invalid port"),
        (":80", "invalid port"),
    ],
)
def test_parse_port_rejects(text: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        units.parse_port(text)


@pytest.mark.parametrize(
    ("text", "canonical", "kind", "source", "target", "read_only"),
    [
        ("data:/data", "data:/data", "volume", "data", "/data", False),
        ("data:/data:ro", "data:/data:ro", "volume", "data", "/data", True),
        ("data:/data:rw", "data:/data", "volume", "data", "/data", False),  # rw is the default
        ("my_vol.1-x:/v", "my_vol.1-x:/v", "volume", "my_vol.1-x", "/v", False),
        ("./conf:/etc/app", "./conf:/etc/app", "bind", "./conf", "/etc/app", False),
        ("../up:/x:ro", "../up:/x:ro", "bind", "../up", "/x", True),
        (".:/src", ".:/src", "bind", ".", "/src", False),
        ("/srv/data:/data", "/srv/data:/data", "bind", "/srv/data", "/data", False),
        ("/srv/data:/data:ro", "/srv/data:/data:ro", "bind", "/srv/data", "/data", True),
        ("~/cache:/cache", "~/cache:/cache", "bind", "~/cache", "/cache", False),
        ("/data", "/data", "anonymous", "", "/data", False),
    ],
)
def test_parse_volume(text: str, canonical: str, kind: str, source: str, target: str, read_only: bool) -> None:
    m = units.parse_volume(text)
    assert (m.kind, m.source, m.target, m.read_only) == (kind, source, target, read_only)
    assert m.canonical() == canonical
    assert units.parse_volume(m.canonical()) == m


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("data", "invalid volume"),
        ("name:relative/path", "must be absolute"),
        ("a:/b:zz", "invalid volume mode"),
        ("bad name!:/x", "neither a volume name nor a host path"),
        ("-vol:/x", "neither a volume name nor a host path"),
        ("", "invalid volume"),
        (":/x", "invalid volume"),
        ("data:", "invalid volume"),
        ("/a:/b:ro:x", "invalid volume"),
        (5, "invalid volume"),
        (None, "invalid volume"),
    ],
)
def test_parse_volume_rejects(text: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        units.parse_volume(text)


@pytest.mark.parametrize(("text", "cpus"), [("0.5", 0.5), (2, 2.0), ("1.5", 1.5)])
def test_parse_cpus(text: object, cpus: float) -> None:
    assert units.parse_cpus(text) == cpus


@pytest.mark.parametrize("text", ["0", "-1", "abc", True, None])
def test_parse_cpus_rejects(text: object) -> None:
    with pytest.raises(ValueError):
        units.parse_cpus(text)
