"""Invalid input through the real CLI against a real engine: `reconcile apply` exits 2
before it touches anything.

Every case of ``tests/bad_input/cases.yaml`` is applied on a store that already holds one
running service. Each run must: exit 2; print ``FILE:LINE: FIELD: MESSAGE`` for the
problem; stay within a CPU-time and memory bound (the alias bomb and the huge file
included); leave the store byte-for-byte unchanged; and create or change no container.

The cases run a few at a time, each on its own copy of the seeded store, so that a
change to the store is pinned on the case that made it. Time is bounded as CPU time
(user + system) because the wall clock of a CLI start-up depends on how loaded the host
is; a wall-clock guard still catches hangs. Resource usage is read per child with
``os.wait4``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import Harness

pytestmark = pytest.mark.e2e

CORPUS = Path(__file__).resolve().parent.parent / "bad_input"
MAX_CPU_SECONDS = 10.0
MAX_WALL_SECONDS = 120.0  # a hang guard only: start-up wall time depends on the host's load
MAX_RSS_MB = 300.0
MAX_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class Case:
    id: str
    files: tuple[str, ...]
    where: str
    line: int | None
    field: str
    message: str
    bug: str | None = None

    @classmethod
    def load(cls, entry: dict[str, Any]) -> Case:
        files = tuple(entry.get("files") or [entry["file"]])
        return cls(Path(files[0]).stem if len(files) == 1 else "+".join(Path(f).stem for f in files), files,
                   entry.get("where", files[0]), entry["line"], entry["field"], entry["message"], entry.get("bug"))


CASES = [Case.load(e) for e in yaml.safe_load((CORPUS / "cases.yaml").read_text())]
GOOD = [c for c in CASES if not c.bug]


def test_the_corpus_is_complete() -> None:
    """Every corpus file is used by a case, every case's file exists, and there are enough."""
    used = {f for c in CASES for f in c.files}
    on_disk = {p.name for p in CORPUS.iterdir() if p.name != "cases.yaml"}
    assert used == on_disk, (sorted(on_disk - used), sorted(used - on_disk))
    assert len(GOOD) >= 45
    assert len({c.id for c in CASES}) == len(CASES)
    assert not [c.id for c in CASES if c.bug], "cases pinned as known bugs: fix the bug, drop the field"


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str
    cpu: float  # user + system seconds of the CLI process
    wall: float
    rss_mb: float


TICKS = os.sysconf("SC_CLK_TCK")


def _over_limits(pid: int) -> bool:
    """CPU time or resident memory of a running child beyond the bounds (read from /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime
        rss_kb = next(int(ln.split()[1]) for ln in Path(f"/proc/{pid}/status").read_text().splitlines()
                      if ln.startswith("VmRSS:"))
    except (OSError, StopIteration, IndexError, ValueError):
        return False
    return cpu > MAX_CPU_SECONDS * 1.5 or rss_kb / 1024 > MAX_RSS_MB * 2


def run_cli(args: list[str], env: dict[str, str], cwd: Path) -> Run:
    """``reconcile ARGS`` in a child process; its own rusage comes from ``os.wait4``. A run far
    beyond the CPU or memory bound is killed (and then fails the bound) rather than waited for."""
    out, err = cwd / f"out-{os.getpid()}-{time.monotonic_ns()}", cwd / f"err-{os.getpid()}-{time.monotonic_ns()}"
    start = time.monotonic()
    with out.open("w") as fo, err.open("w") as fe:
        proc = subprocess.Popen([sys.executable, "-m", "controller.cli", *args], stdout=fo, stderr=fe,
                                stdin=subprocess.DEVNULL, env=env)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - start > MAX_WALL_SECONDS or _over_limits(proc.pid):
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.02)
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: keep Popen from waiting again
    wall = time.monotonic() - start
    run = Run(proc.returncode, out.read_text(errors="replace"), err.read_text(errors="replace"),
              usage.ru_utime + usage.ru_stime, wall, usage.ru_maxrss / 1024)  # ru_maxrss is in KiB on Linux
    out.unlink()
    err.unlink()
    return run


def sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def store_files(db: str) -> dict[str, str]:
    """The store file and, if there are any, its WAL and shared-memory files."""
    return {p: sha256(p) for p in (db, db + "-wal") if os.path.exists(p)}


def containers(rc: Harness) -> dict[str, tuple[Any, ...]]:
    """Every container of this test's instance: identity, state and the labels the controller sets."""
    out = {}
    for c in rc.containers():
        info = rc.inspect(c.id)
        state = info["State"]
        out[c.id] = (info["Name"], state["Status"], state["StartedAt"], state.get("FinishedAt"),
                     info.get("RestartCount"), tuple(sorted(info["Config"]["Labels"].items())))
    return out


def seed(rc: Harness) -> None:
    """A store that exists and holds a running service, applied through the CLI."""
    rc.run("apply", "-f", rc.write([rc.service("seed")], "seed.yaml"))
    assert len(rc.containers()) == 1


def check(case: Case, run: Run, paths: dict[str, str]) -> list[str]:
    """Problems with one run, each naming the case."""
    problems = []
    where = paths[case.where]
    if run.code != 2:
        problems.append(f"exited {run.code}, expected 2")
    marker = f"{where}:{case.line}:" if case.line is not None else f"{where}: "
    lines = [ln for ln in run.stderr.splitlines() if marker in ln]
    if not lines:
        problems.append(f"no stderr line with {marker!r}")
    elif not any(case.field in ln and case.message in ln for ln in lines):
        problems.append(f"the line(s) with {marker!r} lack field {case.field!r} or message {case.message!r}: {lines}")
    if run.cpu > MAX_CPU_SECONDS:
        problems.append(f"took {run.cpu:.1f} s of CPU (limit {MAX_CPU_SECONDS} s)")
    if run.wall > MAX_WALL_SECONDS:
        problems.append(f"still running after {run.wall:.0f} s: killed")
    if run.code == -9:
        problems.append("killed: far beyond the CPU or memory bound")
    if run.rss_mb > MAX_RSS_MB:
        problems.append(f"used {run.rss_mb:.0f} MB (limit {MAX_RSS_MB} MB)")
    if problems:
        problems.append(f"stderr:\n{run.stderr[-3000:]}")
    return [f"[{case.id}] {p}" for p in problems]


def apply_case(rc: Harness, case: Case, db: str) -> tuple[Run, list[str]]:
    """Apply the case's files on store ``db``; the problems with the run and with the store."""
    before = store_files(db)
    paths = {f: str(CORPUS / f) for f in case.files}
    env = {k: v for k, v in rc.env.items() if not k.startswith("RECONCILE_TEST_UNSET")}
    run = run_cli(["--db", db, "apply", *(a for f in case.files for a in ("-f", paths[f]))], env, rc.tmp)
    problems = check(case, run, paths)
    after = store_files(db)
    if after != before:
        problems.append(f"[{case.id}] the store changed: {before} -> {after}")
    return run, problems


@pytest.fixture
def seeded(rc: Harness) -> Iterator[Harness]:
    seed(rc)
    yield rc


# The whole corpus (120-odd CLI processes, 4 at a time): its wall time is the host's load, not a
# property of the CLI (each run has its own CPU, memory and wall bounds, above). At load
# averages of 15-20 on 2 cores it took more than the suite's default 600 s.
@pytest.mark.timeout(1800)
def test_invalid_input_is_rejected_with_a_location_and_touches_nothing(seeded: Harness) -> None:
    rc = seeded
    world = containers(rc)
    stores = rc.tmp / "stores"
    stores.mkdir()

    def one(case: Case) -> tuple[Case, Run, list[str]]:
        db = str(stores / f"{case.id}.db")
        shutil.copyfile(rc.db, db)  # the seeded store (checkpointed: the CLI that wrote it has exited)
        run, problems = apply_case(rc, case, db)
        return case, run, problems

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        results = list(pool.map(one, GOOD))
    problems = [p for _case, _run, ps in results for p in ps]
    now = containers(rc)
    if now != world:
        culprits = [c.id for c, run, _ in results if run.code != 2]
        problems.append(f"containers of this instance changed (cases that did not exit 2: {culprits}):\n"
                        f"before {world}\nafter {now}")
    assert not problems, "\n".join(problems)
    worst = max(results, key=lambda r: r[1].cpu)
    print(f"{len(results)} cases; most CPU: {worst[0].id} {worst[1].cpu:.2f} s; "
          f"most memory: {max(r[1].rss_mb for r in results):.0f} MB")


def test_alias_bomb_and_huge_file_are_refused_within_bounds(seeded: Harness) -> None:
    """On the seeded store itself (not a copy): the two inputs meant to exhaust the loader."""
    rc = seeded
    huge = rc.tmp / "huge.yaml"
    entry = "    K{:07d}: value\n"
    head = "apiVersion: reconcile/v1alpha1\nkind: Service\nmetadata:\n  name: web\nspec:\n  image: x\n  env:\n"
    count = (MAX_BYTES + 4096 - len(head)) // len(entry.format(0)) + 1
    huge.write_text(head + "".join(entry.format(i) for i in range(count)))
    assert huge.stat().st_size > MAX_BYTES
    bomb = next(c for c in GOOD if c.id == "alias_bomb")
    cases = [bomb, Case("huge", ("huge.yaml",), "huge.yaml", None, "", "file is larger than 8 MiB")]
    world = containers(rc)
    problems = []
    for case in cases:
        before = store_files(rc.db)
        paths = {"huge.yaml": str(huge)} if case.id == "huge" else {f: str(CORPUS / f) for f in case.files}
        run = run_cli(["apply", *(a for p in paths.values() for a in ("-f", p))], rc.env, rc.tmp)
        problems += check(case, run, paths)
        if store_files(rc.db) != before:
            problems.append(f"[{case.id}] the store changed")
    if containers(rc) != world:
        problems.append("containers of this instance changed")
    assert not problems, "\n".join(problems)


def _seed_store_only(rc: Harness) -> None:
    """A store with content, written through the store API (these cases need no container)."""
    from controller.operations import load_inputs
    from store import Store

    path = rc.write([rc.service("seed")], "seed.yaml")
    store = Store.open(rc.db)
    store.apply(load_inputs([path]), source="seed", actor="test", now=time.time())
    store.close()


def test_a_file_just_under_the_size_limit_is_refused_within_bounds(rc: Harness) -> None:
    _seed_store_only(rc)
    big = rc.tmp / "big.yaml"
    head = "apiVersion: reconcile/v1alpha1\nkind: Service\nmetadata:\n  name: web\nspec:\n  image: x\n  env:\n"
    entry = "    K{:07d}: v\n"
    count = (MAX_BYTES - 1024 - len(head)) // len(entry.format(0))
    big.write_text(head + "".join(entry.format(i) for i in range(count)))
    assert big.stat().st_size < MAX_BYTES
    case = Case("big", ("big.yaml",), "big.yaml", None, "", "")
    before = store_files(rc.db)
    run = run_cli(["apply", "-f", str(big)], rc.env, rc.tmp)
    problems = check(case, run, {"big.yaml": str(big)})
    problems = [p for p in problems if "no stderr line" not in p]  # any location will do
    if all(p.startswith("[big] stderr:") for p in problems):
        problems = []  # check() appends the stderr to any problem: nothing else is left
    assert store_files(rc.db) == before
    assert not problems, "\n".join(problems)
