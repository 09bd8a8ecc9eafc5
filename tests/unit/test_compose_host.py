"""Host-configuration keys (issue 10): compose key -> native field -> engine arguments.

Table-driven: every key's compose mapping, every warning (file:line:key and what happens
instead), every new error (file:line:field), the native validation and normalisation,
the engine arguments ``render_host`` produces, hash neutrality of the new fields, and
the engine-side helpers (platform match, API version compare).
"""

from __future__ import annotations

from typing import Any

import pytest

from controller import render_host
from controller.engine import _api_at_least, platform_mismatch
from controller.render import prepare, render
from crd_like import units
from crd_like.errors import InvalidSpec, Issue
from crd_like.formats import LoadOptions, load_any
from crd_like.hashing import container_hash
from crd_like.models import HealthCheck, JobSpec, ServiceSpec

FILE = "/srv/ct/compose.yaml"
DIR = "/srv/ct"
FILES = {"/srv/ct/labels.env": b"com.example.a=from-file\ncom.example.b=from-file\n"}


def reader(path: str) -> bytes:
    if path not in FILES:
        raise FileNotFoundError(path)
    return FILES[path]


def load(text: str, warnings: list[str] | None = None, **opts: Any) -> dict[str, Any]:
    options = LoadOptions(environ={}, read_file=reader, warnings=warnings if warnings is not None else [], **opts)
    return {r.name: r for r in load_any([(text.encode(), FILE, DIR)], options)}


def project(body: str) -> str:
    indented = "\n".join("    " + line for line in body.splitlines())
    return f"name: ct-h\nservices:\n  s:\n    image: img\n{indented}\n  db:\n    image: db\nvolumes: {{data: {{}}}}\n"


def spec(body: str, warnings: list[str] | None = None) -> ServiceSpec:
    return load(project(body), warnings)["ct-h-s"].spec


def problems(body: str) -> list[Issue]:
    with pytest.raises(InvalidSpec) as info:
        load(project(body))
    return info.value.issues


def dump(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(exclude_defaults=True)
    if isinstance(value, list):
        return [dump(v) for v in value]
    if isinstance(value, dict):
        return {k: dump(v) for k, v in value.items()}
    return value


MiB = 1024 * 1024

# ------------------------------------------------------------------------------ compose key -> native field
MAPPING: list[tuple[str, str, dict[str, Any]]] = [
    ("ulimits", "ulimits: {nofile: {soft: 1024, hard: 2048}, nproc: 65535}",
     {"ulimits": {"nofile": {"soft": 1024, "hard": 2048}, "nproc": {"soft": 65535, "hard": 65535}}}),
    ("sysctls map", "sysctls: {net.core.somaxconn: 1024}", {"sysctls": {"net.core.somaxconn": "1024"}}),
    ("sysctls list", "sysctls: [net.ipv4.tcp_syncookies=0]", {"sysctls": {"net.ipv4.tcp_syncookies": "0"}}),
    ("privileged", "privileged: true", {"privileged": True}),
    ("devices", "devices: [/dev/fuse, '/dev/sda:/dev/xvda:r']",
     {"devices": ["/dev/fuse:/dev/fuse:rwm", "/dev/sda:/dev/xvda:r"]}),
    ("security_opt", "security_opt: ['no-new-privileges:true', 'seccomp=unconfined', 'label:disable']",
     {"securityOpt": ["no-new-privileges=true", "seccomp=unconfined", "label=disable"]}),
    ("shm_size", "shm_size: 64m", {"shmSize": 64 * MiB}),
    ("shm_size bytes", "shm_size: 1048576", {"shmSize": MiB}),
    ("tty and stdin_open", "tty: true\nstdin_open: true", {"tty": True, "stdinOpen": True}),
    ("ipc", "ipc: shareable", {"ipc": "shareable"}),
    ("ipc service", "ipc: service:db", {"ipc": "service:ct-h-db"}),
    ("pid host", "pid: host", {"pid": "host"}),
    ("pid container", "pid: container:other", {"pid": "container:other"}),
    ("uts", "uts: host", {"uts": "host"}),
    ("userns_mode", "userns_mode: host", {"usernsMode": "host"}),
    ("cgroup", "cgroup: private", {"cgroup": "private"}),
    ("cgroup_parent", "cgroup_parent: m-executor-abcd", {"cgroupParent": "m-executor-abcd"}),
    ("group_add", "group_add: [audio, 1000]", {"groupAdd": ["audio", "1000"]}),
    ("pids_limit", "pids_limit: 100", {"pidsLimit": 100}),
    ("cpu knobs", "cpu_shares: 512\ncpu_period: 100ms\ncpu_quota: 50000\ncpu_rt_period: 1000000\n"
                  "cpu_rt_runtime: 950ms\ncpuset: 0-1",
     {"cpuShares": 512, "cpuPeriod": 100000, "cpuQuota": 50000, "cpuRtPeriod": 1000000, "cpuRtRuntime": 950000,
      "cpuset": "0-1"}),
    ("memory knobs", "mem_swappiness: 10\nmemswap_limit: 1g\noom_kill_disable: true\noom_score_adj: -500",
     {"memSwappiness": 10, "memswapLimit": 1024 * MiB, "oomKillDisable": True, "oomScoreAdj": -500}),
    ("memswap unlimited", "memswap_limit: -1", {"memswapLimit": -1}),
    ("runtime", "runtime: runc", {"runtime": "runc"}),
    ("mac_address", "mac_address: 02-42-AC-11-00-02", {"macAddress": "02:42:ac:11:00:02"}),
    ("domainname", "domainname: example.test", {"domainname": "example.test"}),
    ("storage_opt", "storage_opt: {size: 1G}", {"storageOpt": {"size": "1G"}}),
    ("device_cgroup_rules", "device_cgroup_rules: ['c 1:3 mr', 'a *:* rwm']",
     {"deviceCgroupRules": ["c 1:3 mr", "a *:* rwm"]}),
    ("blkio_config", "blkio_config:\n  weight: 300\n  weight_device: [{path: /dev/sda, weight: 400}]\n"
                     "  device_read_bps: [{path: /dev/sda, rate: 12mb}]\n  device_write_iops: [{path: /dev/sda, rate: 30}]",
     {"blkio": {"weight": 300, "weightDevice": [{"path": "/dev/sda", "weight": 400}],
                "deviceReadBps": [{"path": "/dev/sda", "rate": 12 * MiB}],
                "deviceWriteIops": [{"path": "/dev/sda", "rate": 30}]}}),
    ("annotations map", "annotations: {com.example.a: 1}", {"annotations": {"com.example.a": "1"}}),
    ("annotations list", "annotations: [com.example.a=1]", {"annotations": {"com.example.a": "1"}}),
    ("gpus all", "gpus: all", {"deviceRequests": [{"capabilities": ["gpu"]}]}),
    ("gpus list", "gpus: [{driver: nvidia, device_ids: ['0']}]",
     {"deviceRequests": [{"driver": "nvidia", "deviceIds": ["0"], "capabilities": ["gpu"]}]}),
    ("pull_policy never", "pull_policy: never", {"pullPolicy": "never"}),
    ("pull_policy if_not_present", "pull_policy: if_not_present", {}),  # == missing, the default
    ("pull_policy build", "pull_policy: build\nbuild: .", {"pullPolicy": "build"}),
    ("platform", "platform: linux/arm64/v8", {"platform": "linux/arm64/v8"}),
    ("healthcheck disable", "healthcheck: {disable: true}", {"healthcheck": {"disable": True}}),
    ("healthcheck NONE", "healthcheck: {test: [NONE]}", {"healthcheck": {"disable": True}}),
    ("healthcheck NONE string", "healthcheck: {test: NONE}", {"healthcheck": {"disable": True}}),
    ("healthcheck start_interval", "healthcheck: {test: [CMD, x], start_period: 30s, start_interval: 1s}",
     {"healthcheck": {"test": ["CMD", "x"], "startPeriod": 30.0, "startInterval": 1.0}}),
    ("volume z and Z", "volumes: ['./a:/a:z', './b:/b:ro,Z']", {"volumes": ["/srv/ct/a:/a:z", "/srv/ct/b:/b:ro,Z"]}),
    ("volume nocopy", "volumes: ['data:/d:nocopy']", {"volumes": ["ct-h_data:/d:nocopy"]}),
    ("volume propagation", "volumes: ['/mnt:/mnt:rshared']", {"volumes": ["/mnt:/mnt:rshared"]}),
    ("long volume options", "volumes:\n  - {type: volume, source: data, target: /d, volume: {nocopy: true}}\n"
                            "  - {type: bind, source: ./a, target: /a, bind: {selinux: z, propagation: rslave}}",
     {"volumes": ["ct-h_data:/d:nocopy", "/srv/ct/a:/a:rslave,z"]}),
    ("long bind source with ':'", "volumes:\n  - {type: bind, source: './data:2024', target: /data, read_only: true}",
     {"mounts": [{"source": "/srv/ct/data:2024", "target": "/data", "readOnly": True}]}),
    ("ports range to one port", "ports: ['8000-8010:80', ':443:443', '::1:8080:80', '[::1]:8081:81']",
     {"ports": ["8000-8010:80/tcp", "443:443/tcp", "[::1]:8080:80/tcp", "[::1]:8081:81/tcp"]}),
    ("ports long with name", "ports:\n  - {target: 80, published: '9000-9005', name: web, app_protocol: http}",
     {"ports": ["9000-9005:80/tcp"]}),
    ("build keys", "build:\n  context: .\n  dockerfile_inline: FROM scratch\n  network: none\n  labels: [a=b]\n"
                   "  no_cache: true\n  shm_size: 32m\n  extra_hosts: ['h:10.0.0.1']",
     {"build": {"context": "/srv/ct", "dockerfileInline": "FROM scratch", "network": "none", "labels": {"a": "b"},
                "noCache": True, "shmSize": 32 * MiB, "extraHosts": ["h:10.0.0.1"]}}),
    ("deploy mode replicated", "deploy: {mode: replicated, replicas: 2}", {"replicas": 2}),
    ("deploy resources pids and devices", "deploy:\n  resources:\n    limits: {pids: 50}\n"
                                          "    reservations:\n      devices: [{capabilities: [gpu], count: 1}]",
     {"pidsLimit": 50, "deviceRequests": [{"count": 1, "capabilities": ["gpu"]}]}),
    ("label_file under labels", "label_file: ./labels.env\nlabels: {com.example.b: inline}",
     {"labels": {"com.example.a": "from-file", "com.example.b": "inline"}}),
    ("use_api_socket", "use_api_socket: true", {"useApiSocket": True}),
    ("attach false", "attach: false", {}),
]


@pytest.mark.parametrize(("body", "expected"), [c[1:] for c in MAPPING], ids=[c[0] for c in MAPPING])
def test_compose_key_maps_to_native_field(body: str, expected: dict[str, Any]) -> None:
    warnings: list[str] = []
    got = spec(body, warnings)
    data = got.model_dump(mode="json", exclude_defaults=True)
    for key, value in expected.items():
        assert data.get(key) == value, (key, data.get(key))
    unexpected = {"ulimits", "sysctls", "privileged", "devices", "pullPolicy", "healthcheck"} - set(expected)
    assert not unexpected & set(data), {k: data[k] for k in unexpected & set(data)}


# ------------------------------------------------------------------------------ accepted, meaning differs: warnings
WARNINGS: list[tuple[str, str, int, str, str]] = [
    # (service body, key, line, field, what happens instead)
    ("cpu_count: 2", "cpu_count", 5, "services.s.cpu_count", "Windows-only"),
    ("cpu_percent: 50", "cpu_percent", 5, "services.s.cpu_percent", "Windows-only"),
    ("pull_policy: daily", "pull_policy", 5, "services.s.pull_policy", "treated as 'missing'"),
    ("pull_policy: every_12h", "pull_policy", 5, "services.s.pull_policy", "treated as 'missing'"),
    ("pull_policy: always", "pull_policy", 5, "services.s.pull_policy", "one bounded pull attempt"),
    ("attach: true", "attach", 5, "services.s.attach", "docker logs"),
    ("use_api_socket: true", "use_api_socket", 5, "services.s.use_api_socket", "credentials are not copied"),
    ("deploy:\n  mode: global", "deploy.mode", 6, "services.s.deploy.mode", "one container on this one host"),
    ("deploy:\n  labels: {a: b}", "deploy.labels", 6, "services.s.deploy.labels", "use `labels:`"),
    ("deploy:\n  placement: {constraints: [node.role==manager]}", "deploy.placement.constraints", 6,
     "services.s.deploy.placement.constraints[0]", "only node.hostname and node.labels.* are mapped"),
    ("build:\n  context: .\n  pull: true", "build.pull", 7, "services.s.build.pull", "nothing is pulled"),
    ("build:\n  context: .\n  cache_from: [x]", "build.cache_from", 7, "services.s.build.cache_from", "no registry"),
    ("build:\n  context: .\n  cache_to: [x]", "build.cache_to", 7, "services.s.build.cache_to", "no registry"),
    ("build:\n  context: .\n  tags: [x:1]", "build.tags", 7, "services.s.build.tags", "tagged only as `image:`"),
    ("volumes:\n  - {type: bind, source: ./a, target: /a, bind: {create_host_path: false}}",
     "volumes.bind.create_host_path", 6, "services.s.volumes[0].bind.create_host_path", "still creates"),
]


@pytest.mark.parametrize(("body", "key", "line", "field", "what"), WARNINGS, ids=[w[0] for w in WARNINGS])
def test_accepted_key_warns_with_location_and_consequence(body: str, key: str, line: int, field: str, what: str) -> None:
    warnings: list[str] = []
    spec(body, warnings)
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(f"{FILE}:{line}: {field}: compose key '{key}': "), warnings[0]
    assert what in warnings[0]


def test_deploy_mode_global_is_one_replica() -> None:
    assert spec("deploy: {mode: global}", []).replicas == 1


def test_deploy_labels_are_not_put_on_containers() -> None:
    assert spec("deploy: {labels: {a: b}}", []).labels == {}


# ------------------------------------------------------------------------------ errors at convert time
ERRORS: list[tuple[str, int, str, str]] = [
    # (service body, line, field, message fragment)
    ("ulimits: {nofile: {soft: 2048, hard: 1024}}", 5, "services.s.ulimits.nofile", "above the hard limit"),
    ("ulimits: {files: 1}", 5, "services.s.ulimits", "unknown ulimit 'files'"),
    ("sysctls: [novalue]", 5, "services.s.sysctls", "expected 'NAME=VALUE'"),
    ("devices: ['dev/fuse']", 5, "services.s.devices[0]", "invalid device"),
    ("devices: ['nvidia.com/gpu=all']", 5, "services.s.devices[0]", "CDI device names need Docker API 1.44"),
    ("security_opt: ['seccomp:./p.json']", 5, "services.s.security_opt[0]", "seccomp profile file"),
    ("security_opt: ['frobnicate:1']", 5, "services.s.security_opt[0]", "unknown security option"),
    ("shm_size: lots", 5, "services.s.shm_size", "invalid memory size"),
    ("ipc: service:ghost", 5, "services.s.ipc", "names no service"),
    ("ipc: service:s", 5, "services.s.ipc", "its own namespace"),
    ("ipc: sideways", 5, "services.s.ipc", "expected host, private, shareable"),
    ("pid: private", 5, "services.s.pid", "expected host, service:NAME"),
    ("uts: private", 5, "services.s.uts", "'host'"),
    ("cpuset: 'zero'", 5, "services.s.cpuset", "CPU numbers and ranges"),
    ("mem_swappiness: 101", 5, "services.s.mem_swappiness", "less than or equal to 100"),
    ("oom_score_adj: -1001", 5, "services.s.oom_score_adj", "greater than or equal to -1000"),
    ("mac_address: zz:zz", 5, "services.s.mac_address", "a MAC address"),
    ("device_cgroup_rules: ['x 1:3 r']", 5, "services.s.device_cgroup_rules[0]", "invalid device cgroup rule"),
    ("blkio_config: {weight: 5}", 5, "services.s.blkio_config.weight", "greater than or equal to 10"),
    ("pull_policy: sometimes", 5, "services.s.pull_policy", "invalid pull_policy"),
    ("pull_policy: build", 5, "services.s.pull_policy", "needs a `build:` section"),
    ("platform: amd64", 5, "services.s.platform", "expected OS/ARCH"),
    ("gpus: some", 5, "services.s.gpus", "gpus must be 'all'"),
    ("volumes: ['./a:/a:rox']", 5, "services.s.volumes[0]", "invalid volume mode 'rox'"),
    ("volumes: ['./a:/a:nocopy']", 5, "services.s.volumes[0]", "nocopy does not apply to a bind mount"),
    ("volumes: ['./a:/a:z,Z']", 5, "services.s.volumes[0]", "exclude each other"),
    ("volumes:\n  - {type: bind, source: './a:b', target: /a, bind: {selinux: Z}}", 6, "services.s.volumes[0]",
     "cannot be combined with a host path containing ':'"),
    ("ports: ['8000-8002:80-81']", 5, "services.s.ports[0]", "ranges differ in size"),
    ("ports: ['1.2.3:80:80']", 5, "services.s.ports[0]", "invalid host IP"),
    ("build:\n  dockerfile: Dockerfile\n  dockerfile_inline: FROM x", 7, "services.s.build.dockerfile_inline",
     "not both"),
    ("deploy:\n  mode: global\n  replicas: 2", 7, "services.s.deploy.replicas", "cannot be combined with mode: global"),
    ("pids_limit: 10\ndeploy:\n  resources:\n    limits: {pids: 20}", 8,
     "services.s.deploy.resources.limits.pids", "differ"),
    ("label_file: ./missing.env", 5, "services.s.label_file", "does not exist"),
]


@pytest.mark.parametrize(("body", "line", "field", "fragment"), ERRORS, ids=[e[0] for e in ERRORS])
def test_bad_value_is_an_error_with_location(body: str, line: int, field: str, fragment: str) -> None:
    found = problems(body)
    assert [(i.file, i.line, i.field) for i in found] == [(FILE, line, field)], found
    assert fragment in found[0].message, found[0].message
    assert "{" not in found[0].message.split(":", 1)[0]  # no Python reprs of mappings


@pytest.mark.parametrize("body", ["build:\n  context: .\n  secrets: [x]", "build:\n  context: .\n  ssh: [default]",
                                  "credential_spec: {file: x}",
                                  "volumes:\n  - {type: volume, source: data, target: /d, volume: {subpath: x}}"])
def test_keys_that_cannot_be_honoured_are_unsupported(body: str) -> None:
    [issue] = problems(body)
    assert "not supported" in issue.message and "--allow-unsupported" in issue.message


# ------------------------------------------------------------------------------ native fields
NATIVE_EQUAL: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({"ulimits": {"nofile": 1024}}, {"ulimits": {"nofile": {"soft": 1024, "hard": 1024}}}),
    ({"ulimits": {"nofile": "1024:2048"}}, {"ulimits": {"nofile": {"soft": 1024, "hard": 2048}}}),
    ({"shmSize": "64m"}, {"shmSize": 64 * MiB}),
    ({"securityOpt": ["seccomp:unconfined"]}, {"securityOpt": ["seccomp=unconfined"]}),
    ({"devices": ["/dev/fuse"]}, {"devices": ["/dev/fuse:/dev/fuse:rwm"]}),
    ({"sysctls": ["a.b=1"]}, {"sysctls": {"a.b": "1"}}),
    ({"healthcheck": {"test": ["NONE"]}}, {"healthcheck": {"disable": True}}),
    ({"cpuPeriod": "100ms"}, {"cpuPeriod": 100000}),
    ({"pullPolicy": "missing", "privileged": False, "ulimits": {}}, {}),  # defaults hash as absent
    ({"ports": ["0.0.0.0:8000-8010:80"]}, {"ports": ["0.0.0.0:8000-8010:80/tcp"]}),
]


@pytest.mark.parametrize(("a", "b"), NATIVE_EQUAL, ids=[str(a) for a, _ in NATIVE_EQUAL])
def test_equivalent_native_notations_hash_equal(a: dict[str, Any], b: dict[str, Any]) -> None:
    sa, sb = ServiceSpec.model_validate({"image": "x", **a}), ServiceSpec.model_validate({"image": "x", **b})
    assert container_hash(sa) == container_hash(sb)


CHANGES: list[dict[str, Any]] = [
    {"ulimits": {"nofile": 1024}}, {"sysctls": {"net.core.somaxconn": 1}}, {"privileged": True},
    {"devices": ["/dev/fuse"]}, {"securityOpt": ["label:disable"]}, {"shmSize": "64m"}, {"tty": True},
    {"stdinOpen": True}, {"ipc": "host"}, {"pid": "host"}, {"uts": "host"}, {"usernsMode": "host"},
    {"cgroup": "host"}, {"cgroupParent": "x"}, {"groupAdd": ["1"]}, {"pidsLimit": 5}, {"cpuCount": 1},
    {"cpuPercent": 5}, {"cpuShares": 100}, {"cpuPeriod": 10000}, {"cpuQuota": 5000}, {"cpuRtPeriod": 10},
    {"cpuRtRuntime": 5}, {"cpuset": "0"}, {"memSwappiness": 1}, {"memswapLimit": "1g"}, {"oomKillDisable": True},
    {"oomScoreAdj": 1}, {"runtime": "runc"}, {"macAddress": "02:42:ac:11:00:02"}, {"domainname": "x"},
    {"storageOpt": {"size": "1G"}}, {"deviceCgroupRules": ["c 1:3 r"]}, {"blkio": {"weight": 100}},
    {"annotations": {"a": "b"}}, {"deviceRequests": [{"count": 1}]}, {"pullPolicy": "never"},
    {"platform": "linux/amd64"}, {"mounts": [{"source": "/a:b", "target": "/a"}]}, {"useApiSocket": True},
    {"healthcheck": {"disable": True}}, {"volumes": ["./a:/a:z"]},
]


@pytest.mark.parametrize("change", CHANGES, ids=[next(iter(c)) for c in CHANGES])
def test_each_field_changes_the_container_hash(change: dict[str, Any]) -> None:
    base = ServiceSpec.model_validate({"image": "x"})
    assert container_hash(ServiceSpec.model_validate({"image": "x", **change})) != container_hash(base)


def test_a_job_may_disable_the_image_healthcheck_but_not_probe() -> None:
    JobSpec.model_validate({"image": "x", "healthcheck": {"disable": True}})
    with pytest.raises(ValueError, match="cannot have a healthcheck"):
        JobSpec.model_validate({"image": "x", "healthcheck": {"test": ["CMD", "true"]}})


@pytest.mark.parametrize(("data", "fragment"), [
    ({"interval": "5s"}, "needs `test`"),
    ({"disable": True, "test": ["CMD", "x"]}, "has no `test`"),
])
def test_healthcheck_model_errors(data: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        HealthCheck.model_validate(data)


# ------------------------------------------------------------------------------ engine arguments
def rendered(fields: dict[str, Any]) -> Any:
    svc = prepare("web", "Service", 1, {"image": "x", **fields})
    return render(svc, "inst", 1)


RENDER: list[tuple[dict[str, Any], str, dict[str, Any]]] = [
    ({"ulimits": {"nofile": {"soft": 1, "hard": 2}}}, "host", {"ulimits": [{"name": "nofile", "soft": 1, "hard": 2}]}),
    ({"sysctls": {"a.b": 1}}, "host", {"sysctls": {"a.b": "1"}}),
    ({"privileged": True}, "host", {"privileged": True}),
    ({"devices": ["/dev/fuse"]}, "host", {"devices": ["/dev/fuse:/dev/fuse:rwm"]}),
    ({"securityOpt": ["no-new-privileges"]}, "host", {"security_opt": ["no-new-privileges"]}),
    ({"shmSize": "1m"}, "host", {"shm_size": MiB}),
    ({"ipc": "service:db"}, "host", {"ipc_mode": "container:db-1"}),
    ({"pid": "host", "uts": "host", "usernsMode": "host", "cgroup": "host"}, "host",
     {"pid_mode": "host", "uts_mode": "host", "userns_mode": "host", "cgroupns": "host"}),
    ({"cpuShares": 100, "cpuset": "0", "cpuQuota": 5000, "cpuPeriod": 10000}, "host",
     {"cpu_shares": 100, "cpuset_cpus": "0", "cpu_quota": 5000, "cpu_period": 10000}),
    ({"memSwappiness": 0, "memswapLimit": -1, "oomKillDisable": True, "oomScoreAdj": 5, "pidsLimit": 9}, "host",
     {"mem_swappiness": 0, "memswap_limit": -1, "oom_kill_disable": True, "oom_score_adj": 5, "pids_limit": 9}),
    ({"groupAdd": [7], "runtime": "runc", "cgroupParent": "p", "storageOpt": {"size": "1G"}}, "host",
     {"group_add": ["7"], "runtime": "runc", "cgroup_parent": "p", "storage_opt": {"size": "1G"}}),
    ({"deviceCgroupRules": ["c 1:3 r"]}, "host", {"device_cgroup_rules": ["c 1:3 r"]}),
    ({"blkio": {"weight": 100, "deviceReadBps": [{"path": "/dev/sda", "rate": "1m"}]}}, "host",
     {"blkio_weight": 100, "device_read_bps": [{"Path": "/dev/sda", "Rate": MiB}]}),
    ({"deviceRequests": [{"capabilities": ["gpu"]}]}, "host",
     {"device_requests": [{"driver": "", "count": -1, "device_ids": [], "capabilities": [["gpu"]], "options": {}}]}),
    ({"mounts": [{"source": "/a:b", "target": "/a", "readOnly": True, "propagation": "rslave"}]}, "host",
     {"mounts": [{"Type": "bind", "Source": "/a:b", "Target": "/a", "ReadOnly": True,
                  "BindOptions": {"Propagation": "rslave"}}]}),
    ({"useApiSocket": True}, "host", {"mounts": [{"Type": "bind", "Source": "/var/run/docker.sock",
                                                  "Target": "/var/run/docker.sock", "ReadOnly": False}]}),
    ({"tty": True, "stdinOpen": True, "domainname": "d", "macAddress": "02:42:ac:11:00:02"}, "create",
     {"tty": True, "stdin_open": True, "domainname": "d", "mac_address": "02:42:ac:11:00:02"}),
    ({"healthcheck": {"disable": True}}, "healthcheck", {"test": ["NONE"]}),
    ({"volumes": ["/a:/a:ro,Z", "v:/v:nocopy"]}, "binds", {"binds": ["/a:/a:ro,Z", "v:/v:rw,nocopy"]}),
    ({"ports": ["127.0.0.1:8000-8010:80"]}, "ports", {"80/tcp": [("127.0.0.1", "8000-8010")]}),
]


@pytest.mark.parametrize(("fields", "part", "expected"), RENDER, ids=[str(r[0]) for r in RENDER])
def test_render_gives_the_engine_arguments(fields: dict[str, Any], part: str, expected: dict[str, Any]) -> None:
    cfg = rendered(fields)
    if part == "host":
        got: Any = {k: cfg.host.get(k) for k in expected}
    elif part == "create":
        got = {k: cfg.create.get(k) for k in expected}
    elif part == "healthcheck":
        got = cfg.healthcheck
    elif part == "binds":
        got = {"binds": cfg.binds}
    else:
        got = cfg.port_bindings
    assert got == expected


def test_engine_checks_carry_what_depends_on_the_engine() -> None:
    checks = rendered({"annotations": {"a": "b"}, "platform": "linux/amd64", "pullPolicy": "always",
                       "healthcheck": {"test": ["CMD", "x"], "startInterval": "2s"}}).checks
    assert checks == render_host.EngineChecks(service="web", platform="linux/amd64", pull_always=True,
                                              start_interval_ns=2_000_000_000, annotations={"a": "b"})
    assert rendered({}).checks == render_host.EngineChecks(service="web")


def test_build_options_and_meta() -> None:
    from crd_like.models import Build

    plain = Build(context="/c")
    assert render_host.build_options(plain) == {} and render_host.build_meta(plain) == ""
    full = Build.model_validate({"context": "/c", "network": "none", "labels": {"a": 1}, "noCache": True,
                                 "shmSize": "1m", "extraHosts": {"h": "10.0.0.1"}, "dockerfileInline": "FROM x"})
    assert render_host.build_options(full, "linux/amd64") == {
        "network_mode": "none", "labels": {"a": "1"}, "nocache": True, "shmsize": MiB,
        "extra_hosts": {"h": "10.0.0.1"}, "platform": "linux/amd64"}
    assert "dockerfile_inline" in render_host.build_meta(full)


# ------------------------------------------------------------------------------ units and engine helpers
@pytest.mark.parametrize(("text", "canonical", "bindings"), [
    ("8000-8010:80", "8000-8010:80/tcp", [("80/tcp", ("", "8000-8010"))]),
    (":443:443", "443:443/tcp", [("443/tcp", ("", 443))]),
    ("::1:8080:80", "[::1]:8080:80/tcp", [("80/tcp", ("::1", 8080))]),
    ("fe80::1:8080:80/udp", "[fe80::1]:8080:80/udp", [("80/udp", ("fe80::1", 8080))]),
    ("[::]:53:53/udp", "[::]:53:53/udp", [("53/udp", ("::", 53))]),
    ("127.0.0.1:9000-9001:80-81", "127.0.0.1:9000-9001:80-81/tcp",
     [("80/tcp", ("127.0.0.1", 9000)), ("81/tcp", ("127.0.0.1", 9001))]),
])
def test_port_syntax_compose_accepts(text: str, canonical: str, bindings: list[Any]) -> None:
    m = units.parse_port(text)
    assert m.canonical() == canonical and m.bindings() == bindings
    assert units.parse_port(m.canonical()) == m


def test_a_host_range_for_one_port_allows_replicas() -> None:
    ServiceSpec.model_validate({"image": "x", "replicas": 3, "ports": ["127.0.0.1:8000-8010:80"]})


@pytest.mark.parametrize(("text", "canonical", "mode"), [
    ("./a:/a:z", "./a:/a:z", "rw,z"),
    ("/a:/a:Z,ro", "/a:/a:ro,Z", "ro,Z"),
    ("v:/v:nocopy", "v:/v:nocopy", "rw,nocopy"),
    ("v:/v:z", "v:/v:z", "rw,z"),
    ("/a:/a:rshared,ro", "/a:/a:ro,rshared", "ro,rshared"),
    ("/a:/a:cached", "/a:/a:cached", "rw,cached"),
    ("/a:/a:rw", "/a:/a", "rw"),
])
def test_volume_options(text: str, canonical: str, mode: str) -> None:
    m = units.parse_volume(text)
    assert m.canonical() == canonical and m.engine_mode() == mode


@pytest.mark.parametrize(("wanted", "image", "mismatch"), [
    ("linux/amd64", {"Os": "linux", "Architecture": "amd64"}, ""),
    ("linux/x86_64", {"Os": "linux", "Architecture": "amd64"}, ""),
    ("linux/arm64", {"Os": "linux", "Architecture": "amd64"}, "linux/amd64"),
    ("linux/arm64/v8", {"Os": "linux", "Architecture": "arm64"}, ""),
    ("linux/arm/v7", {"Os": "linux", "Architecture": "arm", "Variant": "v6"}, "linux/arm/v6"),
    ("linux/arm/v7", {"Os": "linux", "Architecture": "arm", "Variant": "v7"}, ""),
    ("windows/amd64", {"Os": "linux", "Architecture": "amd64"}, "linux/amd64"),
])
def test_platform_is_checked_against_the_local_image(wanted: str, image: dict[str, str], mismatch: str) -> None:
    assert platform_mismatch(wanted, image) == mismatch


@pytest.mark.parametrize(("have", "wanted", "ok"), [
    ("1.41", "1.43", False), ("1.43", "1.43", True), ("1.44", "1.43", True), ("1.9", "1.10", False), ("2.0", "1.44", True),
])
def test_api_version_compare(have: str, wanted: str, ok: bool) -> None:
    assert _api_at_least(have, wanted) is ok
