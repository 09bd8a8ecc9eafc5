"""The compose input path: YAML 1.2 scalars, the merge tags, several -f files, extends and
include, the name mapping, strict validation, the restart/unhealthy rule, secrets and
their redaction, file discovery and the dotenv parser shared with the controller."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from controller.inputs import input_files
from controller.refs import parse_env_file as runtime_env
from crd_like import InvalidSpec, Issue
from crd_like.compose import native_name
from crd_like.formats import LoadOptions, load_any, to_native_yaml
from crd_like.loader import parse_documents
from crd_like.secrets import SECRET_PLACEHOLDER, looks_secret, redact_spec

DIR = "/srv/ct"


def reader_for(files: dict[str, str]) -> Any:
    def read(path: str) -> bytes:
        if path not in files:
            raise FileNotFoundError(path)
        return files[path].encode()
    return read


def load_files(texts: list[tuple[str, str]], extra: dict[str, str] | None = None, *,
               environ: dict[str, str] | None = None, warnings: list[str] | None = None,
               notices: list[str] | None = None, **kw: Any) -> dict[str, Any]:
    """Compose files ``[(name, text)]`` in /srv/ct, plus other files by absolute path."""
    files = {f"{DIR}/{n}": t for n, t in texts} | (extra or {})
    opts = LoadOptions(environ=environ or {}, read_file=reader_for(files), warnings=warnings if warnings is not None
                       else [], notices=notices if notices is not None else [], **kw)
    return {r.name: r for r in load_any([(t.encode(), f"ct/{n}", DIR) for n, t in texts], opts)}


def load(text: str, **kw: Any) -> dict[str, Any]:
    return load_files([("compose.yaml", text)], **kw)


def spec(text: str, name: str = "ct-s", **kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = load(text, **kw)[name].spec.model_dump(mode="json", exclude_defaults=True)
    return out


def problems(text: str, **kw: Any) -> list[Issue]:
    with pytest.raises(InvalidSpec) as info:
        load(text, **kw)
    return info.value.issues


# ------------------------------------------------------------------------------ YAML 1.2 scalars
@pytest.mark.parametrize(("text", "expected"), [
    ("22:22", "22:22"),  # YAML 1.1: base 60 -> 1342
    ("on", "on"), ("yes", "yes"), ("no", "no"), ("off", "off"), ("y", "y"),
    ("true", True), ("False", False),
    ("0755", 755),  # YAML 1.2 core: decimal
    ("0o755", 0o755), ("0x1F", 31), ("1_000", "1_000"),
    ("1.5", 1.5), ("2024-01-01", "2024-01-01"), ("~", None), ("null", None), ("", None),
])
def test_compose_input_reads_yaml_1_2_scalars(text: str, expected: Any) -> None:
    [doc] = parse_documents(f"v: {text}\n".encode(), "f", yaml12=True)
    assert doc.data["v"] == expected


@pytest.mark.parametrize(("text", "expected"), [("22:22", 1342), ("on", True), ("0755", 493)])
def test_native_files_keep_yaml_1_1(text: str, expected: Any) -> None:
    [doc] = parse_documents(f"v: {text}\n".encode(), "f")
    assert doc.data["v"] == expected


def test_unquoted_port_22_22_publishes_port_22() -> None:
    assert spec("name: ct\nservices:\n  s:\n    image: x\n    ports:\n      - 22:22\n")["ports"] == ["22:22/tcp"]


def test_on_is_a_string_in_compose_environment_and_a_key() -> None:
    got = spec("name: ct\nservices:\n  s:\n    image: x\n    environment:\n      A: on\n      B: 0o10\n")
    assert got["env"] == {"A": "on", "B": "0o10"}  # env values keep their text


def test_merge_tag_in_a_native_file_is_an_error() -> None:
    text = b"apiVersion: reconcile/v1alpha1\nkind: Service\nmetadata: {name: a}\nspec:\n  image: x\n  ports: !reset []\n"
    with pytest.raises(InvalidSpec) as info:
        load_any([(text, "n.yaml", DIR)], LoadOptions(fmt="native"))
    assert "compose merge tag" in info.value.issues[0].message


# ------------------------------------------------------------------------------ merge tags and -f files
BASE = """name: ct
services:
  s:
    image: x
    ports: ["127.0.0.1:8080:80", "127.0.0.1:8443:443"]
    environment: {A: "1", B: "2"}
    labels: [l1=a, l2=b]
    command: [sleep, "1"]
    dns: [1.1.1.1]
    healthcheck: {test: [CMD, "true"], interval: 5s}
"""


@pytest.mark.parametrize(("override", "field", "expected"), [
    ("ports: !reset []", "ports", None),
    ("ports: !override [\"127.0.0.1:9000:80\"]", "ports", ["127.0.0.1:9000:80/tcp"]),
    ("ports: [\"127.0.0.1:9000:80\"]", "ports",
     ["127.0.0.1:8080:80/tcp", "127.0.0.1:8443:443/tcp", "127.0.0.1:9000:80/tcp"]),
    ("environment: {B: !reset null, C: \"3\"}", "env", {"A": "1", "C": "3"}),
    ("environment: !override {C: \"3\"}", "env", {"C": "3"}),
    ("environment: [B=20]", "env", {"A": "1", "B": "20"}),
    ("labels: {l2: c}", "labels", {"l1": "a", "l2": "c"}),
    ("labels: !reset {}", "labels", None),
    ("command: [echo]", "command", ["echo"]),
    ("command: !reset null", "command", None),
    ("dns: [8.8.8.8]", "dns", ["1.1.1.1", "8.8.8.8"]),
    ("healthcheck: {test: [CMD, \"false\"]}", "healthcheck", {"test": ["CMD", "false"], "interval": 5.0}),
    ("healthcheck: !override {test: [CMD, \"false\"]}", "healthcheck", {"test": ["CMD", "false"]}),
    ("healthcheck: !reset", "healthcheck", None),
])
def test_override_file_merge_rules_and_tags(override: str, field: str, expected: Any) -> None:
    over = "services:\n  s:\n    " + override + "\n"
    texts = [("compose.yaml", BASE.replace("    dns: [1.1.1.1]\n", "") if field != "dns" else BASE),
             ("compose.override.yaml", over)]
    if field == "dns":
        pytest.importorskip("crd_like.compose_net")
        try:
            got = load_files(texts)["ct-s"].spec.model_dump(mode="json", exclude_defaults=True)
        except InvalidSpec:
            pytest.skip("dns is converted by the networking keys (another branch)")
    else:
        got = load_files(texts)["ct-s"].spec.model_dump(mode="json", exclude_defaults=True)
    if field == "healthcheck" and got.get(field):
        got[field] = {k: v for k, v in got[field].items() if k in ("test", "interval")}
    assert got.get(field) == expected


def test_reset_in_the_file_that_writes_it_means_unset() -> None:
    got = spec("name: ct\nservices:\n  s:\n    image: x\n    ports: !reset [\"127.0.0.1:1:1\"]\n")
    assert "ports" not in got


def test_a_whole_service_can_be_reset() -> None:
    res = load_files([("compose.yaml", "name: ct\nservices:\n  s: {image: x}\n  t: {image: y}\n"),
                      ("o.yaml", "services:\n  t: !reset\n")])
    assert sorted(res) == ["ct-s"]


@pytest.mark.parametrize(("base", "over", "expected"), [
    # secrets by target path, volumes by target
    ("secrets: [a]", "secrets: [{source: a, target: /run/secrets/a}]", 1),
    ("volumes: [\"./x:/data\"]", "volumes: [\"./y:/data\"]", 1),
    ("volumes: [\"./x:/data\"]", "volumes: [\"./y:/other\"]", 2),
])
def test_list_entries_merge_by_identity(base: str, over: str, expected: int) -> None:
    top = "secrets:\n  a: {file: ./a.txt}\n"
    texts = [("compose.yaml", f"name: ct\nservices:\n  s:\n    image: x\n    {base}\n{top}"),
             ("o.yaml", f"services:\n  s:\n    {over}\n")]
    got = load_files(texts, {f"{DIR}/a.txt": "pw"})["ct-s"].spec
    assert len(got.volumes) == expected


# ------------------------------------------------------------------------------ extends and include
def test_extends_same_file_and_recursively() -> None:
    text = """name: ct
services:
  base: {image: x, environment: {A: "1", B: "1"}, labels: {tier: base}}
  mid: {extends: base, environment: {B: "2"}}
  s: {extends: {service: mid}, environment: {C: "3"}, command: [run]}
"""
    got = spec(text)
    assert got["env"] == {"A": "1", "B": "2", "C": "3"}
    assert got["labels"] == {"tier": "base"} and got["command"] == ["run"] and got["image"] == "x"


def test_extends_another_file_resolves_its_relative_paths_against_its_directory() -> None:
    other = "services:\n  web:\n    image: x\n    volumes: [\"./conf:/etc/app:ro\"]\n    env_file: [web.env]\n"
    text = "name: ct\nservices:\n  s:\n    extends: {file: common/base.yaml, service: web}\n"
    res = load_files([("compose.yaml", text)], {f"{DIR}/common/base.yaml": other, f"{DIR}/common/web.env": "A=1\n"})
    got = res["ct-s"].spec
    assert got.volumes == [f"{DIR}/common/conf:/etc/app:ro"]
    assert got.envFiles == [f"{DIR}/common/web.env"]


@pytest.mark.parametrize(("text", "fragment"), [
    ("services:\n  s: {extends: s, image: x}\n", "extends cycle: s -> s"),
    ("services:\n  a: {extends: b, image: x}\n  b: {extends: a}\n", "extends cycle"),
    ("services:\n  s: {extends: nope, image: x}\n", "extends undefined service 'nope'"),
    ("services:\n  s: {extends: {file: missing.yaml, service: a}}\n", "does not exist"),
    ("services:\n  s: {extends: {servce: a}, image: x}\n", "extends needs `service:`"),
])
def test_extends_errors(text: str, fragment: str) -> None:
    found = problems("name: ct\n" + text)
    assert any(fragment in i.message for i in found), found


def test_include_with_its_own_project_directory_and_env_file() -> None:
    inc = "services:\n  db:\n    image: \"db:${DB_TAG}\"\n    volumes: [\"./data:/var/lib/db\"]\n"
    text = "name: ct\ninclude:\n  - path: lib/db.yaml\nservices:\n  s: {image: x, depends_on: [db]}\n"
    res = load_files([("compose.yaml", text)], {f"{DIR}/lib/db.yaml": inc, f"{DIR}/lib/.env": "DB_TAG=16\n"})
    assert res["ct-db"].spec.image == "db:16"
    assert res["ct-db"].spec.volumes == [f"{DIR}/lib/data:/var/lib/db"]
    assert list(res["ct-s"].spec.dependsOn) == ["ct-db"]


def test_a_file_with_only_include_is_compose() -> None:
    res = load_files([("compose.yaml", "name: ct\ninclude: [lib/a.yaml]\n")],
                     {f"{DIR}/lib/a.yaml": "services:\n  a: {image: x}\n"})
    assert list(res) == ["ct-a"]


@pytest.mark.parametrize(("files", "fragment"), [
    ({f"{DIR}/lib/a.yaml": "services:\n  s: {image: y}\n"}, "also by the included"),
    ({f"{DIR}/lib/a.yaml": "include: [../compose.yaml]\nservices:\n  a: {image: y}\n"}, "include cycle"),
    ({}, "does not exist"),
])
def test_include_errors(files: dict[str, str], fragment: str) -> None:
    text = "name: ct\ninclude: [lib/a.yaml]\nservices:\n  s: {image: x}\n"
    files = {**files, f"{DIR}/compose.yaml": text}
    with pytest.raises(InvalidSpec) as info:
        load_any([(text.encode(), "ct/compose.yaml", DIR)], LoadOptions(read_file=reader_for(files)))
    assert any(fragment in i.message for i in info.value.issues), info.value.issues


# ------------------------------------------------------------------------------ names
@pytest.mark.parametrize(("project", "service", "expected"), [
    ("ct", "web", "ct-web"),
    ("my_app", "Web_App", "my-app-web-app"),
    ("my_app", "api.v2", "my-app-api-v2"),
    ("p", "__x__", "p-x"),
    ("p", "a--b", "p-a-b"),
])
def test_native_name_rule(project: str, service: str, expected: str) -> None:
    assert native_name(project, service) == expected


def test_long_names_are_cut_with_a_digest() -> None:
    project, service = "a" * 40, "b" * 40
    name = native_name(project, service)
    digest = hashlib.sha256(f"{project}/{service}".encode()).hexdigest()[:8]
    assert len(name) <= 63 and name == ("a" * 40 + "-" + "b" * 13) + "-" + digest


def test_mapped_names_keep_the_compose_names_in_labels_and_alias() -> None:
    res = load("name: my_app\nservices:\n  Web_App: {image: x}\n")
    r = res["my-app-web-app"]
    assert r.metadata.labels == {"compose.project": "my_app", "compose.service": "Web_App"}
    assert "Web_App" in r.spec.aliases and r.spec.networks == ["my_app_default"]


def test_default_project_name_from_a_folder_with_underscore() -> None:
    files = {"/srv/my_app/compose.yaml": "services:\n  web: {image: x}\n"}
    res = load_any([(files["/srv/my_app/compose.yaml"].encode(), "my_app/compose.yaml", "/srv/my_app")],
                   LoadOptions(read_file=reader_for(files)))
    assert [r.name for r in res] == ["my-app-web"]


def test_two_services_mapping_to_one_name_is_an_error_naming_both() -> None:
    found = problems("name: ct\nservices:\n  web_1: {image: x}\n  web.1: {image: x}\n")
    assert any("'web_1' and 'web.1'" in i.message for i in found), found


# ------------------------------------------------------------------------------ validation
@pytest.mark.parametrize(("body", "line", "fragment"), [
    ("  s: {image: x, depends_on: [s]}\n", 3, "it depends on itself"),
    ("  a: {image: x, depends_on: [b]}\n  b: {image: x, depends_on: [a]}\n", 3, "dependency cycle"),
    ("  s: {image: x, scale: 2, deploy: {replicas: 3}}\n", 3, "scale: 2 and deploy.replicas: 3"),
    ("  s: {image: x, profiles: abc}\n", 3, "profiles must be a list"),
    ("  s:\n    image: x\n    user: {a: 1}\n", 5, "user must be a string, got a mapping"),
    ("  s:\n    image: x\n    init: maybe\n", 5, "init must be true or false"),
    ("  s:\n    image: x\n    cap_add: NET_ADMIN\n", 5, "cap_add must be a list of strings"),
])
def test_strict_validation_at_convert_time(body: str, line: int, fragment: str) -> None:
    found = problems("name: ct\nservices:\n" + body)
    hit = [i for i in found if fragment in i.message]
    assert hit and hit[0].line == line, found
    assert "{'" not in str(hit[0])  # no Python repr


def test_scale_equal_to_replicas_is_fine() -> None:
    assert spec("name: ct\nservices:\n  s: {image: x, scale: 2, deploy: {replicas: 2}}\n")["replicas"] == 2


def test_warnings_are_kept_when_the_conversion_fails() -> None:
    warnings: list[str] = []
    with pytest.raises(InvalidSpec):
        load("name: ct\nservices:\n  s: {image: x, isolation: hyperv, user: {a: 1}}\n", allow_unsupported=True,
             warnings=warnings)
    assert any("ct/compose.yaml:3: services.s.isolation: compose key 'isolation'" in w for w in warnings), warnings


def test_the_cli_prints_warnings_before_the_error(tmp_path: Any) -> None:
    import subprocess
    import sys

    (tmp_path / "compose.yaml").write_text("name: ct\nservices:\n  s: {image: x, isolation: hyperv, user: {a: 1}}\n")
    run = subprocess.run([sys.executable, "-m", "controller.cli", "convert", "--allow-unsupported"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert run.stderr.index("isolation") < run.stderr.index("user must be a string"), run.stderr


def test_develop_is_ignored_with_an_info_line() -> None:
    notices: list[str] = []
    load("name: ct\nservices:\n  s: {image: x, develop: {watch: []}}\n", notices=notices)
    assert any("compose key 'develop'" in n and "ignored" in n for n in notices)


# ------------------------------------------------------------------------------ restart / unhealthy
@pytest.mark.parametrize(("keys", "top", "condition", "unhealthy"), [
    ("", "", "never", "ignore"),
    ("restart: \"no\"", "", "never", "ignore"),
    ("restart: always", "", "always", "restart"),
    ("restart: unless-stopped", "", "always", "restart"),
    ("restart: on-failure", "", "on-failure", "restart"),
    ("deploy: {restart_policy: {condition: any}}", "", "always", "restart"),
    ("deploy: {restart_policy: {condition: none}}", "", "never", "ignore"),
    ("", "x-reconcile: {restart: unless-stopped}", "always", "restart"),
    ("restart: always", "x-reconcile: {onUnhealthy: ignore}", "always", "ignore"),
    ("", "x-reconcile: {onUnhealthy: restart}", "never", "restart"),
])
def test_restart_and_unhealthy_rule(keys: str, top: str, condition: str, unhealthy: str) -> None:
    text = f"name: ct\n{top}\nservices:\n  s:\n    image: x\n    {keys}\n"
    r = load(text)["ct-s"].spec
    assert (r.restartPolicy.condition, r.onUnhealthy) == (condition, unhealthy)


def test_the_restart_notice_names_the_services_once() -> None:
    notices: list[str] = []
    load("name: ct\nservices:\n  a: {image: x}\n  b: {image: x, restart: always}\n  c: {image: x}\n",
         notices=notices)
    [line] = [n for n in notices if "will not be restarted" in n]
    assert "a, c will not be restarted" in line and "x-reconcile" in line and "restart: unless-stopped" in line


@pytest.mark.parametrize(("top", "fragment"), [
    ("x-reconcile: {onUnhealthy: sometimes}", "x-reconcile.onUnhealthy must be one of"),
    ("x-reconcile: {restrat: always}", "unknown x-reconcile setting 'restrat'"),
])
def test_x_reconcile_errors(top: str, fragment: str) -> None:
    found = problems(f"name: ct\n{top}\nservices:\n  s: {{image: x}}\n")
    assert any(fragment in i.message for i in found), found


# ------------------------------------------------------------------------------ secrets
@pytest.mark.parametrize(("key", "secret"), [
    ("DB_PASSWORD", True), ("db_passwd", True), ("APP_SECRET", True), ("GITHUB_TOKEN", True),
    ("ENCRYPTION_KEY", True), ("AWS_CREDENTIALS", True), ("PRIVATE_PEM", True), ("API_KEY", True),
    ("LOG_LEVEL", False), ("PORT", False), ("TZ", False),
])
def test_secret_looking_keys(key: str, secret: bool) -> None:
    assert looks_secret(key) is secret


def test_interpolated_secret_values_are_stored_as_secrets_and_redacted_on_output() -> None:
    text = ("name: ct\nservices:\n  s:\n    image: x\n    environment:\n      DB_PASSWORD: ${PW}\n"
            "      API_KEY:\n      LOG_LEVEL: ${LEVEL}\n      LITERAL_TOKEN: written-here\n")
    res = load(text, environ={"PW": "hunter2", "API_KEY": "k-123", "LEVEL": "debug"})
    env = res["ct-s"].spec.model_dump(mode="json", exclude_defaults=True)["env"]
    assert env["DB_PASSWORD"] == {"valueFrom": {"secret": "hunter2"}}
    assert env["API_KEY"] == {"valueFrom": {"secret": "k-123"}}
    assert env["LOG_LEVEL"] == "debug" and env["LITERAL_TOKEN"] == "written-here"
    shown = to_native_yaml(list(res.values()))
    assert "hunter2" not in shown and "k-123" not in shown and SECRET_PLACEHOLDER in shown
    assert "hunter2" in to_native_yaml(list(res.values()), reveal_secrets=True)


def test_redact_spec_is_the_one_redaction() -> None:
    spec_ = {"image": "x", "env": {"A": "1", "B": {"valueFrom": {"secret": "s3cr3t"}}, "C": {"valueFrom": {"env": "V"}}}}
    assert redact_spec(spec_)["env"] == {"A": "1", "B": {"valueFrom": {"secret": SECRET_PLACEHOLDER}},
                                         "C": {"valueFrom": {"env": "V"}}}
    assert spec_["env"]["B"] == {"valueFrom": {"secret": "s3cr3t"}}  # a copy


# ------------------------------------------------------------------------------ discovery
@pytest.mark.parametrize(("present", "cwd", "environ", "expected"), [
    ({"/p/compose.yaml"}, "/p", {}, ["compose.yaml"]),
    ({"/p/docker-compose.yml", "/p/docker-compose.yaml"}, "/p", {}, ["docker-compose.yml"]),
    ({"/p/compose.yml", "/p/docker-compose.yml"}, "/p", {}, ["compose.yml"]),
    ({"/p/compose.yaml", "/p/compose.override.yaml"}, "/p", {}, ["compose.yaml", "compose.override.yaml"]),
    ({"/p/docker-compose.yml", "/p/docker-compose.override.yml"}, "/p", {},
     ["docker-compose.yml", "docker-compose.override.yml"]),
    ({"/p/compose.yaml"}, "/p/sub/dir", {}, ["/p/compose.yaml"]),  # walks up
    (set(), "/p", {"COMPOSE_FILE": "a.yml:b.yml"}, ["a.yml", "b.yml"]),
    (set(), "/p", {"COMPOSE_FILE": "a.yml;b.yml", "COMPOSE_PATH_SEPARATOR": ";"}, ["a.yml", "b.yml"]),
])
def test_discovery(present: set[str], cwd: str, environ: dict[str, str], expected: list[str]) -> None:
    import os

    found = input_files((), environ, cwd, exists=lambda p: p in present)
    assert [os.path.abspath(f) for f in found.files] == [os.path.normpath(os.path.join(cwd, e)) for e in expected]


def test_discovery_without_files_is_a_clear_error() -> None:
    with pytest.raises(InvalidSpec) as info:
        input_files((), {}, "/nowhere", exists=lambda p: False)
    assert "no input file" in info.value.issues[0].message


def test_given_files_win() -> None:
    assert input_files(("x.yaml",), {"COMPOSE_FILE": "y.yaml"}, "/p").files == ["x.yaml"]


def test_env_file_and_project_directory_options() -> None:
    files = {"/srv/ct/compose.yaml": "services:\n  s: {image: \"x:${TAG}\"}\n", "/etc/prod.env": "TAG=9\n",
             "/srv/other/.env": "TAG=7\n"}
    src = [(files["/srv/ct/compose.yaml"].encode(), "ct/compose.yaml", "/srv/ct")]
    res = load_any(src, LoadOptions(read_file=reader_for(files), env_files=("/etc/prod.env",)))
    assert [r.spec.image for r in res] == ["x:9"]
    res = load_any(src, LoadOptions(read_file=reader_for(files), project_dir="/srv/other"))
    assert [(r.name, r.spec.image) for r in res] == [("other-s", "x:7")]


def test_compose_project_name_and_profiles_from_the_environment() -> None:
    text = "services:\n  s: {image: x}\n  d: {image: x, profiles: [debug]}\n"
    res = load(text, environ={"COMPOSE_PROJECT_NAME": "envname", "COMPOSE_PROFILES": "debug"})
    assert sorted(res) == ["envname-d", "envname-s"]


# ------------------------------------------------------------------------------ dotenv, one parser
DOTENV = (b"A=foo # note\nB='x # y'\nC=\"line\\nnext\"\nD=${A}-bar\nexport E=1\n# comment\n\nF=\"${B}\"\n"
          b"G=a#b\n")


def test_dotenv_semantics_are_shared_by_load_and_run_time() -> None:
    from crd_like.interpolate import parse_env_file

    at_load = parse_env_file(DOTENV, ".env", {})
    assert at_load == {"A": "foo", "B": "x # y", "C": "line\nnext", "D": "foo-bar", "E": "1", "F": "x # y",
                       "G": "a#b"}
    assert runtime_env(DOTENV) == at_load


def test_runtime_env_errors_never_quote_the_line() -> None:
    with pytest.raises(ValueError) as info:
        runtime_env(b"OK=1\nthis is s3cr3t\n")
    assert "s3cr3t" not in str(info.value) and "line 2" in str(info.value)


def test_accepted_keys_whose_meaning_differs_warn_with_file_line_key() -> None:
    warnings: list[str] = []
    text = ("name: ct\nservices:\n  s:\n    image: x\n    secrets:\n      - source: pw\n        mode: 0o400\n"
            "secrets:\n  pw: {file: ./pw.txt}\n")
    load_files([("compose.yaml", text)], {f"{DIR}/pw.txt": "x"}, warnings=warnings)
    assert warnings == ["ct/compose.yaml:7: services.s.secrets[0].mode: compose key 'secrets.mode': ignored: the file "
                        "is bind-mounted read-only with its own owner and mode on the host (docker compose ignores "
                        "it too)"]


@pytest.mark.parametrize(("text", "fragment"), [
    ("services:\n  s:\n    image: !foo x\n", "could not determine a constructor for the tag '!foo'"),
])
def test_unknown_yaml_tags_are_clear_errors(text: str, fragment: str) -> None:
    found = problems(text)
    assert fragment in found[0].message and "<unicode string>" not in found[0].message


def test_a_project_without_services_is_accepted_with_a_notice() -> None:
    notices: list[str] = []
    assert load("name: ct\nvolumes:\n  data: {}\n", notices=notices) == {}
    assert any("defines no services" in n for n in notices)


def test_services_must_be_a_mapping() -> None:
    assert "must be a mapping" in problems("name: ct\nservices: [a, b]\n")[0].message
