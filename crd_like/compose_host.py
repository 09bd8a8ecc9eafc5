"""Compose service keys about host configuration -> native spec fields (see
``crd_like.spec_host``).

``HANDLERS`` maps a compose service key to ``handler(service, node)``, where ``service``
is the ``crd_like.compose._Service`` being converted (it offers ``ctx``, ``spec``,
``_set`` ...). ``compose._Service.convert`` dispatches these before its own keys, and a
key listed here is no longer "unsupported". No I/O (``label_file`` is read through the
loader's reader); must not import ``store`` or ``controller``.

Values are passed on as written (the native models validate them, and an error names the
compose file, line and key); what compose means differently from what happens here is a
warning naming file:line:key (``ctx.warn``):

- ``cpu_count`` / ``cpu_percent``: Windows-only, the Linux engine discards them;
- ``pull_policy``: nothing is pulled here; ``always`` makes one bounded pull attempt
  when the container is created (an error when no registry answers), ``daily`` /
  ``weekly`` / ``every_<duration>`` act as ``missing``, ``if_not_present`` is ``missing``;
- ``attach: true``: reconcile does not stream container output (``docker logs`` does);
- ``use_api_socket``: the engine socket is bound in, registry credentials are not copied;
- ``ipc`` / ``pid: service:NAME`` join the first replica of NAME (``NAME-1``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from crd_like.errors import InvalidSpec
from crd_like.interpolate import parse_env_file
from crd_like.merge import kv_pairs

if TYPE_CHECKING:
    from crd_like.compose import _Service
    from crd_like.merge import Node

Handler = Callable[["_Service", "Node"], None]
HANDLERS: dict[str, Handler] = {}

# compose key -> native field, the value passed on as written (validated by the model)
RENAMED = {
    "ulimits": "ulimits", "sysctls": "sysctls", "privileged": "privileged", "devices": "devices",
    "security_opt": "securityOpt", "shm_size": "shmSize", "tty": "tty", "stdin_open": "stdinOpen",
    "uts": "uts", "userns_mode": "usernsMode", "cgroup": "cgroup", "cgroup_parent": "cgroupParent",
    "group_add": "groupAdd", "pids_limit": "pidsLimit", "cpu_shares": "cpuShares", "cpu_period": "cpuPeriod",
    "cpu_quota": "cpuQuota", "cpu_rt_period": "cpuRtPeriod", "cpu_rt_runtime": "cpuRtRuntime",
    "cpuset": "cpuset", "mem_swappiness": "memSwappiness", "memswap_limit": "memswapLimit",
    "oom_kill_disable": "oomKillDisable", "oom_score_adj": "oomScoreAdj", "runtime": "runtime",
    "mac_address": "macAddress", "domainname": "domainname", "storage_opt": "storageOpt",
    "device_cgroup_rules": "deviceCgroupRules", "platform": "platform",
}
PULL_POLICY = {"always": "always", "never": "never", "missing": "missing", "if_not_present": "missing",
               "build": "build"}
BLKIO = {"weight": "weight", "weight_device": "weightDevice", "device_read_bps": "deviceReadBps",
         "device_write_bps": "deviceWriteBps", "device_read_iops": "deviceReadIops",
         "device_write_iops": "deviceWriteIops"}


def _renamed(native: str) -> Handler:
    def handle(service: _Service, node: Node) -> None:
        service._set(native, node)
    return handle


for _key, _native in RENAMED.items():
    HANDLERS[_key] = _renamed(_native)


def _windows_only(native: str, key: str) -> Handler:
    def handle(service: _Service, node: Node) -> None:
        service.ctx.warn(node, key, "Windows-only: the Linux engine discards it (the container runs without it)")
        service._set(native, node)
    return handle


HANDLERS["cpu_count"] = _windows_only("cpuCount", "cpu_count")
HANDLERS["cpu_percent"] = _windows_only("cpuPercent", "cpu_percent")


def _namespace(native: str, key: str) -> Handler:
    """``ipc`` / ``pid``: ``service:NAME`` names a compose service -> its native name."""
    def handle(service: _Service, node: Node) -> None:
        value = node.value
        if isinstance(value, str) and value.startswith("service:"):
            peer = value.split(":", 1)[1]
            if peer not in service.services:
                service.ctx.error(node, f"{key}: service:{peer} names no service of this project")
                return
            if peer == service.key:
                service.ctx.error(node, f"{key}: a service cannot share its own namespace (service:{peer})")
                return
            node = node.at(f"service:{service.native(peer)}")
        service._set(native, node)
    return handle


HANDLERS["ipc"] = _namespace("ipc", "ipc")
HANDLERS["pid"] = _namespace("pid", "pid")


def _annotations(service: _Service, node: Node) -> None:
    pairs = kv_pairs(node)
    if pairs is None:
        service.ctx.error(node, "annotations must be a list of KEY=VALUE strings or a mapping")
        return
    service._set("annotations", node.at({k: (v if v.value is not None else v.at("")) for k, v in pairs}))


HANDLERS["annotations"] = _annotations


def _add_device_requests(service: _Service, node: Node, requests: list[Node]) -> None:
    current = service.spec.get("deviceRequests")
    before = list(current.value) if current is not None else []
    service._set("deviceRequests", node.at(before + requests))


def device_request(service: _Service, item: Node, where: str) -> Node | None:
    """A compose device request mapping -> the native ``DeviceRequest`` mapping."""
    if not isinstance(item.value, dict):
        service.ctx.error(item, f"{where}: a device request is a mapping (driver, count, device_ids, capabilities)")
        return None
    names = {"driver": "driver", "count": "count", "device_ids": "deviceIds", "capabilities": "capabilities",
             "options": "options"}
    out: dict[str, Node] = {}
    for sub, sub_node in item.value.items():
        if sub not in names:
            service.ctx.unsupported(sub_node, f"{where}.{sub}")
        elif sub == "count" and sub_node.value == "all":
            out["count"] = sub_node.at(-1)
        else:
            out[names[sub]] = sub_node
    return item.at(out)


def _gpus(service: _Service, node: Node) -> None:
    """``gpus: all`` (every GPU) or a list of device requests, as ``docker run --gpus``."""
    if node.value == "all":
        _add_device_requests(service, node, [node.at({"count": -1, "capabilities": ["gpu"]})])
        return
    if not isinstance(node.value, list):
        service.ctx.error(node, "gpus must be 'all' or a list of device requests")
        return
    out = []
    for item in node.value:
        req = device_request(service, item, "gpus")
        if req is not None:
            if "capabilities" not in req.value:
                req.value["capabilities"] = item.at(["gpu"])
            out.append(req)
    _add_device_requests(service, node, out)


HANDLERS["gpus"] = _gpus


def _blkio(service: _Service, node: Node) -> None:
    if not isinstance(node.value, dict):
        service.ctx.error(node, "blkio_config must be a mapping")
        return
    out: dict[str, Node] = {}
    for sub, sub_node in node.value.items():
        if sub in BLKIO:
            out[BLKIO[sub]] = sub_node
        else:
            service.ctx.unsupported(sub_node, f"blkio_config.{sub}", known=False)
    service._set("blkio", node.at(out))


HANDLERS["blkio_config"] = _blkio


def _pull_policy(service: _Service, node: Node) -> None:
    text = str(node.value) if node.value is not None else ""
    if text in ("daily", "weekly") or text.startswith("every_"):
        service.ctx.warn(node, "pull_policy", f"{text}: nothing is pulled here (no registry); treated as 'missing' "
                                              "(the local image is used)")
        text = "missing"
    if text not in PULL_POLICY:
        service.ctx.error(node, f"invalid pull_policy {node.value!r}: expected always, never, missing, "
                                "if_not_present, build, daily, weekly or every_<duration>")
        return
    if text == "build" and "build" not in service.node.value:
        service.ctx.error(node, "pull_policy: build needs a `build:` section to build the image from")
        return
    if text == "always":
        service.ctx.warn(node, "pull_policy", "always: one bounded pull attempt is made when a container is "
                                              "created; it fails (no container) unless a registry answers")
    service._set("pullPolicy", node.at(PULL_POLICY[text]))


HANDLERS["pull_policy"] = _pull_policy


def _attach(service: _Service, node: Node) -> None:
    if node.value is not False:
        service.ctx.warn(node, "attach", "reconcile does not stream container output; read it with `docker logs`")


HANDLERS["attach"] = _attach


def _use_api_socket(service: _Service, node: Node) -> None:
    if node.value is True:
        service.ctx.warn(node, "use_api_socket", "the engine socket is bound at /var/run/docker.sock; registry "
                                                 "credentials are not copied into the container (none exist here)")
    service._set("useApiSocket", node)


HANDLERS["use_api_socket"] = _use_api_socket


def _labels_with_files(service: _Service, node: Node) -> None:
    """``label_file`` (KEY=VALUE files, in order) under ``labels`` (which win), as compose."""
    label_file = service.node.get("label_file")
    labels = service.node.get("labels")
    merged: dict[str, Node] = {}
    if label_file is not None:
        items = label_file.value if isinstance(label_file.value, list) else [label_file]
        for item in items:
            if not isinstance(item.value, str) or not item.value:
                service.ctx.error(item, "label_file entries are paths")
                continue
            raw = service.ctx.read(item, item.value, "label_file")
            if raw is None:
                continue
            try:
                values = parse_env_file(raw, service.ctx.display(item.value), {})
            except InvalidSpec as exc:  # names the label file's own line
                service.ctx.issues.extend(exc.issues)
                continue
            merged.update({k: item.at(v) for k, v in values.items()})
    if labels is not None:
        pairs = kv_pairs(labels)
        if pairs is None:
            service.ctx.error(labels, "labels must be a list of KEY=VALUE strings or a mapping")
            return
        merged.update({k: (v if v.value is not None else v.at("")) for k, v in pairs})
    service._set("labels", (labels or node).at(merged))


def _labels(service: _Service, node: Node) -> None:
    if service.node.get("label_file") is None:
        service._labels(node)
    # else label_file's handler merges both


HANDLERS["label_file"] = _labels_with_files
HANDLERS["labels"] = _labels


def _lifecycle(key: str) -> Handler:
    def handle(service: _Service, node: Node) -> None:
        service.ctx.unsupported(node, key)
    return handle


# post_start / pre_stop hooks would be an exec in the container after start / before stop,
# which the executor does not do yet: rejected (not dropped), with --allow-unsupported a warning
HANDLERS["post_start"] = _lifecycle("post_start")
HANDLERS["pre_stop"] = _lifecycle("pre_stop")


def deploy_resources_extra(service: _Service, level: str, sub: str, sub_node: Node) -> bool:
    """``deploy.resources.limits.pids`` and ``.reservations.devices``; False if not one of them."""
    if level == "limits" and sub == "pids":
        other = service.node.get("pids_limit")
        if other is not None and other.value != sub_node.value:
            service.ctx.error(sub_node, f"deploy.resources.limits.pids ({sub_node.value}) and pids_limit "
                                        f"({other.value}) differ: set one of them")
            return True
        service._set("pidsLimit", sub_node)
        return True
    if level == "reservations" and sub == "devices":
        if not isinstance(sub_node.value, list):
            service.ctx.error(sub_node, "deploy.resources.reservations.devices must be a list of device requests")
            return True
        reqs = [r for r in (device_request(service, i, "deploy.resources.reservations.devices")
                            for i in sub_node.value) if r is not None]
        _add_device_requests(service, sub_node, reqs)
        return True
    return False


__all__ = ["HANDLERS", "deploy_resources_extra", "device_request"]
