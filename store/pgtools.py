"""``reconcile db backup`` / ``restore`` on PostgreSQL: ``pg_dump`` / ``pg_restore``.

The connection comes from the store's URL as libpq environment variables (PGHOST,
PGPORT, PGUSER, PGDATABASE, PGOPTIONS and PGPASSWORD): the password is never on a command
line (where ``ps`` shows it) nor in a message. A backup is ``pg_dump --format=custom``
(one consistent snapshot, safe while a controller writes); a restore is ``pg_restore
--clean --if-exists --no-owner --single-transaction`` into the store's database, so a
failed restore leaves the store as it was.

Only the database named in the URL is dumped; a URL whose ``options`` set a
``search_path`` (one schema per store) dumps and restores that schema alone (``--schema``).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess

from sqlalchemy.engine import make_url

from store.errors import StoreError
from store.location import redact

TIMEOUT_S = 600


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if candidates:
        return candidates[-1]
    raise StoreError(f"{name} is not installed: it comes with PostgreSQL's client tools "
                     "(Debian: apt-get install postgresql-client-15)")


def _schema(options: str) -> str | None:
    """The schema of ``-csearch_path=NAME`` in a libpq ``options`` string, if any."""
    for part in options.split():
        key, _, value = part.removeprefix("-c").partition("=")
        if key.strip() == "search_path" and value and "," not in value:
            return value.strip()
    return None


def _env_and_args(url: str) -> tuple[dict[str, str], list[str]]:
    parsed = make_url(url)
    env = dict(os.environ)
    for var, value in (("PGHOST", parsed.host), ("PGPORT", parsed.port), ("PGUSER", parsed.username),
                       ("PGDATABASE", parsed.database), ("PGPASSWORD", parsed.password)):
        if value is not None:
            env[var] = str(value)
    options = parsed.query.get("options")
    args: list[str] = []
    if isinstance(options, str):
        env["PGOPTIONS"] = options
        schema = _schema(options)
        if schema:
            args = ["--schema", schema]
    return env, args


def _run(cmd: list[str], env: dict[str, str], what: str, url: str) -> None:
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise StoreError(f"{what} of {redact(url)} did not finish within {TIMEOUT_S}s") from exc
    if done.returncode != 0:
        lines = [ln.strip() for ln in done.stderr.splitlines() if ln.strip()]
        raise StoreError(f"{what} of {redact(url)} failed: {' '.join(lines[-3:]) or f'exit {done.returncode}'}")


def dump(url: str, path: str) -> None:
    env, args = _env_and_args(url)
    _run([_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges", *args, "--file", path],
         env, "pg_dump", url)


def restore(url: str, path: str) -> None:
    env, args = _env_and_args(url)
    _run([_tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--no-privileges", "--single-transaction",
          "--exit-on-error", *args, "--dbname", env.get("PGDATABASE", ""), path], env, "pg_restore", url)
