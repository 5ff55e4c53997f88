"""Planning the context's pre/post scripts, tools and encapsulate_script (no engine).

The package is tests/fixtures/hooks_package (its scripts/common/tools.json has the tools
``wrap``, ``inner``, ``envonly`` and ``shelly``).
"""
from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import pytest

from ansible_collections.madengine.core.plugins.module_utils._errors import InvalidInputError
from ansible_collections.madengine.core.plugins.module_utils._hooks import (
    POST, PRE, command_prefix, plan_hooks)
from ansible_collections.madengine.core.plugins.module_utils._run import (
    FAILURE, SUCCESS, Outcome, _tar_scripts, build_records, plan_run, run_model)

PACKAGE = Path(__file__).resolve().parents[1] / "fixtures" / "hooks_package"
NO_GPU = {"vendor": "NONE", "architecture": None, "count": 0, "devices": []}
MODEL = {"name": "hooks_model", "scripts": "scripts/hooks_model/run.sh", "n_gpus": "0", "args": "1"}


@pytest.fixture
def mad(tmp_path):
    shutil.copytree(PACKAGE, tmp_path / "pkg")
    return tmp_path / "pkg"


def steps(hooks):
    return [(s.kind, s.path, s.args) for s in hooks.pre + hooks.post]


def plan(mad, context, **extra):
    return plan_run(str(mad), dict(MODEL, **extra), "img:1", {}, context, NO_GPU, str(mad / "out"))


def test_no_hook_keys_mean_no_steps_no_wrapper_and_no_files(mad):
    hooks = plan_hooks(str(mad), {"docker_env_vars": {"A": "1"}})
    assert (hooks.pre, hooks.post, hooks.wrapper, hooks.env, hooks.files) == ([], [], [], {}, [])
    assert plan(mad, {}).spec.command == ["bash", "run.sh", "1"]


def test_tools_wrap_inside_out_the_last_tool_is_outermost_as_upstream(mad):
    context = {"pre_scripts": [{"path": "scripts/common/pre_scripts/prepare.sh", "args": "ctx"}],
               "post_scripts": [{"path": "scripts/common/post_scripts/collect.sh"}],
               "encapsulate_script": "env X_Y=1",
               "tools": [{"name": "inner"}, {"name": "wrap"}]}
    hooks = plan_hooks(str(mad), context)
    # each tool sets up before and cleans up after everything so far
    assert steps(hooks) == [
        (PRE, "scripts/common/pre_scripts/trace.sh", ["wrap"]),
        (PRE, "scripts/common/step.sh", ["pre", "inner"]),
        (PRE, "scripts/common/pre_scripts/prepare.sh", ["ctx"]),
        (POST, "scripts/common/post_scripts/collect.sh", []),
        (POST, "scripts/common/step.sh", ["post", "inner"]),
        (POST, "scripts/common/post_scripts/trace.sh", ["wrap"])]
    assert hooks.wrapper == ["bash", "../scripts/common/tools/wrap.sh", "--label", "outer", "--",
                             "bash", "../scripts/common/tools/wrap.sh", "--label", "inner", "--",
                             "env", "X_Y=1"]
    assert hooks.tools == ["inner", "wrap"]
    assert plan(mad, context).spec.command == hooks.wrapper + ["bash", "run.sh", "1"]


def test_a_context_tool_entry_overrides_the_catalogues_cmd_and_merges_its_env_vars(mad):
    tool = {"name": "wrap", "cmd": "strace -f --", "env_vars": {"WRAP_MODE": "context", "NEW": 2}}
    hooks = plan_hooks(str(mad), {"tools": [tool]})
    assert hooks.wrapper == ["strace", "-f", "--"]
    assert hooks.env == {"WRAP_MODE": "context", "WRAP_KEEP": "kept", "NEW": "2"}
    assert plan_hooks(str(mad), {"tools": [{"name": "wrap", "cmd": ""}]}).wrapper == []


def test_later_tools_env_vars_win_and_docker_env_vars_win_over_all_tools(mad):
    context = {"tools": [{"name": "wrap"}, {"name": "inner"}, {"name": "envonly"}],
               "docker_env_vars": {"INNER_ONLY": "from-context"}}
    env = plan(mad, context).spec.environment
    assert (env["WRAP_MODE"], env["WRAP_KEEP"], env["ENV_ONLY"]) == ("inner", "kept", "yes")
    assert env["INNER_ONLY"] == "from-context"


def test_the_container_gets_scripts_common_and_pre_scripts_from_elsewhere_in_the_workspace(mad, tmp_path):
    context = {"pre_scripts": [{"path": "./scripts/extra/outside.sh", "args": "x"}],
               "tools": [{"name": "envonly"}]}
    run_plan = plan(mad, context)
    assert run_plan.hooks.files == ["scripts/common", "scripts/extra/outside.sh"]
    assert run_plan.hooks.pre[0].path == "scripts/extra/outside.sh"
    extra = [(str(mad / f), f"myworkspace/{f}") for f in run_plan.hooks.files]
    with _tar_scripts(str(mad / "scripts/hooks_model"), "myworkspace/run_directory", extra) as spool:
        with tarfile.open(fileobj=spool) as tar:
            members = {m.name: m for m in tar.getmembers()}
    for name in ("myworkspace/scripts/common/tools.json", "myworkspace/scripts/common/tools/wrap.sh",
                 "myworkspace/scripts/extra/outside.sh", "myworkspace/run_directory/run.sh"):
        assert members[name].isfile() and members[name].mode & 0o666 == 0o666
    for name in ("myworkspace", "myworkspace/scripts", "myworkspace/scripts/extra"):
        assert members[name].isdir() and members[name].mode & 0o777 == 0o777


@pytest.mark.parametrize("context, message", [
    ({"tools": [{"name": "rocprof"}]},
     "tools[0].name 'rocprof' is not a tool of scripts/common/tools.json (in the additional context). "
     "Tools there: envonly, inner, shelly, wrap"),
    ({"pre_scripts": [{"path": "scripts/common/pre_scripts/nope.sh"}]},
     "pre_scripts[0].path 'scripts/common/pre_scripts/nope.sh': no such file in the MAD package"),
    ({"post_scripts": [{"path": "scripts/common/post_scripts"}]},
     "post_scripts[0].path 'scripts/common/post_scripts': no such file"),
    ({"pre_scripts": [{"path": "/etc/passwd"}]}, "must be a path inside the MAD package"),
    ({"pre_scripts": [{"path": "scripts/../../x.sh"}]}, "must be a path inside the MAD package"),
    ({"pre_scripts": [{"path": "scripts/common/step.sh", "args": ["a"]}]},
     "pre_scripts[0].args must be a string"),
    ({"pre_scripts": [{"path": "scripts/common/step.sh", "args": "'open"}]},
     "cannot split pre_scripts[0].args"),
    ({"tools": [{"name": "shelly"}]}, "uses the shell operator '&&'"),
    ({"encapsulate_script": "numactl -N 0; "}, "encapsulate_script 'numactl -N 0; ' uses the shell operator ';'"),
    ({"encapsulate_script": "time 2>/dev/null"}, "uses the shell operator '2>/dev/null'"),
    ({"tools": [{"name": "wrap", "env_vars": {"A": [1]}}]}, "tools[0].env_vars.A must be a string"),
])
def test_bad_hook_entries_are_invalid_input_naming_the_key_and_value(mad, context, message):
    with pytest.raises(InvalidInputError) as err:
        plan_hooks(str(mad), context)
    assert message.split(" (in ")[0] in err.value.message
    assert err.value.exit_code == 4


def test_a_missing_script_message_lists_what_the_folder_holds(mad):
    with pytest.raises(InvalidInputError) as err:
        plan_hooks(str(mad), {"post_scripts": [{"path": "scripts/common/post_scripts/colect.sh"}]})
    assert "scripts/common/post_scripts has: collect.sh, fail.sh, trace.sh" in err.value.message


def test_a_missing_script_of_a_tool_names_the_tool(mad):
    (mad / "scripts/common/pre_scripts/trace.sh").unlink()
    with pytest.raises(InvalidInputError, match=r"scripts/common/tools.json tool 'wrap' pre_scripts\[0\]"):
        plan_hooks(str(mad), {"tools": [{"name": "wrap"}]})


def test_tools_without_a_tools_json_is_invalid_input(mad):
    (mad / "scripts/common/tools.json").unlink()
    with pytest.raises(InvalidInputError, match="context key 'tools' needs scripts/common/tools.json"):
        plan_hooks(str(mad), {"tools": [{"name": "wrap"}]})
    (mad / "scripts/common/tools.json").write_text("{not json")
    with pytest.raises(InvalidInputError, match="tools.json is not valid JSON"):
        plan_hooks(str(mad), {"tools": [{"name": "wrap"}]})


def test_bad_hooks_fail_the_plan_even_for_a_skipped_model_and_in_check_mode(mad):
    context = {"tools": [{"name": "nope"}]}
    with pytest.raises(InvalidInputError, match="'nope' is not a tool"):
        plan(mad, context, n_gpus="4")  # skipped for lack of GPUs, still checked
    with pytest.raises(InvalidInputError, match="'nope' is not a tool"):
        run_model(str(mad), dict(MODEL), "img:1", context=context, gpu=NO_GPU,
                  output_dir=str(mad / "out"), check_mode=True)


@pytest.mark.parametrize("value, argv", [
    ("", []),
    ("numactl --cpunodebind=0 --", ["numactl", "--cpunodebind=0", "--"]),
    ("HIP_LAUNCH_BLOCKING=1 'A B=two words' nice -n 5", ["env", "HIP_LAUNCH_BLOCKING=1", "A B=two words", "nice", "-n", "5"]),
    ("run --sep ';'", None),  # a quoted ; is still refused: it cannot be told from an operator after splitting
    ("tool --msg 'a b'", ["tool", "--msg", "a b"]),
])
def test_command_prefixes_are_split_like_a_shell_and_assignments_go_through_env(value, argv):
    if argv is None:
        with pytest.raises(InvalidInputError):
            command_prefix(value, "encapsulate_script")
    else:
        assert command_prefix(value, "encapsulate_script") == argv


def _plan_with(mad, outcome_kwargs, **model_extra):
    run_plan = plan(mad, {}, **model_extra)
    out = Outcome(ran=True, exit_code=outcome_kwargs.pop("exit_code", 0), **outcome_kwargs)
    out.scanner.feed(b"performance: 42 items_per_second\n")
    out.scanner.finish()
    return build_records(run_plan, out)


def test_a_failed_post_script_fails_a_successful_model_and_says_so(mad):
    records, status, reason = _plan_with(mad, {"post_failures": ["post_script x.sh exited with 5"]})
    assert (status, reason) == (FAILURE, "post_script x.sh exited with 5 (the model itself succeeded)")
    assert records[0]["performance"] == "42" and records[0]["status"] == FAILURE


def test_a_failed_post_script_keeps_the_models_own_failure_first(mad):
    failures = ["post_script x.sh exited with 5", "post_script y.sh exited with 1"]
    _records, status, reason = _plan_with(mad, {"exit_code": 2, "post_failures": failures})
    assert (status, reason) == (FAILURE, "exit code 2; post_script x.sh exited with 5; post_script y.sh exited with 1")
    assert _plan_with(mad, {})[1:] == (SUCCESS, "")


def test_a_timeout_in_a_pre_or_post_script_says_which(mad):
    outcome = {"exit_code": None, "timed_out": True, "timeout_step": "post_script scripts/common/sleep.sh 5"}
    _records, status, reason = _plan_with(mad, outcome)
    assert (status, reason) == (FAILURE, "timeout after 7200 s (during post_script scripts/common/sleep.sh 5)")
