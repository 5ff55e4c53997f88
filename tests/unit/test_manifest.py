"""build_manifest.json: assembling from build records, writing atomically, reading any madengine's."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from ansible_collections.madengine.core.plugins.module_utils import _manifest
from ansible_collections.madengine.core.plugins.module_utils._errors import InvalidInputError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "manifests"


def record(model, status="SUCCESS", **extra):
    image = f"ci-{model}_{model}"
    base = {"image": image, "model": model, "docker_image": image, "dockerfile": f"docker/{model}.Dockerfile",
            "base_docker": "b", "docker_sha": "", "build_duration": 1.5, "build_command": "docker build ...",
            "log_file": f"/o/{model}.build.live.log", "gpu_vendor": "AMD", "content_hash": "h", "image_id": "i",
            "status": status, "skipped_unchanged": False}
    base.update(extra)
    return base


def test_failed_images_are_only_in_the_summary_and_pushes_are_accounted():
    records = [record("ok", registry="r:5", registry_image="r:5/ci-ok_ok", registry_digest="sha256:1"),
               record("bad", status="FAILURE", error="boom"),
               record("nopush", registry="r:5", registry_image="r:5/ci-nopush_nopush", push_error="down")]
    models = {"ci-ok_ok": {"name": "ok", "cred": "AMD_GITHUB", "custom": 1}, "ci-nopush_nopush": {"name": "nopush"}}
    manifest = _manifest.assemble_manifest(records, models, {"gpu_vendor": "AMD", "tools": [{"name": "x"}]}, "r:5")
    assert set(manifest["built_images"]) == {"ci-ok_ok", "ci-nopush_nopush"}
    assert "status" not in manifest["built_images"]["ci-ok_ok"]
    assert manifest["built_models"]["ci-ok_ok"]["custom"] == 1
    assert manifest["credentials_required"] == ["AMD_GITHUB"]
    summary = manifest["summary"]
    assert summary["failed_builds"] == [{"model": "bad", "image": "ci-bad_bad", "dockerfile": "docker/bad.Dockerfile",
                                         "error": "boom"}]
    assert [p["image"] for p in summary["failed_pushes"]] == ["ci-nopush_nopush"]
    assert summary["successful_pushes"][0]["digest"] == "sha256:1"
    assert summary["total_models"] == 3 and summary["total_build_time"] == 4.5
    assert manifest["context"]["tools"] == [{"name": "x"}] and manifest["context"]["guest_os"] == "UBUNTU"
    assert "deployment_config" not in manifest


def test_a_slurm_context_records_where_the_images_are_meant_to_run():
    manifest = _manifest.assemble_manifest([], {}, {"slurm": {"partition": "gpu"}})
    assert manifest["deployment_config"] == {"target": "slurm", "slurm": {"partition": "gpu"}}


def test_writing_is_atomic_and_reads_back(tmp_path):
    path = tmp_path / "sub" / "build_manifest.json"
    manifest = _manifest.assemble_manifest([record("ok")], {}, {})
    _manifest.write_manifest(manifest, str(path))
    assert _manifest.read_manifest(str(path))["built_images"] == manifest["built_images"]
    assert [p.name for p in path.parent.iterdir()] == ["build_manifest.json"]


def test_an_upstream_manifest_is_read_with_unknown_keys_kept():
    manifest = _manifest.read_manifest(str(FIXTURES / "upstream_build_manifest.json"))
    assert manifest["registry"] == ""
    assert manifest["push_failures"] == []
    plans = _manifest.plan_runs(manifest)
    assert [p["image"] for p in plans] == ["ci-dummy_dummy.ubuntu.amd", "ci-dummy2_dummy.ubuntu.amd"]
    assert plans[0]["model"]["name"] == "dummy"
    assert plans[1]["build"]["registry_image"] == "localhost:5000/ci-dummy2_dummy.ubuntu.amd"


def test_a_run_plan_names_a_model_even_without_built_models():
    plans = _manifest.plan_runs(_manifest.validate_manifest(
        {"built_images": {"ci-a_a": {"docker_image": "ci-a_a", "model": "a"}}}))
    assert plans == [{"image": "ci-a_a", "build": {"docker_image": "ci-a_a", "model": "a"}, "model": {"name": "a"}}]


@pytest.mark.parametrize("name, expected", [
    ("not_json.json", "not JSON"),
    ("a_list.json", "JSON list"),
    ("perf_like.json", "no \"built_images\""),
    ("entry_not_object.json", "not an object"),
    ("entry_without_image.json", "names no docker_image"),
    ("models_not_object.json", "\"built_models\""),
])
def test_bad_manifests_say_what_was_expected(name, expected):
    with pytest.raises(InvalidInputError) as caught:
        _manifest.read_manifest(str(FIXTURES / "bad" / name))
    assert expected in caught.value.message
    assert "built_images" in caught.value.message and name in caught.value.message
    assert caught.value.exit_code == 4


def test_a_missing_manifest_says_to_build_first(tmp_path):
    with pytest.raises(InvalidInputError) as caught:
        _manifest.read_manifest(os.path.join(str(tmp_path), "build_manifest.json"))
    assert "madengine build" in caught.value.message
