"""What the gpu_node role returns and leaves behind on a node with no GPU.

Run by molecule's testinfra verifier; ``host`` is the node container, while this test process
runs on the controller, where converge saved the node's ``gpu_node_results`` fact.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

EPHEMERAL = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent"))
RESULTS = EPHEMERAL / "gpu_node_results.json"
OUTPUT_DIR = EPHEMERAL / "run"  # converge's gpu_node_output_dir, on the controller
PACKAGE = Path(__file__).resolve().parents[1] / "files" / "mad"
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


def test_node_gets_only_the_files_its_runs_need(host, by_model):
    node_dir = by_model["mol_gpu_node_ok"]["invocation"]["module_args"]["mad_dir"]
    assert node_dir != str(PACKAGE)
    assert host.file(f"{node_dir}/scripts/mol_gpu_node/run.sh").is_file
    assert host.file(f"{node_dir}/scripts/mol_gpu_node/fail.sh").is_file
    for not_needed in ("models.json", "docker"):
        assert not host.file(f"{node_dir}/{not_needed}").exists, f"{not_needed} was copied to the node"


@pytest.mark.parametrize("model, text", [("mol_gpu_node_ok", "performance: 42.5 samples_per_second"),
                                         ("mol_gpu_node_fail", "giving up")])
def test_run_log_is_kept_on_the_node_and_fetched_to_the_controller(host, by_model, model, text):
    on_node = host.file(by_model[model]["node_log_file"])
    assert on_node.is_file and text in on_node.content_string
    fetched = OUTPUT_DIR / "nodes" / host.backend.get_hostname() / Path(on_node.path).name
    assert by_model[model]["log_file"] == str(fetched)  # the result names the controller's copy
    assert fetched.is_file(), f"no copy of {on_node.path} on the controller at {fetched}"
    assert fetched.read_text() == on_node.content_string


@pytest.mark.parametrize("model", MODELS)
def test_no_model_container_is_left_in_the_engine(host, model):
    assert json.loads(host.check_output(CONTAINERS_QUERY.format(model=model))) == []
