"""Services integration tests share: a real image registry (Debian's docker-registry).

The SDK silently sends the logins of ``$DOCKER_CONFIG/config.json``; every test process
gets a private, empty DOCKER_CONFIG so an earlier ``docker login`` cannot make a test pass.
"""
from __future__ import annotations

import io
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

_DOCKER_CONFIG = tempfile.mkdtemp(prefix="madengine-test-dockercfg-")
Path(_DOCKER_CONFIG, "config.json").write_text("{}\n")
os.environ["DOCKER_CONFIG"] = _DOCKER_CONFIG

REGISTRY_BINARY = shutil.which("docker-registry") or "/usr/bin/docker-registry"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Registry:
    """One docker-registry process on 127.0.0.1 with htpasswd (bcrypt) auth, or none."""

    def __init__(self, root: Path, username: str | None = "madtest", password: str | None = None):
        self.root = root
        self.username = username
        self.password = password or ("pw-" + os.urandom(8).hex()) if username else None
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"
        self.process: subprocess.Popen | None = None

    def start(self) -> "Registry":
        if not os.path.exists(REGISTRY_BINARY):
            pytest.fail("docker-registry is not installed: `apt-get install -y docker-registry`")
        (self.root / "storage").mkdir(parents=True, exist_ok=True)
        auth = ""
        if self.username:
            import bcrypt

            hashed = bcrypt.hashpw(self.password.encode(), bcrypt.gensalt(rounds=5)).decode()
            (self.root / "htpasswd").write_text(f"{self.username}:{hashed}\n")
            auth = f"auth:\n  htpasswd:\n    realm: madengine-test\n    path: {self.root / 'htpasswd'}\n"
        (self.root / "config.yml").write_text(
            "version: 0.1\nlog:\n  level: warn\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.root / 'storage'}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.host}\n" + auth)
        log = open(self.root / "registry.log", "wb")  # noqa: SIM115 - kept open while it runs
        self.process = subprocess.Popen([REGISTRY_BINARY, "serve", str(self.root / "config.yml")],
                                        stdout=log, stderr=subprocess.STDOUT)
        expected = 401 if self.username else 200
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"docker-registry exited: {(self.root / 'registry.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/v2/", timeout=2) as answer:
                    status = answer.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            except OSError:
                time.sleep(0.1)
                continue
            if status == expected:
                return self
            time.sleep(0.1)
        self.stop()
        pytest.fail(f"docker-registry on {self.host} did not answer /v2/ with {expected}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def info(self) -> dict:
        return {"url": self.url, "host": self.host, "username": self.username, "password": self.password}


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    """A registry with htpasswd auth for the whole session: {url, host, username, password}."""
    server = Registry(tmp_path_factory.mktemp("registry")).start()
    yield server.info()
    server.stop()


@pytest.fixture
def registry_factory(tmp_path_factory):
    """Start extra registries for one test (e.g. one to bring down); all stop afterwards."""
    started = []

    def start(username: str | None = "madtest", password: str | None = None) -> Registry:
        server = Registry(tmp_path_factory.mktemp("registry-extra"), username, password).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def labelled_image(docker_client, base_image):
    """``labelled_image(area)``: an image FROM the base image for one test area (its label
    keeps it apart from the others), built once and removed when the session ends."""
    made: dict = {}

    def make(area: str) -> str:
        if area not in made:
            tag = f"madengine-{area}-test:{secrets.token_hex(3)}"
            dockerfile = f"FROM {base_image}\nLABEL madengine.test={area}\n".encode()
            docker_client.images.build(fileobj=io.BytesIO(dockerfile), tag=tag, rm=True, pull=False)
            made[area] = tag
        return made[area]

    yield make
    for tag in made.values():
        docker_client.images.remove(tag, noprune=False)
