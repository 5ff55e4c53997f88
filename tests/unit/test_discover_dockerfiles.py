"""Dockerfile selection: ``<prefix>.*`` kept by the ``# CONTEXT`` line of its first 5 lines."""
from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.madengine.core.plugins.module_utils._discover import discover
from ansible_collections.madengine.core.plugins.module_utils._dockerfiles import DockerfileFinder, fits, select_dockerfiles

PACKAGE = Path(__file__).resolve().parents[1] / "fixtures" / "mad_package"


@pytest.fixture
def mad(tmp_path: Path) -> Path:
    docker = tmp_path / "docker"
    docker.mkdir()
    files = {
        "app.ubuntu.amd.Dockerfile": "# CONTEXT {'gpu_vendor': 'AMD', 'guest_os': 'UBUNTU'}\nFROM base\n",
        "app.ubuntu.nvidia.Dockerfile": "# CONTEXT {'gpu_vendor': 'NVIDIA', 'guest_os': 'UBUNTU'}\nFROM base\n",
        "app.centos.amd.Dockerfile": "#\n#\n#\n#\n# CONTEXT {'gpu_vendor': 'AMD', 'guest_os': 'CENTOS'}\nFROM base\n",
        "late.ubuntu.amd.Dockerfile": "#\n#\n#\n#\n#\n# CONTEXT {'gpu_vendor': 'NVIDIA'}\nFROM base\n",
        "plain.Dockerfile": "FROM base\n",
        "bad.ubuntu.amd.Dockerfile": "# CONTEXT {'gpu_vendor': AMD}\nFROM base\n",
        "app_other.ubuntu.amd.Dockerfile": "FROM base\n",
        "app.ubuntu.amd.Dockerfile.dockerignore": "*.md\n",
    }
    for name, text in files.items():
        (docker / name).write_text(text)
    return tmp_path


def kept(mad: Path, prefix: str, **context) -> list[str]:
    return select_dockerfiles(str(mad), prefix, context)[0]


def test_files_whose_context_shares_equal_values_are_kept(mad):
    assert kept(mad, "docker/app", gpu_vendor="AMD", guest_os="UBUNTU") == ["docker/app.ubuntu.amd.Dockerfile"]
    assert kept(mad, "docker/app", gpu_vendor="NVIDIA", guest_os="UBUNTU") == ["docker/app.ubuntu.nvidia.Dockerfile"]


def test_the_context_line_counts_anywhere_in_the_first_five_lines(mad):
    assert kept(mad, "docker/app", gpu_vendor="AMD", guest_os="CENTOS") == ["docker/app.centos.amd.Dockerfile"]


def test_a_context_line_after_the_fifth_line_is_ignored(mad):
    assert kept(mad, "docker/late", gpu_vendor="AMD") == ["docker/late.ubuntu.amd.Dockerfile"]


def test_keys_the_context_does_not_set_do_not_filter(mad):
    assert kept(mad, "docker/app", guest_os="UBUNTU") == [
        "docker/app.ubuntu.amd.Dockerfile", "docker/app.ubuntu.nvidia.Dockerfile"]


def test_a_dockerfile_without_context_fits_every_context(mad):
    assert kept(mad, "docker/plain", gpu_vendor="NVIDIA", guest_os="CENTOS") == ["docker/plain.Dockerfile"]


def test_the_prefix_ends_at_a_dot_and_dockerignore_files_are_not_dockerfiles(mad):
    every = DockerfileFinder(str(mad), {}).candidates("docker/app")
    assert "docker/app_other.ubuntu.amd.Dockerfile" not in every
    assert not [f for f in every if f.endswith(".dockerignore")]


def test_an_unreadable_context_line_drops_the_file_with_a_warning(mad):
    finder = DockerfileFinder(str(mad), {"gpu_vendor": "AMD"})
    files, error = finder.select("docker/bad")
    assert files == []
    assert "its CONTEXT line is not a Python dict literal" in error
    assert finder.warnings == [
        "docker/bad.ubuntu.amd.Dockerfile: its CONTEXT line is not a Python dict literal: "
        "\"{'gpu_vendor': AMD}\"; the file is not used"]


def test_no_file_for_the_prefix_is_a_model_error_listing_the_files_there(mad):
    files, error = select_dockerfiles(str(mad), "docker/missing", {})
    assert files == []
    assert error.startswith("no Dockerfile matches docker/missing.* (files in docker/: docker/app.centos.amd.Dockerfile")


def test_no_fitting_file_is_a_model_error_naming_the_context_and_each_files_context(mad):
    _files, error = select_dockerfiles(str(mad), "docker/app", {"gpu_vendor": "AMD", "guest_os": "ROCKY", "debug": True})
    assert error.startswith("no Dockerfile of docker/app.* fits the context {'gpu_vendor': 'AMD', 'guest_os': 'ROCKY'}")
    assert "docker/app.ubuntu.nvidia.Dockerfile has CONTEXT {'gpu_vendor': 'NVIDIA', 'guest_os': 'UBUNTU'}" in error


def test_a_model_without_dockerfile_gets_an_error_not_a_crash(mad):
    assert select_dockerfiles(str(mad), "", {}) == (
        [], "the model has no 'dockerfile' (a path prefix such as docker/<name>)")


def test_values_compare_without_case_and_non_strings_exactly():
    assert fits({"gpu_vendor": "amd"}, {"gpu_vendor": "AMD"})
    assert not fits({"n": 1}, {"n": "1"})
    assert not fits(None, {})


def test_discovery_keeps_models_without_dockerfiles_and_says_why():
    models = {m["name"]: m for m in discover(str(PACKAGE), ["nv", "broken", "cpu"], {"gpu_vendor": "AMD"})["models"]}
    assert models["nvidia_only"]["dockerfiles"] == []
    assert "docker/nvonly.ubuntu.nvidia.Dockerfile has CONTEXT {'gpu_vendor': 'NVIDIA'}" in \
        models["nvidia_only"]["dockerfile_error"]
    assert models["no_dockerfile"]["dockerfiles"] == []
    assert "no Dockerfile matches docker/missing.*" in models["no_dockerfile"]["dockerfile_error"]
    assert models["cpu_only"]["dockerfiles"] == ["docker/cpu.Dockerfile"]
    assert "dockerfile_error" not in models["cpu_only"]


def test_directory_models_find_dockerfiles_through_their_relative_prefix():
    model = discover(str(PACKAGE), ["dummy2/model1"], {"gpu_vendor": "AMD", "guest_os": "CENTOS"})["models"][0]
    assert model["dockerfiles"] == ["docker/dummy.centos.amd.Dockerfile"]
