"""The gpu_facts module's edge: arguments in, the madengine_gpu fact or one clear failure out."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.madengine.core.plugins.modules import gpu_facts

TOOLS = Path(__file__).resolve().parents[1] / "fixtures" / "gpu_tools"


def run_module(args: dict, capsys) -> tuple[int, dict]:
    with patch_module_args(args), pytest.raises(SystemExit) as exit_info:
        gpu_facts.main()
    return exit_info.value.code, json.loads(capsys.readouterr().out)


def test_module_sets_the_fact_in_check_mode_and_changes_nothing(capsys):
    code, result = run_module({"tool_dirs": [str(TOOLS / "h100_4gpu" / "bin")], "node_name": "gpu01",
                               "context": '{"docker_gpus": "1-2"}', "_ansible_check_mode": True}, capsys)
    assert code == 0 and result["changed"] is False
    facts = result["ansible_facts"]["madengine_gpu"]
    assert (facts["node"], facts["vendor"], facts["devices"]) == ("gpu01", "NVIDIA", ["1", "2"])


def test_module_reads_tool_dirs_from_the_environment(capsys, monkeypatch):
    monkeypatch.setenv("MADENGINE_GPU_TOOL_DIRS", f"/nonexistent:{TOOLS / 'a100' / 'bin'}")
    code, result = run_module({}, capsys)
    assert result["ansible_facts"]["madengine_gpu"]["count"] == 8


def test_inline_context_wins_over_the_context_file(capsys):
    code, result = run_module({"tool_dirs": [str(TOOLS / "h100_4gpu" / "bin")],
                               "file_context": '{"docker_gpus": "0", "MAD_SYSTEM_GPU_ARCHITECTURE": "sm90"}',
                               "context": {"docker_gpus": "3"}}, capsys)
    facts = result["ansible_facts"]["madengine_gpu"]
    assert (facts["devices"], facts["architecture"]) == (["3"], "sm90")


def test_an_unreadable_context_file_fails_with_exit_code_4(capsys):
    code, result = run_module({"context_file": "/nowhere/ctx.json", "tool_dirs": [str(TOOLS / "no_tools" / "bin")]},
                              capsys)
    assert code == 1 and result["failed"] is True
    assert (result["exit_code"], result["error_kind"]) == (4, "invalid_input")
    assert result["msg"] == ("the context file /nowhere/ctx.json cannot be read. "
                             "Check the path given to --additional-context-file")


def test_bad_docker_gpus_fails_with_one_message(capsys):
    code, result = run_module({"tool_dirs": [str(TOOLS / "h100_4gpu" / "bin")], "context": {"docker_gpus": "7"}},
                              capsys)
    assert result["failed"] is True and result["exit_code"] == 4
    assert result["msg"].startswith("docker_gpus '7' names GPU 7 but this node has GPU 0, 1, 2, 3")
