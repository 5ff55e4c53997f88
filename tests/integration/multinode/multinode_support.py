"""Helpers of the multi-node tests: the driver and ansible-playbook as child processes, a tiny package.

Models print ``performance: 1 ops`` (``slow`` sleeps first) and carry a per-session token in
their names (``mn<token>_one``), so image, container and log names never meet another test
session's.
"""
from __future__ import annotations

import csv
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List

REPO = Path(__file__).resolve().parents[3]
TOKEN = secrets.token_hex(3)
# The driver links the collection under $XDG_CACHE_HOME; a private one keeps another checkout's
# driver, run at the same time on this machine, from pointing that link elsewhere.
CACHE = tempfile.mkdtemp(prefix="madengine-mn-cache-")
FAST = 'echo "model $1 on node $MADENGINE_TEST_NODE"\necho "performance: 1 ops"\n'
SLOW = 'sleep "$1"\necho "slow on node $MADENGINE_TEST_NODE"\necho "performance: 2 ops"\n'


def madengine(*args: str, cwd: Path, env: Dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess:
    """``madengine ARGS`` from this checkout, in a child process, as a user runs it."""
    merged = dict(env, PYTHONPATH=os.pathsep.join([str(REPO / "driver"), env.get("PYTHONPATH", "")]), COLUMNS="250",
                  XDG_CACHE_HOME=CACHE)
    return subprocess.run([sys.executable, "-m", "madengine", *args], cwd=cwd, env=merged,
                          capture_output=True, text=True, timeout=timeout, check=False)


def ansible_playbook(inventory: Path, extravars: Dict[str, str], *, cwd: Path, env: Dict[str, str],
                     playbook: Path = REPO / "playbooks" / "run.yml", limit: str = "",
                     timeout: int = 300) -> subprocess.CompletedProcess:
    """``ansible-playbook -i INVENTORY PLAYBOOK -e k=v ...``, as an infra team or AWX runs it."""
    argv = [shutil.which("ansible-playbook") or "ansible-playbook", "-i", str(inventory), str(playbook)]
    argv += ["--limit", limit] if limit else []
    for key, value in extravars.items():
        argv += ["-e", f"{key}={value}"]
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def perf_rows(path: Path) -> List[Dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def explain(done: subprocess.CompletedProcess) -> str:
    return f"exit {done.returncode}\n--- stdout\n{done.stdout[-5000:]}\n--- stderr\n{done.stderr[-3000:]}"


def node_files(cluster, node) -> List[str]:
    """Files under the node's madengine folder, relative to it (what travelled and stayed)."""
    container = cluster.client.containers.get(node.container)
    code, out = container.exec_run(["sh", "-c", "cd /root/.madengine 2>/dev/null && find . -type f | sort"])
    assert code == 0, out
    return [line[2:] for line in out.decode().splitlines()]


class Package:
    """A MAD package in a temporary folder: models ``one``, ``two``, ``three`` (fast), ``slow``, ``after``."""

    def __init__(self, root: Path, prefix: str):
        self.root = root
        self.prefix = prefix
        self.manifest = root / "build_manifest.json"
        (root / "docker").mkdir(parents=True)
        (root / "docker" / "mn.Dockerfile").write_text("FROM madengine/base:bookworm\n")
        for folder, script in (("fast", FAST), ("slow", SLOW), ("unused", FAST)):
            (root / "scripts" / folder).mkdir(parents=True)
            (root / "scripts" / folder / "run.sh").write_text(script)
        models = [self.entry(short, "fast", short) for short in ("one", "two", "three")]
        models += [self.entry("slow", "slow", "5"), self.entry("after", "fast", "after")]
        (root / "models.json").write_text(json.dumps(models, indent=1))
        (root / "credential.json").write_text(json.dumps({"unrelated.example.com": {"username": "u", "password": "never-sent"}}))

    def entry(self, short: str, folder: str, args: str) -> dict:
        return {"name": self.name(short), "dockerfile": "docker/mn", "scripts": f"scripts/{folder}/run.sh",
                "args": args, "n_gpus": "0", "tags": [self.prefix, f"{self.prefix}_{folder}"]}

    def name(self, short: str) -> str:
        return f"{self.prefix}_{short}"

    def names(self, *shorts: str) -> str:
        return ",".join(self.name(s) for s in shorts)

    def log(self, short: str) -> str:
        return f"{self.name(short)}_mn.run.live.log"


def remove_leftovers(client, prefix: str) -> None:
    """Containers and images of this session's models (a stopped node leaves its model's container)."""
    import docker

    for container in client.containers.list(all=True, filters={"label": "madengine.run=1"}):
        if container.labels.get("madengine.model", "").startswith(prefix):
            container.remove(force=True)
    # By reference, never by id: an image built from the same Dockerfile elsewhere has the same id.
    for image in client.images.list():
        for ref in image.tags + (image.attrs.get("RepoDigests") or []):
            if f"ci-{prefix}" in ref:
                try:
                    client.images.remove(ref, force=True)
                except docker.errors.ImageNotFound:
                    pass  # its last other reference took it already
