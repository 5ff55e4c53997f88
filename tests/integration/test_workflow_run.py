"""`madengine run` end to end (issue 3): the real driver, ansible-runner, playbooks, modules and engine.

One package (tests/fixtures/workflow_packages/wf) holds a model for every outcome: a
success with quoted args, multiple_results, a non-zero exit, no performance line, a
timeout, one that needs a GPU (this host has none) and one whose image does not build.
The driver runs all of it once, ``ansible-playbook playbooks/run.yml`` runs it once more,
and the tests read what both wrote. Shorter runs from the build's manifest check the exit
codes, --live-output and --keep-alive.
"""
from __future__ import annotations

import json
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from workflow import (PERF_COLUMNS, WorkflowPackage, ansible_playbook, containers_of, explain, madengine,
                      normalised, read_perf_csv)

pytestmark = pytest.mark.docker

TIMEOUT_S = 3  # wf_timeout's own timeout in models.json


@dataclass
class Run:
    out: Path
    done: subprocess.CompletedProcess

    def perf(self):
        return read_perf_csv(self.out / "perf.csv")

    def rows(self) -> dict:
        return {row["model"]: row for row in self.perf()[1]}

    def summary(self) -> dict:
        return json.loads((self.out / "run_summary.json").read_text())


@pytest.fixture(scope="module")
def package(tmp_path_factory, docker_client, base_image):
    pkg = WorkflowPackage("wf", tmp_path_factory.mktemp("wf-package") / "wf")
    yield pkg
    pkg.cleanup(docker_client)


@pytest.fixture(scope="module")
def driver_run(package, tmp_path_factory) -> Run:
    out = tmp_path_factory.mktemp("wf-driver")
    return Run(out, madengine("run", "--mad-dir", str(package.root), "--tags", "wf", "--json", cwd=out))


@pytest.fixture(scope="module")
def playbook_run(package, driver_run, tmp_path_factory) -> Run:
    out = tmp_path_factory.mktemp("wf-playbook")
    done = ansible_playbook("run.yml", {"madengine_mad_dir": str(package.root), "madengine_tags": "wf",
                                        "madengine_output_dir": str(out)}, cwd=out)
    return Run(out, done)


def left_containers(client, package) -> list:
    return [c["Names"][0].lstrip("/") for c in containers_of(client, package)]


def from_manifest(package, driver_run, tmp_path, *args):
    return madengine("run", "--manifest-file", str(driver_run.out / "build_manifest.json"),
                     "--mad-dir", str(package.root), *args, cwd=tmp_path)


# ------------------------------------------------------------------ the full run, by the driver

def test_a_failed_build_exits_2_and_every_other_model_still_runs(driver_run, package):
    assert driver_run.done.returncode == 2, explain(driver_run.done)
    rows = driver_run.rows()
    broken = rows[package.name("wf_broken")]
    assert broken["status"] == "FAILURE"
    assert broken["reason"].startswith("build failed: ")
    assert "returned a non-zero code: 7" in broken["reason"] and "wf-broken-step" in broken["reason"]
    assert rows[package.name("wf_ok")]["status"] == "SUCCESS"
    errors = [line for line in driver_run.done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "1 of 7 image(s) failed to build" in errors[0], driver_run.done.stderr
    assert "Traceback" not in driver_run.done.stderr


def test_every_outcome_gets_its_row_status_and_reason(driver_run, package):
    rows = driver_run.rows()
    n = package.name
    expected = {
        n("wf_ok"): ("SUCCESS", "42.5", "samples_per_second", ""),
        n("wf_multi") + "_small": ("SUCCESS", "1.5", "items_per_second", ""),
        n("wf_multi") + "_large": ("SUCCESS", "3.25", "items_per_second", ""),
        n("wf_noperf"): ("FAILURE", "", "", "no performance in the log"),
        n("wf_timeout"): ("FAILURE", "", "", f"timeout after {TIMEOUT_S} s"),
    }
    for model, (status, performance, metric, reason) in expected.items():
        row = rows[model]
        assert (row["status"], row["performance"], row["metric"], row["reason"]) == (
            status, performance, metric, reason), row
    failed = rows[n("wf_exit")]
    assert (failed["status"], failed["reason"]) == ("FAILURE", "exit code 3")
    skipped = rows[n("wf_gpu")]
    assert skipped["status"] == "SKIPPED" and "needs 1 GPU" in skipped["reason"]
    assert set(rows) == set(expected) | {n("wf_exit"), n("wf_gpu"), n("wf_broken")}


def test_rows_come_in_the_order_the_models_were_selected(driver_run, package):
    order = [row["model"] for row in driver_run.perf()[1]]
    n = package.name
    assert order == [n("wf_ok"), n("wf_multi") + "_small", n("wf_multi") + "_large", n("wf_exit"),
                     n("wf_noperf"), n("wf_timeout"), n("wf_gpu"), n("wf_broken")]


def test_perf_csv_has_the_29_columns_in_order_then_the_extras(driver_run, package):
    header, rows = driver_run.perf()
    assert header[:29] == PERF_COLUMNS
    assert header[29:] == ["reason", "image_digest", "batch", "extras"]
    multi = driver_run.rows()
    assert [multi[package.name("wf_multi") + s]["batch"] for s in ("_small", "_large")] == ["8", "64"]
    ok = multi[package.name("wf_ok")]
    assert ok["tags"] == "wf,wf_good" and ok["training_precision"] == "fp32" and ok["n_gpus"] == "0"
    assert ok["docker_image"] == package.image("wf_ok", "wf") and ok["docker_file"] == "docker/wf.Dockerfile"
    assert ok["base_docker"] == "madengine/base:bookworm" and ok["docker_sha"].startswith("sha256:")
    assert ok["image_digest"].startswith("sha256:") and ok["build_number"] == "0"
    broken = multi[package.name("wf_broken")]
    assert broken["tags"] == "wf" and broken["n_gpus"] == "0" and broken["docker_file"] == "docker/wfbroken.Dockerfile"


def test_the_timeout_kills_the_container_within_seconds_of_the_deadline(driver_run, package):
    row = driver_run.rows()[package.name("wf_timeout")]
    assert TIMEOUT_S <= float(row["test_duration"]) < TIMEOUT_S + 5
    log = (driver_run.out / f"{package.name('wf_timeout')}_wf.run.live.log").read_text()
    assert "sleeping" in log and "never_printed" not in log
    assert f"killed at the timeout after {TIMEOUT_S} s" in log


def test_args_with_spaces_and_quotes_arrive_intact(driver_run, package):
    model = next(m for m in package.models if m["name"] == package.name("wf_ok"))
    log = (driver_run.out / f"{package.name('wf_ok')}_wf.run.live.log").read_text()
    argv_line = next(line for line in log.splitlines() if line.startswith("WF_ARGV="))
    assert json.loads(argv_line[len("WF_ARGV="):]) == shlex.split(model["args"]) == [
        "--label", "two words", "--quote", 'it\'s "quoted"', "--empty", "", "--dollar", "$HOME", "--glob", "*"]
    assert driver_run.rows()[model["name"]]["args"] == model["args"]


def test_no_container_is_left_behind(driver_run, package, docker_client):
    assert driver_run.done.returncode == 2
    assert left_containers(docker_client, package) == []


def test_json_output_parses_and_matches_perf_csv(driver_run, package):
    result = json.loads(driver_run.done.stdout)
    assert result["exit_code"] == 2
    assert [r["model"] for r in result["rows"]] == [r["model"] for r in driver_run.perf()[1]]
    builds = {b["model"]: b for b in result["builds"]}
    assert builds[package.name("wf_broken")]["status"] == "FAILURE"
    assert builds[package.name("wf_ok")]["status"] == "SUCCESS"
    assert result["summary"]["totals"] == {"models": 8, "success": 3, "failure": 4, "skipped": 1}


def test_the_run_summary_tells_each_models_outcome(driver_run, package):
    summary = driver_run.summary()
    assert summary["totals"] == {"models": 8, "success": 3, "failure": 4, "skipped": 1}
    models = {m["model"]: m for m in summary["models"]}
    ok = models[package.name("wf_ok")]
    assert (ok["status"], ok["performance"], ok["metric"], ok["reason"]) == (
        "SUCCESS", 42.5, "samples_per_second", "")
    assert ok["test_duration"] > 0 and ok["build_duration"] is not None
    assert Path(ok["log_file"]) == driver_run.out / f"{package.name('wf_ok')}_wf.run.live.log"
    timeout = models[package.name("wf_timeout")]
    assert timeout["status"] == "FAILURE" and timeout["reason"] == f"timeout after {TIMEOUT_S} s"
    broken = models[package.name("wf_broken")]
    assert broken["status"] == "FAILURE" and "returned a non-zero code: 7" in broken["reason"]
    build_log = driver_run.out / f"{package.name('wf_broken')}_wfbroken.build.live.log"
    assert broken["reason"].endswith(f"full log: {build_log}") and "wf-broken-step" in build_log.read_text()


# --------------------------------------------------- the same run by ansible-playbook, compared

def test_ansible_playbook_gives_the_same_perf_rows_as_the_driver(driver_run, playbook_run):
    assert playbook_run.done.returncode != 0  # the playbook's own verdict: models failed
    assert "model(s) failed" in playbook_run.done.stdout, explain(playbook_run.done)
    driver_header, driver_rows = driver_run.perf()
    playbook_header, playbook_rows = playbook_run.perf()
    assert playbook_header == driver_header
    assert normalised(playbook_rows, playbook_run.out) == normalised(driver_rows, driver_run.out)


def test_the_second_run_reused_the_images_the_first_one_built(driver_run, playbook_run, package):
    first = json.loads((driver_run.out / "build_manifest.json").read_text())
    second = json.loads((playbook_run.out / "build_manifest.json").read_text())
    image = package.image("wf_ok", "wf")
    assert second["built_images"][image]["image_id"] == first["built_images"][image]["image_id"]
    assert "skipped_unchanged" not in second["built_images"][image]  # a fact of one build step, not of the image


# ------------------------------------------------------------- shorter runs from the manifest

def test_a_failed_run_exits_3_and_a_local_image_rebuilt_since_the_build_is_never_run(
        driver_run, package, tmp_path, docker_client, base_image):
    manifest = json.loads((driver_run.out / "build_manifest.json").read_text())
    recorded = manifest["built_images"][package.image("wf_ok", "wf")]["image_id"]
    docker_client.api.tag(base_image, package.image("wf_ok", "wf"), "latest", force=True)  # the tag moved on
    try:
        done = from_manifest(package, driver_run, tmp_path, "--tags", f"{package.name('wf_exit')},{package.name('wf_ok')}")
    finally:
        docker_client.api.tag(recorded, package.image("wf_ok", "wf"), "latest", force=True)
    assert done.returncode == 3, explain(done)
    rows = {r["model"]: r for r in read_perf_csv(tmp_path / "perf.csv")[1]}
    assert list(rows) == [package.name("wf_exit"), package.name("wf_ok")]  # the failed build was not selected
    assert rows[package.name("wf_exit")]["reason"] == "exit code 3"
    moved = rows[package.name("wf_ok")]
    assert moved["status"] == "FAILURE"
    assert f"local image {package.image('wf_ok', 'wf')} is " in moved["reason"]
    assert f"not the {recorded} the manifest recorded" in moved["reason"]
    assert "Traceback" not in done.stderr


def upstream_manifest(driver_run, package, path: Path) -> Path:
    """The build's manifest as upstream madengine writes it: none of our bookkeeping keys."""
    ours = json.loads((driver_run.out / "build_manifest.json").read_text())
    keep = ("model", "docker_image", "dockerfile", "base_docker", "docker_sha", "build_duration",
            "build_command", "log_file", "gpu_vendor")
    images = [package.image("wf_ok", "wf"), package.image("wf_multi", "wf")]
    model_keys = ("name", "dockerfile", "scripts", "n_gpus", "owner", "training_precision", "tags", "args",
                  "multiple_results", "timeout")
    document = {
        "built_images": {i: {k: ours["built_images"][i][k] for k in keep} for i in images},
        "built_models": {i: {k: ours["built_models"][i][k] for k in model_keys if k in ours["built_models"][i]}
                         for i in images},
        "context": {"docker_env_vars": {}, "docker_mounts": {}, "docker_build_arg": {}, "gpu_vendor": "AMD",
                    "docker_gpus": ""},
        "credentials_required": [],
        "push_failures": [],
        "summary": {"successful_builds": [{"model": ours["built_images"][i]["model"], "docker_image": i,
                                           "build_duration": 0.1} for i in images],
                    "failed_builds": [], "total_build_time": 0.2, "successful_pushes": [], "failed_pushes": []},
    }
    path.write_text(json.dumps(document, indent=2))
    return path


def test_an_upstream_manifest_runs_and_live_output_prints_the_models_lines(driver_run, package, tmp_path):
    manifest = upstream_manifest(driver_run, package, tmp_path / "upstream_build_manifest.json")
    # The log of an earlier run in the same folder: rewritten by this run, followed from its start.
    (tmp_path / f"{package.name('wf_ok')}_wf.run.live.log").write_text("an earlier run's line\n" * 40)
    done = madengine("run", "--manifest-file", str(manifest), "--mad-dir", str(package.root), "--live-output",
                     cwd=tmp_path)
    assert done.returncode == 0, explain(done)
    rows = read_perf_csv(tmp_path / "perf.csv")[1]
    assert [(r["model"], r["status"]) for r in rows] == [
        (package.name("wf_ok"), "SUCCESS"), (package.name("wf_multi") + "_small", "SUCCESS"),
        (package.name("wf_multi") + "_large", "SUCCESS")]
    lines = done.stderr.splitlines()
    assert any("WF_ARGV=[" in line for line in lines), done.stderr
    assert any(line.rstrip().endswith("performance: 42.5 samples_per_second") for line in lines)
    assert any(f"WF_MODEL={package.name('wf_ok')}" in line for line in lines)
    assert not any("an earlier run's line" in line for line in lines)


def test_the_upstream_manifest_fixture_runs_its_models_skipped_on_a_host_without_gpus(repo, tmp_path):
    done = madengine("run", "--manifest-file", str(repo / "tests/fixtures/manifests/upstream_build_manifest.json"),
                     "--mad-dir", str(repo / "tests/fixtures/mad_package"), cwd=tmp_path)
    assert done.returncode == 0, explain(done)
    rows = read_perf_csv(tmp_path / "perf.csv")[1]
    assert [(r["model"], r["status"], r["gpu_architecture"]) for r in rows] == [
        ("dummy", "SKIPPED", "gfx942"), ("dummy2", "SKIPPED", "gfx942")]
    assert all("needs 1 GPU" in r["reason"] for r in rows)


def test_keep_alive_leaves_the_container_and_says_how_to_enter_it(driver_run, package, tmp_path, docker_client):
    done = from_manifest(package, driver_run, tmp_path, "--tags", package.name("wf_ok"), "--keep-alive")
    kept = left_containers(docker_client, package)
    try:
        assert done.returncode == 0, explain(done)
        assert len(kept) == 1
        assert f"docker exec -it {kept[0]} bash" in done.stderr
        container = docker_client.containers.get(kept[0])
        assert container.status == "running"
        exit_code, output = container.exec_run(["cat", "/myworkspace/run_directory/ok.py"])
        assert exit_code == 0 and b"performance: 42.5" in output
    finally:
        for name in kept:
            docker_client.containers.get(name).remove(force=True)


# --------------------------------------------------------------------------- invalid input

def _bad_manifest(tmp_path: Path) -> Path:
    path = tmp_path / "bad_manifest.json"
    path.write_text('{"images": {}}')
    return path


def _not_json(tmp_path: Path) -> Path:
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    return path


@pytest.mark.parametrize(("args", "message"), [
    (lambda p, t: ["--mad-dir", str(p.root), "--tags", "wf_nosuch"],
     "error: the tag 'wf_nosuch' matches no model"),
    (lambda p, t: ["--mad-dir", str(p.root), "--tags", "wf", "-c", '{"gpu_vender": "AMD"}'],
     "error: unknown context key 'gpu_vender': did you mean 'gpu_vendor'?"),
    (lambda p, t: ["--mad-dir", str(t), "--tags", "wf"], "error: no models.json in "),
    (lambda p, t: ["--manifest-file", str(_bad_manifest(t))], 'error: build manifest has no "built_images" object'),
    (lambda p, t: ["--manifest-file", str(_not_json(t))], "error: build manifest is not JSON"),
    (lambda p, t: ["--manifest-file", str(t / "absent.json")], "error: the manifest"),
], ids=["bad-tag", "bad-context-key", "no-models-json", "manifest-without-images", "manifest-not-json",
        "manifest-missing"])
def test_invalid_input_exits_4_with_one_clear_message(package, tmp_path, args, message, docker_client):
    done = madengine("run", *args(package, tmp_path), cwd=tmp_path)
    assert done.returncode == 4, explain(done)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(message), done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert not (tmp_path / "perf.csv").exists()
