"""credential.json: loading, the environment's Docker Hub login, and finding a registry's entry."""
from __future__ import annotations

import json

import pytest

from ansible_collections.madengine.core.plugins.module_utils import _credentials as creds
from ansible_collections.madengine.core.plugins.module_utils._errors import InvalidInputError


def write(tmp_path, content) -> str:
    path = tmp_path / "credential.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def test_a_missing_file_means_no_credentials(tmp_path):
    assert creds.load_credentials(str(tmp_path / "none.json"), environ={}) == {}


def test_environment_docker_hub_login_replaces_the_file_entry(tmp_path):
    path = write(tmp_path, {"dockerhub": {"username": "file", "password": "f", "repository": "file/repo"}})
    loaded = creds.load_credentials(path, environ={"MAD_DOCKERHUB_USER": "env", "MAD_DOCKERHUB_PASSWORD": "e",
                                                   "MAD_DOCKERHUB_REPO": "env/repo"})
    assert loaded["dockerhub"] == {"username": "env", "password": "e", "repository": "env/repo"}


def test_a_user_without_a_password_in_the_environment_changes_nothing(tmp_path):
    path = write(tmp_path, {"dockerhub": {"username": "file", "password": "f"}})
    assert creds.load_credentials(path, environ={"MAD_DOCKERHUB_USER": "env"})["dockerhub"]["username"] == "file"


@pytest.mark.parametrize("content, expected", [
    ('{"a": {"username": "x",}', "line 1"),
    ("[1, 2]", "JSON object"),
])
def test_bad_files_are_invalid_input_naming_the_file(tmp_path, content, expected):
    path = write(tmp_path, content)
    with pytest.raises(InvalidInputError) as caught:
        creds.load_credentials(path, environ={})
    assert expected in caught.value.message and path in caught.value.message


@pytest.mark.parametrize("registry, key", [
    ("reg.example.com:5000", "reg.example.com:5000"),
    ("reg.example.com:5000/team", "reg.example.com:5000"),
    ("https://reg.example.com:5000/", "reg.example.com:5000"),
    ("docker.io", "dockerhub"),
    ("", "dockerhub"),
    ("elsewhere.io", None),
])
def test_the_entry_for_a_registry_is_found_by_host_or_as_dockerhub(registry, key):
    table = {"reg.example.com:5000": {"username": "u"}, "dockerhub": {"username": "h"}}
    assert creds.credential_key_for_registry(table, registry) == key


def test_model_credentials_become_upper_case_build_args():
    table = {"AMD_GITHUB": {"username": "bot", "password": "tok"}}
    assert creds.build_args_for_model({"name": "m", "cred": "AMD_GITHUB"}, table, "c.json") == {
        "AMD_GITHUB_USERNAME": "bot", "AMD_GITHUB_PASSWORD": "tok"}
    assert creds.build_args_for_model({"name": "m", "cred": ""}, table, "c.json") == {}


def test_entries_that_are_not_logins_are_kept_but_cannot_be_a_model_cred(tmp_path):
    nas = [{"NAME": "nas1", "HOST": "10.0.0.5", "USERNAME": "u", "PASSWORD": "nas-pass-1"}]
    loaded = creds.load_credentials(write(tmp_path, {"NAS_NODES": nas}), environ={})
    assert loaded["NAS_NODES"] == nas
    assert "nas-pass-1" in creds.secret_values(loaded)
    with pytest.raises(InvalidInputError) as caught:
        creds.build_args_for_model({"name": "m", "cred": "NAS_NODES"}, loaded, "c.json")
    assert "must be an object" in caught.value.message


def test_secrets_are_scrubbed_from_text():
    table = {"r": {"username": "user", "password": "hunter2-long", "token": "tok-123"}}
    text = creds.scrub("login user:hunter2-long with tok-123", creds.secret_values(table))
    assert "hunter2" not in text and "tok-123" not in text and "user" in text
