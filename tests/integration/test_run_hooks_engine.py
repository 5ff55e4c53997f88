"""pre_scripts, post_scripts, tools and encapsulate_script in a real container.

The package is a copy of tests/fixtures/hooks_package; every step prints ``STEP ...`` so
the order shows in the run log. Model names carry this session's id, so "no container
left behind" looks only at containers this file created.
"""
from __future__ import annotations

import json
import secrets
import shutil
import time
from pathlib import Path

import pytest

from ansible_collections.madengine.core.plugins.module_utils._errors import InvalidInputError
from ansible_collections.madengine.core.plugins.module_utils._run import run_model

from workflow import model_containers

pytestmark = pytest.mark.docker

SESSION = secrets.token_hex(3)
PACKAGE = Path(__file__).resolve().parents[1] / "fixtures" / "hooks_package"
NO_GPU = {"vendor": "NONE", "architecture": None, "count": 0, "devices": []}
PRE = "scripts/common/pre_scripts/"
POST = "scripts/common/post_scripts/"


@pytest.fixture(scope="module")
def hooks_image(labelled_image):
    return labelled_image("hooks")


@pytest.fixture
def mad(tmp_path):
    shutil.copytree(PACKAGE, tmp_path / "pkg")
    return tmp_path / "pkg"


def name(label: str) -> str:
    return f"hooks{SESSION}-{label}"


def run(mad, image, docker_client, label, context, args="", **kw):
    model = {"name": name(label), "scripts": "scripts/hooks_model/run.sh", "n_gpus": "0", "args": args}
    result = run_model(str(mad), model, image, context=context, gpu=NO_GPU,
                       output_dir=str(mad / "out"), **kw)
    assert model_containers(docker_client, model["name"]) == []
    return result


def log_lines(result, prefix="STEP "):
    return [x for x in Path(result["log_file"]).read_text().splitlines() if x.startswith(prefix)]


def test_a_pre_script_prepares_a_file_the_model_reads_and_a_post_script_sees_its_output(mad, hooks_image, docker_client):
    context = {"pre_scripts": [{"path": PRE + "prepare.sh"}],
               "post_scripts": [{"path": POST + "collect.sh"}]}
    result = run(mad, hooks_image, docker_client, "prepost", context)
    assert (result["status"], result["reason"], result["performance"]) == ("SUCCESS", "", "42")
    assert log_lines(result) == ["STEP pre prepare", "STEP model", "STEP post collect"]
    log = Path(result["log_file"]).read_text()
    assert "MODEL read: prepared by prepare.sh in /myworkspace/run_directory" in log
    assert "POST saw: model output" in log
    assert f"madengine: pre_script {PRE}prepare.sh" in log


def test_post_scripts_run_after_a_failing_model_and_keep_its_failure_in_the_reason(mad, hooks_image, docker_client):
    context = {"post_scripts": [{"path": POST + "fail.sh"}, {"path": POST + "collect.sh"}]}
    result = run(mad, hooks_image, docker_client, "modelfails", context, args="7")
    assert log_lines(result) == ["STEP model", "STEP post fail", "STEP post collect"]
    assert "POST saw: model output" in Path(result["log_file"]).read_text()
    assert result["status"] == "FAILURE" and result["container_exit_code"] == 7
    assert result["reason"] == f"exit code 7; post_script {POST}fail.sh (from post_scripts) exited with 5"


def test_a_failing_post_script_fails_a_model_that_succeeded(mad, hooks_image, docker_client):
    result = run(mad, hooks_image, docker_client, "postfails", {"post_scripts": [{"path": POST + "fail.sh"}]})
    assert result["status"] == "FAILURE" and result["container_exit_code"] == 0
    assert result["reason"] == (f"post_script {POST}fail.sh (from post_scripts) exited with 5 "
                                "(the model itself succeeded)")
    assert result["records"][0]["performance"] == "42"


def test_a_failing_pre_script_fails_the_model_which_does_not_run(mad, hooks_image, docker_client):
    context = {"pre_scripts": [{"path": "scripts/common/step.sh", "args": "first"},
                               {"path": PRE + "fail.sh", "args": "9"}],
               "post_scripts": [{"path": POST + "collect.sh"}]}
    result = run(mad, hooks_image, docker_client, "prefails", context)
    assert result["status"] == "FAILURE" and result["container_exit_code"] is None
    assert result["reason"] == f"pre_script {PRE}fail.sh 9 (from pre_scripts) exited with 9; the model did not run"
    assert log_lines(result) == ["STEP first", "STEP pre fail"]
    assert result["records"][0]["reason"] == result["reason"]


def test_tools_wrap_the_model_command_and_their_env_vars_reach_the_container(mad, hooks_image, docker_client):
    context = {"tools": [{"name": "inner"}, {"name": "wrap", "env_vars": {"WRAP_MODE": "context"}},
                         {"name": "envonly"}],
               "encapsulate_script": "env 'X_Y=two words'"}
    result = run(mad, hooks_image, docker_client, "tools", context)
    assert (result["status"], result["reason"]) == ("SUCCESS", "")
    # pre and post trace.sh share a name: each is the right one when it runs
    assert log_lines(result) == ["STEP pre trace wrap", "STEP pre inner", "STEP model", "STEP post inner",
                                 "STEP post trace wrap"]
    wraps = log_lines(result, "WRAP ")
    assert wraps[0] == ("WRAP outer begins: bash ../scripts/common/tools/wrap.sh --label inner -- "
                        "env X_Y=two words bash run.sh")
    assert wraps[2] == "WRAP inner begins: env X_Y=two words bash run.sh"
    assert wraps[-2:] == ["WRAP inner ends with 0", "WRAP outer ends with 0"]
    assert "MODEL env: WRAP_MODE=context WRAP_KEEP=kept INNER_ONLY=1 ENV_ONLY=yes X_Y=two words" in \
        Path(result["log_file"]).read_text()
    assert result["docker_run"][-4:] == ["env", "X_Y=two words", "bash", "run.sh"]


def test_script_args_with_spaces_and_quotes_arrive_intact(mad, hooks_image, docker_client):
    args = """--name "a b" --quote 'it'"'"'s' --empty "" --dollar '$HOME' --glob '*' ';' '&&' 'rm -rf /'"""
    context = {"pre_scripts": [{"path": PRE + "prepare.sh", "args": args}],
               "post_scripts": [{"path": "scripts/extra/outside.sh", "args": "'two words'"}]}
    result = run(mad, hooks_image, docker_client, "argv", context)
    assert result["status"] == "SUCCESS", result["reason"]
    (line,) = log_lines(result, "PRE_ARGV=")
    assert json.loads(line[len("PRE_ARGV="):]) == ["--name", "a b", "--quote", "it's", "--empty", "",
                                                   "--dollar", "$HOME", "--glob", "*", ";", "&&", "rm -rf /"]
    assert log_lines(result)[-1] == "STEP outside two words"


def test_the_timeout_covers_pre_scripts_the_model_and_post_scripts(mad, hooks_image, docker_client):
    # each step alone is shorter than the timeout; together they are not
    context = {"pre_scripts": [{"path": "scripts/common/sleep.sh", "args": "2"}],
               "post_scripts": [{"path": "scripts/common/sleep.sh", "args": "30"}]}
    began = time.monotonic()
    result = run(mad, hooks_image, docker_client, "timeout", context, timeout=4)
    elapsed = time.monotonic() - began
    assert result["status"] == "FAILURE"
    assert result["reason"] == "timeout after 4 s (during post_script scripts/common/sleep.sh 30)"
    assert log_lines(result) == ["STEP sleep 2 begins", "STEP sleep 2 ends", "STEP model", "STEP sleep 30 begins"]
    assert "killed at the timeout after 4 s during post_script" in Path(result["log_file"]).read_text()
    assert elapsed < 4 + 20  # killed within 20 s of the timeout, not after the 30 s sleep


def test_a_timeout_in_a_pre_script_stops_the_run_before_the_model(mad, hooks_image, docker_client):
    context = {"pre_scripts": [{"path": "scripts/common/sleep.sh", "args": "30"}],
               "post_scripts": [{"path": POST + "collect.sh"}]}
    result = run(mad, hooks_image, docker_client, "pretimeout", context, timeout=2)
    assert result["reason"] == "timeout after 2 s (during pre_script scripts/common/sleep.sh 30)"
    assert log_lines(result) == ["STEP sleep 30 begins"]


def test_keep_alive_runs_the_steps_and_keeps_the_container(mad, hooks_image, docker_client):
    context = {"pre_scripts": [{"path": PRE + "prepare.sh"}], "post_scripts": [{"path": POST + "collect.sh"}]}
    model = {"name": name("keep"), "scripts": "scripts/hooks_model/run.sh", "n_gpus": "0"}
    result = run_model(str(mad), model, hooks_image, context=context, gpu=NO_GPU,
                       output_dir=str(mad / "out"), keep_alive=True)
    try:
        assert (result["status"], result["changed"]) == ("SUCCESS", True)
        assert log_lines(result) == ["STEP pre prepare", "STEP model", "STEP post collect"]
        container = docker_client.containers.get(result["container_name"])
        assert container.status == "running"
        code, output = container.exec_run(["cat", "/myworkspace/run_directory/result.txt"])
        assert (code, output) == (0, b"model output\n")
    finally:
        for container in model_containers(docker_client, name("keep")):
            container.remove(force=True)


def test_an_unknown_tool_or_missing_script_is_refused_before_any_container(mad, hooks_image, docker_client):
    with pytest.raises(InvalidInputError, match=r"tools\[0\].name 'rocprof' is not a tool .*Tools there: envonly"):
        run(mad, hooks_image, docker_client, "badtool", {"tools": [{"name": "rocprof"}]})
    with pytest.raises(InvalidInputError, match=r"pre_scripts\[0\].path 'scripts/common/nope.sh': no such file"):
        run(mad, hooks_image, docker_client, "badpath", {"pre_scripts": [{"path": "scripts/common/nope.sh"}]})
    assert model_containers(docker_client, name("badtool")) == model_containers(docker_client, name("badpath")) == []
    assert not (mad / "out").exists()
