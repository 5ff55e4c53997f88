"""How a model's ``url`` is planned: the run directory's name, the URL git gets, how the
model's ``cred`` reaches git (environment only) and what messages may show (no engine).
"""
from __future__ import annotations

import subprocess

import pytest

from ansible_collections.madengine.core.plugins.module_utils._errors import InvalidInputError, RunError
from ansible_collections.madengine.core.plugins.module_utils._repo import (
    ENV_PASSWORD, ENV_USERNAME, clone, plan_repo, repo_dir_name)
from ansible_collections.madengine.core.plugins.module_utils._run import plan_run, run_model

NO_GPU = {"vendor": "NONE", "architecture": None, "count": 0, "devices": []}
CREDS = {"PRIVATE_GIT": {"username": "reader", "password": "pa55-word"},
         "TOKEN_GIT": {"username": "bot", "token": "ghp_tokenvalue"},
         "SSH_GIT": {"username": "deploy", "ssh_key_file": "/keys/id ed25519"}}


@pytest.mark.parametrize("url, folder", [
    ("https://github.com/ROCm/pytorch-micro-benchmarking", "pytorch-micro-benchmarking"),
    ("https://github.com/ROCm/pytorch-micro-benchmarking/", "pytorch-micro-benchmarking"),
    ("https://github.com/ROCm/MAD.git", "MAD"),
    ("https://github.com/ROCm/MAD.git/", "MAD"),
    ("git@github.com:ROCm/flash_attn.git", "flash_attn"),
    ("ssh://git@host:2222/team/bench.v2", "bench.v2"),
    ("file:///srv/repos/local-repo", "local-repo"),
])
def test_the_run_directory_is_named_after_the_urls_last_part_without_dot_git(url, folder):
    assert repo_dir_name(url) == folder
    assert plan_repo({"name": "m", "url": url}).name == folder


@pytest.mark.parametrize("url", ["https://host/a/b%20c", "https://host/..", "https://host/a/b c",
                                 "https://host/a/.git", "   "])
def test_a_url_without_a_usable_folder_name_is_refused_with_the_model_named(url):
    with pytest.raises(InvalidInputError) as err:
        plan_repo({"name": "broken", "url": url})
    assert "model broken" in err.value.message


def test_a_model_without_url_has_no_repository():
    assert plan_repo({"name": "m", "url": ""}) is None and plan_repo({"name": "m"}) is None


def test_the_cred_entry_reaches_git_only_through_the_environment():
    repo = plan_repo({"name": "m", "url": "https://git.example.com:8443/team/bench", "cred": "PRIVATE_GIT"}, CREDS)
    env = repo.env({"PATH": "/usr/bin", "SSH_ASKPASS": "/usr/bin/gui-askpass", "GIT_DIR": "/elsewhere"})
    assert env[ENV_USERNAME] == "reader" and env[ENV_PASSWORD] == "pa55-word"
    assert env["GIT_TERMINAL_PROMPT"] == "0" and env["GIT_ASKPASS"] == "" and "SSH_ASKPASS" not in env
    assert "GIT_DIR" not in env and env["PATH"] == "/usr/bin"
    args = repo.config_args()
    assert not any("pa55-word" in a or "reader" in a for a in args)
    assert args[:2] == ["-c", "credential.helper="]  # no stored helper sees or keeps the login
    assert args[3].startswith("credential.https://git.example.com:8443.helper=!")  # this host only
    assert f'"${ENV_PASSWORD}"' in args[3] and f'"${ENV_USERNAME}"' in args[3]
    assert repo.secrets == ["pa55-word"] and "pa55-word" not in repr(repo)


def test_the_helper_prints_the_login_from_the_environment_for_git():
    repo = plan_repo({"name": "m", "url": "https://h/x", "cred": "TOKEN_GIT"}, CREDS)
    helper = repo.config_args()[3].split(".helper=!", 1)[1]
    env = repo.env({"PATH": "/usr/bin:/bin"})
    got = subprocess.run(["sh", "-c", helper + " get"], env=env, capture_output=True, text=True, check=True).stdout
    assert got == "username=bot\npassword=ghp_tokenvalue\n"
    stored = subprocess.run(["sh", "-c", helper + " store"], env=env, capture_output=True, text=True, check=True).stdout
    assert stored == ""


def test_a_password_in_the_url_is_taken_out_of_it_and_kept_secret():
    repo = plan_repo({"name": "m", "url": "https://me:in-url-secret@host/team/bench"})
    assert repo.url == "https://me@host/team/bench"
    assert repo.username == "me" and repo.secrets == ["in-url-secret"]
    assert repo.env({})[ENV_PASSWORD] == "in-url-secret"


def test_ssh_urls_get_the_entrys_user_and_key_in_the_ssh_command_and_never_prompt():
    repo = plan_repo({"name": "m", "url": "ssh://git@host/team/bench.git", "cred": "SSH_GIT"}, CREDS)
    ssh = repo.env({})["GIT_SSH_COMMAND"]
    assert ssh == ("ssh -o BatchMode=yes -l deploy -i '/keys/id ed25519' -o IdentitiesOnly=yes "
                   "-o StrictHostKeyChecking=accept-new")
    assert plan_repo({"name": "m", "url": "git@host:team/bench"}).env({})["GIT_SSH_COMMAND"] == \
        "ssh -o BatchMode=yes -l git"


def test_the_plan_runs_in_the_repositorys_folder_and_hides_its_secrets(tmp_path):
    (tmp_path / "scripts" / "m").mkdir(parents=True)
    (tmp_path / "scripts" / "m" / "run.sh").write_text("echo performance: 1 x\n")
    model = {"name": "m", "scripts": "scripts/m/run.sh", "n_gpus": "0",
             "url": "https://u:url-pass@host/team/bench-repo.git", "cred": "PRIVATE_GIT"}
    plan = plan_run(str(tmp_path), model, "img", {}, {}, NO_GPU, str(tmp_path / "out"), credentials=CREDS)
    assert plan.run_dir == "/myworkspace/bench-repo" and plan.spec.working_dir == plan.run_dir
    assert plan.repo.password == "pa55-word"  # the credential entry wins over the url
    assert "pa55-word" in plan.secrets
    custom = plan_run(str(tmp_path), dict(model, additional_docker_run_options="-w /work"), "img", {}, {},
                      NO_GPU, str(tmp_path / "out"), credentials=CREDS)
    assert custom.run_dir == "/work/bench-repo"


def test_check_mode_clones_nothing(tmp_path):
    (tmp_path / "scripts" / "m").mkdir(parents=True)
    (tmp_path / "scripts" / "m" / "run.sh").write_text("echo hi\n")
    model = {"name": "m", "scripts": "scripts/m/run.sh", "n_gpus": "0", "url": f"file://{tmp_path}/nothing"}
    result = run_model(str(tmp_path), model, "img", gpu=NO_GPU, output_dir=str(tmp_path / "out"),
                       check_mode=True)
    assert result["changed"] and result["records"] == []
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_gits_error_is_scrubbed_of_the_secrets(tmp_path):
    missing = tmp_path / "repo-topsecret-name"
    repo = plan_repo({"name": "m", "url": f"file://{missing}"})
    (tmp_path / "clones").mkdir()
    with pytest.raises(RunError) as err:
        clone(repo, str(tmp_path / "clones"), hidden=["topsecret"])
    assert "topsecret" not in err.value.message.split(": ", 1)[1]
    assert "repo-********-name" in err.value.message and "does not appear to be a git repository" in err.value.message


def test_an_empty_repository_is_a_clear_failure(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path / "empty")], check=True)
    (tmp_path / "clones").mkdir()
    with pytest.raises(RunError) as err:
        clone(plan_repo({"name": "m", "url": f"file://{tmp_path}/empty"}), str(tmp_path / "clones"))
    assert err.value.message == f"the clone of file://{tmp_path}/empty has no commit to run (an empty repository?)"
