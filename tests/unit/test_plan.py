"""Giving planned runs to GPU nodes: replicate, distribute (GPUs, past durations), resume; what travels."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from ansible_collections.madengine.core.plugins.module_utils._errors import InvalidInputError
from ansible_collections.madengine.core.plugins.module_utils._plan import (
    assign, credential_keys, distribute, files_key, node_files, past_durations, plan_nodes, settled_pairs)

NODES = ["n1", "n2", "n3"]


def run(name: str, n_gpus: str = "0", **build) -> dict:
    return {"image": f"ci-{name}_x", "build": {"docker_image": f"ci-{name}_x", **build},
            "model": {"name": name, "n_gpus": n_gpus, "scripts": f"scripts/{name}/run.sh"}}


def row(model: str, node: str, status: str = "SUCCESS", **extra) -> dict:
    return {"model": model, "machine_name": node, "status": status, "docker_image": f"ci-{model}_x", **extra}


def names(runs: list) -> list:
    return [r["model"]["name"] for r in runs]


def test_replicate_gives_every_run_to_every_node_in_plan_order():
    plan = assign([run("a"), run("b")], NODES)
    assert [r["nodes"] for r in plan["runs"]] == [NODES, NODES]
    assert {n: names(rs) for n, rs in plan["assignment"].items()} == {n: ["a", "b"] for n in NODES}
    assert plan["settled"] == []


def test_distribute_gives_each_run_to_exactly_one_node_and_balances_the_count():
    runs = [run(c) for c in "abcdefg"]
    plan = assign(runs, NODES, "distribute")
    assert all(len(r["nodes"]) == 1 for r in plan["runs"])
    counts = sorted(len(rs) for rs in plan["assignment"].values())
    assert counts == [2, 2, 3]
    assert sorted(n for rs in plan["assignment"].values() for n in names(rs)) == list("abcdefg")


def test_distribute_puts_the_longest_runs_apart_by_past_duration():
    runs = [run("long1"), run("long2"), run("short1"), run("short2")]
    share = distribute(runs, ["n1", "n2"], durations={0: 100.0, 1: 90.0, 2: 10.0, 3: 10.0})
    assert {tuple(v) for v in share.values()} == {(0, 3), (1, 2)}


def test_distribute_without_history_weighs_runs_by_their_gpus():
    runs = [run("eight", "8"), run("one_a", "1"), run("one_b", "1"), run("one_c", "1")]
    share = distribute(runs, ["n1", "n2"], node_gpus={"n1": 8, "n2": 8})
    assert sorted(share.values()) == [[0], [1, 2, 3]]


def test_distribute_sends_a_gpu_model_only_to_nodes_with_enough_gpus():
    runs = [run("big", "4"), run("big2", "4"), run("cpu", "0")]
    share = distribute(runs, NODES, node_gpus={"n1": 0, "n2": 8, "n3": 2})
    assert share["n2"] == [0, 1] and share["n1"] == [2] and share["n3"] == []


def test_distribute_falls_back_to_any_node_when_none_has_enough_gpus():
    share = distribute([run("huge", "16")], NODES, node_gpus={"n1": 8, "n2": 8, "n3": 8})
    assert sum(len(v) for v in share.values()) == 1


def test_past_durations_use_the_last_successful_results_of_the_same_image():
    rows = [row("a", "n1", test_duration=100), row("a", "n1", test_duration=10),
            row("a", "n2", "FAILURE", test_duration=1), row("b", "n1", test_duration=4, docker_image="other")]
    assert past_durations(rows, [run("a"), run("b")], window=1) == {0: 10.0}


def test_resume_leaves_out_pairs_with_a_success_or_skipped_row():
    rows = [row("a", "n1"), row("a", "n2", "FAILURE"), row("b", "n3", "SKIPPED"), row("b", "n9")]
    plan = assign([run("a"), run("b")], NODES, settled=settled_pairs(rows, [run("a"), run("b")], NODES))
    assert [r["nodes"] for r in plan["runs"]] == [["n2", "n3"], ["n1", "n2"]]
    assert {(s["model"], s["node"]) for s in plan["settled"]} == {("a", "n1"), ("b", "n3")}


def test_resume_matches_multiple_results_rows_and_short_host_names_but_not_rebuilt_images():
    runs = [run("m", docker_sha="sha256:new")]
    rows = [row("m_small", "n1.cluster.local", docker_image="ci-m_x", docker_sha="sha256:new"),
            row("m", "n2", docker_sha="sha256:old"), row("mx", "n3", docker_image="ci-m_x")]
    assert settled_pairs(rows, runs, NODES) == {(0, "n1")}


def test_resume_drops_runs_settled_everywhere_and_distribute_reshares_the_rest():
    runs = [run("a"), run("b"), run("c")]
    rows = [row("a", "n1"), row("a", "n2"), row("a", "n3"), row("b", "n2")]
    plan = assign(runs, NODES, "distribute", settled=settled_pairs(rows, runs, NODES))
    assert names(plan["runs"]) == ["c"] and len(plan["runs"][0]["nodes"]) == 1


def test_assign_refuses_an_unknown_mode_and_a_repeated_node():
    with pytest.raises(InvalidInputError, match="mode 'spread' is not one of replicate, distribute"):
        assign([run("a")], NODES, "spread")
    with pytest.raises(InvalidInputError, match="names a node twice"):
        assign([run("a")], ["n1", "n1"])


@pytest.fixture
def package(tmp_path: Path) -> Path:
    for folder in ("scripts/a", "scripts/b", "scripts/unused", "scripts/common/pre_scripts", "scripts/common/tools"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "scripts/a/run.sh").write_text("echo a\n")
    (tmp_path / "scripts/b/run.sh").write_text("echo b\n")
    (tmp_path / "scripts/unused/run.sh").write_text("echo unused\n")
    (tmp_path / "scripts/common/pre_scripts/trace.sh").write_text("echo pre\n")
    (tmp_path / "scripts/common/tools/trace.py").write_text("print(1)\n")
    (tmp_path / "scripts/common/tools.json").write_text(json.dumps({"tools": {
        "rpd": {"pre_scripts": [{"path": "scripts/common/pre_scripts/trace.sh"}],
                "cmd": "python3 ../scripts/common/tools/trace.py"},
        "other": {"pre_scripts": [{"path": "scripts/common/other.sh"}]}}}))
    (tmp_path / "data.json").write_text("{}")
    (tmp_path / "credential.json").write_text(json.dumps({"127.0.0.1:5000": {"username": "u", "password": "p"},
                                                          "HF": {"token": "t"}, "unused": {}}))
    return tmp_path


def test_node_files_are_the_run_folders_the_used_tools_their_script_folders_and_data_json(package):
    runs = [run("a"), {**run("b"), "model": {"name": "b", "scripts": "scripts/b"}}]
    files = node_files(str(package), runs, {"tools": [{"name": "rpd"}]})
    assert files == ["data.json", "scripts/a", "scripts/b", "scripts/common/pre_scripts",
                     "scripts/common/tools.json", "scripts/common/tools/trace.py"]
    assert node_files(str(package), [run("a")], {}) == ["data.json", "scripts/a"]


def test_node_files_refuse_scripts_outside_the_package(package):
    escaping = {**run("x"), "model": {"name": "x", "scripts": "../elsewhere/run.sh"}}
    with pytest.raises(InvalidInputError, match="points outside the MAD package"):
        node_files(str(package), [escaping], {})


def test_files_key_changes_with_content_and_exec_bit_only(package):
    first = files_key(str(package), ["scripts/a"])
    assert files_key(str(package), ["scripts/a"]) == first
    (package / "scripts/a/run.sh").chmod(0o755)
    second = files_key(str(package), ["scripts/a"])
    (package / "scripts/a/run.sh").write_text("echo A\n")
    assert len({first, second, files_key(str(package), ["scripts/a"])}) == 3


def test_credential_keys_name_the_registry_login_and_the_models_creds_only():
    pulled = run("a", registry="127.0.0.1:5000", registry_image="127.0.0.1:5000/ci-a_x")
    with_cred = {**run("b"), "model": {"name": "b", "cred": "HF"}}
    names_ = ["127.0.0.1:5000", "HF", "unused"]
    assert credential_keys(names_, [pulled, with_cred, run("c")]) == ["127.0.0.1:5000", "HF"]
    assert credential_keys(names_, [run("c")]) == []


def test_plan_nodes_reads_perf_csv_and_the_history_for_resume(package):
    perf = package / "perf.csv"
    perf.write_text("model,machine_name,status,docker_image,performance,metric\n"
                    "a,n1,SUCCESS,ci-a_x,1,ops\n")
    history = package / "history.db"
    db = sqlite3.connect(history)
    db.execute("CREATE TABLE results (id INTEGER PRIMARY KEY, row_json TEXT)")
    db.execute("INSERT INTO results (row_json) VALUES (?)", (json.dumps(row("a", "n2", test_duration=3)),))
    db.commit()
    db.close()
    plan = plan_nodes([run("a"), run("b")], NODES, resume=True, perf_csv=str(perf), history_db=str(history),
                      mad_dir=str(package))
    assert plan["assignment"]["n1"][0]["model"]["name"] == "b"
    assert names(plan["assignment"]["n3"]) == ["a", "b"]
    assert plan["node_files"] == ["data.json", "scripts/a", "scripts/b"] and len(plan["node_files_key"]) == 16
    assert plan["mode"] == "replicate" and plan["node_credentials"] == []
