"""A failed build in a manifest: what it keeps of its model, how tags pick it, the row it gives."""
from __future__ import annotations

import json

import pytest

from ansible_collections.madengine.core.plugins.module_utils._discover import plan_from_manifest
from ansible_collections.madengine.core.plugins.module_utils._errors import InvalidInputError
from ansible_collections.madengine.core.plugins.module_utils._manifest import assemble_manifest
from ansible_collections.madengine.core.plugins.module_utils._summary import gather


def record(model, status="SUCCESS", **extra):
    image = f"ci-{model}_m"
    base = {"image": image, "model": model, "docker_image": image, "dockerfile": "docker/m.Dockerfile",
            "base_docker": "b", "docker_sha": "", "build_duration": 1.0, "build_command": "docker build ...",
            "log_file": f"/o/{model}.build.live.log", "gpu_vendor": "AMD", "content_hash": "h",
            "image_id": "sha256:1", "status": status, "skipped_unchanged": False}
    base.update(extra)
    return base


MODELS = {
    "ci-good_m": {"name": "good", "tags": ["fast"], "n_gpus": "0", "scripts": "scripts/good/run.sh"},
    "ci-bad_m": {"name": "bad", "tags": ["fast", "broken"], "n_gpus": "2", "args": "--x 1",
                 "training_precision": "fp16"},
    "ci-other_m": {"name": "other", "tags": ["slow"], "n_gpus": "1"},
}


@pytest.fixture
def manifest_file(tmp_path):
    records = [record("good"), record("bad", status="FAILURE", error="boom"), record("other")]
    path = tmp_path / "build_manifest.json"
    path.write_text(json.dumps(assemble_manifest(records, MODELS, {})))
    return str(path)


def test_a_failed_build_keeps_the_model_fields_its_row_and_tags_need(manifest_file):
    [failed] = json.loads(open(manifest_file).read())["summary"]["failed_builds"]
    assert failed == {"model": "bad", "image": "ci-bad_m", "dockerfile": "docker/m.Dockerfile", "error": "boom",
                      "tags": ["fast", "broken"], "n_gpus": "2", "args": "--x 1", "training_precision": "fp16"}


@pytest.mark.parametrize(("tags", "runs", "failed"), [
    ([], ["good", "other"], ["bad"]),
    (["fast"], ["good"], ["bad"]),
    (["slow"], ["other"], []),
    (["good"], ["good"], []),
    (["broken"], [], ["bad"]),
    (["bad,other"], ["other"], ["bad"]),
], ids=["no-tags", "tag-of-both", "tag-of-another", "name-of-a-built-one", "tag-of-the-failed-only", "names"])
def test_tags_pick_failed_builds_like_built_images(manifest_file, tmp_path, tags, runs, failed):
    plan = plan_from_manifest(manifest_file, tags, mad_dir=str(tmp_path))
    assert [run["model"]["name"] for run in plan["runs"]] == runs
    assert [entry["model"] for entry in plan["failed_builds"]] == failed


def test_a_failed_build_of_an_older_manifest_is_picked_by_its_name(tmp_path):
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"built_images": {"ci-good_m": {"docker_image": "ci-good_m", "model": "good"}},
                                "built_models": {"ci-good_m": {"name": "good", "tags": ["fast"]}},
                                "summary": {"failed_builds": [{"model": "bad", "error": "boom"}]}}))
    assert plan_from_manifest(str(path), ["fast"], mad_dir=str(tmp_path))["failed_builds"] == []
    assert [f["model"] for f in plan_from_manifest(str(path), ["bad"], mad_dir=str(tmp_path))["failed_builds"]] == ["bad"]


def test_a_tag_that_matches_nothing_is_still_an_error(manifest_file, tmp_path):
    with pytest.raises(InvalidInputError, match="the tag 'nosuch' matches no model"):
        plan_from_manifest(manifest_file, ["nosuch"], mad_dir=str(tmp_path))


def test_the_failure_row_of_a_failed_build_carries_the_models_columns(manifest_file, tmp_path):
    plan = plan_from_manifest(manifest_file, ["broken"], mad_dir=str(tmp_path))
    gathered = gather([], build_records=plan["failed_builds"], defaults={})
    row = gathered.results[0].row
    assert (row["model"], row["status"], row["reason"]) == ("bad", "FAILURE", "build failed: boom")
    assert (row["tags"], row["n_gpus"], row["args"], row["training_precision"]) == ("fast,broken", "2", "--x 1", "fp16")
    assert row["docker_file"] == "docker/m.Dockerfile" and row["docker_image"] == "ci-bad_m"
    assert set(gathered.build_failures[0]) == {"model", "image", "dockerfile", "error", "build_duration",
                                               "log_file", "host"}
