"""What the build_host role leaves behind: the image in the engine, the manifest on the controller.

Run by molecule's testinfra verifier; ``host`` is the build host container, while this test
process runs on the controller (the manifest is read from the controller's disk).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

MODEL = "mol_build_host"
IMAGE = "ci-mol_build_host_mol_build_host"
CONTENT_HASH_LABEL = "org.madengine.content-hash"
MANIFEST = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent")) / "build_manifest.json"
# Asks the engine through the build host's own docker SDK, as the role's modules do.
IMAGE_QUERY = (
    "python3 -c 'import docker, json; i = docker.from_env().images.get(\"{image}\"); "
    "print(json.dumps({{\"id\": i.id, \"labels\": i.labels}}))'"
)


@pytest.fixture(scope="module")
def manifest() -> dict:
    assert MANIFEST.is_file(), f"the role wrote no manifest on the controller at {MANIFEST}"
    return json.loads(MANIFEST.read_text())


def test_manifest_on_the_controller_records_the_built_image(manifest):
    assert list(manifest["built_images"]) == [IMAGE]
    assert manifest["built_models"][IMAGE]["name"] == MODEL
    assert [b["model"] for b in manifest["summary"]["successful_builds"]] == [MODEL]
    assert manifest["summary"]["failed_builds"] == []


def test_manifest_is_written_on_the_controller_only(host):
    assert not host.file(str(MANIFEST)).exists


def test_image_is_in_the_engine_with_the_recorded_content_hash(host, manifest):
    record = manifest["built_images"][IMAGE]
    image = json.loads(host.check_output(IMAGE_QUERY.format(image=IMAGE)))
    assert image["id"] == record["image_id"]
    assert image["labels"][CONTENT_HASH_LABEL] == record["content_hash"]


def test_build_log_is_on_the_build_host(host, manifest):
    log = host.file(manifest["built_images"][IMAGE]["log_file"])
    assert log.is_file
    assert log.size > 0
