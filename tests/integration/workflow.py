"""Helpers of the end-to-end workflow tests: the real driver, real ansible-playbook, fixture packages.

Nothing here is a fixture: test modules build their module-scoped fixtures from these, so
one built image serves every test of a module.

* :func:`madengine` runs ``python -m madengine ...`` (the driver from this checkout) in a
  folder, as a user would.
* :func:`ansible_playbook` runs a playbook of the collection with ``ansible-playbook`` and
  plain ``-e key=value`` extra-vars, as an infra team or AWX would.
* :class:`WorkflowPackage` copies a package of ``tests/fixtures/workflow_packages/`` into a
  test folder with a per-session token in every model name (``wf_ok`` -> ``wf<token>_ok``), so
  concurrent test sessions never share image or container names, and removes the images
  and containers of those names afterwards.
"""
from __future__ import annotations

import csv
import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

REPO = Path(__file__).resolve().parents[2]
PACKAGES = REPO / "tests" / "fixtures" / "workflow_packages"
PERF_COLUMNS = (
    "model,n_gpus,nnodes,gpus_per_node,training_precision,pipeline,args,tags,docker_file,base_docker,"
    "docker_sha,docker_image,git_commit,machine_name,deployment_type,launcher,gpu_architecture,"
    "performance,metric,relative_change,status,build_duration,test_duration,dataname,"
    "data_provider_type,data_size,data_download_duration,build_number,additional_docker_run_options"
).split(",")
# What differs between two runs of the same models: clocks and measured numbers.
TIMING_COLUMNS = ("build_duration", "test_duration")


def driver_env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(REPO / "driver"), env.get("PYTHONPATH", "")] if p)
    env["COLUMNS"] = "250"  # tables print whole lines, so messages can be found in them
    env.update(extra or {})
    return env


def madengine(*args: str, cwd: Path, env: Optional[Dict[str, str]] = None,
              timeout: int = 300) -> subprocess.CompletedProcess:
    """``madengine ARGS`` in ``cwd``: the driver's own entry point, in a child process."""
    return subprocess.run([sys.executable, "-m", "madengine", *args], check=False, cwd=cwd, env=driver_env(env),
                          capture_output=True, text=True, timeout=timeout)


def ansible_playbook(playbook: str, extravars: Dict[str, str], *, cwd: Path,
                     env: Optional[Dict[str, str]] = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """``ansible-playbook -i inventories/local/hosts.yml playbooks/PLAYBOOK -e k=v ...``."""
    argv = [shutil.which("ansible-playbook") or "ansible-playbook",
            "-i", str(REPO / "inventories" / "local" / "hosts.yml"), str(REPO / "playbooks" / playbook)]
    for key, value in extravars.items():
        argv += ["-e", f"{key}={value}"]
    merged = dict(os.environ, **(env or {}))
    return subprocess.run(argv, check=False, cwd=cwd, env=merged, capture_output=True, text=True, timeout=timeout)


def read_perf_csv(path: Path) -> Tuple[List[str], List[Dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows = [dict(zip(header, row)) for row in reader]
    return header, rows


def explain(done: subprocess.CompletedProcess) -> str:
    return f"exit {done.returncode}\n--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}"


class WorkflowPackage:
    """A copy of a fixture package whose model names carry a token unique to this session."""

    def __init__(self, source: str, root: Path, token: Optional[str] = None):
        self.token = token or secrets.token_hex(3)
        self.root = root
        shutil.copytree(PACKAGES / source, root)
        models = json.loads((root / "models.json").read_text())
        self.names: Dict[str, str] = {}
        for model in models:
            self.names[model["name"]] = model["name"].replace("wf_", f"wf{self.token}_", 1)
            model["name"] = self.names[model["name"]]
        (root / "models.json").write_text(json.dumps(models, indent=2))
        self.models = models

    def name(self, base: str) -> str:
        """The model name of this copy for the fixture's name (``wf_ok`` -> ``wf1a2b3c_ok``)."""
        return self.names[base]

    def image(self, base: str, dockerfile: str) -> str:
        return f"ci-{self.name(base).lower()}_{dockerfile}"

    def write_dockerfile_marker(self, dockerfile: str, marker: str) -> None:
        """Make the image content unique: a file /wf-marker holding ``marker``."""
        path = self.root / "docker" / f"{dockerfile}.Dockerfile"
        path.write_text(path.read_text() + f"RUN echo {marker} > /wf-marker\n")

    def cleanup(self, client) -> None:
        """Remove the containers and image tags of this copy's models (never anything else)."""
        for container in containers_of(client, self):
            try:
                client.api.remove_container(container["Id"], force=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
        names = set(self.names.values())
        for image in client.api.images():
            for tag in image.get("RepoTags") or []:
                repo = tag.rsplit(":", 1)[0]
                if any(f"ci-{name.lower()}_" in repo for name in names):
                    try:
                        client.api.remove_image(tag, force=True)
                    except Exception:  # noqa: BLE001 - already gone
                        pass


def model_containers(client, model_name: str) -> list:
    """The engine's containers madengine made for one model (a run leaves none behind)."""
    return client.containers.list(all=True, filters={"label": ["madengine.run=1", f"madengine.model={model_name}"]})


def containers_of(client, package: "WorkflowPackage") -> List[dict]:
    """The engine's containers of this package's models (one list call: other sessions'
    containers may come and go meanwhile)."""
    names = set(package.names.values())
    return [c for c in client.api.containers(all=True, filters={"label": "madengine.run=1"})
            if (c.get("Labels") or {}).get("madengine.model") in names]


def normalised(rows: List[Dict[str, str]], *paths: Path) -> List[Dict[str, str]]:
    """Rows without the columns that legitimately differ between runs, with run folders masked."""
    out = []
    for row in rows:
        clean = {}
        for key, value in row.items():
            if key in TIMING_COLUMNS:
                continue
            for path in paths:
                value = value.replace(str(path), "<out>")
            clean[key] = value
        out.append(clean)
    return out


class SecretWatch:
    """While commands run: look for secrets in every process's argv and in the files of
    ansible-runner's private data dirs (the driver deletes them after each run) and
    Ansible's local temp dir, every ``interval`` seconds. ``hits`` holds (where, path, secret).
    """

    def __init__(self, secrets_: List[str], interval: float = 0.05):
        import tempfile
        import threading

        self.secrets = [s.encode() for s in secrets_]
        self.interval = interval
        self.roots = [Path(tempfile.gettempdir()), Path.home() / ".ansible" / "tmp"]
        self.hits: set = set()
        self.files_seen: set = set()
        self.polls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> "SecretWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(self.interval)
        self.poll()

    def _check(self, data: bytes, where: str, path: str) -> None:
        for secret in self.secrets:
            if secret in data:
                self.hits.add((where, path, secret.decode()))

    def hits_of(self, secret: str) -> list:
        """Sorted (where, path) of the places ``secret`` was seen."""
        return sorted((where, path) for where, path, value in self.hits if value == secret)

    def poll(self) -> None:
        self.polls += 1
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    self._check(fh.read(), "argv", fh.name)
            except OSError:
                continue  # the process ended
        dirs = [p for p in self.roots[0].glob("madengine-runner-*") if p.is_dir()]
        dirs += [self.roots[1]] if self.roots[1].is_dir() else []
        for top in dirs:
            for dirpath, _dirs, files in os.walk(top):
                for name in files:
                    path = os.path.join(dirpath, name)
                    try:
                        info = os.stat(path)
                        key = (path, info.st_size, info.st_mtime_ns)
                        if key in self.files_seen:
                            continue
                        with open(path, "rb") as fh:
                            data = fh.read()
                    except OSError:
                        continue
                    self.files_seen.add(key)
                    self._check(data, "file", path)


def files_holding(secret: str, *roots: Path, skip: Tuple[str, ...] = ()) -> List[str]:
    """Every file under ``roots`` (names in ``skip`` left out) whose bytes contain ``secret``."""
    found = []
    needle = secret.encode()
    for root in roots:
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                if name in skip:
                    continue
                path = os.path.join(dirpath, name)
                try:
                    with open(path, "rb") as fh:
                        if needle in fh.read():
                            found.append(path)
                except OSError:
                    continue
    return found


TINY_IMAGE = "madengine-wf/busybox:1"
_TINY_APPLETS = ("sh", "cat", "echo", "env", "ls", "mkdir", "rm", "sleep", "kill", "true", "false")


def tiny_base_image(client) -> str:
    """A 2 MB base image (Debian's static busybox, ``bash`` running its sh), made once.

    Registry tests push their images: a small base keeps every push and pull quick.
    """
    import io
    import tarfile

    import docker

    try:
        client.images.get(TINY_IMAGE)
        return TINY_IMAGE
    except docker.errors.ImageNotFound:
        pass
    busybox = shutil.which("busybox") or "/bin/busybox"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for folder in ("bin", "tmp", "myworkspace"):
            info = tarfile.TarInfo(folder)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if folder == "tmp" else 0o755
            tar.addfile(info)
        tar.add(busybox, arcname="bin/busybox")
        for applet in _TINY_APPLETS:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info)
        wrapper = b'#!/bin/sh\nexec /bin/sh "$@"\n'
        info = tarfile.TarInfo("bin/bash")
        info.size, info.mode = len(wrapper), 0o755
        tar.addfile(info, io.BytesIO(wrapper))
    repository, tag = TINY_IMAGE.split(":")
    client.api.import_image_from_data(buffer.getvalue(), repository=repository, tag=tag,
                                      changes=['CMD ["/bin/sh"]', "ENV PATH=/bin"])
    return TINY_IMAGE
