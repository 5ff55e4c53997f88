"""madengine.core.perf_collect through real ansible-playbook runs, on this machine."""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INVENTORY = REPO / "inventories" / "local" / "hosts.yml"

PLAYBOOK = """
- name: Collect results
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Write perf.csv and the run summary
      madengine.core.perf_collect:
        results: "{{ results }}"
        plan: "{{ plan | default([]) }}"
        node_failures: "{{ node_failures | default({}) }}"
        failed_builds: "{{ failed_builds | default([]) }}"
        output_dir: "{{ out }}"
        started: "{{ started | default(omit) }}"
      register: collected
      ignore_errors: true

    - name: Keep the module result for the test
      ansible.builtin.copy:
        content: "{{ collected | to_json }}"
        dest: "{{ result_file }}"
        mode: "0644"
      check_mode: false
"""

PLAN = [
    {"image": "ci-dummy_dummy", "build": {"dockerfile": "docker/dummy.Dockerfile", "build_duration": 4.0},
     "model": {"name": "dummy", "n_gpus": "1", "tags": ["dummies"]}},
    {"image": "ci-sweep_dummy", "build": {"dockerfile": "docker/dummy.Dockerfile"},
     "model": {"name": "sweep", "n_gpus": "1", "multiple_results": "out.csv"}},
]


def loop_item(entry: dict, records: list[dict], status: str = "SUCCESS", reason: str = "") -> dict:
    """A registered mad_run loop item as the gpu_node role keeps it in gpu_node_results."""
    return {"changed": True, "failed": False, "records": records, "status": status, "reason": reason,
            "log_file": f"/logs/{entry['model']['name']}.live.log", "test_duration": 2.5,
            "gpu_node_run": entry, "ansible_loop_var": "gpu_node_run"}


def node_results(dummy_perf: float) -> dict:
    dummy = {"model": "dummy", "performance": str(dummy_perf), "metric": "samples_per_second",
             "status": "SUCCESS", "gpu_architecture": "gfx942", "reason": "", "image_digest": ""}
    sweep = [{"model": f"sweep_{n}", "performance": str(n / 10), "metric": "GFLOPS", "status": "SUCCESS",
              "gpu_architecture": "gfx942", "matrix_size": n, "reason": ""} for n in (128, 256)]
    return {"node1": [loop_item(PLAN[0], [dummy]), loop_item(PLAN[1], sweep)], "node2": []}


def run_playbook(tmp_path: Path, extravars: dict, *, check: bool = False, name: str = "run",
                 playbook: str = PLAYBOOK) -> tuple[dict, subprocess.CompletedProcess]:
    book = tmp_path / f"{name}.yml"
    book.write_text(playbook)
    result_file = tmp_path / f"{name}.result.json"
    varfile = tmp_path / f"{name}.vars.json"
    varfile.write_text(json.dumps({**extravars, "result_file": str(result_file)}))
    argv = [shutil.which("ansible-playbook") or "ansible-playbook", "-i", str(INVENTORY), str(book),
            "-e", f"@{varfile}"] + (["--check"] if check else [])
    proc = subprocess.run(argv, capture_output=True, check=False, text=True, env=os.environ.copy(), timeout=300)
    assert result_file.exists(), proc.stdout + proc.stderr
    return json.loads(result_file.read_text()), proc


def csv_rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def first_run(tmp_path_factory) -> tuple[Path, dict]:
    """One run of two planned models on two nodes (node2 unreachable) plus a failed build."""
    tmp_path = tmp_path_factory.mktemp("first_run")
    out = tmp_path / "out"
    extravars = {"out": str(out), "results": node_results(100.0), "plan": PLAN,
                 "node_failures": {"node1": "", "node2": "no result came back from the node (unreachable?)"},
                 "failed_builds": [{"model": "broken", "error": "COPY failed: no such file"}],
                 "started": "2026-02-01T10:00:00Z"}
    result, _proc = run_playbook(tmp_path, extravars)
    return out, result


def test_a_run_appends_every_result_and_a_failed_node_still_gets_rows(first_run):
    out, result = first_run
    assert not result.get("failed"), result
    assert result["changed"] is True and result["rows_appended"] == 6
    rows = csv_rows(out / "perf.csv")
    assert [(r["model"], r["machine_name"], r["status"]) for r in rows] == [
        ("dummy", "node1", "SUCCESS"), ("sweep_128", "node1", "SUCCESS"), ("sweep_256", "node1", "SUCCESS"),
        ("dummy", "node2", "FAILURE"), ("sweep", "node2", "FAILURE"), ("broken", "", "FAILURE")]
    assert rows[1]["matrix_size"] == "128"
    assert rows[3]["reason"] == "no result came back from the node (unreachable?)"
    assert rows[5]["reason"] == "build failed: COPY failed: no such file"
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["started"] == "2026-02-01T10:00:00Z"
    assert summary["totals"] == {"models": 6, "success": 3, "failure": 3, "skipped": 0}
    assert summary["models"][0]["log_file"] == "/logs/dummy.live.log"
    assert result["exit_code"] == 3 and result["summary_file"] == str(out / "run_summary.json")
    assert json.loads((out / "perf_entry.json").read_text()) == result["rows"]


def test_the_next_run_appends_and_compares_with_the_history(first_run, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(first_run[0], out)
    before = (out / "perf.csv").read_bytes()
    result, _proc = run_playbook(tmp_path, {"out": str(out), "results": node_results(120.0)}, name="second")

    after = (out / "perf.csv").read_bytes()
    assert after.startswith(before)
    assert after.count(b"\nmodel,") + after.startswith(b"model,") == 1
    assert result["rows"][0]["relative_change"] == 20.0
    assert csv_rows(out / "perf.csv")[6]["relative_change"] == "20.0"
    assert result["exit_code"] == 0


def test_check_mode_reports_the_rows_it_would_append_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    result, _proc = run_playbook(tmp_path, {"out": str(out), "results": node_results(100.0)}, check=True)
    assert result["changed"] is True
    assert len(result["rows"]) == 3 and result["rows_appended"] == 0
    assert not out.exists()


def test_a_foreign_perf_csv_fails_with_invalid_input_and_stays_as_it_was(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "perf.csv").write_text("when,what\nmonday,coffee\n")
    result, _proc = run_playbook(tmp_path, {"out": str(out), "results": node_results(100.0)})
    assert result["failed"] is True
    assert result["exit_code"] == 4 and result["error_kind"] == "invalid_input"
    assert "is not a madengine perf.csv" in result["msg"]
    assert "Traceback" not in result["msg"]
    assert (out / "perf.csv").read_text() == "when,what\nmonday,coffee\n"
    assert sorted(os.listdir(out)) == ["perf.csv"]


def test_concurrent_playbooks_append_to_one_perf_csv_without_interleaving(tmp_path):
    out = tmp_path / "out"
    procs = []
    for index in range(3):
        book = tmp_path / f"p{index}.yml"
        book.write_text(PLAYBOOK)
        varfile = tmp_path / f"p{index}.json"
        rows = [{"model": f"p{index}_r{k}", "performance": k + 1, "metric": "fps", "status": "SUCCESS",
                 "reason": "r" * 5000} for k in range(4)]
        varfile.write_text(json.dumps({"out": str(out), "results": {f"host{index}": rows},
                                       "result_file": str(tmp_path / f"p{index}.result.json")}))
        procs.append(subprocess.Popen(
            [shutil.which("ansible-playbook") or "ansible-playbook", "-i", str(INVENTORY), str(book),
             "-e", f"@{varfile}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=os.environ.copy()))
    outputs = [proc.communicate(timeout=300)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0], outputs

    text = (out / "perf.csv").read_text()
    assert text.count("model,n_gpus,") == 1
    models = [r["model"] for r in csv_rows(out / "perf.csv")]
    assert sorted(models) == sorted(f"p{i}_r{k}" for i in range(3) for k in range(4))
    for start in range(0, 12, 4):  # each playbook's batch is whole and in order
        prefix = models[start].split("_")[0]
        assert models[start:start + 4] == [f"{prefix}_r{k}" for k in range(4)]


REPORT = REPO / "playbooks" / "report.yml"


def test_the_report_playbook_renders_perf_csv_and_a_second_run_is_no_change(first_run, tmp_path):
    argv = [shutil.which("ansible-playbook") or "ansible-playbook", "-i", str(INVENTORY), str(REPORT),
            "-e", f"madengine_report_csv={first_run[0] / 'perf.csv'}", "-e", f"madengine_report_html={tmp_path / 'perf.html'}"]
    first = subprocess.run(argv, capture_output=True, check=False, text=True, env=os.environ.copy(), timeout=300)
    assert first.returncode == 0, first.stdout
    assert "changed=1" in first.stdout
    page = (tmp_path / "perf.html").read_text()
    assert "sweep_256" in page and "SUCCESS: 3" in page and "FAILURE: 3" in page
    second = subprocess.run(argv, capture_output=True, check=False, text=True, env=os.environ.copy(), timeout=300)
    assert "changed=0" in second.stdout and second.returncode == 0


def _driver(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "driver"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "madengine", *args], capture_output=True, check=False, text=True,
                          cwd=cwd, env=env, timeout=300)


def test_madengine_report_to_html_writes_the_page_through_the_playbook(first_run, tmp_path):
    shutil.copy(first_run[0] / "perf.csv", tmp_path / "perf.csv")
    done = _driver("report", "to-html", "--output", "r.html", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["html_report"] == str(tmp_path / "r.html")
    assert "dummy" in (tmp_path / "r.html").read_text()


def test_madengine_report_to_html_on_a_foreign_csv_exits_4_with_one_clear_line(tmp_path):
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    done = _driver("report", "to-html", "--csv-file-path", "data.csv", cwd=tmp_path)
    assert done.returncode == 4
    assert "is not a madengine perf.csv" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "data.html").exists()
