"""What the gpu_node role returns and leaves behind on a node with no GPU.

Run by molecule's testinfra verifier; ``host`` is the node container, while this test process
runs on the controller, where converge saved the node's ``gpu_node_results`` fact.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

RESULTS = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent")) / "gpu_node_results.json"
MODELS = ("mol_gpu_node_ok", "mol_gpu_node_fail", "mol_gpu_node_gpu")
# Asks the engine through the node's own docker SDK, as mad_run does.
CONTAINERS_QUERY = (
    "python3 -c 'import docker, json; print(json.dumps([c.name for c in docker.from_env()"
    ".containers.list(all=True, filters={{\"label\": \"madengine.model={model}\"}})]))'"
)


@pytest.fixture(scope="module")
def saved() -> dict:
    assert RESULTS.is_file(), f"converge saved no results on the controller at {RESULTS}"
    return json.loads(RESULTS.read_text())


@pytest.fixture(scope="module")
def by_model(saved) -> dict:
    return {result["gpu_node_run"]["model"]["name"]: result for result in saved["results"]}


def test_every_planned_model_comes_back_with_its_result(saved, by_model):
    assert saved["failure"] == ""
    assert sorted(by_model) == sorted(MODELS)


def test_model_that_reports_performance_succeeds(by_model):
    result = by_model["mol_gpu_node_ok"]
    assert result["status"] == "SUCCESS"
    [record] = result["records"]
    assert (record["status"], record["performance"], record["metric"]) == ("SUCCESS", "42.5", "samples_per_second")


def test_model_that_exits_non_zero_is_a_failure_row_not_a_task_failure(by_model):
    result = by_model["mol_gpu_node_fail"]
    assert not result["failed"]
    assert result["status"] == "FAILURE"
    assert [r["status"] for r in result["records"]] == ["FAILURE"]
    assert "exit code 3" in result["reason"]


def test_model_needing_a_gpu_is_skipped_on_a_node_without_one(by_model):
    result = by_model["mol_gpu_node_gpu"]
    assert result["status"] == "SKIPPED"
    assert result["container_exit_code"] is None
    assert "needs 1 GPU" in result["reason"]


def test_records_name_the_node_they_ran_on(host, saved):
    machines = {r["machine_name"] for result in saved["results"] for r in result["records"]}
    assert machines == {host.backend.get_hostname()}


def test_run_logs_are_in_the_output_dir_on_the_node(host, by_model):
    ok_log = host.file(by_model["mol_gpu_node_ok"]["log_file"])
    fail_log = host.file(by_model["mol_gpu_node_fail"]["log_file"])
    assert ok_log.is_file and "performance: 42.5 samples_per_second" in ok_log.content_string
    assert fail_log.is_file and "giving up" in fail_log.content_string
    assert Path(ok_log.path).parent == Path("/tmp/madengine-molecule/run")


@pytest.mark.parametrize("model", MODELS)
def test_no_model_container_is_left_in_the_engine(host, model):
    assert json.loads(host.check_output(CONTAINERS_QUERY.format(model=model))) == []
