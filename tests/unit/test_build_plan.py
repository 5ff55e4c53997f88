"""Planning: one job per (model, Dockerfile), build args, and models that cannot be built."""
from __future__ import annotations

import pytest

from ansible_collections.madengine.core.plugins.module_utils import _build

CREDS = {"AMD_GITHUB": {"username": "bot", "password": "s3cr3t-token"}}


@pytest.fixture
def mad_dir(tmp_path):
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "a.ubuntu.amd.Dockerfile").write_text(
        "# CONTEXT {'gpu_vendor': 'AMD'}\nFROM madengine/base:bookworm\n")
    (tmp_path / "docker" / "a.ubuntu.nvidia.Dockerfile").write_text(
        "# CONTEXT {'gpu_vendor': 'NVIDIA'}\nFROM madengine/base:bookworm\n")
    return tmp_path


def plan(mad_dir, models, context=None, creds=None, **kwargs):
    return _build.plan_jobs(str(mad_dir), models, context or {}, str(mad_dir / "out"), creds or {},
                            str(mad_dir / "credential.json"), **kwargs)


def test_build_args_join_context_args_credential_args_and_the_gpu_architecture(mad_dir):
    [job] = plan(mad_dir, [{"name": "m", "dockerfiles": ["docker/a.ubuntu.amd.Dockerfile"], "cred": "AMD_GITHUB"}],
                 {"docker_build_arg": {"X": 1}}, CREDS, gpu_architecture="gfx90a", environ={})
    assert job.build_args == {"X": "1", "MAD_SYSTEM_GPU_ARCHITECTURE": "gfx90a",
                              "AMD_GITHUB_USERNAME": "bot", "AMD_GITHUB_PASSWORD": "s3cr3t-token"}
    assert job.secret_args == {"AMD_GITHUB_USERNAME", "AMD_GITHUB_PASSWORD"}
    assert job.record["status"] == "SUCCESS"
    assert job.record["gpu_vendor"] == "AMD"


def test_the_context_gpu_architecture_wins_over_the_detected_one(mad_dir):
    [job] = plan(mad_dir, [{"name": "m", "dockerfiles": ["docker/a.ubuntu.amd.Dockerfile"]}],
                 {"docker_build_arg": {"MAD_SYSTEM_GPU_ARCHITECTURE": "gfx942"}}, gpu_architecture="gfx90a",
                 environ={})
    assert job.build_args["MAD_SYSTEM_GPU_ARCHITECTURE"] == "gfx942"


def test_mad_secrets_variables_of_the_build_host_become_masked_build_args(mad_dir):
    [job] = plan(mad_dir, [{"name": "m", "dockerfiles": ["docker/a.ubuntu.amd.Dockerfile"]}],
                 environ={"MAD_SECRETS_HFTOKEN": "hf_abc", "HOME": "/root"})
    assert job.build_args == {"MAD_SECRETS_HFTOKEN": "hf_abc"}
    options = _build.BuildOptions()
    assert "hf_abc" not in _build._build_command(job, options, "ci-m_a", "h")


def test_a_missing_credential_fails_only_that_model_with_what_to_add(mad_dir):
    jobs = plan(mad_dir, [{"name": "needs", "dockerfiles": ["docker/a.ubuntu.amd.Dockerfile"], "cred": "NOPE"},
                          {"name": "fine", "dockerfiles": ["docker/a.ubuntu.amd.Dockerfile"]}], creds=CREDS)
    assert [j.record["status"] for j in jobs] == ["FAILURE", "SUCCESS"]
    assert "credential 'NOPE'" in jobs[0].record["error"] and "AMD_GITHUB" in jobs[0].record["error"]
    assert "s3cr3t" not in jobs[0].record["error"]


def test_discovery_errors_become_the_model_failure(mad_dir):
    [job] = plan(mad_dir, [{"name": "m", "dockerfile": "docker/zz", "dockerfile_error": "no Dockerfile matches"}])
    assert job.record["status"] == "FAILURE"
    assert job.record["error"] == "no Dockerfile matches"
    assert job.record["image"] == "ci-m"


def test_hand_made_models_select_dockerfiles_by_context(mad_dir):
    jobs = plan(mad_dir, [{"name": "m", "dockerfile": "docker/a"}], {"gpu_vendor": "NVIDIA"})
    assert [j.record["dockerfile"] for j in jobs] == ["docker/a.ubuntu.nvidia.Dockerfile"]


def test_a_context_no_dockerfile_fits_lists_what_exists_and_the_context(mad_dir):
    [job] = plan(mad_dir, [{"name": "m", "dockerfile": "docker/a"}], {"gpu_vendor": "INTEL"})
    assert job.record["status"] == "FAILURE"
    assert "a.ubuntu.amd.Dockerfile" in job.record["error"] and "INTEL" in job.record["error"]


def test_a_dockerfile_gone_since_discovery_is_that_model_failure(mad_dir):
    [job] = plan(mad_dir, [{"name": "m", "dockerfiles": ["docker/gone.Dockerfile"]}])
    assert job.record["status"] == "FAILURE" and "does not exist" in job.record["error"]


def test_an_image_built_from_another_image_of_the_run_waits_for_it(mad_dir):
    (mad_dir / "docker" / "child.Dockerfile").write_text("FROM ci-parent_a.ubuntu.amd\n")
    jobs = plan(mad_dir, [{"name": "child", "dockerfiles": ["docker/child.Dockerfile"]},
                          {"name": "parent", "dockerfiles": ["docker/a.ubuntu.amd.Dockerfile"]}])
    waves = _build._waves(jobs)
    assert [[j.record["model"] for j in wave] for wave in waves] == [["parent"], ["child"]]
