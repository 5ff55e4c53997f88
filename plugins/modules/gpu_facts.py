#!/usr/bin/python
# Copyright: (c) 2026, madengine maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: gpu_facts
short_description: Detect the GPUs of a node (vendor, architecture, count, devices)
version_added: "0.1.0"
description:
  - Asks the vendor tools which GPUs the node has and sets the fact C(madengine_gpu).
  - AMD through C(amd-smi) (JSON output), with C(rocm-smi) and C(rocminfo) as fallback;
    each AMD GPU is given its C(/dev/dri/renderD*) node through C(/dev/dri/by-path) or
    C(/sys/class/drm), matched by PCI bus id.
  - NVIDIA through C(nvidia-smi --query-gpu=... --format=csv,noheader).
  - Every tool runs as an argument list with a timeout, so a hung tool cannot hang the play.
  - Values in the context override what was detected (C(gpu_vendor),
    C(MAD_SYSTEM_GPU_ARCHITECTURE), C(docker_gpus), C(gpu_renderDs), and the GPU counts
    C(n_gpus), C(gpu_count), C(num_gpus), C(ngpus), C(gpus_per_node)).
  - A node without any GPU tool reports vendor C(NONE); a tool that is installed but whose
    driver does not answer is reported in C(problems), never as a failure.
options:
  context:
    description:
      - The additional context (MAD-FORMAT section 2), as a dict or as JSON / Python dict literal text.
      - Only the keys that concern GPUs are read here.
    type: raw
    default: {}
  file_context:
    description:
      - The content of the context file, as a dict or text; keys in O(context) win over it.
    type: raw
  context_file:
    description:
      - Where O(file_context) was read from, for messages. When it is set and O(file_context)
        is not, the file could not be read and the module fails with that.
    type: str
  timeout:
    description: Seconds each tool may take before it is killed.
    type: float
    default: 20
  tool_dirs:
    description:
      - Directories searched for the tools. Default is C(PATH), then C($ROCM_PATH/bin) and C(/opt/rocm/bin).
      - Read from the environment variable E(MADENGINE_GPU_TOOL_DIRS) (separated by C(:)) when not given.
    type: list
    elements: path
  sysfs_root:
    description: Where sysfs is mounted (for the render node of each AMD GPU).
    type: path
    default: /sys
  dev_root:
    description: Where the device nodes are (C(dri/by-path) links of the AMD GPUs).
    type: path
    default: /dev
  node_name:
    description: Name reported as RV(ansible_facts.madengine_gpu.node); default is the host name.
    type: str
  expected_vendor:
    description:
      - The vendor the inventory declares for the node (C(gpu_vendor) of a MAD node file).
      - A different detected vendor is reported in RV(ansible_facts.madengine_gpu.problems).
    type: str
  expected_count:
    description:
      - The number of GPUs the inventory declares for the node (C(gpu_count) of a MAD node file).
      - A different detected number is reported in RV(ansible_facts.madengine_gpu.problems).
    type: int
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.facts
attributes:
  check_mode:
    support: full
    details: The module only reads; check mode does the same.
  diff_mode:
    support: none
  facts:
    support: full
  platform:
    platforms: posix
seealso:
  - module: madengine.core.mad_run
author:
  - madengine maintainers (@madengine)
"""

EXAMPLES = r"""
- name: Detect the GPUs
  madengine.core.gpu_facts:

- name: Use GPUs 0 and 2-4 only, and call the architecture gfx942 whatever the tools say
  madengine.core.gpu_facts:
    context:
      docker_gpus: "0,2-4"
      docker_build_arg:
        MAD_SYSTEM_GPU_ARCHITECTURE: gfx942

- name: Stop when the node cannot run GPU models
  ansible.builtin.assert:
    that: madengine_gpu.can_run_gpu_models
    fail_msg: "{{ madengine_gpu.reason }}"
"""

RETURN = r"""
ansible_facts:
  description: The facts set.
  returned: always
  type: dict
  contains:
    madengine_gpu:
      description: What the node offers to GPU models.
      returned: always
      type: dict
      contains:
        node: {description: The node's name., type: str, returned: always}
        vendor: {description: "C(AMD), C(NVIDIA) or C(NONE).", type: str, returned: always, sample: AMD}
        architecture:
          description: gfx target for AMD, the product's short name for NVIDIA; null when unknown.
          type: str
          returned: always
          sample: gfx942
        product: {description: Marketing name of the first usable GPU., type: str, returned: always, sample: AMD Instinct MI300X}
        count: {description: Number of usable GPUs (after docker_gpus and count overrides)., type: int, returned: always, sample: 8}
        devices:
          description: One entry per usable GPU, in GPU index order; AMD render node paths, NVIDIA indices as strings.
          type: list
          elements: str
          returned: always
          sample: ["/dev/dri/renderD128", "/dev/dri/renderD136"]
        indices: {description: GPU index of each entry of devices., type: list, elements: int, returned: always}
        total_count: {description: Number of GPUs of the node before docker_gpus., type: int, returned: always}
        gpus:
          description: Every GPU (index, product, architecture, bus_id, device, uuid, memory_mib).
          type: list
          elements: dict
          returned: always
        driver_version: {description: Kernel driver version., type: str, returned: always}
        rocm_version: {description: ROCm version (AMD)., type: str, returned: always}
        cuda_version: {description: Highest CUDA version the driver supports (NVIDIA)., type: str, returned: always}
        tool: {description: "The tool that answered (amd-smi, rocm-smi, rocminfo, nvidia-smi); null when none did.", type: str, returned: always}
        tools_installed: {description: GPU tools found on the node., type: list, elements: str, returned: always}
        device_source: {description: "How devices were found: by-path, sysfs, derived or nvidia-smi.", type: str, returned: always}
        overrides: {description: Context keys that changed a detected value., type: list, elements: str, returned: always}
        problems: {description: "What went wrong while asking the tools, one line each.", type: list, elements: str, returned: always}
        can_run_gpu_models: {description: Whether the node has at least one usable GPU., type: bool, returned: always}
        reason: {description: One line explaining can_run_gpu_models., type: str, returned: always}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.madengine.core.plugins.module_utils._entrypoints import SPECS
from ansible_collections.madengine.core.plugins.module_utils._module import run_body


def main():
    run_body(AnsibleModule(**SPECS["gpu_facts"]), "gpu_facts")


if __name__ == "__main__":
    main()
