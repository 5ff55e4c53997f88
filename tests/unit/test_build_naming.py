"""Names of images, logs and registry images, as upstream madengine makes them."""
from __future__ import annotations

import pytest

from ansible_collections.madengine.core.plugins.module_utils._build import image_name, log_name
from ansible_collections.madengine.core.plugins.module_utils._errors import BuildError
from ansible_collections.madengine.core.plugins.module_utils._registry import registry_image_name


@pytest.mark.parametrize("model, dockerfile, expected", [
    ("dummy", "docker/dummy.ubuntu.amd.Dockerfile", "ci-dummy_dummy.ubuntu.amd"),
    ("dummy3/model4", "docker/dummy.Dockerfile", "ci-dummy3_model4_dummy"),
    ("PyT_Bert", "docker/pyt_bert.ubuntu.amd.Dockerfile", "ci-pyt_bert_pyt_bert.ubuntu.amd"),
    ("x", "docker/Upper.Case.Dockerfile", "ci-x_upper.case"),
    ("x", "docker/no_suffix", "ci-x_no_suffix"),
])
def test_image_name_is_ci_model_underscore_dockerfile_basename_lowercased(model, dockerfile, expected):
    assert image_name(model, dockerfile) == expected


def test_log_name_keeps_the_model_case_and_ends_in_build_live_log():
    assert log_name("dir/Model", "docker/a.ubuntu.amd.Dockerfile") == "dir_Model_a.ubuntu.amd.build.live.log"


@pytest.mark.parametrize("registry, credential, expected", [
    ("localhost:5000", None, "localhost:5000/ci-a_b"),
    ("localhost:5000", {"repository": "team/mad"}, "localhost:5000/team/mad:ci-a_b"),
    ("https://reg.example.com/", {}, "reg.example.com/ci-a_b"),
    ("docker.io", {"repository": "rocm/mad-private"}, "rocm/mad-private:ci-a_b"),
    ("dockerhub", {"repository": "me/mad"}, "me/mad:ci-a_b"),
    ("docker.io/myorg", None, "docker.io/myorg/ci-a_b"),
])
def test_registry_image_name_follows_upstream(registry, credential, expected):
    assert registry_image_name("ci-a_b", registry, credential) == expected


def test_docker_hub_without_a_repository_says_where_to_set_one():
    with pytest.raises(BuildError) as caught:
        registry_image_name("ci-a_b", "docker.io", {"username": "me"})
    assert "MAD_DOCKERHUB_REPO" in caught.value.message
    assert caught.value.exit_code == 2
