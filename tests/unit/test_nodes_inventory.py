"""The mad_nodes inventory plugin as Ansible runs it: `ansible-inventory --list` in a real subprocess."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

FILES = Path(__file__).resolve().parents[1] / "fixtures" / "inventories"
EXAMPLES = Path(__file__).resolve().parents[2] / "inventories" / "examples"
ENABLED = "madengine.core.mad_nodes,auto,yaml,ini"


def ansible_inventory(source: Path, enabled: str | None = ENABLED, unparsed_failed: bool = True):
    env = dict(os.environ, ANSIBLE_INVENTORY_UNPARSED_FAILED=str(unparsed_failed), ANSIBLE_NOCOLOR="1",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="True")
    env.pop("ANSIBLE_INVENTORY_ENABLED", None)
    if enabled:
        env["ANSIBLE_INVENTORY_ENABLED"] = enabled
    return subprocess.run([shutil.which("ansible-inventory"), "-i", str(source), "--list"],
                          capture_output=True, text=True, env=env, timeout=120, check=False)


def listing(source: Path, **kwargs) -> dict:
    done = ansible_inventory(source, **kwargs)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def hosts_in(inventory: dict, group: str) -> set:
    return set(inventory.get(group, {}).get("hosts", []))


def test_a_config_file_pointing_at_a_node_file_works_with_ansibles_default_plugins():
    inventory = listing(FILES / "path.mad_nodes.yml", enabled=None)
    hostvars = inventory["_meta"]["hostvars"]
    assert hosts_in(inventory, "gpu_nodes") == {"gpu-01", "gpu-02"}
    assert hosts_in(inventory, "build_hosts") == {"gpu-01"}
    assert hosts_in(inventory, "label_env_production") == {"gpu-01"}
    assert hosts_in(inventory, "label_rack_r_1") == {"gpu-01"}
    assert hosts_in(inventory, "gpu_vendor_nvidia") == {"gpu-02"}
    assert hosts_in(inventory, "big") == {"gpu-01"}  # constructable `groups`
    assert hostvars["gpu-01"]["ansible_ssh_private_key_file"] == str(FILES / "keys" / "id_ed25519")
    assert hostvars["gpu-01"]["ansible_python_interpreter"] == "/usr/bin/python3"  # constructable `compose`
    assert hostvars["gpu-01"]["madengine_node_environment"] == {"NCCL_DEBUG": "INFO", "HSA_ENABLE_SDMA": "0"}
    assert hostvars["gpu-02"]["ansible_port"] == 2222


def test_a_node_file_is_read_directly_when_the_plugin_is_enabled():
    inventory = listing(FILES / "lab.mad_nodes.json")
    assert hosts_in(inventory, "gpu_nodes") == {"gpu-01", "gpu-02"}
    assert hosts_in(inventory, "build_hosts") == {"localhost"}
    assert inventory["_meta"]["hostvars"]["gpu-01"]["ansible_host"] == "10.0.0.11"


def test_nodes_pods_and_a_slurm_cluster_can_share_one_file():
    inventory = listing(FILES / "everything.mad_nodes.yml", enabled=None)
    hostvars = inventory["_meta"]["hostvars"]
    assert hosts_in(inventory, "gpu_nodes") == {"node-a"}
    assert hosts_in(inventory, "k8s_pods") == {"pod-a"}
    assert hosts_in(inventory, "slurm_login") == {"login"}
    assert hostvars["pod-a"]["ansible_connection"] == "local"
    assert hostvars["login"]["madengine_slurm_partitions"][0]["qos"] == "high"


@pytest.mark.parametrize("example", ["cluster.mad_nodes.yml", "slurm.mad_nodes.yml", "k8s.mad_nodes.yml", "hosts.yml"])
def test_the_shipped_examples_parse(example):
    inventory = listing(EXAMPLES / example, enabled=None)
    assert inventory["_meta"]["hostvars"]


def test_a_plain_ansible_inventory_with_the_same_groups_still_works():
    inventory = listing(FILES / "plain_hosts.yml")
    assert hosts_in(inventory, "gpu_nodes") == {"gpu-01"}
    assert hosts_in(inventory, "build_hosts") == {"localhost"}


@pytest.mark.parametrize("name, expected", [
    ("wrong_type.mad_nodes.yml", "nodes[0] (hostname 'gpu-01'), key 'port': must be an integer, got a string ('22')"),
    ("bad_option.mad_nodes.yml", "did you mean 'path'? (valid options: "),
])
def test_a_bad_config_file_fails_naming_the_file_and_the_entry(name, expected):
    done = ansible_inventory(FILES / name, enabled=None)
    assert done.returncode != 0
    assert str(FILES / name) in done.stderr
    assert expected in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("name, expected", [
    ("missing_address.mad_nodes.json", "nodes[1] (hostname 'gpu-02'): missing required key 'address'"),
    ("unknown_key.mad_nodes.yml", "nodes[0] (hostname 'gpu-01'): unknown key 'gpu_cuont'; did you mean 'gpu_count'?"),
    ("duplicate.mad_nodes.json", "nodes[1]: host name 'gpu-01' is already used by nodes[0]"),
])
def test_a_bad_node_file_used_directly_is_reported_as_an_error_naming_the_file_and_the_entry(name, expected):
    done = ansible_inventory(FILES / name)
    assert f"[ERROR]: invalid MAD inventory {FILES / name}" in done.stderr
    assert expected in done.stderr
    assert "Traceback" not in done.stderr


def test_a_bad_node_file_named_by_a_config_file_fails(tmp_path):
    config = tmp_path / "x.mad_nodes.yml"
    config.write_text(f"plugin: madengine.core.mad_nodes\npath: {FILES / 'missing_address.mad_nodes.json'}\n")
    done = ansible_inventory(config, enabled=None)
    assert done.returncode != 0
    assert f"invalid MAD inventory {FILES / 'missing_address.mad_nodes.json'}" in done.stderr
    assert "nodes[1] (hostname 'gpu-02'): missing required key 'address'" in done.stderr


def test_a_missing_node_file_named_by_path_is_reported(tmp_path):
    config = tmp_path / "gone.mad_nodes.yml"
    config.write_text("plugin: madengine.core.mad_nodes\npath: nowhere.json\n")
    done = ansible_inventory(config)
    assert done.returncode != 0
    assert f"the MAD node file {tmp_path / 'nowhere.json'} named by 'path' in {config} does not exist" in done.stderr


@pytest.mark.parametrize("name, mark", [
    ("site.yml", "plugin: madengine.core.mad_nodes   # MAD nodes\n"),
    ("site.json", '{"plugin": "madengine.core.mad_nodes",\n'),
])
def test_a_config_file_of_any_name_is_recognised_by_its_plugin_key(tmp_path, name, mark):
    config = tmp_path / name
    inline = '"nodes": [{"hostname": "n1", "address": "192.0.2.1"}]}' if name.endswith(".json") else \
        "nodes: [{hostname: n1, address: 192.0.2.1}]\n"
    config.write_text(mark + inline)
    inventory = listing(config)
    assert hosts_in(inventory, "gpu_nodes") == {"n1"}


def test_files_of_other_plugins_are_not_claimed(tmp_path):
    other = tmp_path / "hosts.yml"
    other.write_text("all:\n  hosts:\n    h1:\n")
    inventory = listing(other)
    assert hosts_in(inventory, "ungrouped") == {"h1"}
