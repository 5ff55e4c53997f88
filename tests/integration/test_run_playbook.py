"""madengine.core.mad_run called by real ansible-playbook: rows for every model, faults included."""
from __future__ import annotations

import io
import json
import secrets
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.docker

PLAYBOOK = Path(__file__).parent / "playbooks" / "run_models.yml"


@pytest.fixture
def image(docker_client, base_image):
    tag = f"madengine-run-playbook:{secrets.token_hex(3)}"
    docker_client.images.build(fileobj=io.BytesIO(f"FROM {base_image}\n".encode()), tag=tag,
                               rm=True, pull=False)
    yield tag
    docker_client.images.remove(tag)


def test_the_playbook_runs_each_model_and_faults_stay_with_their_model(tmp_path, repo, image, docker_client):
    tag = secrets.token_hex(3)
    (tmp_path / "scripts" / "ok").mkdir(parents=True)
    (tmp_path / "scripts" / "ok" / "run.sh").write_text(
        'echo "FROM_PLAYBOOK=$FROM_PLAYBOOK args=$*"\necho "performance: 3.5 items_per_second"\n')
    models = [
        {"name": f"pb{tag}-ok", "scripts": "scripts/ok/run.sh", "n_gpus": "0", "args": "--x 'a b'"},
        {"name": f"pb{tag}-missing-script", "scripts": "scripts/none/run.sh", "n_gpus": "0"},
        {"name": f"pb{tag}-missing-image", "scripts": "scripts/ok/run.sh", "n_gpus": "0",
         "image": f"madengine-run-playbook/absent:{tag}"},
        {"name": f"pb{tag}-needs-gpu", "scripts": "scripts/ok/run.sh", "n_gpus": "2"},
    ]
    extra = tmp_path / "vars.json"
    extra.write_text(json.dumps({"run_mad_dir": str(tmp_path), "run_image": image,
                                 "run_output_dir": str(tmp_path / "out"), "run_models": models}))
    proc = subprocess.run(["ansible-playbook", "-i", str(repo / "inventories/local/hosts.yml"),
                           str(PLAYBOOK), "-e", f"@{extra}"], capture_output=True, check=False, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]

    results = json.loads((tmp_path / "out" / "results.json").read_text())
    check = results["check"]
    assert check["changed"] is True and check["records"] == [] and check["status"] == ""
    assert check["docker_run"][-4:] == ["bash", "run.sh", "--x", "a b"]

    runs = {r["run_model"]["name"].split("-", 1)[1]: r for r in results["runs"]}
    assert [runs[k]["status"] for k in ("missing-script", "missing-image", "ok", "needs-gpu")] == [
        "FAILURE", "FAILURE", "SUCCESS", "SKIPPED"]
    assert not any(r.get("failed") for r in runs.values())
    assert "scripts/none/run.sh not found" in runs["missing-script"]["reason"]
    assert runs["missing-image"]["reason"].startswith(f"image madengine-run-playbook/absent:{tag} not found locally")
    ok = runs["ok"]
    assert ok["changed"] is True and ok["records"][0]["performance"] == "3.5"
    assert "FROM_PLAYBOOK=yes args=--x a b" in Path(ok["log_file"]).read_text()
    assert all(len(r["records"]) == 1 for r in runs.values())
    left = docker_client.containers.list(all=True, filters={"label": "madengine.run=1"})
    assert [c.name for c in left if c.labels.get("madengine.model", "").startswith(f"pb{tag}")] == []
