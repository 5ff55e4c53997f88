"""--inventory in the driver: a MAD node file becomes a plugin config, forks follow the host count."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "driver"))

from madengine.runner import default_forks, inventory_problem, prepare_inventory  # noqa: E402 - this checkout's driver

NODES = {"nodes": [{"hostname": f"gpu-{i}", "address": f"10.0.0.{i}"} for i in range(1, 21)]}


def test_a_mad_node_file_of_any_name_is_wrapped_in_a_plugin_config_in_the_private_dir(tmp_path):
    node_file = tmp_path / "fleet.json"
    node_file.write_text(json.dumps(NODES))
    private = tmp_path / "private"
    private.mkdir()
    inventory, hosts = prepare_inventory(node_file, private)
    config = yaml.safe_load(Path(inventory).read_text())
    assert Path(inventory).parent.parent == private
    assert config["plugin"] == "madengine.core.mad_nodes" and config["path"] == str(node_file.resolve())
    assert hosts == 21  # the nodes and the controller


def test_other_inventories_are_passed_on_and_their_hosts_counted(tmp_path):
    plain = tmp_path / "hosts.yml"
    plain.write_text(yaml.safe_dump({"all": {"children": {
        "build_hosts": {"hosts": {"localhost": {}}},
        "gpu_nodes": {"hosts": {"a": {}, "b": {}, "localhost": {}}}}}}))
    ini = tmp_path / "hosts.ini"
    ini.write_text("[gpu_nodes]\nn1 ansible_host=10.0.0.1\nn2\n[gpu_nodes:vars]\nansible_user=root\n"
                   "[all:children]\ngpu_nodes\n")
    config = tmp_path / "cluster.mad_nodes.yml"
    (tmp_path / "nodes.json").write_text(json.dumps(NODES))
    config.write_text("plugin: madengine.core.mad_nodes\npath: nodes.json\n")
    assert prepare_inventory(plain, tmp_path) == (str(plain.resolve()), 3)
    assert prepare_inventory(ini, tmp_path) == (str(ini.resolve()), 2)
    assert prepare_inventory(config, tmp_path) == (str(config.resolve()), 21)


def test_forks_follow_the_hosts_between_ansibles_default_and_a_cap():
    assert [default_forks(n) for n in (0, 1, 16, 500)] == [5, 5, 16, 64]


def test_a_bad_mad_node_file_is_reported_with_its_entry_and_other_files_are_left_to_ansible(tmp_path):
    bad = tmp_path / "nodes.yml"
    bad.write_text("nodes:\n  - hostname: gpu-01\n    address: 10.0.0.1\n    port: twenty-two\n")
    problem = inventory_problem(bad)
    assert problem and "nodes[0] (hostname 'gpu-01'), key 'port': must be an integer" in problem
    ini = tmp_path / "hosts.ini"
    ini.write_text("[gpu_nodes]\nn1\n")
    assert inventory_problem(ini) is None
    good = tmp_path / "good.json"
    good.write_text(json.dumps(NODES))
    assert inventory_problem(good) is None
