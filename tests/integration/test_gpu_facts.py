"""gpu_facts through real Ansible: ansible-playbook on playbooks/validate_gpu.yml, and the
`madengine validate-gpu` command through ansible-runner, with fake vendor tools that print
recorded outputs (tests/fixtures/gpu_tools/<scenario>/bin) put on PATH or named as tool dirs.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / "tests" / "fixtures" / "gpu_tools"
PLAYBOOK = REPO / "playbooks" / "validate_gpu.yml"
LOCAL = REPO / "inventories" / "local" / "hosts.yml"
VENV_BIN = str(Path(sys.executable).parent)
sys.path.insert(0, str(TOOLS))
from gpu_trees import make_trees  # noqa: E402  (a fixture helper beside the recorded outputs)


def playbook(*extra: str, inventory: Path = LOCAL, path: str | None = None) -> tuple[int, dict]:
    """ansible-playbook; returns its rc and each host's last result ({"madengine_gpu": ...} or the failure)."""
    tree = Path(tempfile.mkdtemp(prefix="madengine-gpu-tree-"))
    env = {**os.environ, "ANSIBLE_CALLBACKS_ENABLED": "ansible.builtin.tree", "ANSIBLE_CALLBACK_TREE_DIR": str(tree)}
    env.pop("MADENGINE_GPU_TOOL_DIRS", None)
    if path is not None:
        env["PATH"] = path
    try:
        done = subprocess.run([shutil.which("ansible-playbook", path=env["PATH"]) or "ansible-playbook",
                               "-i", str(inventory), str(PLAYBOOK), *extra],
                              capture_output=True, text=True, env=env, timeout=300, check=False)
        results = {host.name: json.loads(host.read_text()) for host in tree.iterdir()}
    finally:
        shutil.rmtree(tree, ignore_errors=True)
    assert results, done.stdout + done.stderr
    return done.returncode, {host: res.get("madengine_gpu", res) for host, res in results.items()}


def test_playbook_finds_the_gpus_of_the_tools_on_path():
    path = os.pathsep.join([str(TOOLS / "h100_4gpu" / "bin"), VENV_BIN, os.environ["PATH"]])
    rc, facts = playbook(path=path)
    assert rc == 0
    gpu = facts["localhost"]
    assert (gpu["vendor"], gpu["architecture"], gpu["count"], gpu["cuda_version"]) == ("NVIDIA", "H100", 4, "12.2")
    assert gpu["problems"] == [] and gpu["can_run_gpu_models"] is True


def test_playbook_runs_on_every_gpu_node_with_each_nodes_tools_and_the_context_file(tmp_path):
    def node(scenario: str) -> dict:
        sysfs_root, dev_root = make_trees(TOOLS / scenario, tmp_path / scenario)
        return {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                "madengine_gpu_tool_dirs": [str(TOOLS / scenario / "bin")],
                "madengine_gpu_sysfs_root": sysfs_root, "madengine_gpu_dev_root": dev_root}

    inventory = tmp_path / "hosts.json"
    inventory.write_text(json.dumps({"all": {"children": {"gpu_nodes": {"hosts": {
        "mi300x-01": node("mi300x_8gpu"), "h100-01": node("nvidia_driver_down"),
        "mi210-01": {**node("mi210"), "madengine_gpu_vendor": "AMD", "madengine_gpu_count": 4},
        "cpu-01": node("no_tools")}}}}}))
    context_file = tmp_path / "context.json"
    context_file.write_text(json.dumps({"docker_gpus": "0-3", "MAD_SYSTEM_GPU_ARCHITECTURE": "gfx942"}))
    rc, facts = playbook("-e", f"madengine_additional_context_file={context_file}",
                         "-e", '{"madengine_additional_context": {"docker_gpus": "1"}}', inventory=inventory)
    assert rc == 0
    assert set(facts) == {"mi300x-01", "mi210-01", "h100-01", "cpu-01"}
    mi300x, mi210, h100, cpu = facts["mi300x-01"], facts["mi210-01"], facts["h100-01"], facts["cpu-01"]
    assert mi300x["node"] == "mi300x-01"
    assert (mi300x["devices"], mi300x["architecture"]) == (["/dev/dri/renderD136"], "gfx942")
    assert (mi210["devices"], mi210["product"], mi210["device_source"]) == (
        ["/dev/dri/renderD129"], "AMD Instinct MI210", "by-path")
    assert mi210["problems"] == ["the inventory declares 4 GPUs but this node has 2"]
    assert (cpu["vendor"], cpu["can_run_gpu_models"]) == ("NONE", False)
    # a driver that does not answer is a fact about the node, not a failed play
    assert (h100["vendor"], h100["count"], h100["can_run_gpu_models"]) == ("NVIDIA", 0, False)
    assert h100["problems"][0].startswith("nvidia-smi is installed but the driver does not answer: "
                                          "NVIDIA-SMI has failed because it couldn't communicate")


# --------------------------------------------------------------------------- the driver command

def madengine(*args: str, tools: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MADENGINE_GPU_TOOL_DIRS": str(TOOLS / tools / "bin"),
           "PYTHONPATH": os.pathsep.join([str(REPO / "driver"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "madengine", "validate-gpu", *args],
                          capture_output=True, text=True, env=env, timeout=300, check=False)


def test_validate_gpu_prints_the_facts_and_a_yes_verdict():
    done = madengine("--additional-context", '{"docker_gpus": "2,3"}', tools="h100_4gpu")
    assert done.returncode == 0, done.stderr
    assert "NVIDIA H100 80GB HBM3" in done.stdout and "535.129.03" in done.stdout
    assert "localhost: can run GPU models: yes (2 NVIDIA GPUs, H100, reported by nvidia-smi)" in done.stdout


def test_validate_gpu_json_on_a_host_without_gpu_tools_exits_0():
    done = madengine("--json", tools="no_tools")
    assert done.returncode == 0, done.stderr
    [facts] = json.loads(done.stdout)
    assert (facts["node"], facts["vendor"], facts["count"]) == ("localhost", "NONE", 0)


def test_validate_gpu_require_gpu_exits_3_with_the_reason():
    done = madengine("--require-gpu", tools="nvidia_driver_down")
    assert done.returncode == 3
    assert "can run GPU models: no (nvidia-smi is installed but the driver does not answer" in done.stdout
    assert "error: localhost: nvidia-smi is installed but the driver does not answer" in done.stderr


def test_validate_gpu_with_a_missing_context_file_exits_4_without_traceback(tmp_path):
    done = madengine("--additional-context-file", str(tmp_path / "ctx.json"), tools="a100")
    assert done.returncode == 4
    assert f"the context file {tmp_path / 'ctx.json'} cannot be read" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
