"""crd_like.compose: each supported compose key converts onto the native spec; what is not
supported is reported by key and file:line (an error, or a warning with allow_unsupported)."""

from __future__ import annotations

from typing import Any

import pytest

from crd_like import InvalidSpec, Issue
from crd_like.compose import is_compose, normalize_project_name
from crd_like.formats import LoadOptions, load_any

DIR = "/srv/ct"
FILE = "ct/docker-compose.yml"
FILES = {
    "/srv/ct/app.env": b"FROM_FILE=1\nSHARED=file\n",
    "/srv/ct/conf/more.env": b"MORE=yes\n",
    "/srv/ct/secrets/db.txt": b"pw\n",
    "/srv/ct/conf/app.conf": b"x=1\n",
}


def reader(path: str) -> bytes:
    if path not in FILES:
        raise FileNotFoundError(path)
    return FILES[path]


def load(text: str, *, environ: dict[str, str] | None = None, **opts: Any) -> dict[str, Any]:
    options = LoadOptions(environ=environ or {}, read_file=reader, **opts)
    return {r.name: r for r in load_any([(text.encode(), FILE, DIR)], options)}


def service(body: str, top: str = "", **kw: Any) -> Any:
    """The spec of one service ``s`` written with ``body`` (service keys, unindented)."""
    indented = "\n".join("    " + line for line in body.splitlines())
    res = load(f"name: ct-t\nservices:\n  s:\n    image: img\n{indented}\n{top}", **kw)
    return res["ct-t-s"].spec


def problems(text: str, **kw: Any) -> list[Issue]:
    with pytest.raises(InvalidSpec) as info:
        load(text, **kw)
    return info.value.issues


# ------------------------------------------------------------------------------ one key at a time
BUILD_DEFAULTS = {"dockerfileInline": None, "network": None, "labels": {}, "noCache": False, "shmSize": None,
                  "extraHosts": []}
HC_DEFAULTS = {"startInterval": None, "disable": False}
HC_DISABLED = {"test": None, "interval": 30.0, "timeout": 30.0, "retries": 3, "startPeriod": 0.0,
               "startInterval": None, "disable": True}
CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("command string", "command: echo 'hi there'", {"command": ["echo", "hi there"]}),
    ("command list", "command: [sleep, 30]", {"command": ["sleep", "30"]}),
    ("entrypoint", "entrypoint: [/bin/sh, -c]", {"entrypoint": ["/bin/sh", "-c"]}),
    ("entrypoint string", "entrypoint: httpd -f", {"entrypoint": ["httpd", "-f"]}),
    ("environment list", "environment: [A=1, B=x=y, C=, FROM_SHELL, MISSING]",
     {"env": {"A": "1", "B": "x=y", "C": "", "FROM_SHELL": "shell"}}),
    ("environment map", "environment: {A: 1, B: true, C: 0755, D: 1.10, FROM_SHELL: null, MISSING: }",
     {"env": {"A": "1", "B": "true", "C": "0755", "D": "1.10", "FROM_SHELL": "shell"}}),
    ("env_file string", "env_file: ./app.env", {"envFiles": ["/srv/ct/app.env"]}),
    ("env_file list", "environment: {SHARED: env}\nenv_file: [app.env, {path: conf/more.env, required: true}]",
     {"envFiles": ["/srv/ct/app.env", "/srv/ct/conf/more.env"], "env": {"SHARED": "env"}}),
    ("env_file optional and missing", "env_file: [app.env, {path: nope.env, required: false}]",
     {"envFiles": ["/srv/ct/app.env"]}),
    ("build string", "build: ./app", {"build": {"context": "/srv/ct/app", "dockerfile": "Dockerfile", "args": {},
                                                "target": None, **BUILD_DEFAULTS}, "image": "img"}),
    ("build map", "build:\n  context: .\n  dockerfile: docker/Dockerfile.prod\n  target: runtime\n"
                  "  args: [VERSION=1.10, FROM_SHELL, MISSING]",
     {"build": {"context": "/srv/ct", "dockerfile": "docker/Dockerfile.prod", "target": "runtime",
                "args": {"VERSION": "1.10", "FROM_SHELL": "shell"}, **BUILD_DEFAULTS}}),
    ("ports short", "ports: ['80', '8080:80', '127.0.0.1:8081:80/udp', '3000-3002:3000-3002', "
                    "'127.0.0.1::53/udp', '[::1]:8082:80', 9000]",
     {"ports": ["80/tcp", "8080:80/tcp", "127.0.0.1:8081:80/udp", "3000-3002:3000-3002/tcp",
                "127.0.0.1::53/udp", "[::1]:8082:80/tcp", "9000/tcp"]}),
    ("ports long", "ports:\n  - {target: 80, published: 8080, host_ip: 127.0.0.1, protocol: tcp, mode: host}\n"
                   "  - {target: 53, protocol: udp}\n  - {target: 443, published: '8443'}",
     {"ports": ["127.0.0.1:8080:80/tcp", "53/udp", "8443:443/tcp"]}),
    ("volumes short", "volumes: ['data:/data', './conf:/etc/conf:ro', '/abs:/abs:rw', '/anon', '../up:/up']",
     {"volumes": ["ct-t_data:/data", "/srv/ct/conf:/etc/conf:ro", "/abs:/abs", "/anon", "/srv/up:/up"]}),
    ("volumes long", "volumes:\n  - {type: volume, source: data, target: /data, read_only: true}\n"
                     "  - {type: volume, target: /cache}\n  - {type: bind, source: ./site, target: /www, "
                     "read_only: true, bind: {create_host_path: true}}\n"
                     "  - {type: tmpfs, target: /scratch, tmpfs: {size: 64m, mode: 1777}}",
     {"volumes": ["ct-t_data:/data:ro", "/cache", "/srv/ct/site:/www:ro"],
      "tmpfs": [f"/scratch:size={64 * 1024 * 1024},mode=1777"]}),
    ("volumes external and named", "volumes: ['ext:/a', 'named:/b']",
     {"volumes": ["ext:/a", "fixed-name:/b"]}),
    ("networks list", "networks: [front, back]", {"networks": ["ct-t_front", "ct-t_back"]}),
    ("networks map", "networks:\n  front:\n  back: {}", {"networks": ["ct-t_front", "ct-t_back"]}),
    ("networks none: the default network", "user: app", {"networks": ["ct-t_default"]}),
    ("networks default named", "networks: [default, shared, ext]",
     {"networks": ["ct-t_default", "shared-net", "ext"]}),
    ("healthcheck shell string", "healthcheck: {test: wget -q localhost, interval: 5s, timeout: 2s, retries: 4, "
                                 "start_period: 1m}",
     {"healthcheck": {"test": ["CMD-SHELL", "wget -q localhost"], "interval": 5.0, "timeout": 2.0, "retries": 4,
                      "startPeriod": 60.0, **HC_DEFAULTS}}),
    ("healthcheck CMD", "healthcheck: {test: [CMD, nc, -z, localhost, 80]}",
     {"healthcheck": {"test": ["CMD", "nc", "-z", "localhost", "80"], "interval": 30.0, "timeout": 30.0,
                      "retries": 3, "startPeriod": 0.0, **HC_DEFAULTS}}),
    ("healthcheck CMD-SHELL", "healthcheck: {test: [CMD-SHELL, 'true || false']}",
     {"healthcheck": {"test": ["CMD-SHELL", "true || false"], "interval": 30.0, "timeout": 30.0,
                      "retries": 3, "startPeriod": 0.0, **HC_DEFAULTS}}),
    # the image's HEALTHCHECK is switched off (engine Test: ["NONE"]), not left on
    ("healthcheck disable", "healthcheck: {disable: true, test: [CMD, x]}", {"healthcheck": HC_DISABLED}),
    ("healthcheck NONE", "healthcheck: {test: [NONE]}", {"healthcheck": HC_DISABLED}),
    ("depends_on list", "depends_on: [db]", {"dependsOn": {"ct-t-db": {"condition": "started", "restart": False}}}),
    ("depends_on map", "depends_on:\n  db: {condition: service_healthy, restart: true}\n"
                       "  job: {condition: service_completed_successfully}",
     {"dependsOn": {"ct-t-db": {"condition": "healthy", "restart": True},
                    "ct-t-job": {"condition": "completed", "restart": False}}}),
    ("deploy replicas", "deploy: {replicas: 4}", {"replicas": 4}),
    ("scale", "scale: 2", {"replicas": 2}),
    ("deploy resources", "deploy:\n  resources:\n    limits: {cpus: '0.5', memory: 512M}\n"
                         "    reservations: {cpus: 0.25, memory: 1G}",
     {"resources": {"limits": {"cpus": 0.5, "memory": 512 * 1024**2},
                    "reservations": {"cpus": 0.25, "memory": 1024**3}}}),
    ("legacy resources", "cpus: 1.5\nmem_limit: 1g\nmem_reservation: 64m",
     {"resources": {"limits": {"cpus": 1.5, "memory": 1024**3}, "reservations": {"cpus": None, "memory": 64 * 1024**2}}}),
    ("deploy update_config", "deploy:\n  update_config: {parallelism: 2, order: start-first, monitor: 20s, "
                             "failure_action: pause}",
     {"update": {"parallelism": 2, "order": "start-first", "monitor": 20.0, "failureAction": "pause"}}),
    ("stop settings", "stop_signal: SIGINT\nstop_grace_period: 1m30s", {"stopSignal": "SIGINT", "stopGracePeriod": 90.0}),
    ("user number", "user: 1000", {"user": "1000"}),
    ("user and group", "user: '1000:1000'", {"user": "1000:1000"}),
    ("working_dir", "working_dir: /app", {"workingDir": "/app"}),
    ("labels list", "labels: [com.example.a=1, com.example.flag]", {"labels": {"com.example.a": "1", "com.example.flag": ""}}),
    ("labels map", "labels: {com.example.a: 1, com.example.b: x}", {"labels": {"com.example.a": "1", "com.example.b": "x"}}),
    ("extra_hosts list", "extra_hosts: ['a.test:10.0.0.1', 'b.test=10.0.0.2', 'v6.test:::1']",
     {"extraHosts": ["a.test:10.0.0.1", "b.test:10.0.0.2", "v6.test:::1"]}),
    ("extra_hosts map", "extra_hosts: {a.test: 10.0.0.1}", {"extraHosts": ["a.test:10.0.0.1"]}),
    ("capabilities", "cap_add: [NET_ADMIN]\ncap_drop: [ALL]", {"capAdd": ["NET_ADMIN"], "capDrop": ["ALL"]}),
    ("tmpfs string", "tmpfs: /tmp", {"tmpfs": ["/tmp"]}),
    ("tmpfs list", "tmpfs: [/tmp, '/run:size=1m']", {"tmpfs": ["/tmp", "/run:size=1m"]}),
    ("read_only", "read_only: true", {"readOnly": True}),
    ("init", "init: true", {"init": True}),
    ("hostname", "hostname: box.internal", {"hostname": "box.internal"}),
    ("logging", "logging: {driver: json-file, options: {max-size: 10m, max-file: 3}}",
     {"logging": {"driver": "json-file", "options": {"max-size": "10m", "max-file": "3"}}}),
    ("secrets", "secrets: [db_pw, {source: db_pw, target: other}, {source: db_pw, target: /abs/pw}]",
     {"volumes": ["/srv/ct/secrets/db.txt:/run/secrets/db_pw:ro", "/srv/ct/secrets/db.txt:/run/secrets/other:ro",
                  "/srv/ct/secrets/db.txt:/abs/pw:ro"]}),
    ("configs", "configs: [app_conf, {source: app_conf, target: /etc/app.conf}]",
     {"volumes": ["/srv/ct/conf/app.conf:/app_conf:ro", "/srv/ct/conf/app.conf:/etc/app.conf:ro"]}),
    ("x- keys are ignored", "x-note: anything", {"image": "img"}),
]

TOP = """\
  db:
    image: db
  job:
    image: job
volumes:
  data:
  ext: {external: true}
  named: {name: fixed-name}
networks:
  front:
  back:
  shared: {name: shared-net}
  ext: {external: true}
secrets:
  db_pw: {file: ./secrets/db.txt}
configs:
  app_conf: {file: conf/app.conf}
"""


@pytest.mark.parametrize(("body", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_key_converts(body: str, expected: dict[str, Any]) -> None:
    spec = service(body, TOP, environ={"FROM_SHELL": "shell"})
    for key, value in expected.items():
        got = getattr(spec, key)
        got = got.model_dump() if hasattr(got, "model_dump") else got
        if isinstance(got, dict) and got and hasattr(next(iter(got.values())), "model_dump"):
            got = {k: v.model_dump() for k, v in got.items()}
        assert got == value, key


@pytest.mark.parametrize(("restart", "condition", "max_attempts"), [
    (None, "never", None),  # compose's default: no restarts
    ("'no'", "never", None),
    ("no", "never", None),  # YAML 1.1 reads an unquoted no as false
    ("always", "always", None),
    ("unless-stopped", "always", None),
    ("on-failure", "on-failure", None),
    ("on-failure:3", "on-failure", 3),
])
def test_restart_mapping(restart: str | None, condition: str, max_attempts: int | None) -> None:
    spec = service("" if restart is None else f"restart: {restart}")
    assert (spec.restartPolicy.condition, spec.restartPolicy.maxAttempts) == (condition, max_attempts)


def test_deploy_restart_policy_wins_over_restart() -> None:
    spec = service("restart: always\ndeploy:\n  restart_policy: {condition: on-failure, delay: 5s, "
                   "max_attempts: 4, window: 2m}")
    policy = spec.restartPolicy
    assert (policy.condition, policy.maxAttempts, policy.window) == ("on-failure", 4, 120.0)
    assert (policy.backoff.initial, policy.backoff.max, policy.backoff.factor) == (5.0, 5.0, 1.0)
    assert service("deploy: {restart_policy: {}}").restartPolicy.condition == "always"  # condition defaults to any
    assert service("deploy: {restart_policy: {condition: none}}").restartPolicy.condition == "never"
    assert service("deploy: {restart_policy: {max_attempts: 0}}").restartPolicy.maxAttempts is None


# ------------------------------------------------------------------------------ project-level behaviour
STACK = """\
services:
  web:
    image: reconcile/demo-web:1
    depends_on:
      migrate: {condition: service_completed_successfully}
      db: {condition: service_healthy}
  db:
    image: reconcile/busybox:latest
  migrate:
    image: reconcile/demo-job:1
    restart: on-failure:2
  debug:
    image: reconcile/busybox:latest
    profiles: [debug]
  metrics:
    image: reconcile/busybox:latest
    profiles: [ops, debug]
"""


def test_project_name_from_directory_is_normalised() -> None:
    res = load_any([(STACK.encode(), "My.Shop!/docker-compose.yml", "/src/My.Shop!")], LoadOptions())
    assert sorted(r.name for r in res) == ["myshop-db", "myshop-migrate", "myshop-web"]


@pytest.mark.parametrize(("opts", "environ", "top", "project"), [
    ({}, {}, "name: from-file\n", "from-file"),
    ({}, {"COMPOSE_PROJECT_NAME": "from-env"}, "name: from-file\n", "from-env"),
    ({"project": "from-flag"}, {"COMPOSE_PROJECT_NAME": "from-env"}, "name: from-file\n", "from-flag"),
    ({}, {"SUFFIX": "x"}, "name: ct-${SUFFIX}\n", "ct-x"),
])
def test_project_name_precedence(opts: dict[str, Any], environ: dict[str, str], top: str, project: str) -> None:
    res = load(top + STACK, environ=environ, **opts)
    assert f"{project}-web" in res
    web = res[f"{project}-web"]
    assert web.metadata.labels == {"compose.project": project, "compose.service": "web"}
    assert web.spec.networks == [f"{project}_default"]
    assert set(web.spec.dependsOn) == {f"{project}-migrate", f"{project}-db"}


def test_completed_dependency_becomes_a_job() -> None:
    res = load("name: ct-p\n" + STACK)
    assert {n: r.kind for n, r in res.items()} == {"ct-p-web": "Service", "ct-p-db": "Service", "ct-p-migrate": "Job"}
    assert res["ct-p-migrate"].spec.backoffLimit == 2
    assert res["ct-p-web"].spec.dependsOn["ct-p-migrate"].condition == "completed"


def test_job_without_restart_runs_once() -> None:
    res = load("name: ct-p\n" + STACK.replace("    restart: on-failure:2\n", ""))
    job = res["ct-p-migrate"].spec
    assert (job.backoffLimit, job.restartPolicy.condition) == (0, "never")


def test_job_that_restarts_always_is_an_error() -> None:
    [issue] = problems("name: ct-p\n" + STACK.replace("restart: on-failure:2", "restart: always"))
    assert (issue.line, issue.field) == (12, "services.migrate.restart")
    assert "runs as a Job" in issue.message


@pytest.mark.parametrize(("profiles", "environ", "expected"), [
    ((), {}, {"web", "db", "migrate"}),
    (("debug",), {}, {"web", "db", "migrate", "debug", "metrics"}),
    (("ops",), {}, {"web", "db", "migrate", "metrics"}),
    ((), {"COMPOSE_PROFILES": "ops"}, {"web", "db", "migrate", "metrics"}),
    (("*",), {}, {"web", "db", "migrate", "debug", "metrics"}),
])
def test_profiles(profiles: tuple[str, ...], environ: dict[str, str], expected: set[str]) -> None:
    res = load("name: ct-p\n" + STACK, profiles=profiles, environ=environ)
    assert {r.metadata.labels["compose.service"] for r in res.values()} == expected


def test_depending_on_an_inactive_profile_is_an_error_unless_optional() -> None:
    text = "name: ct-p\n" + STACK + "  tool:\n    image: x\n    depends_on: [debug]\n"
    [issue] = problems(text)
    assert (issue.line, issue.field) == (21, "services.tool.depends_on[0]")
    assert "not enabled" in issue.message
    optional = text.replace("depends_on: [debug]", "depends_on: {debug: {required: false}}")
    assert load(optional)["ct-p-tool"].spec.dependsOn == {}


@pytest.mark.parametrize("data", [
    {"services": {"a": {"image": "x"}}},
    {"version": "3.8", "services": {}},
    {"volumes": {"v": None}},
    {"x-common": {}, "networks": {}},
])
def test_detected_as_compose(data: dict[str, Any]) -> None:
    assert is_compose(data)


@pytest.mark.parametrize("data", [
    {"apiVersion": "reconcile/v1alpha1", "kind": "Service", "metadata": {}, "spec": {}},
    {"services": {}, "kind": "Service"},
    {"spec": {}},
    [],
    "text",
])
def test_not_detected_as_compose(data: Any) -> None:
    assert not is_compose(data)


def test_fmt_compose_forces_compose() -> None:
    text = "name: ct-f\nservices: {a: {image: x}}\nfoo: bar\n"
    with pytest.raises(InvalidSpec):
        load(text, fmt="native")
    [issue] = problems(text, fmt="compose")
    assert (issue.line, issue.field) == (3, "foo") and "unknown compose key 'foo'" in issue.message


@pytest.mark.parametrize(("text", "expected"), [("My_App", "my_app"), ("--x.Y z", "xyz"), ("ÄÖ", "")])
def test_normalize_project_name(text: str, expected: str) -> None:
    assert normalize_project_name(text) == expected


# ------------------------------------------------------------------------------ unsupported keys
UNSUPPORTED: list[tuple[str, str, int, str]] = [
    # (service body, key named in the message, line, field)
    ("build:\n  context: .\n  secrets: [x]", "build.secrets", 7, "services.s.build.secrets"),
    ("credential_spec:\n  file: x", "credential_spec", 5, "services.s.credential_spec"),
    ("deploy:\n  resources:\n    limits: {foo: 10}", "deploy.resources.limits.foo", 7,
     "services.s.deploy.resources.limits.foo"),
    ("volumes:\n  - {type: volume, source: data, target: /d, volume: {subpath: x}}", "volumes.volume.subpath", 6,
     "services.s.volumes[0].volume.subpath"),
    ("deploy:\n  update_config: {max_failure_ratio: 0.1}", "deploy.update_config.max_failure_ratio", 6,
     "services.s.deploy.update_config.max_failure_ratio"),
    ("networks:\n  default:\n    interface_name: eth7", "networks.interface_name", 7,
     "services.s.networks.default.interface_name"),
    ("volumes:\n  - {type: npipe, source: x, target: /d}", "volumes type 'npipe'", 6, "services.s.volumes[0].type"),
    ("secrets:\n  - {source: pw, driver: x}", "secrets.driver", 6, "services.s.secrets[0].driver"),
    ("depends_on:\n  db: {condition: service_started, something: 1}", "depends_on.something", 6,
     "services.s.depends_on.db.something"),
    ("logging: {driver: syslog, format: x}", "logging.format", 5, "services.s.logging.format"),
    ("frobnicate: 1", "frobnicate", 5, "services.s.frobnicate"),
]


def _unsupported_project(body: str) -> str:
    indented = "\n".join("    " + line for line in body.splitlines())
    return (f"name: ct-u\nservices:\n  s:\n    image: img\n{indented}\n  db:\n    image: db\n"
            "volumes: {data: {}}\nsecrets: {pw: {file: ./secrets/db.txt}}\n")


@pytest.mark.parametrize(("body", "key", "line", "field"), UNSUPPORTED, ids=[u[1] for u in UNSUPPORTED])
def test_unsupported_key_is_an_error_with_location(body: str, key: str, line: int, field: str) -> None:
    found = problems(_unsupported_project(body))
    assert [(i.file, i.line, i.field) for i in found] == [(FILE, line, field)]
    assert f"'{key}'" in found[0].message
    assert "--allow-unsupported" in found[0].message


@pytest.mark.parametrize(("body", "key", "line", "field"), UNSUPPORTED, ids=[u[1] for u in UNSUPPORTED])
def test_unsupported_key_is_a_warning_with_allow_unsupported(body: str, key: str, line: int, field: str) -> None:
    warnings: list[str] = []
    res = load(_unsupported_project(body), allow_unsupported=True, warnings=warnings)
    assert "ct-u-s" in res
    assert len(warnings) == 1
    assert warnings[0].startswith(f"{FILE}:{line}: {field}: ")
    assert f"'{key}'" in warnings[0] and warnings[0].endswith("; ignored")


@pytest.mark.parametrize(("top", "key", "line"), [
    ("models:\n  m: {model: x}\n", "models", 4),
    ("volumes:\n  v: {scope: global}\n", "volumes.scope", 5),
    ("networks:\n  n: {ipam: {weird: 1}}\n", "networks.ipam.weird", 5),
    ("networks:\n  n: {scope: swarm}\n", "networks.scope", 5),
    ("secrets:\n  s: {environment: X}\n", "secrets.environment", 5),
])
def test_unsupported_top_level_keys(top: str, key: str, line: int) -> None:
    text = "name: ct-u\nservices:\n  s: {image: x}\n" + top
    found = problems(text)
    assert (found[0].line, f"'{key}'" in found[0].message) == (line, True)


def test_version_is_accepted_and_ignored() -> None:
    res = load("version: '3.8'\nname: ct-v\nservices:\n  s: {image: x}\n")
    assert list(res) == ["ct-v-s"]


def test_several_unsupported_keys_are_all_reported() -> None:
    found = problems("name: ct-u\nservices:\n  s:\n    image: x\n    isolation: a\n    credential_spec: {file: x}\n"
                     "    provider: {type: x}\n")
    assert [(i.line, i.field) for i in found] == [(5, "services.s.isolation"), (6, "services.s.credential_spec"),
                                                  (7, "services.s.provider")]


# ------------------------------------------------------------------------------ errors keep compose locations
ERRORS: list[tuple[str, int, str, str]] = [
    # (service body, line, field, message fragment)
    ("ports: ['99999:80']", 5, "services.s.ports[0]", "out of range"),
    ("ports:\n  - {published: 80}", 6, "services.s.ports[0]", "needs `target:`"),
    ("volumes: ['undeclared:/data']", 5, "services.s.volumes[0]", "undefined volume 'undeclared'"),
    ("networks: [nowhere]", 5, "services.s.networks[0]", "undefined network 'nowhere'"),
    ("depends_on: [ghost]", 5, "services.s.depends_on[0]", "undefined service 'ghost'"),
    ("depends_on: {db: {condition: service_ready}}", 5, "services.s.depends_on.db.condition", "unknown depends_on"),
    ("secrets: [nope]", 5, "services.s.secrets[0]", "undefined secret 'nope'"),
    ("restart: sometimes", 5, "services.s.restart", "invalid restart 'sometimes'"),
    ("restart: on-failure:x", 5, "services.s.restart", "invalid restart"),
    ("stop_grace_period: soon", 5, "services.s.stop_grace_period", "invalid duration"),
    ("deploy:\n  resources:\n    limits: {memory: lots}", 7, "services.s.deploy.resources.limits.memory",
     "invalid memory size"),
    ("deploy:\n  replicas: -1", 6, "services.s.deploy.replicas", "greater than or equal to 0"),
    ("healthcheck:\n  interval: 5s", 5, "services.s.healthcheck", "needs `test:`"),
    ("healthcheck:\n  test: [CMD, x]\n  retries: 0", 7, "services.s.healthcheck.retries", "greater than or equal"),
    ("environment: [1, 2]", 5, "services.s.environment", "KEY=VALUE"),
    ("environment:\n  A: [1]", 6, "services.s.environment.A", "expected a string"),
    ("labels: {io.reconcile.x: y}", 5, "services.s.labels", "reserved"),
    ("extra_hosts: ['nohost']", 5, "services.s.extra_hosts[0]", "has no address"),
    ("extra_hosts: ['host:not-an-ip']", 5, "services.s.extra_hosts[0]", "is not a valid extra host: expected 'HOSTNAME:IP'"),
    ("env_file: missing.env", 5, "services.s.env_file", "'ct/missing.env' does not exist"),
    ("stop_signal: KILL", 5, "services.s.stop_signal", "'KILL' is not a valid signal: expected a signal name"),
    ("deploy:\n  update_config: {failure_action: continue}", 6,
     "services.s.deploy.update_config.failure_action", "'continue'"),
]


@pytest.mark.parametrize(("body", "line", "field", "fragment"), ERRORS, ids=[e[2] + ":" + e[3] for e in ERRORS])
def test_errors_point_at_the_compose_key(body: str, line: int, field: str, fragment: str) -> None:
    found = problems(_unsupported_project(body))
    assert [(i.file, i.line, i.field) for i in found] == [(FILE, line, field)], found
    assert fragment in found[0].message


def test_build_without_image_names_the_image_like_compose() -> None:
    res = load("name: ct-b\nservices:\n  api:\n    build: ./api\n")
    assert res["ct-b-api"].spec.image == "ct-b-api"
    assert res["ct-b-api"].spec.build.context == "/srv/ct/api"


def test_a_remote_build_context_the_classic_builder_cannot_fetch_is_an_error() -> None:
    # https/git URLs are passed to the engine (tests/unit/test_lifecycle.py); ssh:// is not fetched by it
    [issue] = problems("name: ct-b\nservices:\n  api:\n    build: ssh://git@github.com/x/y.git\n")
    assert (issue.line, issue.field) == (4, "services.api.build") and "local directory" in issue.message


def test_missing_image_names_the_service() -> None:
    [issue] = problems("name: ct-e\nservices:\n  s:\n    user: x\n")
    assert (issue.line, issue.field) == (3, "services.s")
    assert issue.message.startswith("image: required field is missing")


@pytest.mark.parametrize(("text", "fragment"), [
    ("name: CT\nservices:\n  a: {image: x}\n", "invalid compose project name 'CT'"),
])
def test_invalid_native_names_are_clear_errors(text: str, fragment: str) -> None:
    found = problems(text)
    assert any(fragment in i.message for i in found), found


def test_without_a_reader_dotenv_is_skipped_and_files_are_not_checked() -> None:
    text = "name: ct-r\nservices:\n  s:\n    image: ${IMG:-x}\n    env_file: a.env\n"
    [s] = load_any([(text.encode(), FILE, DIR)], LoadOptions())
    assert (s.spec.image, s.spec.envFiles) == ("x", ["/srv/ct/a.env"])
    optional = text.replace("env_file: a.env", "env_file: [{path: a.env, required: false}]")
    with pytest.raises(InvalidSpec) as info:
        load_any([(optional.encode(), FILE, DIR)], LoadOptions())
    assert "no file reader" in info.value.issues[0].message
    secret = "name: ct-r\nservices:\n  s:\n    image: x\n    secrets: [pw]\nsecrets: {pw: {file: pw.txt}}\n"
    [s] = load_any([(secret.encode(), FILE, DIR)], LoadOptions())
    assert s.spec.volumes == ["/srv/ct/pw.txt:/run/secrets/pw:ro"]
    [issue] = problems(secret)  # with a reader, a missing secret file is an error
    assert (issue.line, issue.field, issue.message) == (6, "secrets.pw.file", "secret file 'ct/pw.txt' does not exist")


def test_reader_errors_are_reported() -> None:
    def broken(path: str) -> bytes:
        raise PermissionError(13, "Permission denied", path)

    text = "name: ct-r\nservices:\n  s:\n    image: x\n"
    with pytest.raises(InvalidSpec) as info:
        load_any([(text.encode(), FILE, DIR)], LoadOptions(read_file=broken))
    assert info.value.issues[0].file == "ct/.env" and "Permission denied" in info.value.issues[0].message


# ------------------------------------------------------------------------------ purity
@pytest.mark.parametrize("module", ["compose", "merge", "interpolate", "formats"])
def test_module_does_no_io(module: str) -> None:
    """crd_like stays pure: files arrive as bytes or through the caller's reader."""
    import ast
    from pathlib import Path

    source = (Path(__file__).resolve().parents[2] / "crd_like" / f"{module}.py").read_text()
    tree = ast.parse(source)
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not imported & {"pathlib", "subprocess", "socket", "shutil", "io", "controller", "store", "docker"}
    calls = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert "open" not in calls
    os_uses = {ast.unparse(n) for n in ast.walk(tree)
               if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "os"}
    assert os_uses <= {"os.path"}, os_uses
