"""Compose input end to end (issue 5), against the real engine.

- The corpus (``tests/compose/*``, see its README): every project, and each with its
  overlays / profiles, converts, applies with ``--wait`` and reaches Running/healthy
  (Jobs Completed); its ``convert`` output applied to a fresh store gives the same
  containers (same ``io.reconcile.service`` / replica / ``io.reconcile.spec-hash``).
- Unsupported keys and failed interpolation: exit 2 with file:line and the key or
  variable, nothing stored (the store file's sha256), no containers;
  ``--allow-unsupported`` turns the unsupported key into a warning.
- ``build:``: apply builds (``Built``), a changed context rebuilds and rolls the
  service (re-applied, and by the daemon without a re-apply), a broken Dockerfile gives
  ``BuildFailed`` with the build output and exit 1.

The corpus uses fixed names and host ports (``ct-<dir>-...``), so a project never runs
twice at once: every case holds its project's lock for its whole run (compose apply,
teardown, native apply, teardown), and a file lock keeps two pytest processes from
running the corpus at the same time. Different projects share no names or ports and run
in parallel (``CORPUS_WORKERS``) so the whole corpus takes a few minutes; each case is
still reported by its own test. Other tests restart dockerd now and then: a CLI call
that failed because the engine went away is retried once it answers again.
"""

from __future__ import annotations

import concurrent.futures
import fcntl
import hashlib
import json
import os
import re
import subprocess
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import docker
import docker.errors
import pytest
import yaml

from tests.e2e.conftest import BASE_IMAGE, RUN_ID, TEST_LABEL, Harness, engine_is_podman, wait_for

pytestmark = pytest.mark.e2e
T = TypeVar("T")

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "tests" / "compose"
DATA = Path(__file__).resolve().parent / "data"
PROFILES = {"analytics": ("debug", "ops")}  # the corpus README: analytics is also loaded with these
CORPUS_WORKERS = 6  # an apply mostly waits for healthchecks; more workers starve a small host of CPU
CORPUS_LOCK = "/tmp/reconcile-e2e-compose-corpus.lock"
APPLY_TIMEOUT = "120s"
DOCKER_PIDFILE = "/var/run/docker.pid"
ENGINE_TROUBLE = ("Docker engine unavailable", "Is dockerd running", "Read timed out", "Cannot connect to the Docker",
                  "Connection aborted", "connection refused")


# ---------------------------------------------------------------------------- engine tolerance
def engine_pid() -> str:
    """dockerd's pid (changes when another test restarts the engine), '' if unknown."""
    try:
        return Path(DOCKER_PIDFILE).read_text().strip()
    except OSError:
        return ""


def engine_up(client: docker.DockerClient) -> bool:
    try:
        return bool(client.ping())
    except Exception:  # noqa: BLE001 - any failure means "not answering"
        return False


def wait_engine(client: docker.DockerClient, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not engine_up(client):
        if time.monotonic() > deadline:
            raise AssertionError(f"the Docker engine did not answer again within {timeout:.0f}s")
        time.sleep(1)


def run_tolerant(h: Harness, *args: str, expect: int = 0, attempts: int = 3,
                 timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``h.run(*args)``; when it fails because the engine went away meanwhile (another
    test restarting dockerd), wait for the engine and run it again. Returns the last
    result without judging it: the caller asserts."""
    proc: subprocess.CompletedProcess[str] | None = None
    for _ in range(attempts):
        pid = engine_pid()
        proc = h.run(*args, expect=None, timeout=timeout)
        if proc.returncode == expect:
            return proc
        trouble = (pid != engine_pid() or any(m in proc.stderr for m in ENGINE_TROUBLE)
                   or not engine_up(h.client))
        if not trouble:
            return proc
        wait_engine(h.client)
    assert proc is not None
    return proc


def explain(proc: subprocess.CompletedProcess[str], limit: int = 6000) -> str:
    return (f"`reconcile {' '.join(proc.args[3:])}` exited {proc.returncode}\n"
            f"--- stdout\n{proc.stdout[-limit:]}\n--- stderr\n{proc.stderr[-limit:]}")


def must(h: Harness, *args: str, expect: int = 0, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    proc = run_tolerant(h, *args, expect=expect, timeout=timeout)
    assert proc.returncode == expect, explain(proc)
    return proc


def retry_engine(client: docker.DockerClient, fn: Callable[[], T], attempts: int = 3) -> T:
    """``fn()`` (engine calls), again after the engine answers if it went away meanwhile."""
    for attempt in range(attempts):
        try:
            return fn()
        except (docker.errors.DockerException, OSError):  # requests' errors are OSErrors
            if attempt == attempts - 1 or engine_up(client):
                raise
            wait_engine(client)
    raise AssertionError("unreachable")


def teardown(h: Harness, attempts: int = 3) -> None:
    """The harness's cleanup (the instance's containers, networks, volumes), retried
    across an engine restart."""
    for attempt in range(attempts):
        try:
            h.cleanup()
            return
        except (docker.errors.APIError, docker.errors.DockerException, OSError):
            if attempt == attempts - 1:
                raise
            wait_engine(h.client)


def owned_resources(h: Harness) -> list[str]:
    return retry_engine(h.client, lambda: _owned_resources(h))


def _owned_resources(h: Harness) -> list[str]:
    label = {"label": f"io.reconcile.instance={h.instance}"}
    return ([f"container {sparse_name(c)}" for c in h.client.containers.list(all=True, sparse=True, filters=label)]
            + [f"network {n.name}" for n in h.client.networks.list(filters=label)]
            + [f"volume {v.name}" for v in h.client.volumes.list(filters=label)])


def line_of(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


def store_digest(db: str) -> str:
    """sha256 of the store file and its WAL (what an apply would have written)."""
    h = hashlib.sha256()
    for suffix in ("", "-wal"):
        path = Path(db + suffix)
        h.update(path.read_bytes() if path.exists() else b"<none>")
    return h.hexdigest()


# ---------------------------------------------------------------------------- the corpus
@dataclass(frozen=True)
class Case:
    project: str  # directory under tests/compose
    files: tuple[str, ...]  # compose files, in merge order
    profiles: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        extra = [Path(f).stem.replace("docker-compose.", "") for f in self.files[1:]]
        extra += [f"profile-{p}" for p in self.profiles]
        return "+".join([self.project, *extra])

    def args(self) -> list[str]:
        out: list[str] = []
        for f in self.files:
            out += ["-f", str(CORPUS / self.project / f)]
        for p in self.profiles:
            out += ["--profile", p]
        return out


def corpus_projects() -> list[str]:
    return sorted(d.name for d in CORPUS.iterdir() if (d / "docker-compose.yml").is_file())


def corpus_cases(full: bool = False) -> list[Case]:
    """Every project with its overlays (the other top-level compose files of its
    directory, merged in name order) and its profiles where the README names some. With
    ``full`` (``RECONCILE_E2E_CORPUS=full``) also the base file alone of such projects,
    which costs a few minutes more: their conversion is covered by the unit corpus test."""
    cases = []
    for project in corpus_projects():
        overlays = tuple(sorted(p.name for p in (CORPUS / project).iterdir()
                                if p.suffix in (".yml", ".yaml") and p.name != "docker-compose.yml"))
        profiles = PROFILES.get(project, ())
        cases.append(Case(project, ("docker-compose.yml", *overlays), profiles))
        if full and (overlays or profiles):
            cases.append(Case(project, ("docker-compose.yml",)))
    return cases


CASES = corpus_cases(full=os.environ.get("RECONCILE_E2E_CORPUS") == "full")

Key = tuple[str, str, str]  # (io.reconcile.service, io.reconcile.replica, io.reconcile.spec-hash)


@dataclass
class Outcome:
    """What happened to one case; the per-case test judges it."""

    case: Case
    error: str = ""  # an unexpected exception in the runner (traceback)
    convert: subprocess.CompletedProcess[str] | None = None
    native_docs: list[dict[str, Any]] = field(default_factory=list)
    apply: subprocess.CompletedProcess[str] | None = None
    status: dict[str, dict[str, Any]] = field(default_factory=dict)
    compose_containers: set[Key] = field(default_factory=set)
    compose_leftovers: list[str] = field(default_factory=list)
    native_apply: subprocess.CompletedProcess[str] | None = None
    native_containers: set[Key] = field(default_factory=set)
    native_leftovers: list[str] = field(default_factory=list)
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)  # seconds per step, for the report

    def timed(self, phase: str, started: float) -> None:
        self.phases[phase] = round(time.monotonic() - started, 1)


def container_keys(h: Harness) -> set[Key]:
    out = set()
    for c in retry_engine(h.client, h.containers):
        labels = c.labels
        out.add((labels["io.reconcile.service"], labels["io.reconcile.replica"], labels["io.reconcile.spec-hash"]))
    return out


def run_case(case: Case, client: docker.DockerClient, tmp: Path) -> Outcome:
    started = time.monotonic()
    out = Outcome(case)
    (tmp / "compose").mkdir(parents=True)
    (tmp / "native").mkdir()
    compose = Harness(tmp / "compose", client, f"c{uuid.uuid4().hex[:6]}")
    native = Harness(tmp / "native", client, f"n{uuid.uuid4().hex[:6]}")
    try:
        t = time.monotonic()
        out.convert = run_tolerant(compose, "convert", "--reveal-secrets", *case.args())  # the round trip needs the values
        out.timed("convert", t)
        if out.convert.returncode != 0:
            return out
        out.native_docs = [d for d in yaml.safe_load_all(out.convert.stdout) if d]
        native_file = tmp / "native.yaml"
        native_file.write_text(out.convert.stdout)

        t = time.monotonic()
        out.apply = run_tolerant(compose, "apply", *case.args(), "--wait", "--timeout", APPLY_TIMEOUT)
        out.timed("apply", t)
        t = time.monotonic()
        status = run_tolerant(compose, "status", "--json")
        out.status = {r["name"]: r for r in json.loads(status.stdout or "[]")}
        out.compose_containers = container_keys(compose)
        teardown(compose)
        out.compose_leftovers = owned_resources(compose) + stray_corpus_containers(client, case.project)
        out.timed("status+teardown", t)

        t = time.monotonic()
        out.native_apply = run_tolerant(native, "apply", "-f", str(native_file), "--wait", "--timeout", APPLY_TIMEOUT)
        out.timed("native apply", t)
        t = time.monotonic()
        out.native_containers = container_keys(native)
        teardown(native)
        out.native_leftovers = owned_resources(native) + stray_corpus_containers(client, case.project)
        out.timed("teardown", t)
    except BaseException:  # noqa: BLE001 - reported by the case's test, never lost in the thread
        out.error = traceback.format_exc()
    finally:
        for h in (compose, native):
            try:
                teardown(h)
            except Exception:  # noqa: BLE001
                out.error = out.error or traceback.format_exc()
        out.seconds = time.monotonic() - started
    return out


def corpus_prefixes(project: str) -> tuple[str, ...]:
    """Names the corpus README promises for a project's containers, networks, volumes."""
    return (f"ct-{project}-", f"ct-{project}_")


def sparse_name(c: Any) -> str:
    """The name of a container listed with ``sparse=True`` (which has no ``.name``)."""
    return str((c.attrs.get("Names") or ["/"])[0]).lstrip("/")


def stray_corpus_containers(client: docker.DockerClient, project: str) -> list[str]:
    listed = retry_engine(client, lambda: client.containers.list(all=True, sparse=True))
    return [f"container {sparse_name(c)}" for c in listed if sparse_name(c).startswith(corpus_prefixes(project)[0])]


def sweep_interrupted_runs(client: docker.DockerClient) -> list[str]:
    """Remove what an interrupted earlier corpus run left behind: reconcile-managed
    containers, networks and volumes with corpus names. Safe only while holding the
    corpus lock (nobody else runs the corpus then); foreign, unmanaged resources with
    such names are left alone and the project's case will report the name clash."""
    prefixes = tuple(p for project in corpus_projects() for p in corpus_prefixes(project))
    managed = {"label": "io.reconcile.managed=true"}
    removed = []
    for c in client.containers.list(all=True, sparse=True, filters=managed):
        if sparse_name(c).startswith(prefixes):
            c.remove(force=True)
            removed.append(f"container {sparse_name(c)}")
    for n in client.networks.list(filters=managed):
        if n.name.startswith(prefixes):
            n.remove()
            removed.append(f"network {n.name}")
    for v in client.volumes.list(filters=managed):
        if v.name.startswith(prefixes):
            v.remove(force=True)
            removed.append(f"volume {v.name}")
    return removed


def corpus_schedule(cases: list[Case]) -> list[list[Case]]:
    """One job per project (its cases one after another: they share names and ports),
    longest first: projects with more cases, then with more services, so the longest
    chain starts at once."""
    by_project: dict[str, list[Case]] = {}
    for case in cases:
        by_project.setdefault(case.project, []).append(case)

    def weight(project: str) -> tuple[int, int]:
        doc = yaml.safe_load((CORPUS / project / "docker-compose.yml").read_text())
        return len(by_project[project]), len(doc.get("services") or {})

    return [by_project[p] for p in sorted(by_project, key=weight, reverse=True)]


def _selected_cases(request: pytest.FixtureRequest) -> list[Case]:
    """The cases this session runs (``-k shop`` runs only shop's)."""
    wanted = {item.callspec.params["case"].id for item in request.session.items
              if getattr(item, "originalname", "") == CORPUS_TEST and hasattr(item, "callspec")}
    return [c for c in CASES if c.id in wanted]


CORPUS_TEST = "test_compose_project_converts_applies_runs_and_matches_its_native_form"


@pytest.fixture(scope="module")
def corpus(dclient: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory,
           request: pytest.FixtureRequest) -> Iterator[dict[str, Outcome]]:
    """Run the selected cases: projects in parallel, each project's cases in order."""
    with open(CORPUS_LOCK, "w") as lock:
        deadline = time.monotonic() + 900
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"another test process holds {CORPUS_LOCK} (running the compose corpus) for 15 min")
                time.sleep(2)
        wait_engine(dclient)
        swept = sweep_interrupted_runs(dclient)
        if swept:
            print(f"removed leftovers of an interrupted corpus run: {swept}")
        root = tmp_path_factory.mktemp("corpus")

        def job(cases: list[Case]) -> list[Outcome]:
            return [run_case(case, dclient, root / case.id) for case in cases]

        outcomes: dict[str, Outcome] = {}
        with concurrent.futures.ThreadPoolExecutor(max_workers=CORPUS_WORKERS) as pool:
            for done in [pool.submit(job, cases) for cases in corpus_schedule(_selected_cases(request))]:
                outcomes.update((o.case.id, o) for o in done.result())
        report = os.environ.get("RECONCILE_E2E_CORPUS_REPORT")
        if report:  # per-case timings, e.g. to tune CORPUS_WORKERS
            Path(report).write_text("".join(f"{o.case.id:40} {o.seconds:6.1f}s {o.phases}\n"
                                            for o in outcomes.values()))
        yield outcomes


def test_corpus_is_the_one_the_readme_describes() -> None:
    """The parametrisation below must not shrink silently (an empty corpus would pass)."""
    listed = set(re.findall(r"^\| `([a-z0-9-]+)/` \|", (CORPUS / "README.md").read_text(), re.MULTILINE))
    assert len(listed) >= 17, listed
    assert set(corpus_projects()) == listed
    ids = {c.id for c in CASES}
    for expected in ("api+override", "blog+prod", "media+prod", "shop+override", "analytics+profile-debug+profile-ops",
                     "wiki", "static"):
        assert expected in ids, sorted(ids)


def _tail(proc: subprocess.CompletedProcess[str] | None) -> str:
    return explain(proc) if proc is not None else "(not run)"


@pytest.mark.timeout(1200)  # the first case's setup runs the whole corpus
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_compose_project_converts_applies_runs_and_matches_its_native_form(
        case: Case, corpus: dict[str, Outcome], record_property: Any) -> None:
    out = corpus[case.id]
    record_property("seconds", round(out.seconds, 1))
    record_property("phases", out.phases)
    assert not out.error, f"the case runner failed:\n{out.error}"

    # converts
    assert out.convert is not None and out.convert.returncode == 0, _tail(out.convert)
    expected = {d["metadata"]["name"]: d for d in out.native_docs}
    assert expected, "convert printed no resources"
    assert all(name.startswith(f"ct-{case.project}-") for name in expected), sorted(expected)

    # applies and reaches running/healthy (Jobs: Completed)
    assert out.apply is not None and out.apply.returncode == 0, _tail(out.apply)
    assert set(out.status) == set(expected), (sorted(out.status), sorted(expected))
    for name, doc in expected.items():
        row = out.status[name]
        assert row["observedGeneration"] == row["generation"] == 1, row
        if doc["kind"] == "Job":
            assert row["state"] == "Completed", row
        else:
            assert row["state"] == "Running", row
            if doc["spec"].get("healthcheck"):
                assert row["health"] == "healthy", row
    replicas = {name: (1 if doc["kind"] == "Job" else int(doc["spec"].get("replicas", 1)))
                for name, doc in expected.items()}
    per_service: dict[str, int] = {}
    for service, _replica, _hash in out.compose_containers:
        per_service[service] = per_service.get(service, 0) + 1
    assert per_service == {n: r for n, r in replicas.items() if r}, "one container per replica"
    assert not out.compose_leftovers, f"teardown left: {out.compose_leftovers}"

    # its native form, applied to a fresh store, gives the same containers
    assert out.native_apply is not None and out.native_apply.returncode == 0, _tail(out.native_apply)
    assert out.native_containers == out.compose_containers, (
        f"only from compose: {sorted(out.compose_containers - out.native_containers)}; "
        f"only from native: {sorted(out.native_containers - out.compose_containers)}")
    assert not out.native_leftovers, f"teardown left: {out.native_leftovers}"


# ---------------------------------------------------------------------------- invalid input
BAD_INPUT = [
    pytest.param(DATA / "compose_unsupported" / "docker-compose.yml", "credential_spec:", ("credential_spec",),
                 id="credential_spec"),
    pytest.param(DATA / "compose_required" / "docker-compose.yml", "RECONCILE_E2E_REQUIRED_PASSWORD",
                 ("RECONCILE_E2E_REQUIRED_PASSWORD", "must be set"), id="required-variable-unset"),
]


@pytest.mark.parametrize(("path", "needle", "names"), BAD_INPUT)
def test_unsupported_key_or_failed_interpolation_is_reported_and_nothing_is_applied(
        rc: Harness, monkeypatch: pytest.MonkeyPatch, path: Path, needle: str, names: tuple[str, ...]) -> None:
    monkeypatch.delenv("RECONCILE_E2E_REQUIRED_PASSWORD", raising=False)
    project = rc.name("bad")
    rc.instance  # noqa: B018 - an existing (empty) store, to show it stays byte-identical
    before = store_digest(rc.db)
    where = f"{path}:{line_of(path, needle)}"

    for verb in (["apply", "--wait"], ["apply", "--dry-run"], ["diff"], ["convert"]):
        proc = rc.run(*verb, "-f", str(path), "-p", project, expect=2)
        assert where in proc.stderr, f"{verb}: no {where} in:\n{proc.stderr}"
        for name in names:
            assert name in proc.stderr, f"{verb}: {name!r} not named in:\n{proc.stderr}"
        assert proc.stdout.strip() == "", f"{verb} printed:\n{proc.stdout}"

    assert store_digest(rc.db) == before, "a rejected apply wrote to the store"
    assert retry_engine(rc.client, rc.containers) == []
    listed = retry_engine(rc.client, lambda: rc.client.containers.list(all=True, sparse=True))
    assert [n for c in listed if (n := sparse_name(c)).startswith(project)] == []
    assert retry_engine(rc.client, lambda: rc.client.networks.list(names=[f"{project}_default"])) == []


def test_allow_unsupported_applies_with_a_warning(rc: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECONCILE_E2E_REQUIRED_PASSWORD", raising=False)
    unsupported = DATA / "compose_unsupported" / "docker-compose.yml"
    project = rc.name("lax")
    proc = must(rc, "apply", "-f", str(unsupported), "-p", project, "--allow-unsupported", "--wait",
                "--timeout", "60s")
    where = f"{unsupported}:{line_of(unsupported, 'credential_spec:')}"
    warnings = [line for line in proc.stderr.splitlines() if "WARNING" in line]
    assert any(where in w and "credential_spec" in w and "ignored" in w for w in warnings), proc.stderr
    containers = retry_engine(rc.client, rc.containers)
    names = sorted(c.name for c in containers)
    assert names == [f"{project}-web-1", f"{project}-worker-1"]
    assert all(c.status == "running" for c in containers)

    # --allow-unsupported is about unsupported keys only: a failed interpolation stays an error
    required = DATA / "compose_required" / "docker-compose.yml"
    proc = rc.run("apply", "-f", str(required), "-p", rc.name("strict"), "--allow-unsupported", expect=2)
    assert f"{required}:{line_of(required, 'RECONCILE_E2E_REQUIRED_PASSWORD')}" in proc.stderr
    assert sorted(c.name for c in retry_engine(rc.client, rc.containers)) == names


# ---------------------------------------------------------------------------- build:
def _write_build_project(root: Path, project: str, image: str, message: str) -> Path:
    ctx = root / "ctx"
    ctx.mkdir(parents=True, exist_ok=True)
    (ctx / "Dockerfile").write_text(f"FROM {BASE_IMAGE}\nCOPY msg.txt /msg.txt\n"
                                    'CMD ["sh", "-c", "cat /msg.txt; exec sleep 3600"]\n')
    (ctx / "msg.txt").write_text(message + "\n")
    compose = root / "docker-compose.yml"
    compose.write_text(yaml.safe_dump({
        "name": project,
        "services": {"app": {"build": {"context": "./ctx"}, "image": image, "init": True,
                             "labels": {TEST_LABEL: RUN_ID}}},
    }, sort_keys=False))
    return compose


def _exec(client: docker.DockerClient, container: str, *cmd: str) -> str:
    code, output = retry_engine(client, lambda: client.containers.get(container).exec_run(list(cmd)))
    assert code == 0, f"{cmd} in {container} exited {code}: {output!r}"
    return output.decode().strip()


def _msg_or_none(client: docker.DockerClient, container: str) -> str | None:
    try:
        c = client.containers.get(container)
        if c.status != "running":
            return None
        code, output = c.exec_run(["cat", "/msg.txt"])
        return output.decode().strip() if code == 0 else None
    except (docker.errors.DockerException, OSError):  # renamed aside / removed during a recreate; engine away
        return None


def remove_build_leftovers(client: docker.DockerClient, instance: str, marker: str) -> None:
    """The images built for this instance, and intermediate containers (and their layer
    images) that failed builds left behind (recognised by ``marker`` in their command)."""
    # the low-level list (no inspect per container): other processes remove containers meanwhile
    for c in client.api.containers(all=True):
        if marker in (c.get("Command") or ""):
            try:
                client.api.remove_container(c["Id"], force=True)
                client.images.remove(c["ImageID"], force=True)
            except docker.errors.APIError:  # gone already
                pass
    # the labels become LABEL steps, so labelled images can be each other's parents:
    # remove what can be removed, children first, in a few bounded passes
    for _ in range(5):
        images = client.images.list(all=True, filters={"label": f"io.reconcile.instance={instance}"})
        if not images:
            return
        for image in images:
            try:
                client.images.remove(image.id, force=True)
            except docker.errors.APIError:  # gone already, or still has a child: next pass
                pass
    left = client.images.list(all=True, filters={"label": f"io.reconcile.instance={instance}"})
    assert not left, f"built images left behind: {[i.short_id for i in left]}"


@pytest.fixture
def build_project(rc: Harness) -> Iterator[dict[str, Any]]:
    project = rc.name("build")
    image = f"reconcile-e2e-{rc.prefix}:latest"
    marker = f"broken-build-{uuid.uuid4().hex[:8]}"
    compose = _write_build_project(rc.tmp / "proj", project, image, "v1")
    try:
        yield {"project": project, "image": image, "compose": compose, "marker": marker,
               "container": f"{project}-app-1"}
    finally:
        teardown(rc)
        if os.path.exists(rc.db):
            retry_engine(rc.client, lambda: remove_build_leftovers(rc.client, rc.instance, marker))
        assert retry_engine(rc.client, lambda: rc.client.images.list(name=image.split(":")[0])) == [], \
            "built images are removed"


def _cid(client: docker.DockerClient, name: str) -> str:
    return str(retry_engine(client, lambda: client.containers.get(name)).id)


def _break_dockerfile(compose: Path, marker: str) -> None:
    (compose.parent / "ctx" / "Dockerfile").write_text(
        f"FROM {BASE_IMAGE}\nCOPY msg.txt /msg.txt\nRUN echo {marker} && exit 7\n")


def test_build_context_is_built_rebuilt_on_change_and_failures_are_audited(
        rc: Harness, build_project: dict[str, Any]) -> None:
    compose, image, name = build_project["compose"], build_project["image"], build_project["container"]
    service = f"{build_project['project']}-app"
    msg = compose.parent / "ctx" / "msg.txt"

    must(rc, "apply", "-f", str(compose), "--wait", "--timeout", "90s")
    built = rc.history(service, "Built")
    assert len(built) == 1 and image in built[0]["message"], built
    assert retry_engine(rc.client, lambda: rc.client.images.get(image)).labels["io.reconcile.instance"] == rc.instance
    assert _exec(rc.client, name, "cat", "/msg.txt") == "v1"
    first = _cid(rc.client, name)

    # a changed file in the context: re-apply rebuilds and rolls the service
    msg.write_text("v2\n")
    out = must(rc, "apply", "-f", str(compose), "--wait", "--timeout", "90s").stdout
    assert f"built {image}" in out, out
    assert len(rc.history(service, "Built")) == 2
    assert [e["type"] for e in rc.history(service, "Recreated")] == ["Recreated"]
    second = _cid(rc.client, name)
    assert second != first and _exec(rc.client, name, "cat", "/msg.txt") == "v2"

    # with the daemon running, no re-apply is needed
    daemon = rc.start_daemon("--resync-interval", "1s")
    msg.write_text("v3\n")
    wait_for(lambda: _msg_or_none(rc.client, name) == "v3", 45, 0.5, "the daemon to rebuild and roll the service")
    assert len(rc.history(service, "Built")) == 3
    assert _cid(rc.client, name) not in (first, second)
    assert rc.stop_daemon(daemon) == 0

    # a broken Dockerfile: BuildFailed with the build output, exit 1, what runs keeps running
    running = _cid(rc.client, name)
    _break_dockerfile(compose, build_project["marker"])
    proc = run_tolerant(rc, "apply", "-f", str(compose), "--wait", "--timeout", "60s", expect=1)
    assert proc.returncode == 1, explain(proc)
    assert "build" in proc.stderr and "failed" in proc.stderr, proc.stderr
    failed = rc.history(service, "BuildFailed")
    assert len(failed) == 1, failed
    assert build_project["marker"] in failed[0]["message"], "the audit row carries the build output"
    # (the engine's words for the failed step: Docker "returned a non-zero code: 7", Podman
    # 'building at STEP "RUN ...": while running runtime: exit status 7')
    exit7 = "exit status 7" if engine_is_podman() else "non-zero code: 7"
    assert exit7 in failed[0]["message"], failed[0]["message"]
    assert _cid(rc.client, name) == running
    assert _exec(rc.client, name, "cat", "/msg.txt") == "v3"


def _build_leftovers(client: docker.DockerClient, marker: str) -> list[str]:
    return [c["Id"][:12] for c in retry_engine(client, lambda: client.api.containers(all=True))
            if marker in (c.get("Command") or "")]


def test_failed_build_leaves_no_container_behind(rc: Harness, build_project: dict[str, Any]) -> None:
    _break_dockerfile(build_project["compose"], build_project["marker"])
    proc = run_tolerant(rc, "apply", "-f", str(build_project["compose"]), expect=1)
    assert proc.returncode == 1, explain(proc)
    assert len(rc.history(f"{build_project['project']}-app", "BuildFailed")) == 1
    assert _build_leftovers(rc.client, build_project["marker"]) == []


def test_daemon_does_not_rebuild_an_unchanged_broken_context_on_every_pass(
        rc: Harness, build_project: dict[str, Any]) -> None:
    _break_dockerfile(build_project["compose"], build_project["marker"])
    service = f"{build_project['project']}-app"
    proc = run_tolerant(rc, "apply", "-f", str(build_project["compose"]), expect=1)
    assert proc.returncode == 1, explain(proc)
    rc.start_daemon("--resync-interval", "1s")
    time.sleep(12)
    attempts = len(rc.events(service, "BuildFailed"))
    # with any backoff (1 s, 2 s, 4 s, ... as for crash loops) 12 s allow at most ~5 attempts
    assert attempts <= 5, f"{attempts} builds of the same broken context within 12 s"
