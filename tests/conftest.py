"""The world every test lives in: the collection importable, a real Docker engine, a base image.

Nothing here is mocked. Fixtures that need a service start it or fail with the reason.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
OUTPUT = REPO / "tests" / "output"
FIXTURES = REPO / "tests" / "fixtures"
BASE_IMAGE = os.environ.get("MADENGINE_TEST_BASE_IMAGE", "madengine/base:bookworm")


def _collections_dir() -> Path:
    """tests/output/collections/ansible_collections/madengine/core -> the repository."""
    if REPO.parent.name == "madengine" and REPO.parent.parent.name == "ansible_collections":
        return REPO.parent.parent.parent  # already inside a collection tree (ansible-test)
    top = OUTPUT / "collections"
    link = top / "ansible_collections" / "madengine" / "core"
    if not link.is_symlink():
        link.parent.mkdir(parents=True, exist_ok=True)
        tmp = link.with_name(f".core.{os.getpid()}")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(REPO, target_is_directory=True)
        os.replace(tmp, link)
    return top


COLLECTIONS = _collections_dir()
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))
os.environ["ANSIBLE_COLLECTIONS_PATH"] = str(COLLECTIONS)
VENV_BIN = str(Path(sys.executable).parent)
if VENV_BIN not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = VENV_BIN + os.pathsep + os.environ.get("PATH", "")


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def collections_path() -> Path:
    return COLLECTIONS


@pytest.fixture(scope="session")
def docker_client():
    """A client of the real engine; the session fails clearly when none runs."""
    import docker

    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # noqa: BLE001 - the reason is reported, not hidden
        pytest.fail(f"no Docker engine answers ({exc}); start one with tools/setup-host")
    return client


@pytest.fixture(scope="session")
def base_image(docker_client) -> str:
    """The local base image (Debian minbase + python3 + numpy), made once when missing."""
    import docker

    try:
        docker_client.images.get(BASE_IMAGE)
        return BASE_IMAGE
    except docker.errors.ImageNotFound:
        pass
    lock = OUTPUT / "base-image.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as fh:
        import fcntl

        fcntl.flock(fh, fcntl.LOCK_EX)  # several test processes may want it at once
        try:
            docker_client.images.get(BASE_IMAGE)
        except docker.errors.ImageNotFound:
            subprocess.run(
                [shutil.which("ansible-playbook") or "ansible-playbook",
                 "-i", str(REPO / "inventories/local/hosts.yml"),
                 str(REPO / "playbooks/base_image.yml"), "-e", f"madengine_base_image={BASE_IMAGE}"],
                check=True, env=os.environ.copy())
    return BASE_IMAGE
