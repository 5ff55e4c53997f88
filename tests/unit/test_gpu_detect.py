"""gather_gpu_facts against fake vendor tools that print recorded outputs (tests/fixtures/gpu_tools).

The fakes are real executables run as subprocesses; each fails with exit 64 on arguments
madengine is not expected to pass, so a wrong call shows up as a problem in the facts.
"""
from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest

from ansible_collections.madengine.core.plugins.module_utils import _gpu
from ansible_collections.madengine.core.plugins.module_utils._errors import InvalidInputError

TOOLS = Path(__file__).resolve().parents[1] / "fixtures" / "gpu_tools"
sys.path.insert(0, str(TOOLS))
from gpu_trees import make_trees  # noqa: E402  (a fixture helper beside the recorded outputs)

_TREES: dict = {}


def facts_of(scenario: str, context: dict | None = None, **kwargs) -> dict:
    """The facts with the scenario's tools, and its /sys and /dev trees made once per session."""
    if scenario not in _TREES:
        where = tempfile.mkdtemp(prefix=f"gpu-{scenario}-")
        atexit.register(shutil.rmtree, where, True)
        _TREES[scenario] = make_trees(TOOLS / scenario, Path(where))
    sysfs_root, dev_root = _TREES[scenario]
    kwargs.setdefault("sysfs_root", sysfs_root)
    kwargs.setdefault("dev_root", dev_root)
    return _gpu.gather_gpu_facts(context, tool_dirs=[str(TOOLS / scenario / "bin")], node="node1", **kwargs)


def test_mi300x_node_reports_eight_gpus_with_their_render_nodes_from_sysfs():
    facts = facts_of("mi300x_8gpu")
    assert facts["problems"] == []
    assert (facts["vendor"], facts["architecture"], facts["product"]) == ("AMD", "gfx942", "AMD Instinct MI300X")
    assert facts["count"] == facts["total_count"] == 8
    # each MI300X reserves 8 render minors, so the nodes are not renderD128 + index
    assert facts["devices"] == [f"/dev/dri/renderD{128 + 8 * i}" for i in range(8)]
    assert (facts["tool"], facts["device_source"]) == ("amd-smi", "sysfs")
    assert (facts["driver_version"], facts["rocm_version"], facts["cuda_version"]) == ("6.12.12", "6.4.1", None)
    assert facts["can_run_gpu_models"] is True
    assert facts["reason"] == "8 AMD GPUs, gfx942, reported by amd-smi"


def test_mi210_node_without_amd_smi_uses_rocm_smi_with_rocminfo_and_by_path_links():
    facts = facts_of("mi210")
    assert facts["problems"] == []
    assert (facts["vendor"], facts["architecture"], facts["product"]) == ("AMD", "gfx90a", "AMD Instinct MI210")
    assert facts["devices"] == ["/dev/dri/renderD128", "/dev/dri/renderD129"]
    assert [g["bus_id"] for g in facts["gpus"]] == ["0000:43:00.0", "0000:c3:00.0"]
    assert (facts["tool"], facts["device_source"]) == ("rocm-smi", "by-path")
    assert (facts["driver_version"], facts["rocm_version"]) == ("6.2.4", "5.7.1")


def test_amd_gpus_without_sysfs_get_render_nodes_counted_from_128():
    facts = facts_of("mi300x_8gpu", sysfs_root="/nonexistent", dev_root="/nonexistent")
    assert facts["devices"] == [f"/dev/dri/renderD{128 + i}" for i in range(8)]
    assert facts["device_source"] == "derived"
    assert facts["problems"] == []


def test_h100_node_reports_indices_as_devices_and_the_cuda_version():
    facts = facts_of("h100_4gpu")
    assert facts["problems"] == []
    assert (facts["vendor"], facts["architecture"], facts["product"]) == ("NVIDIA", "H100", "NVIDIA H100 80GB HBM3")
    assert facts["devices"] == ["0", "1", "2", "3"]
    assert (facts["driver_version"], facts["cuda_version"], facts["rocm_version"]) == ("535.129.03", "12.2", None)
    assert facts["gpus"][0]["memory_mib"] == 81559


def test_h200_node_recorded_from_a_real_580_driver_reports_its_gpu():
    facts = facts_of("h200_1gpu")  # outputs of a real H200 node, unedited
    assert facts["problems"] == []
    assert (facts["vendor"], facts["architecture"], facts["product"]) == ("NVIDIA", "H200", "NVIDIA H200")
    assert (facts["count"], facts["devices"], facts["gpus"][0]["bus_id"]) == (1, ["0"], "0000:00:06.0")
    assert (facts["driver_version"], facts["cuda_version"]) == ("580.159.04", "13.0")
    assert facts["gpus"][0]["memory_mib"] == 143771
    assert facts["can_run_gpu_models"] is True


def test_a100_node_with_an_old_driver_names_the_architecture_a100():
    facts = facts_of("a100")
    assert (facts["count"], facts["architecture"], facts["cuda_version"]) == (8, "A100", "11.2")


def test_nvidia_smi_without_driver_reports_vendor_nvidia_no_gpu_and_its_message():
    facts = facts_of("nvidia_driver_down")
    assert (facts["vendor"], facts["count"], facts["devices"], facts["tool"]) == ("NVIDIA", 0, [], None)
    assert facts["problems"] == [
        "nvidia-smi is installed but the driver does not answer: NVIDIA-SMI has failed because it "
        "couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is "
        "installed and running."]
    assert facts["can_run_gpu_models"] is False
    assert facts["reason"] == facts["problems"][0]


def test_amd_tools_without_driver_report_each_tools_message():
    facts = facts_of("amd_driver_down")
    assert (facts["vendor"], facts["count"]) == ("AMD", 0)
    assert facts["tools_installed"] == ["amd-smi", "rocm-smi", "rocminfo"]
    assert facts["problems"] == [
        "amd-smi is installed but the driver does not answer: ERROR: Driver not initialized (amdgpu not found in modules)",
        "rocm-smi is installed but the driver does not answer: ERROR:root:Driver not initialized (amdgpu not found in modules)",
        "rocminfo is installed but the driver does not answer: ROCk module is NOT loaded, possibly no GPU devices",
    ]
    assert facts["rocm_version"] == "6.2.0"
    assert facts["can_run_gpu_models"] is False


def test_host_without_any_gpu_tool_reports_vendor_none():
    facts = facts_of("no_tools")
    assert (facts["vendor"], facts["count"], facts["tool"], facts["problems"]) == ("NONE", 0, None, [])
    assert facts["can_run_gpu_models"] is False
    assert "no GPU tool found" in facts["reason"]


def test_this_machine_has_no_gpu_tool(tmp_path):
    # the default search (PATH and /opt/rocm/bin) on the CI machine, which has no GPU
    if any(_gpu.find_tool(t, _gpu.default_tool_dirs()) for t in _gpu.AMD_TOOLS + _gpu.NVIDIA_TOOLS):
        pytest.skip("this machine has GPU tools installed")
    facts = _gpu.gather_gpu_facts({}, sysfs_root=str(tmp_path), dev_root=str(tmp_path))
    assert facts["vendor"] == "NONE"


def test_a_hung_tool_is_killed_with_its_children_soon_after_the_timeout():
    start = time.monotonic()
    facts = facts_of("hung_tool", timeout=1)
    assert time.monotonic() - start < 8
    assert facts["problems"] == ["nvidia-smi did not answer within 1 s and was stopped"]
    assert facts["count"] == 0


def test_run_tool_reports_a_tool_that_cannot_be_started(tmp_path):
    script = tmp_path / "amd-smi"
    script.write_text("#!/bin/sh\necho hi\n")  # not executable
    res = _gpu.run_tool([str(script), "list", "--json"])
    assert res.ok is False and res.error
    assert _gpu.tool_problem("amd-smi", res).startswith("amd-smi could not be started: ")


def test_a_wrong_call_to_a_fake_tool_shows_up_as_a_problem():
    res = _gpu.run_tool([str(TOOLS / "h100_4gpu" / "bin" / "nvidia-smi"), "-L"])
    assert res.rc == 64 and "unexpected arguments: -L" in res.stderr


def test_working_nvidia_tools_win_over_amd_tools_whose_driver_is_down(tmp_path):
    for scenario, tool in (("amd_driver_down", "rocm-smi"), ("h100_4gpu", "nvidia-smi")):
        (tmp_path / tool).symlink_to(TOOLS / scenario / "bin" / tool)
    facts = _gpu.gather_gpu_facts({}, tool_dirs=[str(tmp_path)], sysfs_root="/nonexistent", dev_root="/nonexistent")
    assert (facts["vendor"], facts["count"], facts["problems"]) == ("NVIDIA", 4, [])


# --------------------------------------------------------------------------- context overrides

def test_docker_gpus_selects_which_gpus_are_used():
    facts = facts_of("mi300x_8gpu", {"docker_gpus": "0,2-4"})
    assert facts["indices"] == [0, 2, 3, 4]
    assert facts["devices"] == ["/dev/dri/renderD128", "/dev/dri/renderD144", "/dev/dri/renderD152",
                                "/dev/dri/renderD160"]
    assert (facts["count"], facts["total_count"]) == (4, 8)
    assert facts["overrides"] == ["docker_gpus"]


def test_docker_gpus_naming_a_gpu_the_node_lacks_is_invalid_input():
    with pytest.raises(InvalidInputError, match="names GPU 4, 5 but this node has GPU 0, 1, 2, 3"):
        facts_of("h100_4gpu", {"docker_gpus": "2-5"})


def test_context_architecture_overrides_detection_build_arg_first():
    facts = facts_of("h100_4gpu", {"MAD_SYSTEM_GPU_ARCHITECTURE": "sm90",
                                   "docker_build_arg": {"MAD_SYSTEM_GPU_ARCHITECTURE": "H100-SXM"}})
    assert facts["architecture"] == "H100-SXM"
    assert facts_of("h100_4gpu", {"MAD_SYSTEM_GPU_ARCHITECTURE": "sm90"})["architecture"] == "sm90"


@pytest.mark.parametrize("key", _gpu.COUNT_KEYS)
def test_a_count_from_the_context_limits_the_gpus(key):
    facts = facts_of("h100_4gpu", {key: "2"})
    assert (facts["count"], facts["devices"], facts["overrides"]) == (2, ["0", "1"], [key])


def test_a_count_above_the_detected_one_adds_gpus_the_tools_did_not_see():
    facts = facts_of("h100_4gpu", {"gpu_count": 6})
    assert facts["devices"] == ["0", "1", "2", "3", "4", "5"]


def test_context_vendor_and_count_stand_in_for_missing_tools():
    facts = facts_of("no_tools", {"gpu_vendor": "AMD", "n_gpus": "2"})
    assert (facts["vendor"], facts["count"], facts["devices"]) == ("AMD", 2, ["/dev/dri/renderD128", "/dev/dri/renderD129"])
    assert facts["overrides"] == ["gpu_vendor", "n_gpus"]
    assert facts["can_run_gpu_models"] is True
    assert facts["reason"] == "2 AMD GPUs, architecture unknown, as the context says"


def test_context_vendor_limits_detection_to_that_vendors_tools():
    facts = facts_of("h100_4gpu", {"gpu_vendor": "AMD"})
    assert (facts["vendor"], facts["count"], facts["tools_installed"]) == ("AMD", 0, [])
    assert facts["reason"] == "gpu_vendor is AMD but amd-smi, rocm-smi or rocminfo is not installed"


def test_a_count_without_a_vendor_is_reported_not_invented():
    facts = facts_of("no_tools", {"gpu_count": 4})
    assert facts["count"] == 0
    assert facts["problems"] == ["the context sets gpu_count=4 but no GPU vendor is known; set gpu_vendor as well"]


def test_gpu_render_ds_from_the_context_replace_the_render_nodes():
    facts = facts_of("mi210", {"gpu_renderDs": [130, 131]})
    assert facts["devices"] == ["/dev/dri/renderD130", "/dev/dri/renderD131"]


@pytest.mark.parametrize("context, message", [
    ({"gpu_vendor": "INTEL"}, "gpu_vendor 'INTEL' is neither AMD nor NVIDIA"),
    ({"gpu_count": "eight"}, "gpu_count 'eight' is not a number of GPUs"),
    ({"docker_gpus": "0,x"}, "docker_gpus '0,x' is not a GPU list"),
    ({"gpu_renderDs": [128]}, "gpu_renderDs [128] does not give a render node number for each of the 2 GPUs"),
])
def test_bad_gpu_context_values_are_invalid_input(context, message):
    with pytest.raises(InvalidInputError, match=message.replace("[", r"\[").replace("]", r"\]")) as err:
        facts_of("mi210", context)
    assert err.value.exit_code == 4


def test_what_the_inventory_declares_is_checked_against_the_tools():
    assert facts_of("h100_4gpu", expected={"vendor": "NVIDIA", "count": 4})["problems"] == []
    facts = facts_of("h100_4gpu", expected={"vendor": "AMD", "count": "8"})
    assert facts["problems"] == ["the inventory declares AMD GPUs but this node has NVIDIA",
                                 "the inventory declares 8 GPUs but this node has 4"]
    assert facts["can_run_gpu_models"] is True


def test_context_is_read_from_json_or_a_python_dict_literal():
    assert _gpu.parse_context('{"gpu_vendor": "AMD"}') == {"gpu_vendor": "AMD"}
    assert _gpu.parse_context("{'docker_gpus': '0-3'}") == {"docker_gpus": "0-3"}
    assert _gpu.parse_context("") == {}
    with pytest.raises(InvalidInputError, match="neither JSON nor a Python dict literal"):
        _gpu.parse_context("{gpu_vendor: AMD")
    with pytest.raises(InvalidInputError, match="must be an object"):
        _gpu.parse_context("[1, 2]")


# --------------------------------------------------------------------------- render node mapping

def make_drm(root: Path, nodes: dict) -> None:
    """sysfs like the kernel's: class/drm/renderDN -> devices/.../BDF/drm/renderDN, device -> BDF."""
    for node, bdf in nodes.items():
        pci = root / "devices" / "pci0000:00" / bdf
        (pci / "drm" / node).mkdir(parents=True)
        (pci / "drm" / node / "device").symlink_to(f"../../../{bdf}")
        (root / "class" / "drm").mkdir(parents=True, exist_ok=True)
        (root / "class" / "drm" / node).symlink_to(os.path.relpath(pci / "drm" / node, root / "class" / "drm"))


def test_render_nodes_follow_the_bus_id_not_the_listing_order(tmp_path):
    make_drm(tmp_path, {"renderD128": "0000:c3:00.0", "renderD129": "0000:43:00.0"})
    gpus = [{"index": 0, "bus_id": "0000:43:00.0"}, {"index": 1, "bus_id": "0000:c3:00.0"}]
    assert _gpu.assign_render_nodes(gpus, str(tmp_path), "/nonexistent") == ("sysfs", [])
    assert [g["device"] for g in gpus] == ["/dev/dri/renderD129", "/dev/dri/renderD128"]


def test_by_path_links_are_preferred_to_sysfs(tmp_path):
    make_drm(tmp_path / "sys", {"renderD128": "0000:43:00.0"})
    by_path = tmp_path / "dev" / "dri" / "by-path"
    by_path.mkdir(parents=True)
    (by_path / "pci-0000:43:00.0-render").symlink_to("../renderD140")
    gpus = [{"index": 0, "bus_id": "0000:43:00.0"}]
    assert _gpu.assign_render_nodes(gpus, str(tmp_path / "sys"), str(tmp_path / "dev"))[0] == "by-path"
    assert gpus[0]["device"] == "/dev/dri/renderD140"


def test_a_gpu_missing_from_sysfs_falls_back_to_counting_and_says_so(tmp_path):
    make_drm(tmp_path, {"renderD136": "0000:43:00.0"})
    gpus = [{"index": 0, "bus_id": "0000:43:00.0"}, {"index": 1, "bus_id": "0000:c3:00.0"}]
    source, problems = _gpu.assign_render_nodes(gpus, str(tmp_path), "/nonexistent")
    assert source == "derived"
    assert [g["device"] for g in gpus] == ["/dev/dri/renderD128", "/dev/dri/renderD129"]
    assert problems == ["no render node found in sysfs for GPU(s) 1; assumed renderD128 + GPU index"]
