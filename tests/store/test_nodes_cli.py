"""The node verbs on a real store file, through the CLI as a user runs it (no engine):
`nodes -o json` (the contract's fields), `cordon`/`uncordon`/`drain` (exit 2 for an
unknown node), `describe -o json`'s placement and `status -o json`'s Pending reason."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from crd_like import API_VERSION, ServiceSpec, spec_hash
from store import ResourceInput, Store
from store.records import Node, Placed

REPO = Path(__file__).resolve().parents[2]


def cli(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "RECONCILE_DB": str(db)}
    return subprocess.run([sys.executable, "-m", "controller.cli", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def as_json(db: Path, *args: str) -> Any:
    out = cli(db, *args, "-o", "json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_nodes_cordon_drain_and_placement_through_the_cli(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    st = Store.open(str(db))
    try:
        assert as_json(db, "nodes") == []
        st.nodes.register(Node("n1", {"zone": "a"}, "20.10.24", 2.0, 1 << 30))
        st.nodes.register(Node("n2", {}, "20.10.24", 1.0, 0))
        fence = st.nodes.acquire("n1", "agent:h:1", ttl=60)
        assert fence is not None
        spec = ServiceSpec.model_validate({"image": "demo/web:1", "replicas": 2})
        st.apply([ResourceInput(n, "Service", API_VERSION, spec.model_dump(mode="json", exclude_defaults=True),
                                {"name": n}, spec_hash(spec)) for n in ("web", "api")], source="t", actor="test", now=1.0)
        st.nodes.assign([Placed("web", 1, "n1", "least reserved"), Placed("web", 2, "", "no node has zone=c"),
                         Placed("api", 1, "", "no node has zone=c"), Placed("api", 2, "", "no node has zone=c")])
    finally:
        st.close()
    rows = {r["name"]: r for r in as_json(db, "nodes")}
    n1, n2 = rows["n1"], rows["n2"]
    assert (n1["state"], n1["ready"], n1["holder"], n1["labels"], n1["engine"], n1["cpus"], n1["memory"]) == (
        "ready", True, "agent:h:1", {"zone": "a"}, "20.10.24", 2.0, 1 << 30)
    assert n1["replicas"] == [{"service": "web", "replica": 1}] and n1["heartbeat"] > 0
    assert (n2["state"], n2["ready"], n2["holder"]) == ("notready", False, "")  # no agent holds it
    assert cli(db, "cordon", "n1").returncode == 0
    assert {r["name"]: r["state"] for r in as_json(db, "nodes")}["n1"] == "cordoned"
    assert cli(db, "drain", "n1").returncode == 0
    assert {r["name"]: r["state"] for r in as_json(db, "nodes")}["n1"] == "draining"
    assert cli(db, "uncordon", "n1").returncode == 0
    assert {r["name"]: r["state"] for r in as_json(db, "nodes")}["n1"] == "ready"
    for verb in ("cordon", "uncordon", "drain"):
        bad = cli(db, verb, "nope")
        assert bad.returncode == 2 and "no node named nope" in bad.stderr
    assert "n1" in cli(db, "nodes", "-o", "wide").stdout
    placement = as_json(db, "describe", "web")["placement"]
    assert placement == {"assignments": [{"replica": 1, "node": "n1", "reason": "least reserved"}],
                         "pending": "replica 2 cannot be placed: no node has zone=c"}
    rows = {r["name"]: r for r in as_json(db, "status")}
    assert rows["web"]["state"] == "Pending" and "cannot be placed" in rows["web"]["message"]  # never ran
    assert (rows["api"]["state"], rows["api"]["reason"]) == ("Pending", "Unplaceable")
    assert rows["api"]["message"] == "replica 1 cannot be placed: no node has zone=c"
    history = as_json(db, "history", "--type", "NodeRegistered")
    assert len(history) == 2
    plain = cli(db, "run")  # a host-wide controller beside node agents: refused before it opens the engine
    assert plain.returncode == 2 and "run --node NAME" in plain.stderr
    assert cli(db, "run", "--node", "bad name").returncode == 2
    assert "expected KEY=VALUE" in cli(db, "run", "--node", "n9", "--node-label", "novalue").stderr
