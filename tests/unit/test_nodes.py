"""The MAD inventory document (MAD-FORMAT section 7): what is accepted, what is refused and how it is said."""
from __future__ import annotations

import copy

import pytest

from ansible_collections.madengine.core.plugins.module_utils import _nodes
from ansible_collections.madengine.core.plugins.module_utils._errors import InvalidInputError

NODE = {
    "hostname": "gpu-01", "address": "10.0.0.11", "port": 2222, "username": "mad",
    "ssh_key_path": "keys/id", "gpu_count": 8, "gpu_vendor": "AMD",
    "labels": {"env": "production", "Rack": "R-1", "fast": True},
    "environment": {"NCCL_DEBUG": "INFO", "HSA_ENABLE_SDMA": 0, "DEBUG": False},
}


def hosts_of(document, **kwargs):
    return {h.name: h for h in _nodes.inventory_hosts(document, "/inv/nodes.json", **kwargs)}


def problem_of(document) -> str:
    with pytest.raises(InvalidInputError) as caught:
        _nodes.validate(document, "/inv/nodes.json")
    assert caught.value.exit_code == 4
    return caught.value.message


def test_a_node_becomes_an_ssh_host_of_gpu_nodes_with_its_connection_variables():
    host = hosts_of({"nodes": [NODE]})["gpu-01"]
    assert host.variables["ansible_host"] == "10.0.0.11"
    assert host.variables["ansible_port"] == 2222
    assert host.variables["ansible_user"] == "mad"
    assert host.variables["ansible_ssh_private_key_file"] == "/inv/keys/id"
    assert host.variables["madengine_gpu_count"] == 8
    assert host.variables["madengine_gpu_vendor"] == "AMD"
    assert "gpu_nodes" in host.groups


def test_labels_and_vendor_make_sanitised_lower_case_groups():
    host = hosts_of({"nodes": [NODE]})["gpu-01"]
    assert set(host.groups) == {"gpu_nodes", "label_env_production", "label_rack_r_1", "label_fast_true",
                                "gpu_vendor_amd"}


def test_environment_and_labels_reach_the_host_as_strings():
    host = hosts_of({"nodes": [NODE]})["gpu-01"]
    assert host.variables["madengine_node_environment"] == {"NCCL_DEBUG": "INFO", "HSA_ENABLE_SDMA": "0", "DEBUG": "false"}
    assert host.variables["madengine_node_labels"] == {"env": "production", "Rack": "R-1", "fast": "true"}


def test_a_minimal_node_gets_port_22_and_no_invented_gpu_facts():
    host = hosts_of({"nodes": [{"hostname": "n", "address": "n.example"}]})["n"]
    assert host.variables["ansible_port"] == 22
    assert "ansible_user" not in host.variables
    assert "madengine_gpu_count" not in host.variables  # left to gpu_facts
    assert host.groups == ["gpu_nodes"]


@pytest.mark.parametrize("key_path, expected", [
    ("~/.ssh/id", "~/.ssh/id"),
    ("/abs/id", "/abs/id"),
    ("../keys/id", "/keys/id"),
])
def test_a_relative_key_path_is_relative_to_the_inventory_file(key_path, expected):
    node = {"hostname": "n", "address": "a", "ssh_key_path": key_path}
    assert hosts_of({"nodes": [node]})["n"].variables["ansible_ssh_private_key_file"] == expected


def test_the_controller_is_the_build_host_unless_told_otherwise():
    hosts = hosts_of({"nodes": [NODE]})
    assert hosts["localhost"].groups == ["build_hosts"]
    assert hosts["localhost"].variables["ansible_connection"] == "local"
    chosen = hosts_of({"nodes": [NODE]}, build_hosts=["gpu-01"])
    assert "localhost" not in chosen and "build_hosts" in chosen["gpu-01"].groups
    assert "localhost" not in hosts_of({"nodes": [NODE]}, build_hosts=[])


def test_an_unknown_build_host_is_refused_with_the_closest_name():
    with pytest.raises(InvalidInputError, match="'gpu-1' is not a host.*did you mean 'gpu-01'"):
        hosts_of({"nodes": [NODE]}, build_hosts=["gpu-1"])


def test_pods_are_variable_only_hosts_run_from_the_controller():
    pod = {"name": "bench", "node_selector": {"gpu": "mi300"}, "resources": {"limits": {"amd.com/gpu": 1}},
           "gpu_vendor": "AMD", "labels": {"team": "perf"}}
    host = hosts_of({"pods": [pod]}, build_hosts=[])["bench"]
    assert set(host.groups) == {"k8s_pods", "label_team_perf", "gpu_vendor_amd"}
    assert host.variables["ansible_connection"] == "local"
    assert host.variables["madengine_k8s_resources"] == {"limits": {"amd.com/gpu": "1"}}
    assert host.variables["madengine_k8s_node_selector"] == {"gpu": "mi300"}


def test_the_slurm_login_node_is_a_host_of_slurm_login_with_partitions_and_modules():
    cluster = {"login_node": {"hostname": "login", "address": "hpc.example", "username": "u"},
               "partitions": [{"name": "gpu", "nodes": 4, "gpu_vendor": "AMD"}], "modules": ["rocm/6"]}
    host = hosts_of({"slurm_cluster": cluster}, build_hosts=[])["login"]
    assert host.groups == ["slurm_login"]
    assert host.variables["ansible_host"] == "hpc.example"
    assert host.variables["madengine_slurm_partitions"] == [{"name": "gpu", "nodes": 4, "gpu_vendor": "AMD"}]
    assert host.variables["madengine_slurm_modules"] == ["rocm/6"]


@pytest.mark.parametrize("change, expected", [
    (lambda d: d["nodes"][0].pop("address"), "nodes[0] (hostname 'gpu-01'): missing required key 'address'"),
    (lambda d: d["nodes"][0].update(adress="x"), "unknown key 'adress'; did you mean 'address'?"),
    (lambda d: d["nodes"][0].update(gpu_cuont=8), "unknown key 'gpu_cuont'; did you mean 'gpu_count'?"),
    (lambda d: d["nodes"][0].update(port="22"), "key 'port': must be an integer, got a string ('22')"),
    (lambda d: d["nodes"][0].update(port=True), "key 'port': must be an integer, got a boolean"),
    (lambda d: d["nodes"][0].update(port=70000), "key 'port': must be between 1 and 65535, got 70000"),
    (lambda d: d["nodes"][0].update(gpu_count=-1), "key 'gpu_count': must be at least 0"),
    (lambda d: d["nodes"][0].update(gpu_vendor="amd"), "'amd' is not one of AMD, NVIDIA; did you mean 'AMD'?"),
    (lambda d: d["nodes"][0].update(hostname="gpu 01"), "key 'hostname': must not contain spaces"),
    (lambda d: d["nodes"][0].update(address=""), "key 'address': must not be empty"),
    (lambda d: d["nodes"][0].update(labels=["env"]), "key 'labels': must be a mapping, got a list"),
    (lambda d: d["nodes"][0]["environment"].update(X={"a": 1}), "key 'environment.X': must be a string, an integer"),
    (lambda d: d.update(nodes={"hostname": "x"}), "the top level, key 'nodes': must be a list, got a mapping"),
    (lambda d: d.update(nodes=[]), "key 'nodes': must list at least one entry"),
    (lambda d: d.update(node=[]), "unknown key 'node'; did you mean 'nodes'?"),
    (lambda d: d["nodes"].append(dict(NODE)), "nodes[1]: host name 'gpu-01' is already used by nodes[0]"),
])
def test_a_bad_node_file_is_refused_naming_the_file_the_entry_and_the_key(change, expected):
    document = {"nodes": [copy.deepcopy(NODE)]}
    change(document)
    message = problem_of(document)
    assert "/inv/nodes.json" in message
    assert expected in message


def test_every_problem_is_listed_at_once():
    document = {"nodes": [{"hostname": "a"}, {"hostname": "b", "address": "x", "port": "1"}]}
    message = problem_of(document)
    assert "nodes[0] (hostname 'a'): missing required key 'address'" in message
    assert "nodes[1] (hostname 'b'), key 'port'" in message


def test_problems_in_pods_and_slurm_entries_name_their_entry():
    message = problem_of({"pods": [{"name": "p", "resources": {"limit": {}}}],
                          "slurm_cluster": {"login_node": {"hostname": "l"},
                                            "partitions": [{"name": "gpu", "gpu_types": "mi300"}]}})
    assert "pods[0] (name 'p'), key 'resources': unknown key 'limit'; did you mean 'limits'?" in message
    assert "slurm_cluster, key 'login_node': missing required key 'address'" in message
    assert "slurm_cluster.partitions[0] (name 'gpu'), key 'gpu_types': must be a list" in message


@pytest.mark.parametrize("document, expected", [
    ([{"hostname": "a", "address": "b"}], "must be a mapping with nodes, pods, slurm_cluster, got a list"),
    ({}, "the top level: empty; give at least one of nodes, pods, slurm_cluster"),
])
def test_a_document_of_the_wrong_shape_says_what_shape_is_wanted(document, expected):
    assert expected in problem_of(document)


def test_a_long_list_of_problems_is_cut_short():
    document = {"nodes": [{"hostname": f"n{i}"} for i in range(15)]}
    message = problem_of(document)
    assert "and 5 more" in message


@pytest.mark.parametrize("parts, expected", [
    (("label", "env", "Prod-EU"), "label_env_prod_eu"),
    (("label", "fast", True), "label_fast_true"),
    (("gpu_vendor", "NVIDIA"), "gpu_vendor_nvidia"),
    (("label", "zone", "eu.west/1"), "label_zone_eu_west_1"),
])
def test_group_names_are_safe_for_ansible(parts, expected):
    assert _nodes.group_name(*parts) == expected


@pytest.mark.parametrize("document, expected", [
    ({"nodes": []}, True),
    ({"slurm_cluster": {}}, True),
    ({"plugin": "madengine.core.mad_nodes", "nodes": []}, False),
    ({"all": {"hosts": {}}}, False),
    ([{"hostname": "a"}], False),
])
def test_a_mad_node_file_is_told_from_other_inventories(document, expected):
    assert _nodes.is_mad_inventory(document) is expected


def test_the_plugin_config_for_a_node_file_names_it_absolutely(tmp_path, monkeypatch):
    import yaml

    monkeypatch.chdir(tmp_path)
    config = yaml.safe_load(_nodes.plugin_config("my nodes.json", build_hosts=["gpu-01"]))
    assert config == {"plugin": "madengine.core.mad_nodes", "path": str(tmp_path / "my nodes.json"),
                      "build_hosts": ["gpu-01"]}
