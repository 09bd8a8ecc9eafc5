#!/usr/bin/env python3
"""Measure `reconcile convert` on real compose files written by others (issue 10).

Role: a measuring tool, not part of the product. It rebuilds a corpus of third-party compose
files from a manifest of (repository, commit, file sets) by reading bare git mirrors, converts
every file set with a chosen checkout of the code (strict, then ``--allow-unsupported``), asks
Docker Compose v2 (``docker-compose config -q``) whether compose itself accepts the same set,
and classifies each set:

  converted          strict ``convert`` exit 0
  converted-allow    strict exit 2, exit 0 only with ``--allow-unsupported``
  rejected           exit 2 with every message naming file:line and a key
  rejected-unclear   exit 2 with some message lacking file:line or a key
  compose-rejects    compose itself rejects the set (override fragment alone, required
                     variable unset, invalid file); the converter's verdict is kept beside it
  crashed            a Python traceback, or an exit code other than 0/2
  hung               no answer within the timeout

The third-party files are never part of this repository: only the manifest (names, commits,
paths) is. The corpus is written outside the repo (default /tmp/compose-corpus).

Usage (see docs/COMPAT.md):
  python3 scripts/compose-corpus.py [--code DIR] [--mirror DIR] [--work DIR]
                                    [--json OUT] [--markdown OUT] [--only REGEX] [--jobs N]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

HERE = Path(__file__).resolve().parent
DEFAULT_MANIFEST = HERE / "compose-corpus.txt"
DEFAULT_CODE = HERE.parent
DEFAULT_COMPOSE = Path("/opt/reconcile-tools/compose-v2/usr/bin/docker-compose")
INSTALL_SCRIPT = HERE / "install-compose-v2.sh"
MAX_BLOB = 1024 * 1024  # larger files are not materialised (data, images, lock files)
SKIP_DIRS = re.compile(r"(^|/)(node_modules|vendor|\.git)(/|$)")

CLASSES = ["converted", "converted-allow", "rejected", "rejected-unclear", "compose-rejects",
           "crashed", "hung"]
NAME_KEYED = {"depends_on", "networks", "ulimits", "sysctls", "labels", "environment", "extra_hosts",
              "annotations", "build_args", "args", "storage_opt", "driver_opts", "options"}
NESTED = {"build", "deploy", "healthcheck", "logging", "develop", "blkio_config", "credential_spec",
          "extends", "ports", "volumes", "secrets", "configs", "networks", "depends_on", "ulimits",
          "env_file", "tmpfs", "devices", "gpus", "models", "provider", "post_start", "pre_stop"}
TOP_NAMED = {"services", "networks", "volumes", "secrets", "configs", "models"}


# --------------------------------------------------------------------------- manifest


@dataclass
class FileSet:
    repo: str
    commit: str
    kind: str
    files: list[str]
    env: str | None = None

    @property
    def id(self) -> str:
        tail = " + ".join(self.files) + (f" [.env={self.env}]" if self.env else "")
        return f"{self.repo}:{tail}"

    @property
    def project_dir(self) -> str:
        return os.path.dirname(self.files[0])


def read_manifest(path: Path) -> list[FileSet]:
    """Parse the manifest: `repo OWNER/NAME COMMIT KIND`, then indented file-set lines."""
    sets: list[FileSet] = []
    repo = commit = kind = ""
    for lineno, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line.strip():
            continue
        words = shlex.split(line)
        if words[0] == "repo":
            if len(words) != 4:
                sys.exit(f"{path}:{lineno}: expected `repo OWNER/NAME COMMIT KIND`")
            repo, commit, kind = words[1:]
            continue
        if not repo:
            sys.exit(f"{path}:{lineno}: file set before any `repo` line")
        env = None
        files = []
        for w in words:
            if w.startswith("env="):
                env = w[4:]
            elif w != "+":
                files.append(w)
        sets.append(FileSet(repo, commit, kind, files, env))
    return sets


# --------------------------------------------------------------------------- materialise


def git(mirror: Path, *args: str, **kw: Any) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", f"--git-dir={mirror}", *args], capture_output=True, check=False, **kw)


def mirror_dir(mirrors: Path, repo: str) -> Path:
    return mirrors / repo.replace("/", "+") / "repo"


def materialise(mirrors: Path, work: Path, repo: str, commit: str, sets: list[FileSet]) -> str | None:
    """Write the parts of REPO@COMMIT the sets need under WORK/OWNER/NAME; None or a problem."""
    gd = mirror_dir(mirrors, repo)
    if not gd.is_dir():
        return f"mirror missing: fetch github:{repo} first"
    if git(gd, "cat-file", "-e", f"{commit}^{{commit}}").returncode != 0:
        return f"commit {commit} not in the mirror of {repo}: fetch github:{repo} again"
    dest = work / repo
    stamp = dest / ".corpus-commit"
    wanted_env = {(s.project_dir, s.env) for s in sets if s.env}
    if not (stamp.is_file() and stamp.read_text().strip() == commit):
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        dirs: set[str] = set()
        for s in sets:
            for f in s.files + ([s.env] if s.env else []):
                dirs.add(os.path.dirname(f))
        recursive = sorted(dirs)
        ancestors: set[str] = set()
        for d in dirs:
            while d:
                d = os.path.dirname(d)
                ancestors.add(d)
        entries = []
        out = git(gd, "ls-tree", "-r", "-l", "-z", "--full-tree", commit).stdout.decode("utf-8", "surrogateescape")
        for rec in out.split("\0"):
            if not rec:
                continue
            meta, path = rec.split("\t", 1)
            mode, otype, sha, size = meta.split()
            if otype != "blob" or SKIP_DIRS.search(path):
                continue
            parent = os.path.dirname(path)
            inside = any(d == "" or path.startswith(d + "/") for d in recursive)
            if not inside and parent not in ancestors:
                continue
            if not size.isdigit() or int(size) > MAX_BLOB:
                continue  # absent from the snapshot (large files), or too large to matter
            entries.append((mode, sha, path))
        if entries:
            proc = subprocess.Popen(["git", f"--git-dir={gd}", "cat-file", "--batch"], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE)
            assert proc.stdin and proc.stdout
            for mode, sha, path in entries:
                proc.stdin.write(sha.encode() + b"\n")
                proc.stdin.flush()
                header = proc.stdout.readline().split()
                if len(header) < 3 or header[1] == b"missing":
                    continue
                data = proc.stdout.read(int(header[2]))
                proc.stdout.read(1)
                target = dest / path
                target.parent.mkdir(parents=True, exist_ok=True)
                if mode == "120000":
                    os.symlink(data.decode("utf-8", "surrogateescape"), target)
                else:
                    target.write_bytes(data)
                    if mode == "100755":
                        target.chmod(0o755)
            proc.stdin.close()
            proc.wait()
        stamp.write_text(commit + "\n")
    for pdir, env in sorted(wanted_env):
        src = dest / env
        dst = dest / pdir / ".env"
        if src.resolve() == dst.resolve() if dst.exists() else False:
            continue
        if not src.is_file():
            return f"{repo}: env example {env} missing at {commit}"
        if dst.is_symlink():
            dst.unlink()
        shutil.copyfile(src, dst)
    return None


# --------------------------------------------------------------------------- oracle


def ensure_compose(explicit: str | None) -> tuple[list[str] | None, str]:
    """The compose v2 command (installed by scripts/install-compose-v2.sh when missing)."""
    if explicit:
        return [explicit], explicit
    if not DEFAULT_COMPOSE.exists():
        print(f"compose v2 missing at {DEFAULT_COMPOSE}: running {INSTALL_SCRIPT}", file=sys.stderr)
        subprocess.run(["bash", str(INSTALL_SCRIPT)], check=False, timeout=900)
    if DEFAULT_COMPOSE.exists():
        ver = subprocess.run([str(DEFAULT_COMPOSE), "version", "--short"], capture_output=True, text=True,
                             check=False).stdout.strip()
        return [str(DEFAULT_COMPOSE)], f"docker-compose {ver} (Compose v2)"
    return None, "HEURISTIC (compose v2 unavailable): YAML parses and every service has image or build"


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TERM")}
    env["HOME"] = tempfile.gettempdir()
    env.update(extra or {})
    return env


def oracle(compose: list[str] | None, fs: FileSet, root: Path, timeout: float) -> tuple[bool, str]:
    cwd = root / fs.repo / fs.project_dir
    rel = [os.path.relpath(root / fs.repo / f, cwd) for f in fs.files]
    if compose is None:
        return heuristic(root / fs.repo, fs)
    cmd = [*compose]
    for f in rel:
        cmd += ["-f", f]
    if fs.env:
        cmd += ["--env-file", ".env"]
    cmd += ["config", "-q"]
    try:
        p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=clean_env())
    except subprocess.TimeoutExpired:
        return False, "compose timed out"
    msg = " ".join(ln.strip() for ln in p.stderr.splitlines() if ln.strip() and "level=warning" not in ln)
    return p.returncode == 0, msg[:400]


def heuristic(base: Path, fs: FileSet) -> tuple[bool, str]:
    import yaml

    services: dict[str, Any] = {}
    for f in fs.files:
        try:
            doc = yaml.load((base / f).read_text(), Loader=_loader())
        except Exception as exc:  # noqa: BLE001 - any parse failure is the verdict
            return False, f"heuristic: YAML error {exc}"
        for name, svc in ((doc or {}).get("services") or {}).items():
            services.setdefault(name, {}).update(svc or {})
    bad = [n for n, s in services.items() if "image" not in s and "build" not in s and "extends" not in s]
    return (not bad), (f"heuristic: no image/build for {bad}" if bad else "")


# --------------------------------------------------------------------------- converter


@dataclass
class Run:
    rc: int | None
    stderr: str
    seconds: float


def supports_env_file(code: Path) -> bool:
    p = subprocess.run([sys.executable, "-m", "controller.cli", "convert", "--help"], capture_output=True,
                       text=True, env=clean_env({"PYTHONPATH": str(code)}), check=False, timeout=120)
    return "--env-file" in p.stdout


# A fork server: one Python per worker imports the CLI of the measured checkout once, then forks a
# child per command that runs exactly `python3 -m controller.cli ARGS` (same main(), same exit
# codes, stderr captured at the file-descriptor level). Saves the import time of each run; pass
# --no-fork to spawn `python3 -m controller.cli` for every command instead.
FORK_SERVER = r"""
import json, os, sys, time, traceback
import controller.cli as cli
for line in sys.stdin:
    req = json.loads(line)
    pid = os.fork()
    if pid == 0:
        try:
            os.chdir(req["cwd"])
            fd_out = os.open(os.devnull, os.O_WRONLY)
            fd_err = os.open(req["err"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(fd_out, 1); os.dup2(fd_err, 2)
            sys.argv = ["reconcile", *req["argv"]]
            code = 0
            try:
                cli.main()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            except BaseException:
                traceback.print_exc()
                code = 1
            sys.stdout.flush(); sys.stderr.flush()
        finally:
            os._exit(locals().get("code", 1))
    deadline = time.monotonic() + req["timeout"]
    rc = None
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            rc = os.waitstatus_to_exitcode(status)
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9); os.waitpid(pid, 0)
            break
        time.sleep(0.01)
    sys.stdout.write(json.dumps({"rc": rc}) + "\n"); sys.stdout.flush()
"""


class Converter:
    """Runs `controller.cli` ARGS for one worker thread (fork server, or one process each)."""

    def __init__(self, code: Path, fork: bool, scratch: str):
        self.code, self.fork, self.scratch = code, fork, scratch
        self.proc: subprocess.Popen[str] | None = None

    def run(self, argv: list[str], cwd: Path, timeout: float) -> tuple[int | None, str]:
        env = clean_env({"PYTHONPATH": str(self.code), "NO_COLOR": "1", "COLUMNS": "400"})
        if not self.fork:
            try:
                p = subprocess.run([sys.executable, "-m", "controller.cli", *argv], cwd=cwd, capture_output=True,
                                   text=True, timeout=timeout, env=env)
            except subprocess.TimeoutExpired as exc:
                err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
                return None, err
            return p.returncode, p.stderr
        if self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen([sys.executable, "-c", FORK_SERVER], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, text=True, env=env, cwd=self.scratch)
        assert self.proc.stdin and self.proc.stdout
        err_path = os.path.join(self.scratch, f"stderr-{id(self)}.txt")
        self.proc.stdin.write(json.dumps({"argv": argv, "cwd": str(cwd), "err": err_path, "timeout": timeout}) + "\n")
        self.proc.stdin.flush()
        reply = json.loads(self.proc.stdout.readline())
        with open(err_path, errors="replace") as fh:
            return reply["rc"], fh.read()

    def close(self) -> None:
        if self.proc is not None and self.proc.stdin:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)


def convert(conv: Converter, fs: FileSet, root: Path, allow: bool, timeout: float, db: str, env_opt: bool) -> Run:
    cwd = root / fs.repo / fs.project_dir
    argv = ["--db", db, "convert"]
    for f in fs.files:
        argv += ["-f", os.path.relpath(root / fs.repo / f, cwd)]
    if fs.env and env_opt:
        argv += ["--env-file", ".env"]
    if allow:
        argv.append("--allow-unsupported")
    t0 = time.monotonic()
    rc, err = conv.run(argv, cwd, timeout)
    return Run(rc, err, time.monotonic() - t0)


LOC = r"(?P<loc>[^\s]+?:\d+(?::\d+)?)"
ISSUE_RE = re.compile(LOC + r":?\s+(?P<key>[^\s:]+):\s*(?P<msg>.*)$")
LEVEL_RE = re.compile(r"^(?:\d\d:\d\d:\d\d\s+)?(?P<level>WARNING|INFO|ERROR|warning|info|error)\b:?\s*(?P<rest>.*)$")


def norm_key(path: str) -> str:
    """services.web.ports[0].published -> services.*.ports.published (names and indices out)."""
    path = re.sub(r"\[[^\]]*\]", "", path.strip("'\"`"))
    parts = [p for p in path.split(".") if p]
    if len(parts) > 1 and parts[0] in TOP_NAMED:
        parts[1] = "*"
    if len(parts) > 3 and parts[0] == "services" and parts[2] in NAME_KEYED:
        # names may hold dots (network `meet.jitsi`): keep only the attribute after the name
        parts = parts[:3] + ["*"] + ([parts[-1]] if len(parts) > 4 else [])
    if len(parts) > 3 and parts[0] == "services" and parts[2] == "build" and parts[3] == "args" and len(parts) > 4:
        parts[4] = "*"
    if len(parts) > 2 and parts[0] != "services" and parts[2] in NAME_KEYED and len(parts) > 3:
        parts[3] = "*"
    return ".".join(parts[:6])


INTERPOLATION = re.compile(r"^(required )?variable \S+ (is not set|is missing)")


def msg_kind(msg: str) -> str:
    msg = re.sub(r"'[^']*'|\"[^\"]*\"|`[^`]*`", "'…'", msg)
    msg = re.sub(r"\b\d+(\.\d+)?\b", "N", msg)
    return msg[:200]


@dataclass
class Issue:
    loc: str
    key: str
    msg: str
    raw: str


def parse_issue(line: str) -> Issue | None:
    m = ISSUE_RE.search(line)
    if not m:
        return None
    return Issue(m["loc"], norm_key(m["key"]), m["msg"], line.strip())


def where(r: "Result", loc: str) -> str:
    """OWNER/NAME/dir/file:line of a message location (locations are relative to the project dir)."""
    pdir = os.path.dirname(r.files[0])
    return f"{r.repo}/{os.path.normpath(os.path.join(pdir, loc)) if loc else ' + '.join(r.files)}"


def split_stderr(text: str) -> tuple[list[str], list[str], list[str]]:
    """(warnings, errors, traceback-or-other lines) from convert's stderr."""
    warnings, errors, other = [], [], []
    in_tb = False
    for ln in text.splitlines():
        s = ln.strip()
        if not s:
            continue
        if s.startswith("Traceback (most recent call last)"):
            in_tb = True
        if in_tb:
            other.append(s)
            continue
        m = LEVEL_RE.match(s)
        if m and m["level"].lower() == "warning":
            warnings.append(m["rest"])
        elif m and m["level"].lower() == "info":
            continue
        elif s.lower().startswith("error: invalid input"):
            continue
        elif m and m["level"].lower() == "error":
            errors.append(m["rest"])
        else:
            errors.append(s)
    return warnings, errors, other


# --------------------------------------------------------------------------- keys used


def _loader() -> Any:
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def any_tag(loader: Any, suffix: str, node: Any) -> Any:
        if isinstance(node, yaml.MappingNode):
            return loader.construct_mapping(node, deep=True)
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node, deep=True)
        return loader.construct_scalar(node)

    Loader.add_multi_constructor("!", any_tag)
    return Loader


def keys_used(base: Path, fs: FileSet) -> set[str]:
    import yaml

    loader = _loader()
    keys: set[str] = set()
    for f in fs.files:
        try:
            doc = yaml.load((base / f).read_text(errors="replace"), Loader=loader)
        except Exception:  # noqa: BLE001 - unparsable: compose says so
            continue
        if not isinstance(doc, dict):
            continue
        for top, val in doc.items():
            top = str(top)
            if top.startswith("x-"):
                keys.add("x-*")
                continue
            keys.add(top)
            if top in TOP_NAMED and isinstance(val, dict):
                for item in val.values():
                    if not isinstance(item, dict):
                        continue
                    for k, v in item.items():
                        k = str(k)
                        if k.startswith("x-"):
                            continue
                        keys.add(f"{top}.*.{k}")
                        if top == "services" and k in NESTED:
                            for sub in _subkeys(k, v):
                                keys.add(f"services.*.{k}.{sub}")
    return keys


def _subkeys(k: str, v: Any) -> Iterable[str]:
    if isinstance(v, dict):
        if k in NAME_KEYED:
            for item in v.values():
                if isinstance(item, dict):
                    yield from (str(s) for s in item)
        else:
            for s, sv in v.items():
                yield str(s)
                if k == "deploy" and isinstance(sv, dict) and s in ("resources", "restart_policy", "update_config"):
                    for s2, sv2 in sv.items():
                        yield f"{s}.{s2}"
                        if isinstance(sv2, dict) and s2 in ("limits", "reservations"):
                            yield from (f"{s}.{s2}.{s3}" for s3 in sv2)
    elif isinstance(v, list):
        for item in v:
            if isinstance(item, dict):
                yield from (str(s) for s in item)


# --------------------------------------------------------------------------- one file set


@dataclass
class Result:
    id: str
    repo: str
    kind: str
    files: list[str]
    env: str | None
    cls: str
    compose_ok: bool
    compose_msg: str
    strict_rc: int | None
    allow_rc: int | None
    errors: list[dict[str, str]] = field(default_factory=list)
    unclear: list[str] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)
    crash: str = ""
    converter_verdict: str = ""
    keys: list[str] = field(default_factory=list)
    seconds: float = 0.0


def measure(fs: FileSet, args: argparse.Namespace, compose: list[str] | None, db_dir: str, env_opt: bool,
            conv: Converter) -> Result:
    root: Path = args.work
    ok, cmsg = oracle(compose, fs, root, args.timeout)
    db = os.path.join(db_dir, "store.sqlite")
    strict = convert(conv, fs, root, False, args.timeout, db, env_opt)
    allow = None
    if strict.rc == 2:
        allow = convert(conv, fs, root, True, args.timeout, db, env_opt)
    res = Result(fs.id, fs.repo, fs.kind, fs.files, fs.env, "", ok, cmsg, strict.rc, allow.rc if allow else None,
                 keys=sorted(keys_used(root / fs.repo, fs)), seconds=round(strict.seconds, 2))
    verdict = ""
    for run in (strict, allow):
        if run is None:
            continue
        if run.rc is None:
            verdict = "hung"
            res.crash = f"no answer in {args.timeout:.0f}s ({'allow' if run is allow else 'strict'})"
            break
        w, e, tb = split_stderr(run.stderr)
        if tb or run.rc not in (0, 2):
            verdict = "crashed"
            last = (tb or e or [f"exit {run.rc}"])[-1]
            res.crash = f"{'--allow-unsupported' if run is allow else 'strict'}: {last}"
            break
    if not verdict:
        sw, se, _ = split_stderr(strict.stderr)
        if strict.rc == 0:
            verdict = "converted"
            wlines = sw
        else:
            for line in se:
                iss = parse_issue(line)
                if iss:
                    res.errors.append(asdict(iss))
                else:
                    res.unclear.append(line)
            if allow is not None and allow.rc == 0:
                verdict = "converted-allow"
            elif res.unclear or not res.errors:
                verdict = "rejected-unclear"
                if not res.errors and not res.unclear:
                    res.unclear.append("(exit 2 with no message)")
            else:
                verdict = "rejected"
            aw = split_stderr(allow.stderr)[0] if allow is not None else []
            wlines = aw if allow is not None and allow.rc == 0 else sw + aw
        for line in dict.fromkeys(wlines):
            iss = parse_issue(line)
            res.warnings.append(asdict(iss) if iss else {"loc": "", "key": "(no key)", "msg": line, "raw": line})
    res.converter_verdict = verdict
    res.cls = verdict if verdict in ("crashed", "hung") or ok else "compose-rejects"
    return res


# --------------------------------------------------------------------------- report


def pct(n: int, d: int) -> str:
    return f"{100.0 * n / d:.1f} %" if d else "-"


def summarise(results: list[Result], meta: dict[str, Any]) -> dict[str, Any]:
    total = len(results)
    classes = Counter(r.cls for r in results)
    accepted = [r for r in results if r.compose_ok]
    acc_conv = sum(1 for r in accepted if r.converter_verdict == "converted")
    singles = [r for r in accepted if len(r.files) == 1]
    files = {(r.repo, f) for r in results for f in r.files}
    by_kind: dict[str, Counter[str]] = defaultdict(Counter)
    for r in results:
        by_kind[r.kind][r.cls] += 1
    # strict failures among accepted sets, grouped by key / message kind
    causes: dict[tuple[str, str], list[str]] = defaultdict(list)
    for r in accepted:
        if r.converter_verdict in ("converted-allow", "rejected", "rejected-unclear"):
            seen = set()
            for e in r.errors:
                k = (e["key"], msg_kind(e["msg"]))
                if k not in seen:
                    seen.add(k)
                    causes[k].append(f"{where(r, e['loc'])}: {e['key']}: {e['msg']}")
            for u in r.unclear:
                k = ("(no file:line/key)", msg_kind(u))
                if k not in seen:
                    seen.add(k)
                    causes[k].append(f"{r.repo} {' + '.join(r.files)}: {u}")
    warn: dict[str, Counter[str]] = defaultdict(Counter)
    warn_ex: dict[str, str] = {}
    for r in results:
        for w in r.warnings:
            warn[w["key"]][msg_kind(w["msg"])] += 1
            warn_ex.setdefault(w["key"], f"{where(r, w['loc'])}: {w['msg']}")
    rej: dict[str, Counter[str]] = defaultdict(Counter)
    rej_ex: dict[str, str] = {}
    for r in results:
        for e in r.errors:
            rej[e["key"]][msg_kind(e["msg"])] += 1
            rej_ex.setdefault(e["key"], f"{where(r, e['loc'])}: {e['msg']}")
    # key table over accepted sets (examples from those sets; interpolation notices are not about a key)
    used: Counter[str] = Counter()
    rejected_in: Counter[str] = Counter()
    warned_in: Counter[str] = Counter()
    key_ex: dict[str, str] = {}
    for r in accepted:
        used.update(r.keys)
        rejected_in.update({e["key"] for e in r.errors})
        for e in r.errors:
            key_ex.setdefault(e["key"], f"{where(r, e['loc'])}: {e['msg']}")
        about_key = [w for w in r.warnings if w["key"] != "(no key)" and not INTERPOLATION.search(w["msg"])]
        warned_in.update({w["key"] for w in about_key})
        for w in about_key:
            key_ex.setdefault(w["key"], f"{where(r, w['loc'])}: {w['msg']}")
    keytable = []
    for k in sorted(set(used) | set(rejected_in) | set(warned_in)):
        if rejected_in[k]:
            status = "rejected" if rejected_in[k] >= used[k] else "partly rejected"
        elif warned_in[k]:
            status = "warned"
        else:
            status = "supported"
        keytable.append({"key": k, "sets": used[k], "rejected": rejected_in[k], "warned": warned_in[k],
                         "status": status, "example": key_ex.get(k, "")})
    return {
        "meta": meta,
        "file_sets": total,
        "files": len(files),
        "projects": len({r.repo for r in results}),
        "classes": {c: classes.get(c, 0) for c in CLASSES},
        "compose_accepts": len(accepted),
        "accepted_converted_strict": acc_conv,
        "headline": pct(acc_conv, len(accepted)),
        "headline_single_files": pct(sum(1 for r in singles if r.converter_verdict == "converted"), len(singles)),
        "single_files_accepted": len(singles),
        "by_kind": {k: dict(v) for k, v in sorted(by_kind.items())},
        "accepted_by_verdict": dict(Counter(r.converter_verdict for r in accepted)),
        "strict_failure_causes": sorted(
            ({"key": k, "kind": m, "count": len(v), "example": v[0]} for (k, m), v in causes.items()),
            key=lambda x: (-x["count"], x["key"])),
        "crashes": [{"id": r.id, "class": r.cls, "compose_ok": r.compose_ok, "last_line": r.crash}
                    for r in results if r.cls in ("crashed", "hung")],
        "warnings_by_key": {k: {"count": sum(v.values()), "kinds": dict(v.most_common()), "example": warn_ex[k]}
                            for k, v in sorted(warn.items(), key=lambda kv: -sum(kv[1].values()))},
        "rejections_by_key": {k: {"count": sum(v.values()), "kinds": dict(v.most_common()), "example": rej_ex[k]}
                              for k, v in sorted(rej.items(), key=lambda kv: -sum(kv[1].values()))},
        "compose_rejects": [{"id": r.id, "compose": r.compose_msg, "converter": r.converter_verdict}
                            for r in results if not r.compose_ok],
        "keys": keytable,
    }


def print_summary(s: dict[str, Any]) -> None:
    m = s["meta"]
    print(f"\ncode {m['code']} @ {m['code_commit']}   oracle: {m['oracle']}")
    print(f"{s['file_sets']} file sets, {s['files']} distinct compose files, {s['projects']} projects\n")
    print(f"{'class':<18}{'sets':>6}{'share':>10}")
    for c, n in s["classes"].items():
        print(f"{c:<18}{n:>6}{pct(n, s['file_sets']):>10}")
    print(f"\ncompose accepts {s['compose_accepts']} sets; converted without --allow-unsupported: "
          f"{s['accepted_converted_strict']} = {s['headline']} (single files: {s['headline_single_files']}"
          f" of {s['single_files_accepted']})")
    print("accepted sets by converter verdict:", s["accepted_by_verdict"])
    print("\nby kind:", json.dumps(s["by_kind"]))
    if s["crashes"]:
        print("\nCRASHES / HANGS:")
        for c in s["crashes"]:
            print(f"  [{c['class']}] {c['id']}: {c['last_line']}")
    print("\ntop strict-mode failure causes among sets compose accepts:")
    for c in s["strict_failure_causes"][:30]:
        print(f"  {c['count']:>4}  {c['key']}: {c['kind'][:110]}\n        e.g. {c['example'][:220]}")
    print("\nwarnings by key (all runs):")
    for k, v in list(s["warnings_by_key"].items())[:40]:
        print(f"  {v['count']:>4}  {k}: {next(iter(v['kinds']))[:120]}")


def markdown(s: dict[str, Any]) -> str:
    m = s["meta"]
    out = [f"Measured on code commit `{m['code_commit']}` ({m['code_branch']}), {m['date']}; "
           f"oracle: {m['oracle']}.", "",
           f"- Corpus: **{s['files']} compose files** in **{s['file_sets']} file sets** from "
           f"**{s['projects']} projects** (a set is what a user passes together: base + overrides, "
           f"with the `.env` example copied as `.env`).",
           f"- Compose itself accepts {s['compose_accepts']} sets; of these, "
           f"**{s['accepted_converted_strict']} = {s['headline']} convert without `--allow-unsupported`** "
           f"(single files alone: {s['headline_single_files']} of {s['single_files_accepted']}). Target: >= 97 %.",
           "", "| class | sets | share |", "| --- | ---: | ---: |"]
    for c, n in s["classes"].items():
        out.append(f"| {c} | {n} | {pct(n, s['file_sets'])} |")
    out += ["", "By kind of project:", "", "| kind | " + " | ".join(CLASSES) + " |",
            "| --- |" + " ---: |" * len(CLASSES)]
    for k, v in s["by_kind"].items():
        out.append(f"| {k} | " + " | ".join(str(v.get(c, 0)) for c in CLASSES) + " |")
    if s["crashes"]:
        out += ["", "Crashes and hangs:", ""]
        out += [f"- `{c['id']}`: {c['last_line']}" for c in s["crashes"]]
    out += ["", "Strict-mode failures among the sets compose accepts, by cause:", "",
            "| sets | key | message (normalised) | example |", "| ---: | --- | --- | --- |"]
    for c in s["strict_failure_causes"]:
        out.append(f"| {c['count']} | `{c['key']}` | {_md(c['kind'])} | {_md(c['example'][:160])} |")
    out += ["", "Warnings by key (all runs):", "", "| count | key | message (normalised) |", "| ---: | --- | --- |"]
    for k, v in s["warnings_by_key"].items():
        for kind, n in v["kinds"].items():
            out.append(f"| {n} | `{k}` | {_md(kind)} |")
    out += ["", "Key by key (over the sets compose accepts; `sets` = sets using the key):", "",
            "| key | sets | status | rejected in | warned in | example message |",
            "| --- | ---: | --- | ---: | ---: | --- |"]
    for row in s["keys"]:
        out.append(f"| `{row['key']}` | {row['sets']} | {row['status']} | {row['rejected']} | {row['warned']} | "
                   f"{_md(row['example'][:160])} |")
    out += ["", "Sets compose itself rejects (not counted in the headline):", "",
            "| set | compose says | converter |", "| --- | --- | --- |"]
    for r in s["compose_rejects"]:
        out.append(f"| `{r['id']}` | {_md(r['compose'][:160])} | {r['converter']} |")
    return "\n".join(out) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    ap.add_argument("--mirror", type=Path, default=Path("/work/.mirror"), help="fetched bare mirrors")
    ap.add_argument("--work", type=Path, default=Path("/tmp/compose-corpus"), help="corpus work directory")
    ap.add_argument("--code", type=Path, default=DEFAULT_CODE, help="checkout of reconcile to measure")
    ap.add_argument("--compose", help="compose v2 binary (default: installed by install-compose-v2.sh)")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per command (then: hung)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--only", help="regex on file-set ids")
    ap.add_argument("--json", type=Path, help="write the full result as JSON")
    ap.add_argument("--markdown", type=Path, help="write the figures and tables as Markdown")
    ap.add_argument("--list", action="store_true", help="list file sets and exit")
    ap.add_argument("--no-fork", action="store_true", help="spawn one `python3 -m controller.cli` per command")
    ap.add_argument("--from-json", type=Path, help="re-render the report of an earlier --json run, run nothing")
    args = ap.parse_args(argv)
    if args.from_json:
        data = json.loads(args.from_json.read_text())
        summary = summarise([Result(**r) for r in data["results"]], data["summary"]["meta"])
        print_summary(summary)
        if args.markdown:
            args.markdown.write_text(markdown(summary))
        return 0
    args.code = args.code.resolve()
    args.work = args.work.resolve()

    sets = read_manifest(args.manifest)
    if args.only:
        sets = [s for s in sets if re.search(args.only, s.id)]
    if args.list:
        for s in sets:
            print(s.id)
        return 0
    by_repo: dict[tuple[str, str], list[FileSet]] = defaultdict(list)
    for s in sets:
        by_repo[(s.repo, s.commit)].append(s)
    args.work.mkdir(parents=True, exist_ok=True)
    missing = []
    for (repo, commit), group in by_repo.items():
        problem = materialise(args.mirror, args.work, repo, commit, group)
        if problem:
            missing.append(problem)
            print(problem, file=sys.stderr)
    missing_repos = {p.split("fetch github:")[1].split()[0] for p in missing if "fetch github:" in p}
    sets = [s for s in sets if s.repo not in missing_repos]
    compose, oracle_name = ensure_compose(args.compose)
    print(f"oracle: {oracle_name}", file=sys.stderr)
    env_opt = supports_env_file(args.code)
    commit = subprocess.run(["git", "-C", str(args.code), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=False).stdout.strip() or "unknown"
    dirty = subprocess.run(["git", "-C", str(args.code), "status", "--porcelain", "--untracked-files=no", "--",
                            "crd_like", "controller"], capture_output=True, text=True, check=False).stdout.strip()
    branch = subprocess.run(["git", "-C", str(args.code), "rev-parse", "--abbrev-ref", "HEAD"], capture_output=True,
                            text=True, check=False).stdout.strip()
    meta = {"code": str(args.code), "code_commit": commit + ("+uncommitted" if dirty else ""), "code_branch": branch,
            "oracle": oracle_name, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "convert_env_file_option": env_opt, "missing": missing}
    results: list[Result] = []
    t0 = time.monotonic()
    local = threading.local()
    convs: list[Converter] = []

    def job(s: FileSet, db_dir: str) -> Result:
        if not hasattr(local, "conv"):
            local.conv = Converter(args.code, not args.no_fork, db_dir)
            convs.append(local.conv)
        return measure(s, args, compose, db_dir, env_opt, local.conv)

    with tempfile.TemporaryDirectory(prefix="compose-corpus-db-") as db_dir:
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            futs = [pool.submit(job, s, db_dir) for s in sets]
            for i, fut in enumerate(concurrent.futures.as_completed(futs), 1):
                results.append(fut.result())
                if i % 50 == 0:
                    print(f"  {i}/{len(sets)} sets, {time.monotonic() - t0:.0f}s", file=sys.stderr)
        for c in convs:
            c.close()
    results.sort(key=lambda r: r.id)
    meta["seconds"] = round(time.monotonic() - t0, 1)
    summary = summarise(results, meta)
    print_summary(summary)
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "results": [asdict(r) for r in results]}, indent=1))
    if args.markdown:
        args.markdown.write_text(markdown(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
