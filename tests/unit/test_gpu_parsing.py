"""The GPU tools' outputs, as recorded in tests/fixtures/gpu_tools, read into plain data."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from ansible_collections.madengine.core.plugins.module_utils import _gpu

TOOLS = Path(__file__).resolve().parents[1] / "fixtures" / "gpu_tools"


def recorded(scenario: str, name: str) -> str:
    return (TOOLS / scenario / "out" / name).read_text()


def test_amd_smi_list_gives_index_bus_id_and_uuid_in_gpu_order():
    gpus = _gpu.parse_amd_smi_list(recorded("mi300x_8gpu", "amd-smi_list.json"))
    assert [g["index"] for g in gpus] == list(range(8))
    assert gpus[0] == {"index": 0, "bus_id": "0000:05:00.0", "uuid": "5cff74a1-0000-1000-80f4-7a3c2d1e9b01"}
    assert gpus[5]["bus_id"] == "0000:a5:00.0"


def test_amd_smi_static_reads_the_gpu_data_envelope_of_newer_releases():
    details = _gpu.parse_amd_smi_static(recorded("mi300x_8gpu", "amd-smi_static.json"))
    assert sorted(details) == list(range(8))
    assert details[3] == {"product": "AMD Instinct MI300X", "architecture": "gfx942",
                          "driver_version": "6.12.12", "bus_id": None}


def test_amd_smi_static_reads_the_bare_list_of_older_releases():
    wrapped = json.loads(recorded("mi300x_8gpu", "amd-smi_static.json"))
    bare = json.dumps(wrapped["gpu_data"][:2], indent=4)
    details = _gpu.parse_amd_smi_static(bare)
    assert [d["architecture"] for d in details.values()] == ["gfx942", "gfx942"]


def test_amd_smi_static_treats_na_as_unknown_and_older_driver_keys_as_known():
    text = json.dumps([{"gpu": 0, "asic": {"market_name": "N/A", "target_graphics_version": "N/A"},
                        "driver": {"driver_name": "amdgpu", "driver_version": "6.2.4"}}])
    assert _gpu.parse_amd_smi_static(text)[0] == {"product": None, "architecture": None,
                                                  "driver_version": "6.2.4", "bus_id": None}


def test_json_output_is_found_after_warning_lines_the_tool_prints_first():
    noisy = ("WARNING: User is missing the following required groups: render, video.\n"
             + recorded("mi300x_8gpu", "amd-smi_list.json"))
    assert len(_gpu.parse_amd_smi_list(noisy)) == 8


@pytest.mark.parametrize("text", ["", "ERROR: Driver not initialized (amdgpu not found in modules)\n",
                                  '{"gpu_data": "N/A"}'])
def test_amd_smi_output_without_gpu_list_is_an_error(text):
    with pytest.raises(ValueError):
        _gpu.parse_amd_smi_list(text)


def test_amd_smi_version_line_gives_rocm_and_driver_versions():
    version = _gpu.parse_amd_smi_version(recorded("mi300x_8gpu", "amd-smi_version.txt"))
    assert version == {"tool_version": "25.4.2+aca1101", "rocm_version": "6.4.1", "driver_version": "6.12.12"}


def test_rocm_smi_product_names_per_card():
    products = _gpu.parse_rocm_smi_product(recorded("mi210", "rocm-smi_productname.json"))
    assert products == {0: {"product": "AMD Instinct MI210", "architecture": None},
                        1: {"product": "AMD Instinct MI210", "architecture": None}}


@pytest.mark.parametrize("gfx, expected", [("gfx942", "gfx942"), ("gfx90a", "gfx90a"),
                                           ("gfx90010", None), ("N/A", None)])
def test_rocm_smi_gfx_version_counts_only_when_it_is_a_gfx_target(gfx, expected):
    text = json.dumps({"card0": {"Card Series": "AMD Instinct MI300X", "GFX Version": gfx}})
    assert _gpu.parse_rocm_smi_product(text)[0]["architecture"] == expected


def test_rocm_smi_bus_ids_are_normalised_to_lower_case():
    assert _gpu.parse_rocm_smi_bus(recorded("mi210", "rocm-smi_bus.json")) == {0: "0000:43:00.0", 1: "0000:c3:00.0"}


def test_rocm_smi_driver_version_comes_from_the_system_section():
    assert _gpu.parse_rocm_smi_driver(recorded("mi210", "rocm-smi_driverversion.json")) == "6.2.4"


def test_rocminfo_lists_gpu_agents_only_with_target_name_and_bus():
    agents = _gpu.parse_rocminfo(recorded("mi210", "rocminfo.txt"))
    assert agents == [
        {"architecture": "gfx90a", "product": "AMD Instinct MI210", "bus_id": "0000:43:00.0"},
        {"architecture": "gfx90a", "product": "AMD Instinct MI210", "bus_id": "0000:c3:00.0"},
    ]


def test_rocminfo_without_agents_is_an_error():
    with pytest.raises(ValueError):
        _gpu.parse_rocminfo(recorded("amd_driver_down", "rocminfo.txt"))


def test_nvidia_query_csv_gives_one_record_per_gpu():
    gpus = _gpu.parse_nvidia_query(recorded("h100_4gpu", "nvidia-smi_query.csv"))
    assert len(gpus) == 4
    assert gpus[1] == {"index": 1, "product": "NVIDIA H100 80GB HBM3", "architecture": "H100",
                       "uuid": "GPU-2a9c7e1f-3b5d-4e6a-8c0f-1d2e3f4a5b62", "driver_version": "535.129.03",
                       "memory_mib": 81559, "bus_id": "0000:43:00.0"}


def test_nvidia_query_rejects_a_line_that_is_not_a_gpu_record():
    with pytest.raises(ValueError):
        _gpu.parse_nvidia_query(recorded("nvidia_driver_down", "nvidia-smi_error.txt"))


@pytest.mark.parametrize("scenario, cuda, driver", [("h100_4gpu", "12.2", "535.129.03"),
                                                    ("a100", "11.2", "460.106.00")])
def test_nvidia_smi_banner_gives_cuda_and_driver_versions(scenario, cuda, driver):
    assert _gpu.parse_nvidia_header(recorded(scenario, "nvidia-smi.txt")) == {
        "cuda_version": cuda, "driver_version": driver}


@pytest.mark.parametrize("name, short", [
    ("NVIDIA H100 80GB HBM3", "H100"), ("NVIDIA A100-SXM4-80GB", "A100"), ("A100-SXM4-40GB", "A100"),
    ("NVIDIA A100 80GB PCIe", "A100"), ("Tesla V100-SXM2-32GB", "V100"), ("NVIDIA H200", "H200"),
    ("NVIDIA GH200 480GB", "GH200"), ("NVIDIA L40S", "L40S"), ("Tesla T4", "T4"),
    ("NVIDIA GeForce RTX 4090", "RTX4090"), ("NVIDIA RTX A6000", "A6000"), ("", None),
])
def test_nvidia_product_short_name_is_the_architecture(name, short):
    assert _gpu.nvidia_short_name(name) == short


@pytest.mark.parametrize("raw, bus", [("00000000:1B:00.0", "0000:1b:00.0"), ("0000:c3:00.0", "0000:c3:00.0"),
                                      ("1b:00.0", "0000:1b:00.0"), ("N/A", None), ("card0", None)])
def test_bus_ids_from_every_tool_compare_equal(raw, bus):
    assert _gpu.normalize_bus_id(raw) == bus
