"""On the controller a module's body runs in Ansible's worker; the results must equal the module's own."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")
NOT_COMPARED = {"invocation", "item", "ansible_loop_var", "_ansible_no_log", "_ansible_item_label",
                "_ansible_ignore_errors", "changed_when_result", "failed_when_result"}


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("in_process") / "results.json"
    extravars = {"mad_dir": str(REPO / "tests/fixtures/mad_package"), "out_file": str(out),
                 "tools": str(REPO / "tests/fixtures/gpu_tools/h100_4gpu/bin")}
    done = subprocess.run(
        [ANSIBLE_PLAYBOOK, "-i", str(REPO / "inventories/local/hosts.yml"),
         str(REPO / "tests/integration/playbooks/in_process.yml"), "-e", json.dumps(extravars)],
        env=dict(os.environ, ANSIBLE_NOCOLOR="1"), capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(out.read_text())


def _pair(results: dict, task: str) -> tuple[dict, dict]:
    in_process, module = results[task]
    assert (in_process["item"], module["item"]) == (True, False)
    # Only a module reports its invocation: its absence shows the body ran in the worker.
    assert "invocation" not in in_process and "invocation" in module
    return ({k: v for k, v in in_process.items() if k not in NOT_COMPARED},
            {k: v for k, v in module.items() if k not in NOT_COMPARED})


def test_gpu_facts_in_the_worker_equal_the_module_and_see_the_task_environment(results):
    in_process, module = _pair(results, "gpu")
    assert in_process == module
    assert in_process["ansible_facts"]["madengine_gpu"]["architecture"] == "H100"  # tools found via environment


def test_discovery_in_the_worker_equals_the_module(results):
    in_process, module = _pair(results, "discovered")
    assert in_process == module
    assert [m["name"] for m in in_process["models"]] == ["dummy2/model1", "dummy2/model2"]


def test_an_unknown_option_fails_the_same_way(results):
    in_process, module = _pair(results, "bad")
    assert in_process["failed"] and module["failed"]
    for result in (in_process, module):
        assert "Unsupported parameters for (madengine.core.mad_discover) module: no_such_option" in result["msg"]


def test_a_no_log_value_never_leaves_in_a_result(results):
    in_process, module = _pair(results, "checked")
    assert "s3cr3t-pw-4711" not in json.dumps(results["checked"])
    assert in_process["msg"] == module["msg"]
    assert in_process["msg"].startswith("********: would run")
