"""crd_like.merge: several -f files merged compose-style, for compose and native files,
with every value still located at the file and line that provided it."""

from __future__ import annotations

from typing import Any

import pytest

from crd_like import InvalidSpec, Issue
from crd_like.formats import LoadOptions, load_any
from crd_like.loader import parse_documents
from crd_like.merge import merge_compose, plain, tree

BASE_DIR = "/srv/ct"


def load(*texts: str, opts: dict[str, Any] | None = None) -> dict[str, Any]:
    names = ["docker-compose.yml", "prod.yml", "third.yml"]
    sources = [(t.encode(), names[i], BASE_DIR) for i, t in enumerate(texts)]
    return {r.name: r for r in load_any(sources, LoadOptions(**(opts or {})))}


def issues(*texts: str, names: tuple[str, ...] = ("a.yaml", "b.yaml", "c.yaml")) -> list[Issue]:
    with pytest.raises(InvalidSpec) as info:
        load_any([(t.encode(), names[i], BASE_DIR) for i, t in enumerate(texts)])
    return info.value.issues


def merged(base: str, over: str) -> Any:
    a, b = (tree(parse_documents(t.encode(), f)[0], native=False) for t, f in ((base, "a"), (over, "b")))
    return plain(merge_compose(a, b))


# ------------------------------------------------------------------------------ compose rules
@pytest.mark.parametrize(("base", "over", "expected"), [
    # mappings merge, later wins
    ("image: a\nuser: root", "user: app\ninit: true", {"image": "a", "user": "app", "init": True}),
    ("deploy: {resources: {limits: {cpus: 1, memory: 1G}}}", "deploy: {resources: {limits: {memory: 2G}}}",
     {"deploy": {"resources": {"limits": {"cpus": 1, "memory": "2G"}}}}),
    # shell commands are replaced, never appended
    ("command: [a, b]", "command: [c]", {"command": ["c"]}),
    ("entrypoint: [a, b]", "entrypoint: x y", {"entrypoint": "x y"}),
    ("healthcheck: {test: [CMD, a], interval: 5s}", "healthcheck: {test: [CMD, b]}",
     {"healthcheck": {"test": ["CMD", "b"], "interval": "5s"}}),
    # environment and labels merge by key, list and map forms mixed
    ("environment: [A=1, B=2]", "environment: {B: 3, C: 4}", {"environment": {"A": "1", "B": 3, "C": 4}}),
    ("environment: {A: 1}", "environment: [A=2, D]", {"environment": {"A": "2", "D": None}}),
    ("labels: [x=1]", "labels: [y=2, x=3]", {"labels": {"x": "3", "y": "2"}}),
    ("extra_hosts: ['a:1.1.1.1']", "extra_hosts: {b: 2.2.2.2, a: 3.3.3.3}",
     {"extra_hosts": {"a": "3.3.3.3", "b": "2.2.2.2"}}),
    # ports by (ip, published, target, protocol); short and long syntax identify alike
    ("ports: ['8080:80', '9000:9000']", "ports: ['8080:80', '127.0.0.1:8443:443']",
     {"ports": ["8080:80", "9000:9000", "127.0.0.1:8443:443"]}),
    ("ports: ['127.0.0.1:8080:80']", "ports: [{target: 80, published: 8080, host_ip: 127.0.0.1}]",
     {"ports": [{"target": 80, "published": 8080, "host_ip": "127.0.0.1"}]}),
    ("ports: ['8080:80']", "ports: ['8080:80/udp']", {"ports": ["8080:80", "8080:80/udp"]}),
    # volumes by target: a later mount at the same path replaces the earlier one in place
    ("volumes: ['data:/data', './conf:/etc/app:ro']", "volumes: ['other:/data', '/logs']",
     {"volumes": ["other:/data", "./conf:/etc/app:ro", "/logs"]}),
    ("volumes: ['data:/data']", "volumes: [{type: volume, source: fast, target: /data}]",
     {"volumes": [{"type": "volume", "source": "fast", "target": "/data"}]}),
    # secrets and configs by source
    ("secrets: [a, {source: b, target: x}]", "secrets: [{source: b, target: y}, c]",
     {"secrets": ["a", {"source": "b", "target": "x"}, {"source": "b", "target": "y"}, "c"]}),  # by target
    # networks and depends_on: list and map forms merge by name
    ("networks: [front]", "networks: {back: {}}", {"networks": {"front": None, "back": {}}}),
    ("depends_on: [db]", "depends_on: {db: {condition: service_healthy}, cache: {}}",
     {"depends_on": {"db": {"condition": "service_healthy"}, "cache": {}}}),
    # other sequences append without duplicates
    ("cap_add: [A, B]", "cap_add: [B, C]", {"cap_add": ["A", "B", "C"]}),
    ("profiles: [x]", "profiles: [x]", {"profiles": ["x"]}),
    ("env_file: [a.env]", "env_file: [b.env]", {"env_file": ["a.env", "b.env"]}),
    # a scalar replaced by a list (or back) is simply replaced
    ("tmpfs: /tmp", "tmpfs: [/run]", {"tmpfs": ["/run"]}),
])
def test_compose_service_merge_rules(base: str, over: str, expected: dict[str, Any]) -> None:
    indent = lambda text: "\n".join("    " + line for line in text.splitlines())  # noqa: E731
    result = merged(f"services:\n  s:\n{indent(base)}\n", f"services:\n  s:\n{indent(over)}\n")
    assert result["services"]["s"] == {**_first_keys(base), **expected}


def _first_keys(base: str) -> dict[str, Any]:
    return dict(plain(tree(parse_documents(base.encode(), "x")[0])))


def test_top_level_sections_merge_and_new_services_are_added() -> None:
    result = merged("services: {a: {image: x}}\nvolumes: {v1: {}}\n",
                    "services: {b: {image: y}}\nvolumes: {v2: {}}\nnetworks: {n: {}}\n")
    assert result == {"services": {"a": {"image": "x"}, "b": {"image": "y"}},
                      "volumes": {"v1": {}, "v2": {}}, "networks": {"n": {}}}


# ------------------------------------------------------------------------------ compose overlays end to end
BASE = """\
name: ct-merge
services:
  web:
    image: reconcile/demo-web:1
    command: ["httpd", "-f", "-p", "80", "-h", "/www"]
    environment:
      - LOG_LEVEL=info
      - FEATURE=a
    ports:
      - "127.0.0.1:8080:80"
    volumes:
      - data:/data
    healthcheck:
      test: ["CMD", "true"]
      interval: 5s
  worker:
    image: reconcile/demo-worker:1
volumes:
  data:
"""

PROD = """\
services:
  web:
    command: ["httpd", "-f", "-p", "80", "-h", "/srv"]
    environment:
      LOG_LEVEL: warning
    ports:
      - "127.0.0.1:8443:443"
    volumes:
      - fast:/data
    healthcheck:
      interval: 30s
    deploy:
      resources:
        limits: {memory: 256M}
  worker:
    deploy:
      replicas: 3
volumes:
  fast:
"""


def test_compose_base_and_prod_overlay() -> None:
    res = load(BASE, PROD)
    web, worker = res["ct-merge-web"].spec, res["ct-merge-worker"].spec
    assert web.command == ["httpd", "-f", "-p", "80", "-h", "/srv"]
    assert web.env == {"LOG_LEVEL": "warning", "FEATURE": "a"}
    assert web.ports == ["127.0.0.1:8080:80/tcp", "127.0.0.1:8443:443/tcp"]
    assert web.volumes == ["ct-merge_fast:/data"]
    assert web.healthcheck is not None
    assert (web.healthcheck.test, web.healthcheck.interval) == (["CMD", "true"], 30.0)
    assert web.resources.limits.memory == 256 * 1024 * 1024
    assert worker.replicas == 3


def test_overlay_errors_point_at_the_overlay_file() -> None:
    with pytest.raises(InvalidSpec) as info:
        load(BASE, "services:\n  worker:\n    deploy:\n      replicas: -1\n")
    [issue] = info.value.issues
    assert (issue.file, issue.line, issue.field) == ("prod.yml", 4, "services.worker.deploy.replicas")


def test_base_values_keep_their_base_location_after_a_merge() -> None:
    broken = BASE.replace("interval: 5s", "interval: often")
    with pytest.raises(InvalidSpec) as info:
        load(broken, "services:\n  web:\n    user: app\n")
    [issue] = info.value.issues
    assert (issue.file, issue.line, issue.field) == ("docker-compose.yml", 15, "services.web.healthcheck.interval")


def test_overlay_files_may_hold_only_top_level_sections() -> None:
    res = load(BASE.replace("      - data:/data", "      - logs:/logs"), "volumes:\n  logs:\n    name: shared-logs\n")
    assert res["ct-merge-web"].spec.volumes == ["shared-logs:/logs"]


# ------------------------------------------------------------------------------ native overlays
NATIVE = """\
apiVersion: reconcile/v1alpha1
kind: Service
metadata:
  name: web
  labels: {tier: front}
spec:
  image: demo/web:1
  command: httpd -f -p 80
  env: {A: "1", B: "2"}
  ports: ["127.0.0.1:8080:80", "9000/udp"]
  volumes: ["data:/data", "./conf:/etc/conf:ro"]
  networks: [front]
  restartPolicy: on-failure
  healthcheck:
    test: ["CMD", "true"]
    interval: 5s
---
apiVersion: reconcile/v1alpha1
kind: Job
metadata:
  name: migrate
spec:
  image: demo/job:1
"""

NATIVE_PROD = """\
apiVersion: reconcile/v1alpha1
kind: Service
metadata:
  name: web
  labels: {env: prod}
spec:
  command: ["httpd", "-f", "-p", "8080"]
  env: {B: "3"}
  ports: ["127.0.0.1:18080:80"]
  volumes: ["fast:/data"]
  networks: [back]
  restartPolicy: {maxAttempts: 5}
  healthcheck: {interval: 1m}
  replicas: 1
"""


def test_native_documents_with_the_same_name_merge_across_files() -> None:
    sources = [(NATIVE.encode(), "base.yaml", "/srv/base"), (NATIVE_PROD.encode(), "prod.yaml", "/srv/prod")]
    web, migrate = load_any(sources)
    spec = web.spec
    assert web.metadata.labels == {"tier": "front", "env": "prod"}
    assert spec.image == "demo/web:1"
    assert spec.command == ["httpd", "-f", "-p", "8080"]
    assert spec.env == {"A": "1", "B": "3"}
    assert spec.ports == ["127.0.0.1:18080:80/tcp", "9000/udp"]  # same container port: replaced in place
    assert spec.volumes == ["fast:/data", "/srv/base/conf:/etc/conf:ro"]  # relative to the file that wrote it
    assert spec.networks == ["front", "back"]
    assert (spec.restartPolicy.condition, spec.restartPolicy.maxAttempts) == ("on-failure", 5)
    assert spec.healthcheck is not None and spec.healthcheck.interval == 60.0
    assert migrate.kind == "Job"


def test_native_merge_keeps_secret_references_and_resolves_paths_per_file() -> None:
    base = NATIVE.replace('env: {A: "1", B: "2"}', 'env: {A: "1", PW: {valueFrom: {file: ./pw.txt}}, V: 0755}')
    prod = NATIVE_PROD.replace('env: {B: "3"}', "env: {C: 1.10}\n  envFiles: [./prod.env]")
    web, _ = load_any([(base.encode(), "base.yaml", "/srv/base"), (prod.encode(), "prod.yaml", "/srv/prod")])
    assert web.spec.env["PW"].valueFrom.file == "/srv/base/pw.txt"
    assert (web.spec.env["V"], web.spec.env["C"]) == ("0755", "1.10")  # as written, like the native loader
    assert web.spec.envFiles == ["/srv/prod/prod.env"]


def test_native_overlay_errors_point_at_the_overlay() -> None:
    bad = NATIVE_PROD.replace("replicas: 1", "replicas: lots")
    found = issues(NATIVE, bad)
    assert [(i.file, i.line, i.field) for i in found] == [("b.yaml", 14, "spec.replicas")]


def test_native_overlay_may_be_partial_but_the_result_must_be_complete() -> None:
    partial = "apiVersion: reconcile/v1alpha1\nkind: Service\nmetadata: {name: other}\nspec: {replicas: 2}\n"
    found = issues(NATIVE, partial)
    assert [(i.file, i.field, i.message) for i in found] == [("b.yaml", "spec.image", "required field is missing")]


def test_duplicate_name_within_one_file_is_still_an_error() -> None:
    doc = "apiVersion: reconcile/v1alpha1\nkind: Service\nmetadata: {name: web}\nspec: {image: a}\n"
    found = issues(doc + "---\n" + doc)
    assert len(found) == 1
    assert (found[0].file, found[0].line) == ("a.yaml", 8)
    assert "duplicate name 'web' (first defined at a.yaml:3)" in found[0].message


def test_same_name_for_two_kinds_is_an_error_even_across_files() -> None:
    job = "apiVersion: reconcile/v1alpha1\nkind: Job\nmetadata: {name: web}\nspec: {image: a}\n"
    found = issues(NATIVE, job)
    assert len(found) == 1 and "duplicate name 'web'" in found[0].message and found[0].file == "b.yaml"


def test_a_native_file_can_patch_a_service_converted_from_compose() -> None:
    patch = ("apiVersion: reconcile/v1alpha1\nkind: Service\nmetadata: {name: ct-merge-worker}\n"
             "spec:\n  replicas: 2\n  onUnhealthy: ignore\n")
    res = load(BASE, patch)
    assert (res["ct-merge-worker"].spec.replicas, res["ct-merge-worker"].spec.onUnhealthy) == (2, "ignore")
    bad = patch.replace("replicas: 2", "replicas: many")
    with pytest.raises(InvalidSpec) as info:
        load(BASE, bad)
    [issue] = info.value.issues
    assert (issue.file, issue.line, issue.field) == ("prod.yml", 5, "spec.replicas")
