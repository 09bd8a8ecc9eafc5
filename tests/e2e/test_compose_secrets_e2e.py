"""Compose secrets and configs that are not files (issue 10), against the real engine:
``secrets: {NAME: {environment: VAR}}``, ``configs: {NAME: {environment: VAR}}`` and
``configs: {NAME: {content: TEXT}}`` reach the container at their targets with the asked
owner and mode; the secret never shows in convert, describe, history, status, get,
export or diff; a changed value recreates the container (audited, naming the secret,
never the value); delete removes the files the controller wrote."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import BASE_IMAGE, Harness

pytestmark = pytest.mark.e2e

OLD, NEW = "pw-old-7f3a9c", "pw-new-2b8e41"
TOKEN = "tok-5d1c77e0"


def _project(rc: Harness, password: str) -> Path:
    root = rc.tmp / "proj"
    root.mkdir(exist_ok=True)
    (root / ".env").write_text(f"DB_PASSWORD={password}\nAPI_TOKEN={TOKEN}\nGREETING=hello\n")
    compose = {
        "name": rc.prefix,
        "services": {"app": {
            "image": BASE_IMAGE, "command": ["sleep", "3600"], "user": "1005",
            "secrets": ["db_password", {"source": "api", "target": "api_token", "uid": "1005", "gid": "1005",
                                        "mode": 0o400}],
            "configs": ["greeting", {"source": "inline", "target": "/etc/app.conf"}],
        }},
        "secrets": {"db_password": {"environment": "DB_PASSWORD"}, "api": {"environment": "API_TOKEN"}},
        "configs": {"greeting": {"environment": "GREETING"}, "inline": {"content": "greeting=${GREETING}\n"}},
    }
    (root / "compose.yaml").write_text(yaml.safe_dump(compose, sort_keys=False))
    return root / "compose.yaml"


def _cat(rc: Harness, container: str, path: str) -> str:
    res = rc.client.containers.get(container).exec_run(["cat", path])
    assert res.exit_code == 0, (path, res.output)
    return res.output.decode()


def _outputs(rc: Harness, name: str, compose: Path) -> str:
    """Everything a user can print about the service."""
    parts = [rc.run("convert", "-f", str(compose)).stdout, rc.run("describe", name).stdout,
             rc.run("history", name).stdout, rc.run("history", "--json", name).stdout,
             rc.run("status", "--json").stdout, rc.run("get", name, "-o", "yaml").stdout,
             rc.run("export").stdout]
    applied = rc.run("apply", "-f", str(compose), "--dry-run")
    return "\n".join(parts + [applied.stdout, applied.stderr])


def test_env_secrets_and_content_configs_end_to_end(rc: Harness) -> None:
    compose = _project(rc, OLD)
    name, container = f"{rc.prefix}-app", f"{rc.prefix}-app-1"
    out = rc.run("apply", "-f", str(compose))
    assert OLD not in out.stdout + out.stderr and TOKEN not in out.stdout + out.stderr

    # the content is at compose's default targets, owned and moded as asked
    assert _cat(rc, container, "/run/secrets/db_password") == OLD
    assert _cat(rc, container, "/run/secrets/api_token") == TOKEN  # readable by uid 1005 (mode 0400, owner 1005)
    assert _cat(rc, container, "/greeting") == "hello"
    assert _cat(rc, container, "/etc/app.conf") == "greeting=hello\n"
    ls = rc.client.containers.get(container).exec_run(["ls", "-ln", "/run/secrets/api_token",
                                                       "/run/secrets/db_password"]).output.decode()
    assert "-r--------" in ls and " 1005 " in ls and "-r--r--r--" in ls, ls
    binds = rc.inspect(container)["HostConfig"]["Binds"]
    # read-only binds: Docker reports `src:dst:ro`, Podman `src:dst:ro,rprivate,rbind`
    assert all("ro" in b.rsplit(":", 1)[-1].split(",") for b in binds) and len(binds) == 4, binds

    # written under the store's directory, in directories only root can enter
    root = rc.tmp / "files" / rc.instance
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o700
    written = sorted(p for p in (root / name).rglob("*") if p.is_file())
    assert len(written) == 4 and all(stat.S_IMODE(os.stat(p.parent).st_mode) == 0o700 for p in written)

    # never printed
    shown = _outputs(rc, name, compose)
    assert OLD not in shown and TOKEN not in shown and "<redacted>" in shown
    assert "hello" in shown  # a config from a plain variable is not a secret

    # a changed value: diff shows the field, not the value; apply recreates onto the new content
    first_id = rc.inspect(container)["Id"]
    compose = _project(rc, NEW)
    diff = rc.run("diff", "-f", str(compose), expect=None)
    assert OLD not in diff.stdout + diff.stderr and NEW not in diff.stdout + diff.stderr
    assert "files./run/secrets/db_password" in diff.stdout + diff.stderr
    out = rc.run("apply", "-f", str(compose))
    assert NEW not in out.stdout + out.stderr
    assert rc.inspect(container)["Id"] != first_id
    assert _cat(rc, container, "/run/secrets/db_password") == NEW
    [row] = [e for e in rc.history(name, "Recreated")]
    assert "secret db_password" in row["reason"] + row["message"], row
    assert OLD not in json.dumps(rc.history(name)) and NEW not in json.dumps(rc.history(name))

    # delete removes every file the controller wrote for it (the old contents too)
    rc.run("delete", name)
    assert not (root / name).exists(), sorted(root.rglob("*"))
    assert all(not p.exists() for p in written)
