"""What a model run takes from the GPU facts: its devices, visibility variables, docker options."""
from __future__ import annotations

import pytest

from ansible_collections.madengine.core.plugins.module_utils import _gpu
from ansible_collections.madengine.core.plugins.module_utils._errors import InvalidInputError

AMD8 = {"vendor": "AMD", "devices": [f"/dev/dri/renderD{128 + 8 * i}" for i in range(8)], "overrides": []}
NV4 = {"vendor": "NVIDIA", "devices": ["0", "1", "2", "3"], "overrides": []}
NONE = {"vendor": "NONE", "devices": [], "overrides": [],
        "reason": "no GPU tool found: looked for amd-smi, rocm-smi, rocminfo and nvidia-smi"}


@pytest.mark.parametrize("n_gpus, expected", [
    ("-1", AMD8["devices"]), (-1, AMD8["devices"]), ("0", []), ("1", AMD8["devices"][:1]),
    ("3", AMD8["devices"][:3]), (" 8 ", AMD8["devices"]),
])
def test_n_gpus_picks_all_none_or_the_first_n(n_gpus, expected):
    assert _gpu.select_devices(AMD8, n_gpus) == (expected, None)


def test_asking_for_more_gpus_than_the_node_offers_gives_no_devices_and_a_reason():
    assert _gpu.select_devices(NV4, "8") == ([], "the model needs 8 GPUs but this node offers 4")


def test_the_reason_mentions_docker_gpus_when_it_narrowed_the_choice():
    facts = dict(NV4, devices=["2"], overrides=["docker_gpus"])
    assert _gpu.select_devices(facts, "2")[1] == ("the model needs 2 GPUs but this node offers 1 "
                                                  "(docker_gpus selects them)")


def test_a_node_without_gpus_runs_only_cpu_models():
    assert _gpu.select_devices(NONE, "0") == ([], None)
    devices, reason = _gpu.select_devices(NONE, "-1")
    assert devices == []
    assert reason == ("the model needs all GPUs of the node but this node has none usable: "
                      "no GPU tool found: looked for amd-smi, rocm-smi, rocminfo and nvidia-smi")


@pytest.mark.parametrize("bad", ["all", "-2", "1.5", "", None])
def test_an_n_gpus_that_is_not_a_count_is_invalid_input(bad):
    with pytest.raises(InvalidInputError, match="is not a GPU count"):
        _gpu.select_devices(AMD8, bad)


def test_visibility_variables_count_from_zero_inside_the_container():
    chosen = AMD8["devices"][2:5]
    assert _gpu.visibility_env(AMD8, chosen) == {"HIP_VISIBLE_DEVICES": "0,1,2", "ROCR_VISIBLE_DEVICES": "0,1,2"}
    assert _gpu.visibility_env(NV4, ["2", "3"]) == {"CUDA_VISIBLE_DEVICES": "0,1"}
    assert _gpu.visibility_env(NV4, []) == {}


def test_docker_options_pass_kfd_and_render_nodes_for_amd_and_a_device_request_for_nvidia():
    assert _gpu.docker_device_options(AMD8, AMD8["devices"][:1]) == {
        "devices": ["/dev/kfd:/dev/kfd:rwm", "/dev/dri/renderD128:/dev/dri/renderD128:rwm"],
        "group_add": ["video"]}
    assert _gpu.docker_device_options(NV4, ["1", "3"]) == {
        "device_requests": [{"driver": "nvidia", "device_ids": ["1", "3"], "capabilities": [["gpu"]]}]}
    assert _gpu.docker_device_options(NONE, []) == {}


@pytest.mark.parametrize("text, indices", [("0,2-4", [0, 2, 3, 4]), (" 3 , 1 ", [1, 3]), ("5", [5]),
                                           (2, [2]), ([0, "3"], [0, 3]), ("0-1,1-2", [0, 1, 2]), ("all", None)])
def test_docker_gpus_ranges(text, indices):
    assert _gpu.parse_gpu_list(text) == indices


@pytest.mark.parametrize("text", ["", "a", "3-1", "-1", "0,,1", "1-", True])
def test_docker_gpus_that_is_not_a_gpu_list_is_invalid_input(text):
    with pytest.raises(InvalidInputError, match="is not a GPU list"):
        _gpu.parse_gpu_list(text)
