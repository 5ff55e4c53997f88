"""Additional context: JSON, dict literal or dict; file first, inline wins; every key checked."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from ansible_collections.madengine.core.plugins.module_utils._context import KEYS, build_context, parse_inline
from ansible_collections.madengine.core.plugins.module_utils._errors import InvalidInputError


def error_of(inline=None, path=None) -> str:
    with pytest.raises(InvalidInputError) as err:
        build_context(inline, path)
    assert err.value.exit_code == 4
    return err.value.message


@pytest.mark.parametrize("raw", [
    '{"gpu_vendor": "AMD", "docker_env_vars": {"A": "1"}}',
    "{'gpu_vendor': 'AMD', 'docker_env_vars': {'A': '1'}}",
    {"gpu_vendor": "AMD", "docker_env_vars": {"A": "1"}},
])
def test_json_a_python_dict_literal_and_a_dict_mean_the_same(raw):
    assert build_context(raw) == ({"gpu_vendor": "AMD", "docker_env_vars": {"A": "1"}, "guest_os": "UBUNTU"}, [])


@pytest.mark.parametrize("raw", [None, "", "  ", "{}", {}])
def test_no_context_gives_the_default_guest_os_and_no_gpu_vendor(raw):
    assert build_context(raw) == ({"guest_os": "UBUNTU"}, [])


def test_the_file_comes_first_and_the_inline_context_wins_key_by_key(tmp_path: Path):
    path = tmp_path / "ctx.json"
    path.write_text(json.dumps({"gpu_vendor": "NVIDIA", "guest_os": "CENTOS",
                                "docker_env_vars": {"A": "file", "B": "file"}}))
    context, _warnings = build_context('{"gpu_vendor": "AMD", "docker_env_vars": {"B": "inline"}}', str(path))
    assert context == {"gpu_vendor": "AMD", "guest_os": "CENTOS", "docker_env_vars": {"A": "file", "B": "inline"}}


def test_values_are_normalised_for_comparison_and_for_docker():
    context, _warnings = build_context({"gpu_vendor": "amd", "guest_os": "ubuntu", "docker_gpus": 0,
                                        "docker_build_arg": {"N": 4, "FLAG": True}, "timeout": "60"})
    assert context == {"gpu_vendor": "AMD", "guest_os": "UBUNTU", "docker_gpus": "0",
                       "docker_build_arg": {"N": "4", "FLAG": "true"}, "timeout": 60}


@pytest.mark.parametrize(("typo", "closest"), [
    ("gpu_vender", "gpu_vendor"), ("docker_env_var", "docker_env_vars"), ("GPU_VENDOR", "gpu_vendor"),
    ("docker_mount", "docker_mounts"), ("pre_script", "pre_scripts"),
])
def test_an_unknown_key_is_an_error_naming_the_closest_valid_key(typo, closest):
    message = error_of({typo: "x"})
    assert f"unknown context key '{typo}': did you mean '{closest}'?" in message


def test_an_unknown_key_with_nothing_close_lists_the_valid_keys():
    assert "valid keys: " in error_of({"zzzzzz": 1})


@pytest.mark.parametrize(("context", "expected"), [
    ({"docker_env_vars": ["A=1"]}, "context key 'docker_env_vars' must be an object, not a list"),
    ({"docker_env_vars": {"A": {"nested": 1}}}, "context key 'docker_env_vars.A' must be a string, not an object"),
    ({"docker_mounts": "/data:/data"}, "context key 'docker_mounts' must be an object, not a string"),
    ({"gpu_vendor": 1}, "context key 'gpu_vendor' must be a string, not an integer"),
    ({"gpu_vendor": "INTEL"}, "context key 'gpu_vendor' is 'INTEL'; it must be one of AMD, NVIDIA"),
    ({"guest_os": "WINDOWS"}, "context key 'guest_os' is 'WINDOWS'; it must be one of UBUNTU, CENTOS"),
    ({"tools": {"name": "rocprof"}}, "context key 'tools' must be a list of objects with 'name', not an object"),
    ({"tools": [{"cmd": "x"}]}, "context key 'tools[0]' needs 'name' (a string)"),
    ({"pre_scripts": ["a.sh"]}, "context key 'pre_scripts[0]' must be an object with 'path', not a string"),
    ({"timeout": -1}, "context key 'timeout' must be a number of seconds (0 = no limit), not an integer"),
    ({"timeout": True}, "context key 'timeout' must be a number of seconds"),
    ({"slurm": "partition=gpu"}, "context key 'slurm' must be an object, not a string"),
    ({"docker_gpus": ["0", "1"]}, "context key 'docker_gpus' must be a string, not a list"),
    ({"log_error_patterns": "OOM"}, "context key 'log_error_patterns' must be a list of strings, not a string"),
    ({"debug": "yes"}, "context key 'debug' must be true or false, not a string"),
    ({"gpu_renderDs": ["128"]}, "context key 'gpu_renderDs' must be a list of integers"),
])
def test_a_value_of_the_wrong_type_is_an_error_naming_the_key(context, expected):
    assert expected in error_of(context)


def test_keys_accepted_but_not_acted_on_yet_give_one_warning_each():
    context, warnings = build_context({"mirrorlocal": "/mirror", "debug": True, "gpu_vendor": "AMD"})
    assert context["mirrorlocal"] == "/mirror"
    assert warnings == ["context key 'mirrorlocal' is accepted for compatibility but not acted on yet",
                        "context key 'debug' is accepted for compatibility but not acted on yet"]


def test_every_key_of_the_reference_implementation_is_accepted():
    reference = {"gpu_vendor", "guest_os", "docker_build_arg", "docker_env_vars", "docker_mounts", "docker_gpus",
                 "docker_cpus", "model_args", "tools", "pre_scripts", "post_scripts", "encapsulate_script",
                 "timeout", "data", "slurm", "k8s", "distributed", "gpu_renderDs", "MAD_CONTAINER_IMAGE",
                 "MAD_ROCM_PATH", "mirrorlocal", "rocenv_mode", "gen_sys_env_details", "generate_sys_env_details",
                 "log_error_pattern_scan", "log_error_benign_patterns", "log_error_patterns", "gpus_per_node",
                 "gpu_count", "n_gpus", "num_gpus", "ngpus", "ctx_test", "host_os", "numa_balancing",
                 "skip_perf_collection", "env_vars", "vllm", "kubernetes", "deploy", "debug", "live_output",
                 "monitor", "cleanup_on_failure", "shared_data", "deployment_config"}
    assert reference <= set(KEYS)


@pytest.mark.parametrize(("raw", "expected"), [
    ('{"gpu_vendor": AMD}', "neither JSON nor a Python dict literal: Expecting value at line 1, column 16"),
    ("gpu_vendor=AMD", "neither JSON nor a Python dict literal"),
    ('["AMD"]', "the additional context must be a JSON object, not a list"),
    (42, "the additional context must be a JSON object, not an integer"),
])
def test_an_inline_context_that_is_not_an_object_is_an_error(raw, expected):
    with pytest.raises(InvalidInputError) as err:
        parse_inline(raw)
    assert expected in err.value.message


def test_a_missing_context_file_is_named(tmp_path: Path):
    assert f"the additional context file {tmp_path / 'nope.json'} does not exist" in error_of(
        path=str(tmp_path / "nope.json"))


def test_a_malformed_context_file_gives_line_and_column(tmp_path: Path):
    path = tmp_path / "ctx.json"
    path.write_text('{\n  "gpu_vendor": "AMD"\n  "guest_os": "UBUNTU"\n}\n')
    message = error_of(path=str(path))
    assert f"the additional context file is not valid JSON: Expecting ',' delimiter (in {path}, line 3, column 3)" \
        in message


def test_a_context_file_must_hold_an_object(tmp_path: Path):
    path = tmp_path / "ctx.json"
    path.write_text("[1]")
    assert "must hold a JSON object, not a list" in error_of(path=str(path))


def test_a_wrong_key_in_the_file_is_reported_like_an_inline_one(tmp_path: Path):
    path = tmp_path / "ctx.json"
    path.write_text('{"guest_oss": "UBUNTU"}')
    assert "unknown context key 'guest_oss': did you mean 'guest_os'?" in error_of(path=str(path))
