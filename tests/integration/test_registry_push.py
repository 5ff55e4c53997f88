"""Pushing to a real registry (docker-registry with htpasswd auth): names, digests, faults, reuse."""
from __future__ import annotations

import json
import socket
import threading
import uuid
from pathlib import Path

import pytest

from ansible_collections.madengine.core.plugins.module_utils._build import CONTENT_HASH_LABEL, build_images
from ansible_collections.madengine.core.plugins.module_utils._errors import BuildError, RunError
from ansible_collections.madengine.core.plugins.module_utils._registry import (
    pull_image, registry_image_name, remote_image)

pytestmark = [pytest.mark.docker, pytest.mark.registry]


class Package:
    """A MAD package whose images (local tags and pulled copies) are removed after the test."""

    def __init__(self, root: Path, client, base_image: str):
        self.root = root
        self.client = client
        self.base = base_image
        self.token = uuid.uuid4().hex[:8]
        (root / "docker").mkdir(parents=True)
        self.image_ids: set = set()

    def model(self, name: str, body: str = "") -> dict:
        (self.root / "docker" / f"{name}.Dockerfile").write_text(
            f"FROM {self.base}\nRUN echo {self.token}-{name} > /token\n{body}")
        return {"name": f"regtest-{self.token}-{name}", "dockerfiles": [f"docker/{name}.Dockerfile"],
                "dockercontext": "docker"}

    def credentials(self, entries: dict) -> None:
        (self.root / "credential.json").write_text(json.dumps(entries))

    def build(self, models, **kwargs) -> dict:
        outcome = build_images(str(self.root), models, {}, str(self.root / "out"), parallel=1, **kwargs)
        self.image_ids.update(r["image_id"] for r in outcome["builds"] if r.get("image_id"))
        return outcome

    def cleanup(self) -> None:
        for image_id in self.image_ids:
            try:
                self.client.api.remove_image(image_id, force=True)
            except Exception:  # noqa: BLE001 - already gone
                pass


@pytest.fixture
def package(tmp_path, docker_client, base_image):
    pkg = Package(tmp_path / "mad", docker_client, base_image)
    yield pkg
    pkg.cleanup()


def login_of(registry: dict) -> dict:
    return {registry["host"]: {"username": registry["username"], "password": registry["password"]}}


def auth_of(registry: dict) -> dict:
    return {"username": registry["username"], "password": registry["password"]}


def test_a_push_logs_in_tags_pushes_and_records_the_digest(package, registry, docker_client):
    package.credentials(login_of(registry))
    outcome = package.build([package.model("pushed")], registry=registry["host"])
    [record] = outcome["builds"]
    assert outcome["error"] is None, outcome["error"]
    assert record["registry"] == registry["host"]
    assert record["registry_image"] == f"{registry['host']}/{record['image']}"
    assert record["registry_digest"].startswith("sha256:") and record["pushed"] is True
    remote = remote_image(record["registry_image"], auth_of(registry), insecure=True)
    assert remote["digest"] == record["registry_digest"]
    assert remote["labels"][CONTENT_HASH_LABEL] == record["content_hash"]
    assert remote["config_digest"] == record["image_id"]
    manifest = outcome["manifest"]
    assert manifest["registry"] == registry["host"]
    assert manifest["built_images"][record["image"]]["registry_digest"] == record["registry_digest"]
    assert manifest["summary"]["successful_pushes"][0]["digest"] == record["registry_digest"]
    assert registry["password"] not in json.dumps(outcome["builds"]) + json.dumps(manifest)

    again = package.build([package.model("pushed")], registry=registry["host"])
    assert again["builds"][0]["skipped_unchanged"] is True and again["builds"][0]["pushed"] is False
    assert again["changed"] is False


def test_a_credential_repository_goes_into_the_pushed_name(package, registry):
    entry = login_of(registry)
    entry[registry["host"]]["repository"] = "team/mad"
    package.credentials(entry)
    [record] = package.build([package.model("repo")], registry=registry["host"])["builds"]
    assert record["registry_image"] == f"{registry['host']}/team/mad:{record['image']}"
    assert record.get("push_error") is None and record["registry_digest"]


def test_pull_by_the_recorded_digest_gives_the_built_image(package, registry, docker_client):
    package.credentials(login_of(registry))
    [record] = package.build([package.model("pull")], registry=registry["host"])["builds"]
    docker_client.api.remove_image(record["image_id"], force=True)
    image, digest = pull_image(docker_client, record["registry_image"], record["registry_digest"], auth_of(registry))
    assert image.id == record["image_id"] and digest == record["registry_digest"]


def test_pulling_a_digest_the_registry_does_not_have_is_a_run_error_saying_so(registry, docker_client):
    missing = "sha256:" + "0" * 64
    with pytest.raises(RunError) as caught:
        pull_image(docker_client, f"{registry['host']}/regtest-none", missing, auth_of(registry))
    assert missing in caught.value.message and registry["host"] in caught.value.message
    assert registry["password"] not in caught.value.message


def test_a_wrong_password_is_an_authentication_error_naming_the_registry_never_the_secret(package, registry):
    wrong = "wrong-" + uuid.uuid4().hex
    package.credentials({registry["host"]: {"username": registry["username"], "password": wrong}})
    outcome = package.build([package.model("denied")], registry=registry["host"])
    message = outcome["error"].message
    assert isinstance(outcome["error"], BuildError) and outcome["error"].exit_code == 2
    assert registry["host"] in message and "authentication failed" in message
    assert wrong not in message and wrong not in json.dumps(outcome["builds"]) + json.dumps(outcome["manifest"])
    assert outcome["builds"][0]["status"] == "FAILURE"


def test_the_image_stays_usable_when_the_registry_is_down(package, registry_factory, docker_client):
    server = registry_factory(username=None)
    server.stop()
    outcome = package.build([package.model("down1"), package.model("down2")], registry=server.host)
    assert [r["status"] for r in outcome["builds"]] == ["SUCCESS", "SUCCESS"]
    for record in outcome["builds"]:
        assert server.host in record["push_error"] and "registry_digest" not in record
        assert docker_client.api.inspect_image(record["image"])["Id"] == record["image_id"]
    assert len(outcome["manifest"]["built_images"]) == 2
    assert len(outcome["manifest"]["summary"]["failed_pushes"]) == 2
    assert outcome["error"].exit_code == 2 and "failed to push" in outcome["error"].message


class CuttableProxy:
    """A TCP relay to the registry that goes down right after the first image manifest is stored."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.host = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.sockets: list = []
        self.down = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.down.is_set():
            try:
                client, _address = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self.sockets += [client, upstream]
            manifest_put = threading.Event()
            threading.Thread(target=self._pump, args=(client, upstream, manifest_put, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, manifest_put, False), daemon=True).start()

    def _pump(self, source, sink, manifest_put, from_client):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if from_client and data.startswith(b"PUT /v2/") and b"/manifests/" in data.split(b"\r\n", 1)[0]:
                    manifest_put.set()
                sink.sendall(data)
                if not from_client and manifest_put.is_set():
                    self.cut()
                    break
        except OSError:
            pass

    def cut(self):
        self.down.set()
        for sock in [self.listener] + self.sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


def test_a_registry_going_down_during_pushes_fails_only_the_later_pushes(package, registry, docker_client):
    proxy = CuttableProxy(int(registry["host"].rsplit(":", 1)[1]))
    try:
        package.credentials({proxy.host: {"username": registry["username"], "password": registry["password"]}})
        outcome = package.build([package.model("first"), package.model("second")], registry=proxy.host)
    finally:
        proxy.cut()
    first, second = outcome["builds"]
    assert first["registry_digest"].startswith("sha256:") and "push_error" not in first
    assert second["status"] == "SUCCESS" and proxy.host in second["push_error"]
    assert docker_client.api.inspect_image(second["image"])["Id"] == second["image_id"]
    summary = outcome["manifest"]["summary"]
    assert [p["image"] for p in summary["successful_pushes"]] == [first["image"]]
    assert [p["image"] for p in summary["failed_pushes"]] == [second["image"]]
    assert outcome["error"].exit_code == 2
    # What did push is still reachable by digest through the registry itself.
    pushed = first["registry_image"].replace(proxy.host, registry["host"])
    assert remote_image(pushed, auth_of(registry), insecure=True)["digest"] == first["registry_digest"]


def test_an_image_the_registry_already_has_is_not_built_again(package, registry, docker_client):
    package.credentials(login_of(registry))
    models = [package.model("reuse")]
    [first] = package.build(models, registry=registry["host"])["builds"]
    docker_client.api.remove_image(first["image_id"], force=True)  # every local tag of it
    outcome = package.build(models, registry=registry["host"])
    [again] = outcome["builds"]
    assert again["skipped_unchanged"] is True and again["pushed"] is False
    assert again["registry_digest"] == first["registry_digest"] and again["image_id"] == first["image_id"]
    assert not docker_client.api.images(name=first["image"])  # nothing was built
    assert outcome["changed"] is False and outcome["error"] is None


def test_registry_names_use_the_credential_repository_as_upstream_does():
    assert registry_image_name("ci-a_b", "127.0.0.1:5000", {"repository": "x"}) == "127.0.0.1:5000/x:ci-a_b"
