"""Parsers for the value notations users write in specs: durations, memory sizes,
CPU counts, port mappings and volume mounts.

Each parser returns a canonical form so that equivalent notations hash equal
(``90s`` == ``1m30s``, ``8080:80`` == ``8080:80/tcp``). Parsers raise
``ValueError`` with a message saying what was expected; pydantic turns that into
a field error. No I/O here.
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|s|m|h|d)")
_DURATION_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
# Durations reach the engine as integer nanoseconds (Go's time.Duration, an int64: about
# 292 years). A bound well inside it keeps YAML's .inf, .nan and 1e400 (and absurdly long
# values) out of the spec instead of failing later when the container config is rendered.
MAX_DURATION = 100 * 365 * 86400.0
# Far beyond any host; keeps NanoCpus (an int64 of nano-CPUs) representable.
MAX_CPUS = 1_000_000.0


def parse_duration(value: object) -> float:
    """``"1m30s"``, ``"500ms"``, ``"2h"``, or a bare number of seconds -> seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as '10s', '1m30s' or '500ms'")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("expected a non-negative duration")
        return _bounded_duration(value, value)
    if not isinstance(value, str):
        raise ValueError("expected a duration such as '10s', '1m30s' or '500ms'")
    text = value.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return _bounded_duration(float(text), value)
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(
            f"invalid duration {value!r}: expected a duration such as '10s', '1m30s' or '500ms'"
        )
    return _bounded_duration(total, value)


def _bounded_duration(seconds: float, value: object) -> float:
    # written as a range so that NaN (false in every comparison) fails it too; an int
    # compares exactly, so 10**400 is refused without being converted to a float
    if not 0 <= seconds <= MAX_DURATION:
        raise ValueError(f"invalid duration {value!r}: expected a finite duration of at most 100 years")
    return float(seconds)


def format_duration(seconds: float) -> str:
    if seconds and seconds < 1:
        return f"{round(seconds * 1000)}ms"
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{seconds:g}s"


_MEMORY = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)", re.IGNORECASE)
_MEMORY_POW = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}


def parse_memory(value: object) -> int:
    """``512m``, ``4G``, ``1.5GiB``, ``1024`` (bytes) -> bytes.

    Docker's convention: k/m/g are binary multiples (1m = 1024*1024 bytes)."""
    if isinstance(value, bool):
        raise ValueError("expected a memory size such as '512m', '4G' or '1.5GiB'")
    if isinstance(value, int):
        if value <= 0:
            raise ValueError("expected a positive memory size")
        return value
    if not isinstance(value, str):
        raise ValueError("expected a memory size such as '512m', '4G' or '1.5GiB'")
    match = _MEMORY.fullmatch(value.strip())
    if not match or (match.group(3) and not match.group(2) and match.group(3).lower() != "b"):
        raise ValueError(
            f"invalid memory size {value!r}: expected a number with an optional unit "
            "b, k, m, g, t (or KiB, MiB, GiB), e.g. '512m', '4G', '1.5GiB'"
        )
    number = float(match.group(1)) * (1024 ** _MEMORY_POW[match.group(2).lower()])
    if not math.isfinite(number):  # hundreds of digits overflow the float (int() would raise OverflowError)
        raise ValueError(f"invalid memory size {value!r}: too large")
    if number < 1:
        raise ValueError(f"invalid memory size {value!r}: must be at least one byte")
    return int(number)


def parse_cpus(value: object) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a number of CPUs such as 0.5 or '1.5'")
    try:
        cpus = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int too large for a float
        raise ValueError(f"invalid cpus {value!r}: expected a number such as 0.5") from None
    # float() accepts 'inf' and 'nan' (and YAML has .inf/.nan); NaN fails every comparison
    if not math.isfinite(cpus):
        raise ValueError(f"invalid cpus {value!r}: expected a finite number such as 0.5")
    if cpus <= 0:
        raise ValueError("cpus must be positive")
    if cpus > MAX_CPUS:
        raise ValueError(f"invalid cpus {value!r}: at most {MAX_CPUS:g}")
    return cpus


@dataclass(frozen=True)
class PortMapping:
    host_ip: str
    host_port_start: int | None
    host_port_end: int | None
    container_port_start: int
    container_port_end: int
    protocol: str

    @property
    def is_range(self) -> bool:
        """More than one host port: a range mapped port to port, or a host range for one
        container port (the engine picks a free one, so replicas can share it)."""
        return self.container_port_end != self.container_port_start or self.host_port_end != self.host_port_start

    @property
    def host_pool(self) -> bool:
        """A host port range published to one container port (``8000-8010:80``)."""
        return self.container_port_end == self.container_port_start and self.host_port_end != self.host_port_start

    def canonical(self) -> str:
        def rng(a: int | None, b: int | None) -> str:
            if a is None:
                return ""
            return str(a) if a == b else f"{a}-{b}"

        host = rng(self.host_port_start, self.host_port_end)
        cont = rng(self.container_port_start, self.container_port_end)
        prefix = ""
        if self.host_ip:
            ip = f"[{self.host_ip}]" if ":" in self.host_ip else self.host_ip
            prefix = f"{ip}:{host}:"
        elif host:
            prefix = f"{host}:"
        return f"{prefix}{cont}/{self.protocol}"

    def bindings(self) -> list[tuple[str, tuple[str, int | str | None]]]:
        """[(\"80/tcp\", (host_ip, host_port)), ...] for each port of the range; for a host
        range published to one container port, the host port is the range text
        (``"8000-8010"``), from which the engine picks one free port."""
        if self.host_pool:
            return [(f"{self.container_port_start}/{self.protocol}",
                     (self.host_ip, f"{self.host_port_start}-{self.host_port_end}"))]
        out: list[tuple[str, tuple[str, int | str | None]]] = []
        count = self.container_port_end - self.container_port_start + 1
        for i in range(count):
            host_port = None if self.host_port_start is None else self.host_port_start + i
            out.append(
                (f"{self.container_port_start + i}/{self.protocol}", (self.host_ip, host_port))
            )
        return out


def _host_ip(text: str, value: object, expected: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise ValueError(f"invalid host IP {text!r} in port {value!r}: {expected}") from None


def _port_range(text: str, what: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)(?:-(\d+))?", text)
    if not m:
        raise ValueError(f"{what} {text!r} is not a port number or range")
    a = int(m.group(1))
    b = int(m.group(2)) if m.group(2) else a
    for p in (a, b):
        if not 1 <= p <= 65535:
            raise ValueError(f"{what} {p} is out of range 1-65535")
    if b < a:
        raise ValueError(f"{what} range {text!r} is reversed")
    return a, b


def parse_port(value: object) -> PortMapping:
    """``[IP:][HOST:]CONTAINER[/PROTO]`` with optional ranges, compose short syntax."""
    expected = "expected '[IP:][HOST_PORT:]CONTAINER_PORT[/tcp|udp]', e.g. '127.0.0.1:8080:80'"
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"invalid port {value!r}: {expected}")
    text = str(value).strip()
    protocol = "tcp"
    if "/" in text:
        text, protocol = text.rsplit("/", 1)
        if protocol not in ("tcp", "udp", "sctp"):
            raise ValueError(f"invalid port protocol {protocol!r}: expected tcp, udp or sctp")
    host_ip, parts, had_ip = _port_host_ip(text, value, expected)
    if len(parts) == 2 and not parts[0] and not had_ip:
        raise ValueError(f"invalid port {value!r}: empty host port; {expected}")
    if len(parts) > 2 or not all(parts[-1:]):
        raise ValueError(f"invalid port {value!r}: {expected}")
    host, cont = _port_numbers(parts, value, expected)
    return PortMapping(host_ip, host[0], host[1], cont[0], cont[1], protocol)


def _port_numbers(parts: list[str], value: object,
                  expected: str) -> tuple[tuple[int | None, int | None], tuple[int, int]]:
    """``[HOST:]CONTAINER`` (each a port or a range) -> (host range or (None, None), container range)."""
    try:
        cont = _port_range(parts[-1], "container port")
        host: tuple[int | None, int | None] = (None, None)
        if len(parts) == 2 and parts[0]:
            host = _port_range(parts[0], "host port")
    except ValueError as exc:
        raise ValueError(f"invalid port {value!r}: {exc}; {expected}") from None
    if host[0] is not None and host[1] is not None and (host[1] - host[0]) != (cont[1] - cont[0]) \
            and cont[0] != cont[1]:
        raise ValueError(f"invalid port {value!r}: host and container ranges differ in size "
                         "(a host range may also be published to a single container port)")
    return host, cont


def _port_host_ip(text: str, value: object, expected: str) -> tuple[str, list[str], bool]:
    """A port's host IP (``[::1]:...``, ``IP:HOST:CONTAINER``), the port parts after it and
    whether an IP part was written (it may be empty)."""
    host_ip, had_ip = "", False
    if text.startswith("["):  # [::1]:8080:80
        end = text.find("]")
        if end < 0 or text[end + 1 : end + 2] != ":":
            raise ValueError(f"invalid port {value!r}: {expected}")
        host_ip, text, had_ip = _host_ip(text[1:end], value, expected), text[end + 2 :], True
    parts = text.split(":")
    if len(parts) >= 3 and not had_ip:
        # IP:HOST:CONTAINER; the IP may be empty (':443:443', as compose allows) or an
        # IPv6 address without brackets ('::1:8080:80': the last two parts are the ports)
        ip_text, parts, had_ip = ":".join(parts[:-2]), parts[-2:], True
        host_ip = _host_ip(ip_text, value, expected) if ip_text else ""
    return host_ip, parts, had_ip


@dataclass(frozen=True)
class VolumeMount:
    source: str  # volume name, or a host path (absolute, or relative to the spec file)
    target: str
    read_only: bool
    kind: str  # "volume" | "bind" | "anonymous"
    options: tuple[str, ...] = ()  # sorted bind/volume options besides ro/rw: z, Z, nocopy, rshared ...

    def canonical(self) -> str:
        opts = (["ro"] if self.read_only else []) + list(self.options)
        mode = ":" + ",".join(opts) if opts else ""
        if self.kind == "anonymous":
            return f"{self.target}{mode}"
        return f"{self.source}:{self.target}{mode}"

    def engine_mode(self) -> str:
        """The mode part of an engine bind string: 'rw', 'ro,Z', 'rw,nocopy'."""
        return ",".join(["ro" if self.read_only else "rw", *self.options])


# z / Z: SELinux relabel (shared / private); propagation modes; nocopy: do not copy the
# image's content into a new named volume; consistency modes are no-ops on Linux.
BIND_OPTIONS = frozenset({"z", "Z", "shared", "rshared", "slave", "rslave", "private", "rprivate"})
VOLUME_OPTIONS = frozenset({"nocopy"})
NOOP_OPTIONS = frozenset({"consistent", "cached", "delegated"})


_VOLUME_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")


def parse_volume(value: object) -> VolumeMount:
    """``NAME:/path[:ro|rw]``, ``./rel:/path``, ``/abs:/path``, or ``/path`` (anonymous)."""
    expected = "expected 'VOLUME:/container/path[:ro]' or './host/path:/container/path[:ro]'"
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"invalid volume {value!r}: {expected}")
    parts = value.strip().split(":")
    read_only, options = _volume_modes(parts.pop(), value) if len(parts) == 3 else (False, set())
    if len(parts) == 1:
        target = parts[0]
        if not target.startswith("/"):
            raise ValueError(f"invalid volume {value!r}: {expected}")
        return VolumeMount("", target, read_only, "anonymous")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise ValueError(f"invalid volume {value!r}: {expected}")
    source, target = parts
    if not target.startswith("/"):
        raise ValueError(f"invalid volume {value!r}: container path {target!r} must be absolute")
    kind = _volume_kind(source, value)
    wrong = options & (VOLUME_OPTIONS if kind == "bind" else BIND_OPTIONS - {"z", "Z"})
    if wrong:
        what = "a bind mount" if kind == "bind" else "a named volume"
        raise ValueError(f"invalid volume {value!r}: {', '.join(sorted(wrong))} does not apply to {what}")
    return VolumeMount(source, target, read_only, kind, tuple(sorted(options)))


def _volume_modes(text: str, value: str) -> tuple[bool, set[str]]:
    """A volume's ``MODE`` part (``ro,Z``) -> (read only, the other options)."""
    read_only, options = False, set()
    for mode in text.split(","):
        if mode in ("ro", "rw"):
            read_only = mode == "ro"
        elif mode in BIND_OPTIONS | VOLUME_OPTIONS | NOOP_OPTIONS:
            options.add(mode)
        else:
            raise ValueError(f"invalid volume mode {mode!r} in {value!r}: expected ro, rw, z, Z, nocopy or a "
                             "propagation mode (rshared, rslave, rprivate, ...), comma-separated")
    if {"z", "Z"} <= options:
        raise ValueError(f"invalid volume {value!r}: 'z' (shared) and 'Z' (private) relabelling exclude each other")
    return read_only, options


def _volume_kind(source: str, value: str) -> str:
    """``bind`` for a host path, ``volume`` for a volume name; anything else is an error."""
    if source.startswith(("/", "./", "../", "~")) or source in (".", ".."):
        return "bind"
    if _VOLUME_NAME.fullmatch(source):
        return "volume"
    raise ValueError(
        f"invalid volume {value!r}: {source!r} is neither a volume name nor a host path "
        "(host paths start with '/', './' or '../')"
    )
