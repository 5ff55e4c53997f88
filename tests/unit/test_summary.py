"""From run records in every shape to rows, the run summary, and the files of a run."""
from __future__ import annotations

import csv
import json
import os

import pytest

from ansible_collections.madengine.core.plugins.module_utils._errors import InvalidInputError
from ansible_collections.madengine.core.plugins.module_utils._summary import (
    Paths, collect, gather, parse_time, row_defaults)

ROW = {"model": "dummy", "performance": "42.0", "metric": "samples_per_second", "status": "SUCCESS",
       "gpu_architecture": "gfx942", "image_digest": "sha256:abc", "reason": ""}
RUN = {"records": [ROW], "status": "SUCCESS", "reason": "", "log_file": "/logs/dummy.live.log",
       "test_duration": 3.5, "changed": True}
PLAN_ENTRY = {"image": "ci-dummy_dummy.ubuntu.amd",
              "build": {"dockerfile": "docker/dummy.ubuntu.amd.Dockerfile", "base_docker": "rocm/pytorch",
                        "docker_sha": "sha256:0f", "build_duration": 12.5},
              "model": {"name": "dummy", "n_gpus": "1", "tags": ["pyt", "dummies"], "args": "--x 1"}}
LOOP_ITEM = {**RUN, "gpu_node_run": PLAN_ENTRY, "ansible_loop_var": "gpu_node_run", "failed": False}


def models(gathered):
    return [(r.node, r.row["model"], r.row["status"]) for r in gathered.results]


@pytest.mark.parametrize("records", [
    [RUN],                                           # mad_run results
    [ROW],                                           # plain perf rows
    {"results": [LOOP_ITEM]},                        # a registered loop
    [{"results": [LOOP_ITEM]}],
    {"node1": [LOOP_ITEM]},                          # keyed by host, as run.yml passes them
    {"node1": {"results": [LOOP_ITEM]}},
], ids=["run-results", "rows", "loop", "list-of-loops", "host-map", "host-map-of-loops"])
def test_every_accepted_shape_gives_the_same_row(records):
    gathered = gather(records, defaults={})
    assert [(r.row["model"], r.row["performance"], r.row["status"]) for r in gathered.results] == [
        ("dummy", 42.0, "SUCCESS")]


def test_the_host_of_a_host_map_becomes_node_and_fills_machine_name():
    gathered = gather({"node7": [LOOP_ITEM]}, defaults={})
    assert gathered.results[0].node == "node7"
    assert gathered.results[0].row["machine_name"] == "node7"
    assert gathered.results[0].log_file == "/logs/dummy.live.log"


def test_the_plan_entry_fills_columns_the_record_left_empty():
    item = {**LOOP_ITEM, "records": [{"model": "dummy", "performance": 1, "metric": "fps", "status": "SUCCESS"}]}
    row = gather({"node1": [item]}, defaults={}).results[0].row
    assert row["docker_file"] == "docker/dummy.ubuntu.amd.Dockerfile"
    assert row["base_docker"] == "rocm/pytorch"
    assert row["build_duration"] == 12.5
    assert row["tags"] == "pyt,dummies"
    assert row["docker_image"] == "ci-dummy_dummy.ubuntu.amd"


def test_a_failed_loop_item_without_records_is_a_failure_row_with_the_error_as_reason():
    item = {"failed": True, "msg": "no Docker engine answers", "gpu_node_run": PLAN_ENTRY,
            "ansible_loop_var": "gpu_node_run"}
    gathered = gather({"node1": {"results": [item]}}, defaults={})
    assert models(gathered) == [("node1", "dummy", "FAILURE")]
    assert gathered.results[0].row["reason"] == "no Docker engine answers"


def test_a_skipped_loop_item_is_a_skipped_row():
    item = {"skipped": True, "false_condition": "run_me", "gpu_node_run": PLAN_ENTRY,
            "ansible_loop_var": "gpu_node_run"}
    gathered = gather({"results": [item]}, defaults={})
    assert [r.row["status"] for r in gathered.results] == ["SKIPPED"]
    assert "run_me" in gathered.results[0].row["reason"]


def test_a_run_record_reason_goes_to_its_failed_rows_only():
    run = {"records": [{"model": "m_a", "performance": 1, "metric": "fps", "status": "SUCCESS"},
                       {"model": "m_b", "performance": "", "metric": "fps", "status": "FAILURE"}],
           "status": "FAILURE", "reason": "1 of 2 results failed", "model": "m"}
    rows = [r.row for r in gather([run], defaults={}).results]
    assert [r.get("reason") for r in rows] == [None, "1 of 2 results failed"]


def test_every_planned_run_of_a_failed_node_gets_a_failure_row_with_the_nodes_reason():
    second = {**PLAN_ENTRY, "image": "ci-other", "model": {"name": "other"}}
    gathered = gather({"node1": [LOOP_ITEM], "node2": []}, plan=[PLAN_ENTRY, second],
                      node_failures={"node1": "", "node2": "ssh: connection refused"}, defaults={})
    assert sorted(models(gathered)) == [
        ("node1", "dummy", "SUCCESS"), ("node1", "other", "FAILURE"),
        ("node2", "dummy", "FAILURE"), ("node2", "other", "FAILURE")]
    node2 = [r.row for r in gathered.results if r.node == "node2"]
    assert {r["reason"] for r in node2} == {"ssh: connection refused"}
    node1_other = [r.row for r in gathered.results if r.node == "node1" and r.row["model"] == "other"][0]
    assert node1_other["reason"] == "no result came back from node1 for this model"


def test_multiple_results_rows_count_as_their_planned_run():
    item = {**LOOP_ITEM, "records": [{**ROW, "model": "dummy_128"}, {**ROW, "model": "dummy_256"}]}
    gathered = gather({"node1": [item]}, plan=[PLAN_ENTRY], defaults={})
    assert [r.row["model"] for r in gathered.results] == ["dummy_128", "dummy_256"]


def test_a_failed_task_result_without_a_model_is_a_warning_not_an_error():
    gathered = gather([RUN, {"failed": True, "msg": "engine gone"}, {"skipped": True}], defaults={})
    assert models(gathered) == [("", "dummy", "SUCCESS")]
    assert gathered.warnings == ["records[1]: a failed run without a model name was left out (engine gone)"]


@pytest.mark.parametrize("build_records", [
    [{"model": "broken", "image": "ci-broken", "status": "FAILURE", "error": "no such file"}],
    {"builds": [{"model": "broken", "image": "ci-broken", "status": "FAILURE", "error": "no such file"},
                {"model": "dummy", "image": "ci-dummy", "status": "SUCCESS"}]},
    [{"model": "broken", "error": "no such file"}],
    {"registry": "", "built_images": {}, "summary": {"failed_builds": [{"model": "broken", "error": "no such file"}]}},
], ids=["build-records", "mad_build-result", "failed_builds", "manifest"])
def test_a_failed_build_writes_a_failure_row_saying_so(build_records):
    gathered = gather([RUN], build_records=build_records, defaults={})
    assert models(gathered)[-1] == ("", "broken", "FAILURE")
    assert gathered.results[-1].row["reason"] == "build failed: no such file"
    assert [f["model"] for f in gathered.build_failures] == ["broken"]


def test_a_failed_build_of_a_model_that_has_a_row_adds_no_second_row():
    gathered = gather([RUN], build_records=[{"model": "dummy", "status": "FAILURE", "error": "x"}], defaults={})
    assert models(gathered) == [("", "dummy", "SUCCESS")]


@pytest.mark.parametrize("records, where", [
    ([42], "records[0] is a int"),
    ([{"hello": "world"}], "records[0] is neither a run result"),
    ({"node1": [{"records": ["x"]}]}, "records.node1[0].records[0] is not a perf row"),
])
def test_records_of_an_unknown_shape_are_invalid_input_naming_where(records, where):
    with pytest.raises(InvalidInputError, match="(?s)" + where.replace("[", r"\[").replace("]", r"\]")):
        gather(records, defaults={})


def test_row_defaults_take_build_number_and_pipeline_from_the_environment_and_context():
    assert row_defaults({}, environ={}) == {"build_number": "0"}
    assert row_defaults({}, environ={"BUILD_NUMBER": "77", "pipeline": "nightly"}) == {
        "build_number": "77", "pipeline": "nightly"}
    assert row_defaults({"pipeline": "pr", "gpu_vendor": "AMD", "deployment_type": "slurm"},
                        environ={"pipeline": "nightly"}) == {
        "pipeline": "pr", "deployment_type": "slurm", "build_number": "0"}


@pytest.mark.parametrize("value, epoch", [
    (1700000000, 1700000000.0), ("1700000000.5", 1700000000.5),
    ("2023-11-14T22:13:20Z", 1700000000.0), ("2023-11-14T22:13:20+00:00", 1700000000.0),
])
def test_started_is_epoch_seconds_or_iso_8601(value, epoch):
    assert parse_time(value) == epoch


def test_a_started_that_is_not_a_time_is_invalid_input():
    with pytest.raises(InvalidInputError, match="not a time"):
        parse_time("yesterday")


# --------------------------------------------------------------------------- collect


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_collect_writes_perf_csv_perf_entry_and_the_summary(tmp_path, monkeypatch):
    monkeypatch.setenv("BUILD_NUMBER", "314")
    failing = {"records": [{**ROW, "model": "bad", "performance": "", "status": "FAILURE",
                            "reason": "exit code 1"}], "status": "FAILURE", "reason": "exit code 1",
               "log_file": "/logs/bad.log"}
    result = collect({"node1": [RUN, failing]}, Paths.resolve(str(tmp_path / "out")),
                     started="2026-01-01T00:00:00Z")

    out = tmp_path / "out"
    assert sorted(os.listdir(out)) == ["madengine_history.db", "perf.csv", "perf_entry.json", "run_summary.json"]
    rows = read_csv(out / "perf.csv")
    assert [(r["model"], r["status"], r["build_number"], r["machine_name"]) for r in rows] == [
        ("dummy", "SUCCESS", "314", "node1"), ("bad", "FAILURE", "314", "node1")]
    assert json.loads((out / "perf_entry.json").read_text()) == result["rows"]
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary == result["summary"]
    assert summary["started"] == "2026-01-01T00:00:00Z"
    assert summary["totals"] == {"models": 2, "success": 1, "failure": 1, "skipped": 0}
    assert summary["models"][1] == {
        "model": "bad", "node": "node1", "machine_name": "node1", "status": "FAILURE", "performance": None,
        "metric": "samples_per_second", "relative_change": None, "gpu_architecture": "gfx942",
        "docker_image": None, "build_duration": None, "test_duration": None, "reason": "exit code 1",
        "log_file": "/logs/bad.log", "image_digest": "sha256:abc"}
    assert result["exit_code"] == summary["exit_code"] == 3
    assert result["changed"] is True and result["rows_appended"] == 2


def test_a_second_run_gets_relative_change_against_the_first(tmp_path):
    paths = Paths.resolve(str(tmp_path))
    collect([{**ROW, "performance": 40}], paths)
    second = collect([{**ROW, "performance": 50}], paths)
    assert second["rows"][0]["relative_change"] == 25.0
    assert [r["relative_change"] for r in read_csv(tmp_path / "perf.csv")] == ["", "25.0"]


def test_an_existing_perf_csv_seeds_a_new_history(tmp_path):
    upstream = tmp_path / "perf.csv"
    upstream.write_text("model,performance,metric,gpu_architecture,status\n"
                        "dummy,10,samples_per_second,gfx942,SUCCESS\n"
                        "dummy,30,samples_per_second,gfx942,SUCCESS\n"
                        "dummy,,samples_per_second,gfx942,FAILURE\n")
    result = collect([{**ROW, "performance": 30}], Paths.resolve(str(tmp_path)))
    assert result["rows"][0]["relative_change"] == 50.0
    # Seeding happens once: the history now holds the 2 seeds and the new row.
    again = collect([{**ROW, "performance": 35}], Paths.resolve(str(tmp_path)))
    assert again["rows"][0]["relative_change"] == round((35 - 70 / 3) / (70 / 3) * 100, 2)


def test_check_mode_computes_the_rows_and_writes_nothing(tmp_path):
    paths = Paths.resolve(str(tmp_path))
    collect([{**ROW, "performance": 40}], paths)
    before = {name: (tmp_path / name).read_bytes() for name in os.listdir(tmp_path)}
    result = collect([{**ROW, "performance": 60}], paths, check_mode=True)
    assert result["changed"] is True and result["rows_appended"] == 0
    assert result["rows"][0]["relative_change"] == 50.0
    assert {name: (tmp_path / name).read_bytes() for name in os.listdir(tmp_path)} == before


def test_check_mode_on_a_new_output_dir_creates_nothing(tmp_path):
    result = collect([ROW], Paths.resolve(str(tmp_path / "new")), check_mode=True)
    assert result["rows"][0]["model"] == "dummy"
    assert not (tmp_path / "new").exists()


def test_no_records_append_nothing_and_report_no_change(tmp_path):
    result = collect([], Paths.resolve(str(tmp_path)))
    assert result["changed"] is False
    assert not (tmp_path / "perf.csv").exists()
    assert json.loads((tmp_path / "run_summary.json").read_text())["totals"]["models"] == 0
    assert result["exit_code"] == 0


def test_an_output_dir_that_cannot_be_made_is_invalid_input_and_nothing_is_written(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("I am a file")
    with pytest.raises(InvalidInputError, match="cannot write into") as info:
        collect([ROW], Paths.resolve(str(blocker / "out")))
    assert "writable output directory" in info.value.message
    assert sorted(os.listdir(tmp_path)) == ["file"]


def test_a_foreign_perf_csv_is_refused_before_anything_is_written(tmp_path):
    foreign = tmp_path / "perf.csv"
    foreign.write_text("date,temperature\n2026-01-01,3\n")
    with pytest.raises(InvalidInputError, match="not a madengine perf.csv"):
        collect([ROW], Paths.resolve(str(tmp_path)))
    assert foreign.read_text() == "date,temperature\n2026-01-01,3\n"
    assert sorted(os.listdir(tmp_path)) == ["perf.csv"]


def test_paths_default_under_output_dir_and_absolute_ones_win(tmp_path):
    paths = Paths.resolve(str(tmp_path), summary="/elsewhere/s.json", history_db="h.db")
    assert paths.perf_csv == str(tmp_path / "perf.csv")
    assert paths.perf_entry == str(tmp_path / "perf_entry.json")
    assert paths.summary == "/elsewhere/s.json"
    assert paths.history_db == str(tmp_path / "h.db")
    assert paths.html_report is None


@pytest.mark.parametrize("statuses, code", [
    (["SUCCESS", "SKIPPED"], 0), (["SUCCESS", "FAILURE"], 3), ([], 0)])
def test_exit_code_is_3_when_a_model_failed(tmp_path, statuses, code):
    rows = [{"model": f"m{i}", "status": s, "performance": 1 if s == "SUCCESS" else None}
            for i, s in enumerate(statuses)]
    assert collect(rows, Paths.resolve(str(tmp_path)), check_mode=True)["exit_code"] == code


def test_exit_code_is_2_when_only_builds_failed(tmp_path):
    result = collect([ROW], Paths.resolve(str(tmp_path)), check_mode=True,
                     build_records=[{"model": "broken", "error": "boom"}])
    assert result["exit_code"] == 2
    assert result["summary"]["build_failures"][0]["error"] == "boom"


def test_a_history_url_is_refused_before_anything_is_written(tmp_path):
    paths = Paths.resolve(str(tmp_path), history_db="postgresql://mad@db/results")
    assert paths.history_db == "postgresql://mad@db/results"
    with pytest.raises(InvalidInputError, match="not supported yet"):
        collect([ROW], paths)
    assert not (tmp_path / "perf.csv").exists()
