"""Lifecycle hooks and remote build contexts (issue 10), the pure parts: the native model
(``spec.lifecycle``, ``build.context`` URLs), the compose conversion of ``post_start`` /
``pre_stop`` and URL contexts with their errors, hashing (no change for specs without
hooks), the hook runner's order, budget and audit text (``controller.hooks``), the
planner's orphan removal carrying the deleted revision's preStop hooks, and the build
call at the engine seam for a URL context (the Docker SDK's own request, no engine); and
the small corpus cases: an empty volume/network ``name:`` (unset, as compose reads it), and
``ipc``/``pid: container:`` with no name and a DNS server that is not an IP (rejected with
the reason the engine gives)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from controller import hooks
from controller.actions import Remove
from controller.executor import not_fetched, unreachable
from controller.hooks import HookCall, HookResult
from controller.operations import action_list
from controller.planner import Lookups, plan
from crd_like.hashing import container_hash, spec_hash
from crd_like.models import ServiceSpec
from tests.unit.test_compose import FILE, problems, service
from tests.unit.test_planner import NOW, ctr, svc

# ------------------------------------------------------------------------------ compose -> spec.lifecycle
CONVERT: list[tuple[str, dict[str, Any]]] = [
    ("post_start:\n  - command: sh -c 'echo env'",
     {"postStart": [{"command": ["sh", "-c", "echo env"]}]}),
    ("pre_stop:\n  - command: [sh, -c, 'echo bye >> /data/log']",
     {"preStop": [{"command": ["sh", "-c", "echo bye >> /data/log"]}]}),
    ("pre_stop:\n  - command: echo \"stop hook running...\"",
     {"preStop": [{"command": ["echo", "stop hook running..."]}]}),
    ("post_start:\n  - command: [sleep, 1]\n    user: root\n    privileged: true\n    working_dir: /tmp\n"
     "    environment: {A: 1, B: 'two'}",
     {"postStart": [{"command": ["sleep", "1"], "user": "root", "privileged": True, "workingDir": "/tmp",
                     "env": {"A": "1", "B": "two"}}]}),
    ("post_start:\n  - command: [a]\n    environment: [X=1, 'Y=a=b']",
     {"postStart": [{"command": ["a"], "env": {"X": "1", "Y": "a=b"}}]}),
    ("post_start:\n  - command: [a]\n  - command: [b]\npre_stop:\n  - command: [c]",
     {"postStart": [{"command": ["a"]}, {"command": ["b"]}], "preStop": [{"command": ["c"]}]}),
    ("post_start: []", {}),
]


@pytest.mark.parametrize(("body", "want"), CONVERT, ids=[str(i) for i in range(len(CONVERT))])
def test_compose_hooks_convert_to_spec_lifecycle(body: str, want: dict[str, Any]) -> None:
    spec = service(body)
    assert spec.lifecycle.model_dump(exclude_defaults=True) == want


def test_a_hook_environment_entry_without_a_value_comes_from_the_environment() -> None:
    spec = service("post_start:\n  - command: [a]\n    environment: [FROM_ENV, UNSET]", environ={"FROM_ENV": "x"})
    assert spec.lifecycle.postStart[0].env == {"FROM_ENV": "x"}


ERRORS: list[tuple[str, int, str, str]] = [
    # (service body, line, field, message fragment)
    ("post_start:\n  command: echo", 5, "services.s.post_start", "post_start must be a list of hooks"),
    ("pre_stop: [echo]", 5, "services.s.pre_stop[0]", "a pre_stop hook must be a mapping"),
    ("pre_stop:\n  - user: root", 6, "services.s.pre_stop[0]", "a pre_stop hook needs `command`"),
    ("post_start:\n  - command: ''", 6, "services.s.post_start[0].command", "a hook command must not be empty"),
    ("post_start:\n  - command: []", 6, "services.s.post_start[0].command", "a hook command must not be empty"),
    ("post_start:\n  - command: \"sh -c 'unbalanced\"", 6, "services.s.post_start[0].command", "cannot split command"),
    ("post_start:\n  - command: [a]\n    working_dir: tmp", 7, "services.s.post_start[0].working_dir",
     "working directory 'tmp' must be an absolute path in the container"),
    ("post_start:\n  - command: [a]\n    privileged: maybe", 7, "services.s.post_start[0].privileged", "boolean"),
    ("post_start:\n  - command: [a]\n    environment: 3", 7, "services.s.post_start[0].environment",
     "post_start environment must be a list of KEY=VALUE strings or a mapping"),
    ("post_start:\n  - command: [a]\n    timeout: 3", 7, "services.s.post_start[0].timeout",
     "unknown compose key 'post_start.timeout'"),
]


@pytest.mark.parametrize(("body", "line", "field", "fragment"), ERRORS, ids=[e[3][:40] for e in ERRORS])
def test_bad_hooks_are_errors_with_location(body: str, line: int, field: str, fragment: str) -> None:
    found = problems("name: ct-t\nservices:\n  s:\n    image: img\n" + "\n".join("    " + ln for ln in body.splitlines()))
    assert [(i.file, i.line, i.field) for i in found] == [(FILE, line, field)], found
    assert fragment in found[0].message, found[0].message


def test_a_secret_looking_interpolated_hook_env_is_an_error_that_never_shows_the_value() -> None:
    found = problems("name: ct-t\nservices:\n  s:\n    image: img\n    pre_stop:\n      - command: [a]\n"
                     "        environment:\n          DB_PASSWORD: ${PW}\n", environ={"PW": "hunter2"})
    [issue] = found
    assert (issue.line, issue.field) == (8, "services.s.pre_stop[0].environment.DB_PASSWORD")
    assert "looks secret" in issue.message and "hunter2" not in str(issue)


# ------------------------------------------------------------------------------ native model and hashing
@pytest.mark.parametrize(("hook", "fragment"), [
    ({"command": []}, "a hook command must not be empty"),
    ({"command": ["a"], "env": {"A B": "1"}}, "invalid environment variable name"),
    ({"command": ["a"], "workingDir": "rel"}, "must be an absolute path"),
    ({"command": ["a"], "timeout": 3}, "Extra inputs are not permitted"),
    ({}, "Field required"),
])
def test_native_hook_validation(hook: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError) as err:
        ServiceSpec.model_validate({"image": "x", "lifecycle": {"postStart": [hook]}})
    assert fragment in str(err.value)


BASE = {"image": "x", "command": ["sleep", "1"], "stopGracePeriod": "3s", "volumes": ["data:/d"]}


def test_a_spec_without_hooks_hashes_as_before_and_hooks_never_recreate() -> None:
    plain = ServiceSpec.model_validate(BASE)
    empty = ServiceSpec.model_validate({**BASE, "lifecycle": {"postStart": [], "preStop": []}})
    hooked = ServiceSpec.model_validate({**BASE, "lifecycle": {"preStop": [{"command": ["a"]}]}})
    # the hashes of this spec before spec.lifecycle existed (computed on the main branch)
    assert (spec_hash(plain), container_hash(plain)) == ("cb4a0e32bb5a0f4c", "a5483a526c69d3c0")
    assert spec_hash(plain) == spec_hash(empty)
    assert "lifecycle" not in plain.model_dump(exclude_defaults=True)
    assert spec_hash(hooked) != spec_hash(plain)  # a new generation, audited
    assert container_hash(hooked) == container_hash(plain)  # but the running container stays


# ------------------------------------------------------------------------------ the hook runner
def _results(*codes: int | None) -> Iterator[HookResult]:
    for c in codes:
        yield HookResult(c, f"out {c}", timed_out=c is None)


class _Clock:
    def __init__(self, step: float) -> None:
        self.t, self.step = 0.0, step

    def __call__(self) -> float:
        self.t += self.step
        return self.t


CALLS = (HookCall(("a",)), HookCall(("b", "x y")), HookCall(("c",)))


@pytest.mark.parametrize(("phase", "codes", "ran", "ok"), [
    ("postStart", (0, 0, 0), 3, [True, True, True]),
    ("postStart", (0, 7, 0), 2, [True, False]),  # the first failure stops the sequence
    ("postStart", (None, 0, 0), 1, [False]),  # no end in time is a failure
    ("preStop", (0, 7, 0), 3, [True, False, True]),  # every preStop hook runs
    ("preStop", (None, None, 0), 3, [False, False, True]),
])
def test_hooks_run_in_order(phase: hooks.Phase, codes: tuple[int | None, ...], ran: int, ok: list[bool]) -> None:
    seen: list[HookCall] = []
    results = _results(*codes)

    def execute(call: HookCall) -> HookResult:
        seen.append(call)
        return next(results)
    runs = hooks.run(phase, CALLS, execute, budget=10.0 if phase == "preStop" else None, clock=_Clock(0.0))
    assert [r.ok for r in runs] == ok and len(seen) == ran
    assert [c.argv for c in seen] == [c.argv for c in CALLS[:ran]]


def test_pre_stop_hooks_share_the_grace_period() -> None:
    seen: list[float] = []

    def execute(call: HookCall) -> HookResult:
        seen.append(call.timeout)
        return HookResult(0, "")
    hooks.run("preStop", CALLS, execute, budget=5.0, clock=_Clock(2.0))
    # the clock advances 2 s per reading: 5 - 2, 5 - 4, then the minimum
    assert seen == [3.0, 1.0, hooks.MIN_PRE_STOP]


@pytest.mark.parametrize(("result", "etype", "reason", "message"), [
    (HookResult(0, ""), "HookRan", "postStart hook 2/3 exited with status 0", "b 'x y'"),
    (HookResult(127, "sh: command: not found\n"), "HookFailed", "postStart hook 2/3 exited with status 127",
     "b 'x y': sh: command: not found"),
    (HookResult(None, "", timed_out=True), "HookFailed", "postStart hook 2/3 did not end within 60s", "b 'x y'"),
    (HookResult(1, "x" * 900), "HookFailed", "postStart hook 2/3 exited with status 1", "..." + "x" * 497),
])
def test_a_hook_run_is_audited_with_exit_code_and_output_tail(result: HookResult, etype: str, reason: str,
                                                              message: str) -> None:
    run = hooks.HookRun("postStart", 2, 3, CALLS[1], result)
    assert (run.event_type, run.reason, run.message) == (etype, reason, message)


def test_hook_env_values_are_not_in_the_audit_text() -> None:
    [hook] = ServiceSpec.model_validate({"image": "x", "lifecycle": {"preStop": [
        {"command": ["a"], "env": {"TOKEN_LIKE": "s3cr3t"}}]}}).lifecycle.preStop
    run = hooks.HookRun("preStop", 1, 1, hooks.call_of(hook), HookResult(0, ""))
    assert hooks.call_of(hook).env == (("TOKEN_LIKE", "s3cr3t"),)
    assert "s3cr3t" not in run.reason + run.message


# ------------------------------------------------------------------------------ planner: deleted records
def test_the_removal_of_a_deleted_service_carries_its_revisions_pre_stop_hooks() -> None:
    gone = svc("gone", generation=3, stopGracePeriod="4s", lifecycle={"preStop": [{"command": ["sh", "-c", "x"]}]})
    c = ctr(gone)
    rev = gone.spec.model_dump(mode="json", exclude_defaults=True)
    p = plan({}, [c], {}, lookups=Lookups(revisions={("gone", 3): rev}), now=NOW)
    [remove] = p.orphans
    assert isinstance(remove, Remove)
    assert remove.pre_stop == (HookCall(("sh", "-c", "x")),) and remove.grace == 4.0
    # without the revision (an older store), the removal still happens, without hooks
    [bare] = plan({}, [c], {}, now=NOW).orphans
    assert bare.pre_stop == () and bare.grace is None
    # the plan output (diff -o json) does not carry the hooks
    assert set(action_list([remove])[0]) == {"action", "service", "replica", "container_id", "name", "reason"}


# ------------------------------------------------------------------------------ remote build contexts
URL_CONTEXTS = [
    "https://github.com/docker/compose.git",
    "https://github.com/docker/compose.git#main:pkg/e2e",
    "git@github.com:docker/compose.git#v2.26.1",
    "git://example.org/repo.git",
    "github.com/docker/compose",
    "https://example.org/context.tar.gz",
]


@pytest.mark.parametrize("url", URL_CONTEXTS)
def test_url_build_contexts_are_passed_on_as_written(url: str) -> None:
    spec = service(f"build:\n  context: '{url}'")
    assert spec.build is not None and spec.build.context == url and spec.build.remote


def test_a_url_context_in_the_short_form_and_a_local_one_stay_apart() -> None:
    assert service("build: https://example.org/r.git").build.context == "https://example.org/r.git"  # type: ignore[union-attr]
    local = service("build: ./app").build
    assert local is not None and local.context == "/srv/ct/app" and not local.remote


@pytest.mark.parametrize(("body", "line", "field", "fragment"), [
    ("build:\n  context: ssh://git@example.org/r.git", 6, "services.s.build.context",
     "fetches only https://, http://, git:// and git@ URLs"),
    ("build:\n  context: ftp://example.org/r.tar", 6, "services.s.build.context", "or a local directory"),
    ("build:\n  context: https://example.org/r.git\n  dockerfile_inline: FROM scratch", 5, "services.s.build",
     "an inline Dockerfile needs a local build context"),
    ("build:\n  context: [a]", 6, "services.s.build.context", "build context must be a directory or a URL, got a list"),
])
def test_bad_build_contexts_are_errors_with_location(body: str, line: int, field: str, fragment: str) -> None:
    found = problems("name: ct-t\nservices:\n  s:\n    image: img\n" + "\n".join("    " + ln for ln in body.splitlines()))
    assert [(i.line, i.field) for i in found] == [(line, field)], found
    assert fragment in found[0].message, found[0].message


def test_native_url_context_is_not_made_relative() -> None:
    from crd_like.formats import LoadOptions, load_any

    doc = ("apiVersion: reconcile/v1alpha1\nkind: Service\nmetadata: {name: web}\nspec:\n  image: web\n"
           "  build: {context: 'git@github.com:docker/compose.git'}\n")
    [res] = load_any([(doc.encode(), "stack.yaml", "/srv/app")], LoadOptions())
    assert res.spec.build.context == "git@github.com:docker/compose.git"


def test_the_build_hash_of_a_url_context_follows_the_url_not_a_directory() -> None:
    from controller.refs import RefCache

    refs = RefCache()
    a = refs.resolve(ServiceSpec.model_validate({"image": "x", "build": {"context": "https://e.org/r.git#v1"}}))
    b = refs.resolve(ServiceSpec.model_validate({"image": "x", "build": {"context": "https://e.org/r.git#v2"}}))
    assert a.error == "" and a.build_hash and a.build_hash != b.build_hash


@pytest.mark.parametrize(("output", "want"), [
    ("ERROR: unable to prepare context: unable to 'git clone' to temporary context directory: error fetching: "
     "fatal: unable to access 'https://github.com/docker/compose.git/': Could not resolve host: github.com", True),
    ("ERROR: Get \"http://127.0.0.1:9/c.tar\": dial tcp 127.0.0.1:9: connect: connection refused", True),
    ("ERROR: failed to fetch remote https://e.org/x: Temporary failure in name resolution", True),
    ("Step 2/3 : RUN false\nERROR: The command '/bin/sh -c false' returned a non-zero code: 1", False),
])
def test_a_failed_remote_build_is_recognised_as_unreachable(output: str, want: bool) -> None:
    assert unreachable(output) is want


# Podman 4.3's Docker-compatible `POST /build` ignores `remote` (only /libpod/build fetches):
# it builds from the empty request body unpacked into <tmp>/libpod_builderN/build.
PODMAN_NOT_FETCHED = "ERROR: stat /var/tmp/libpod_builder746487460/build/Dockerfile: no such file or directory"


@pytest.mark.parametrize(("output", "fetched_none", "unreached"), [
    # Podman, a URL context: the context was never fetched (neither "unreachable" nor "no Dockerfile")
    (PODMAN_NOT_FETCHED, True, False),
    ("ERROR: stat /tmp/libpod_builder1/build/docker/Dockerfile.prod: no such file or directory", True, False),
    # a context Podman did fetch (its download directory, buildahN) that has no Dockerfile: an
    # ordinary build failure, not a fetch problem
    ("ERROR: stat /var/tmp/libpod_builder12/buildah345/Dockerfile: no such file or directory", False, False),
    # Docker, a fetched context without the Dockerfile named: the same, an ordinary failure
    ("ERROR: Cannot locate specified Dockerfile: Dockerfile", False, False),
    # Docker, a URL it could not download: unreachable, not Podman's shape
    ("ERROR: error downloading remote context http://127.0.0.1:9/context.tar: Get \"http://127.0.0.1:9/context.tar\": "
     "dial tcp 127.0.0.1:9: connect: connection refused", False, True),
    # a local context's missing file anywhere else
    ("ERROR: stat /srv/app/build/Dockerfile: no such file or directory", False, False),
])
def test_podmans_unfetched_url_context_is_told_from_unreachable_and_from_no_dockerfile(
        output: str, fetched_none: bool, unreached: bool) -> None:
    assert not_fetched(output) is fetched_none
    assert unreachable(output) is unreached


class _BuildEngine:
    """The engine seam for one build: it answers the build with ``tail`` (ok=False)."""

    def __init__(self, tail: str) -> None:
        self.tail = tail

    def build_image(self, req: Any) -> tuple[bool, str]:
        return False, self.tail


@pytest.mark.parametrize(("context", "tail", "kind", "says"), [
    ("http://127.0.0.1:9/context.tar", PODMAN_NOT_FETCHED, "not fetched",
     "is a URL, and this engine does not fetch URL build contexts (Podman's Docker-compatible API ignores the URL "
     "and builds from an empty context, so it finds no Dockerfile); clone or download it"),
    ("http://127.0.0.1:9/context.tar", "ERROR: error downloading remote context http://127.0.0.1:9/context.tar: "
     "dial tcp 127.0.0.1:9: connect: connection refused", "unreachable",
     "is a URL the engine fetches itself, and the engine could not reach it"),
    # a fetched context without its Dockerfile (Podman's download directory): the engine's words, no fetch story
    ("http://127.0.0.1:9/context.tar", "ERROR: stat /var/tmp/libpod_builder12/buildah345/Dockerfile: no such file",
     "failed", "from http://127.0.0.1:9/context.tar failed: ERROR: stat /var/tmp/libpod_builder12/buildah345/Dockerfile"),
    # a local context with Podman's words is a local problem (its Dockerfile is missing), never a URL story
    ("/srv/app", PODMAN_NOT_FETCHED, "failed", f"from /srv/app failed: {PODMAN_NOT_FETCHED}"),
])
def test_the_executor_says_which_of_not_fetched_unreachable_or_failed_a_build_was(
        context: str, tail: str, kind: str, says: str) -> None:
    from controller.actions import Build
    from controller.errors import TerminalError
    from controller.executor import Executor
    from controller.outcomes import BuildFailed, Failed
    from controller.render import prepare

    service = prepare("app", "Service", 1, {"image": "p-remote:1", "build": {"context": context}})
    ex = Executor(_BuildEngine(tail), "inst", actor="controller", clock=lambda: 1000.0)  # type: ignore[arg-type]
    built, failed = ex.run(service, [Build("app", "image missing")])
    assert isinstance(built, BuildFailed) and built.output == tail, built
    assert isinstance(failed, Failed) and says in failed.error, failed
    # a URL the engine cannot (or will not) fetch is not retried; an ordinary build failure is
    assert isinstance(failed.exc, TerminalError) is (kind != "failed"), repr(failed.exc)
    assert ("could not reach it" in failed.error) is (kind == "unreachable")
    assert ("does not fetch" in failed.error) is (kind == "not fetched")


def test_the_build_call_sends_a_url_context_as_the_engines_remote_parameter(monkeypatch: pytest.MonkeyPatch) -> None:
    """At the engine seam without an engine: ``Engine.build_image`` hands the URL to the Docker
    SDK, which sends it as ``remote=`` (no local tar) to ``POST /build``."""
    import docker

    from controller.engine import BuildRequest, Engine

    sent: dict[str, Any] = {}
    api = docker.APIClient(base_url="unix:///nonexistent.sock", version="1.41")

    def post(url: str, **kw: Any) -> Any:
        sent.update(url=url, params=kw.get("params"), data=kw.get("data"))

        class _Resp:
            pass
        return _Resp()
    monkeypatch.setattr(api, "_post", post)
    monkeypatch.setattr(api, "_set_auth_headers", lambda headers: None)
    monkeypatch.setattr(api, "_stream_helper", lambda resp, decode=False: iter([{"stream": "Successfully built"}]))
    engine = Engine(base_url="unix:///nonexistent.sock")
    monkeypatch.setattr(engine, "_client", lambda cls: api)
    ok, _tail = engine.build_image(BuildRequest(context="https://github.com/docker/compose.git#main:sub",
                                                dockerfile="Dockerfile", tag="p-s", args={"A": "1"}, target=None,
                                                labels={"l": "v"}))
    assert ok and sent["url"].endswith("/build") and sent["data"] is None
    assert sent["params"]["remote"] == "https://github.com/docker/compose.git#main:sub"
    assert sent["params"]["dockerfile"] == "Dockerfile" and sent["params"]["t"] == "p-s"
    assert sent["params"]["pull"] is False


# ------------------------------------------------------------------------------ small corpus cases
@pytest.mark.parametrize(("top", "external", "want"), [
    ("volumes:\n  data:\n    name: ''\n", False, "ct-t_data:/d"),
    ("volumes:\n  data:\n    external: true\n    name: ''\n", True, "data:/d"),
    ("volumes:\n  data:\n    name: given\n", False, "given:/d"),
])
def test_an_empty_volume_name_is_unset_as_in_compose(top: str, external: bool, want: str) -> None:
    from crd_like.formats import LoadOptions, load_any
    from tests.unit.test_compose import DIR, reader

    warnings: list[str] = []
    text = f"name: ct-t\nservices:\n  s:\n    image: img\n    volumes: ['data:/d']\n{top}"
    [res] = load_any([(text.encode(), FILE, DIR)], LoadOptions(environ={}, read_file=reader, warnings=warnings))
    assert res.spec.volumes == [want]
    vol = res.spec.volumeSpecs.get(want.split(":")[0])
    assert (vol is not None and vol.external) is external
    empty = [w for w in warnings if "empty: treated as not set" in w]
    assert len(empty) == (1 if "''" in top else 0), warnings
    if empty:
        assert empty[0].startswith(f"{FILE}:") and "volumes.data.name" in empty[0]


@pytest.mark.parametrize(("body", "field", "fragment"), [
    ("ipc: 'container:'", "services.s.ipc", "ipc 'container:' names no container (an unset variable?)"),
    ("pid: 'container:'", "services.s.pid", "pid 'container:' names no container"),
    ("dns: [my.resolvers.ip.addr]", "services.s.dns[0]", "a DNS server is given by its IP address"),
    ("dns: my.resolvers.ip.addr", "services.s.dns", "'my.resolvers.ip.addr' is not an IP address"),
])
def test_values_the_engine_refuses_to_start_are_errors_saying_so(body: str, field: str, fragment: str) -> None:
    [issue] = problems(f"name: ct-t\nservices:\n  s:\n    image: img\n    {body}\n")
    assert (issue.line, issue.field) == (5, field), issue
    assert fragment in issue.message and "docker compose up" in issue.message, issue.message


def test_ipc_container_with_a_name_still_converts() -> None:
    assert service("ipc: 'container:other'").ipc == "container:other"
