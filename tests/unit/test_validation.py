"""Native files through the one input path (``crd_like.formats.load_any``, ``fmt="native"``):
YAML bytes -> validated resources, or InvalidSpec issues naming the file, the 1-based line and the dotted field path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from crd_like import API_VERSION, InvalidSpec, Issue, Service
from crd_like.formats import LoadOptions, load_any

NATIVE = LoadOptions(fmt="native")

# Six lines; a case's own lines start at line 7.
BASE = """\
apiVersion: reconcile/v1alpha1
kind: Service
metadata:
  name: web
spec:
  image: demo/web:1
"""

VALID_STACK = """\
# two services, the first with every notation normalised
---
apiVersion: reconcile/v1alpha1
kind: Service
metadata:
  name: web
  labels: {tier: frontend}
spec:
  image: demo/web:1
  command: httpd -f -p 80
  env:
    LOG_LEVEL: info
  ports: ["127.0.0.1:8080:80", "9000/udp"]
  volumes: ["data:/data"]
  healthcheck:
    test: wget -q -O- http://127.0.0.1/health
    interval: 1m30s
---
apiVersion: reconcile/v1alpha1
kind: Service
metadata:
  name: worker
spec:
  image: demo/worker:1
  restartPolicy:
    condition: on-failure
    backoff: {initial: 500ms, max: 1m}
"""


def load(text: str | bytes, file: str = "stack.yaml", base_dir: str = "/srv/app") -> list[Service]:
    raw = text.encode() if isinstance(text, str) else text
    return load_any([(raw, file, base_dir)], NATIVE)


def issues_of(sources: list[tuple[bytes, str, str]]) -> list[Issue]:
    with pytest.raises(InvalidSpec) as info:
        load_any(sources, NATIVE)
    return info.value.issues


def test_valid_multi_document_file_loads() -> None:
    web, worker = load(VALID_STACK)
    assert (web.apiVersion, web.kind, web.name) == (API_VERSION, "Service", "web")
    assert web.metadata.labels == {"tier": "frontend"}
    assert web.spec.command == ["httpd", "-f", "-p", "80"]
    assert web.spec.ports == ["127.0.0.1:8080:80/tcp", "9000/udp"]
    assert web.spec.healthcheck is not None
    assert web.spec.healthcheck.test == ["CMD-SHELL", "wget -q -O- http://127.0.0.1/health"]
    assert web.spec.healthcheck.interval == 90.0
    assert worker.name == "worker"
    assert worker.spec.restartPolicy.condition == "on-failure"
    assert worker.spec.restartPolicy.backoff.initial == 0.5
    assert worker.spec.restartPolicy.backoff.max == 60.0


def test_several_files_load_in_order() -> None:
    other = BASE.replace("name: web", "name: other")
    out = load_any([(VALID_STACK.encode(), "a.yaml", "/a"), (other.encode(), "b.yaml", "/b")], NATIVE)
    assert [r.name for r in out] == ["web", "worker", "other"]


def test_utf8_bom_and_crlf_line_endings_are_accepted() -> None:
    (res,) = load(("\ufeff" + BASE).replace("\n", "\r\n").encode())
    assert res.spec.image == "demo/web:1"


# (id, file text, line, field, fragment of the message)
INVALID: list[tuple[str, str | bytes, int, str, str]] = [
    ("unknown top-level field", BASE + "replicas: 3\n", 7, "replicas", "unknown field"),
    ("unknown field in spec", BASE + "  imagePullPolicy: always\n", 7, "spec.imagePullPolicy", "unknown field"),
    ("unknown field in metadata",
     "apiVersion: reconcile/v1alpha1\nkind: Service\nmetadata:\n  name: web\n  namespace: x\nspec:\n  image: a\n",
     5, "metadata.namespace", "unknown field"),
    ("unknown field in healthcheck",
     BASE + "  healthcheck:\n    test: curl x\n    intervall: 5s\n", 9, "spec.healthcheck.intervall", "unknown field"),
    ("env is a list", BASE + "  env: [A=1]\n", 7, "spec.env", "valid dictionary"),
    ("env value is a mapping", BASE + "  env:\n    A: {b: 1}\n", 8, "spec.env.A", "string, number or boolean"),
    ("env value is null", BASE + "  env:\n    LOG: info\n    A:\n", 9, "spec.env.A", "string, number or boolean"),
    ("ports is a number", BASE + "  ports: 80\n", 7, "spec.ports", "valid list"),
    ("bad port", BASE + '  ports:\n    - "8080:80"\n    - "99999:80"\n', 9, "spec.ports[1]", "out of range"),
    ("bad port protocol", BASE + '  ports: ["80/xyz"]\n', 7, "spec.ports[0]", "protocol"),
    ("bad volume", BASE + "  volumes:\n    - data\n", 8, "spec.volumes[0]", "invalid volume"),
    ("command is a number", BASE + "  command: 5\n", 7, "spec.command", "valid list"),
    ("command does not split", BASE + "  command: \"sh -c 'x\"\n", 7, "spec.command", "cannot split"),
    ("healthcheck retries is text",
     BASE + "  healthcheck:\n    test: curl x\n    retries: three\n", 9, "spec.healthcheck.retries", "valid integer"),
    ("healthcheck retries is zero",
     BASE + "  healthcheck:\n    test: curl x\n    retries: 0\n", 9, "spec.healthcheck.retries", "greater than or equal to 1"),
    ("replicas is text", BASE + "  replicas: three\n", 7, "spec.replicas", "valid integer"),
    ("replicas above the limit", BASE + "  env: {}\n  replicas: 101\n", 8, "spec.replicas", "less than or equal to 100"),
    ("init is not a boolean", BASE + "  init: maybe\n", 7, "spec.init", "valid boolean"),
    ("bad healthcheck interval",
     BASE + "  healthcheck:\n    test: curl x\n    interval: 10x\n", 9, "spec.healthcheck.interval", "invalid duration"),
    ("bad stopGracePeriod", BASE + "  stopGracePeriod: 1m30\n", 7, "spec.stopGracePeriod", "invalid duration"),
    ("bad restartPolicy", BASE + "  restartPolicy: sometimes\n", 7, "spec.restartPolicy.condition", "'sometimes'"),
    ("bad restartPolicy.maxAttempts",
     BASE + "  restartPolicy:\n    condition: always\n    maxAttempts: 0\n", 9, "spec.restartPolicy.maxAttempts",
     "greater than or equal to 1"),
    ("bad onUnhealthy", BASE + "  onUnhealthy: reboot\n", 7, "spec.onUnhealthy", "'reboot'"),
    ("reserved label", BASE + "  labels: {io.reconcile.service: x}\n", 7, "spec.labels", "reserved"),
    ("invalid name", BASE.replace("name: web", "name: Bad_Name"), 4, "metadata.name", "not a valid name"),
    ("name too long", BASE.replace("name: web", "name: " + "a" * 64), 4, "metadata.name", "not a valid name"),
    ("duplicate YAML key", BASE + "  image: demo/web:2\n", 7, "spec.image", "duplicate key 'image'"),
    ("duplicate top-level key", BASE + "kind: Service\n", 7, "kind", "duplicate key 'kind'"),
    ("tab indentation", BASE.replace("  image:", "\timage:"), 6, "", "found character '\\t'"),
    ("YAML syntax error", BASE + "  command: sh -c: x\n", 7, "", "YAML syntax error"),
    ("empty file", "", 1, "", "empty"),
    ("comments only", "# nothing here\n", 1, "", "empty"),
    ("non-UTF-8 bytes", BASE.encode() + b"  env: {A: \xff}\n", 7, "", "not valid UTF-8"),
    ("status block", BASE + "status:\n  state: Running\n", 7, "status", "written by the controller"),
    ("unknown kind", BASE.replace("kind: Service", "kind: Deployment"), 2, "kind", "unknown kind 'Deployment'"),
    ("missing kind", BASE.replace("kind: Service\n", ""), 1, "kind", "missing"),
    ("missing spec.image", BASE.replace("  image: demo/web:1\n", "  env: {A: b}\n"), 5, "spec.image",
     "required field is missing"),
    ("empty image", BASE.replace("image: demo/web:1", 'image: ""'), 6, "spec.image", "at least 1 character"),
    ("missing spec", BASE.replace("spec:\n  image: demo/web:1\n", ""), 1, "spec", "required field is missing"),
    ("document is a list", "- a\n- b\n", 1, "", "expected a mapping"),
    ("error in the second document",
     VALID_STACK.replace("condition: on-failure", "condition: sometimes"), 26, "spec.restartPolicy.condition",
     "'sometimes'"),
    ("CRLF line endings", (BASE + '  ports:\n    - "8080:80"\n    - "99999:80"\n').replace("\n", "\r\n"), 9,
     "spec.ports[1]", "out of range"),
]


@pytest.mark.parametrize(("text", "line", "field", "fragment"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_document_names_file_line_and_field(text: str | bytes, line: int, field: str, fragment: str) -> None:
    raw = text.encode() if isinstance(text, str) else text
    issues = issues_of([(raw, "stack.yaml", "/srv/app")])
    assert [(i.file, i.line, i.field) for i in issues] == [("stack.yaml", line, field)], issues
    assert fragment in issues[0].message
    prefix = f"stack.yaml:{line}: {field}:" if field else f"stack.yaml:{line}:"
    assert str(issues[0]).startswith(prefix)


def test_duplicate_name_in_two_documents_of_one_file() -> None:
    issues = issues_of([((BASE + "---\n" + BASE).encode(), "stack.yaml", "/srv")])
    assert [(i.file, i.line, i.field) for i in issues] == [("stack.yaml", 11, "metadata.name")]
    assert "duplicate name 'web'" in issues[0].message
    assert "first defined at stack.yaml:4" in issues[0].message


def test_the_same_service_in_two_files_merges_later_wins() -> None:
    second = "# the same service again\n" + BASE.replace("demo/web:1", "demo/web:2")
    [web] = load_any([(BASE.encode(), "a.yaml", "/srv"), (second.encode(), "b.yaml", "/srv")], NATIVE)
    assert (web.name, web.spec.image) == ("web", "demo/web:2")


def test_the_same_name_for_two_kinds_across_two_files() -> None:
    second = "# the same name, another kind\n" + BASE.replace("kind: Service", "kind: Job")
    issues = issues_of([(BASE.encode(), "a.yaml", "/srv"), (second.encode(), "b.yaml", "/srv")])
    assert [(i.file, i.line, i.field) for i in issues] == [("b.yaml", 5, "metadata.name")]
    assert "first defined at a.yaml:4" in issues[0].message


def test_billion_laughs_alias_bomb_is_refused() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(8):
        this, prev = chr(ord("b") + i), chr(ord("a") + i)
        lines.append(f"{this}: &{this} [" + ",".join([f"*{prev}"] * 9) + "]")
    issues = issues_of([("\n".join(lines).encode(), "bomb.yaml", "/srv")])
    assert len(issues) == 1
    (issue,) = issues
    assert issue.file == "bomb.yaml"
    # The value that broke the budget is a "lol" of anchor &a (line 1), reached through
    # the aliases of a later key; the path says which.
    assert issue.line == 1
    assert issue.field.startswith(("f[", "g[", "h[", "i["))
    assert "alias bomb" in issue.message


def test_every_document_and_file_is_checked_before_failing() -> None:
    bad_a = BASE.replace("name: web", "name: api") + "  ports: [\"99999:80\"]\n"
    bad_b = BASE.replace("name: web", "name: other") + "  init: maybe\n"
    issues = issues_of([(VALID_STACK.encode(), "ok.yaml", "/srv"), (bad_a.encode(), "a.yaml", "/srv"),
                        (bad_b.encode(), "b.yaml", "/srv")])
    assert [(i.file, i.line, i.field) for i in issues] == [("a.yaml", 7, "spec.ports[0]"), ("b.yaml", 7, "spec.init")]


def test_several_problems_in_one_document_are_all_reported() -> None:
    text = BASE + "  init: maybe\n  ports:\n    - \"99999:80\"\n  colour: red\n"
    issues = issues_of([(text.encode(), "s.yaml", "/srv")])
    assert sorted((i.line, i.field) for i in issues) == [(7, "spec.init"), (9, "spec.ports[0]"), (10, "spec.colour")]


def test_tab_indentation_error_explains_tabs() -> None:
    issues = issues_of([(BASE.replace("  image:", "\timage:").encode(), "stack.yaml", "/srv")])
    assert "use spaces" in issues[0].message


def test_trailing_document_separator_is_ignored() -> None:
    assert [r.name for r in load(BASE + "---\n")] == ["web"]


def test_leading_separator_and_document_end_marker_are_accepted() -> None:
    assert [r.name for r in load("---\n" + BASE + "...\n")] == ["web"]


@pytest.mark.parametrize(
    ("volume", "resolved"),
    [
        ("./conf/web.conf:/etc/web.conf:ro", "{base}/conf/web.conf:/etc/web.conf:ro"),
        ("./data:/data", "{base}/data:/data"),
        ("../shared:/shared", "{parent}/shared:/shared"),
        (".:/src", "{base}:/src"),
        ("/abs/path:/abs", "/abs/path:/abs"),
        ("named:/named", "named:/named"),
        ("/anonymous", "/anonymous"),
        ("~/cache:/cache", "{home}/cache:/cache"),
    ],
)
def test_relative_bind_paths_resolve_against_base_dir(tmp_path: Path, volume: str, resolved: str) -> None:
    base = tmp_path / "app"
    (res,) = load(BASE + f'  volumes: ["{volume}"]\n', base_dir=str(base))
    expected = resolved.format(base=base, parent=tmp_path, home=os.path.expanduser("~"))
    assert res.spec.volumes == [expected]


def test_same_relative_bind_from_two_directories_differs() -> None:
    text = BASE + '  volumes: ["./data:/data"]\n'
    (a,) = load(text, base_dir="/srv/one")
    (b,) = load(text, base_dir="/srv/two")
    assert a.spec.volumes == ["/srv/one/data:/data"]
    assert b.spec.volumes == ["/srv/two/data:/data"]


_YAML_11 = "bug: YAML 1.1 scalars are resolved before becoming env strings, silently changing the value"


@pytest.mark.parametrize(
    ("yaml_value", "env_value"),
    [
        ("80", "80"),
        ("1.5", "1.5"),
        ("-3", "-3"),
        ("true", "true"),
        ("false", "false"),
        ('"0755"', "0755"),
        ("info", "info"),
        ("''", ""),
        ("0755", "0755"),
        ("1.10", "1.10"),
        ("12:30", "12:30"),
    ],
)
def test_env_scalars_become_strings(yaml_value: str, env_value: str) -> None:
    (res,) = load(BASE + f"  env:\n    VALUE: {yaml_value}\n  labels:\n    value: {yaml_value}\n")
    assert res.spec.env == {"VALUE": env_value}
    assert res.spec.labels == {"value": env_value}
