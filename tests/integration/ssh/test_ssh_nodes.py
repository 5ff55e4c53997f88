"""Multi-node foundations: real SSH nodes reached through the mad_nodes inventory and plain inventories."""
from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.ssh]
PLAYBOOK = Path(__file__).parent / "playbooks" / "reach_nodes.yml"


def run_playbook(cluster, inventory: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    out.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [shutil.which("ansible-playbook"), "-i", str(inventory), str(PLAYBOOK), "-e", f"reach_nodes_out={out}", *extra],
        capture_output=True, text=True, env=cluster.env, timeout=300, check=False)


def seen(out: Path) -> dict:
    """What each node that finished the run saw, by inventory host name."""
    return json.loads((out / "seen.json").read_text())


def task_running(cluster, node) -> bool:
    processes = cluster.client.containers.get(node.container).top(ps_args="-eo pid,args")["Processes"]
    return any("import json" in " ".join(p) for p in processes)


@pytest.mark.parametrize("form", ["config_inventory", "node_file", "plain_inventory"])
def test_every_node_is_reached_over_ssh_and_drives_the_host_engine(ssh_nodes, tmp_path, form):
    done = run_playbook(ssh_nodes, getattr(ssh_nodes, form), tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    results = seen(tmp_path)
    assert set(results) == {n.name for n in ssh_nodes.nodes}
    for node in ssh_nodes.nodes:
        result = results[node.name]
        assert result["hostname"] == node.name  # this node's container answered, not another
        assert result["env"] == node.name  # the node's environment reached the task
        assert node.container in result["containers"]  # the node sees the host engine through the socket
        assert "gpu_nodes" in result["groups"]


def test_label_groups_of_the_node_file_select_nodes(ssh_nodes, tmp_path):
    done = run_playbook(ssh_nodes, ssh_nodes.config_inventory, tmp_path, "--limit", "label_slot_2")
    assert done.returncode == 0, done.stdout + done.stderr
    results = seen(tmp_path)
    assert set(results) == {"node-2"}
    assert {"label_env_test", "label_slot_2"} <= set(results["node-2"]["groups"])


def test_a_node_stopped_in_the_middle_of_a_run_is_unreachable_and_the_others_finish(ssh_nodes, tmp_path):
    victim = ssh_nodes.nodes[1]
    result = {}
    runner = threading.Thread(target=lambda: result.update(
        done=run_playbook(ssh_nodes, ssh_nodes.config_inventory, tmp_path, "-e", "reach_nodes_hold_s=6")))
    runner.start()
    # Stop it while its long task runs: the task's python3 shows in the node's process list.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not task_running(ssh_nodes, victim):
        time.sleep(0.2)
    assert task_running(ssh_nodes, victim), "the long task never started on the node"
    ssh_nodes.stop(victim)
    runner.join(timeout=300)
    done = result["done"]
    assert done.returncode != 0
    assert set(seen(tmp_path)) == {n.name for n in ssh_nodes.nodes} - {victim.name}
    recap = done.stdout[done.stdout.rindex("PLAY RECAP"):]
    assert any(line.startswith(victim.name) and "unreachable=1" in line for line in recap.splitlines()), recap
    ssh_nodes.start(victim)
    again = run_playbook(ssh_nodes, ssh_nodes.config_inventory, tmp_path / "again", "--limit", victim.name)
    assert again.returncode == 0, again.stdout + again.stderr
