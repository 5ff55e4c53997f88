#!/usr/bin/python
# Copyright: (c) 2026, madengine maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: mad_discover
short_description: Select models of a MAD package by tags and find the Dockerfiles each would build
version_added: "0.1.0"
description:
  - Reads a MAD package (its C(models.json), C(scripts/<dir>/models.json) and
    C(scripts/<dir>/get_models_json.py)), selects models with the C(--tags) grammar and
    returns them normalised, with script paths resolved and the Dockerfiles kept by the
    C(# CONTEXT) filter.
  - Also parses and validates the additional context (file first, inline wins).
  - Read-only. C(get_models_json.py) is the package's own Python code and runs in this
    module's process on the machine doing discovery.
  - A model whose Dockerfile prefix matches no file, or whose files fit no context, is
    still returned, with an empty C(dockerfiles) and a C(dockerfile_error).
options:
  mad_dir:
    description:
      - The MAD package folder (the one holding C(models.json)).
      - Defaults to the module's working directory.
    type: path
  tags:
    description:
      - Selectors, each C(name), C(tag), C(all), C(dir/name), C(dir/tag), C(dir/all) or the
        older C(dir:model), optionally followed by C(:key=value) or C(:flag) parts that are
        appended to the model's args as C( --key value) / C( --flag).
      - A comma-separated string is split. Empty selects every model.
    type: list
    elements: str
    default: []
  additional_context:
    description:
      - Context as a dict, a JSON object string or a Python dict literal string.
      - Wins over O(additional_context_file), key by key (nested objects merge).
    type: raw
  additional_context_file:
    description:
      - A JSON file with the context. A relative path is looked up from the working
        directory, then from O(mad_dir).
    type: path
  manifest_file:
    description:
      - A C(build_manifest.json). When given, the module plans a run of the images it
        records instead of reading the package's models; O(tags), when given, pick among
        the manifest's models.
      - The context the build recorded is the base; the context file and the inline
        context win over it.
    type: path
  nodes:
    description:
      - With O(manifest_file), the GPU nodes (inventory host names) the run is for. The module
        then also says which node runs which image (RV(assignment)) and what a remote node needs.
    type: list
    elements: str
  mode:
    description:
      - How the planned runs are given to O(nodes).
      - C(replicate) - every node runs every image (to compare nodes).
      - C(distribute) - each image runs on one node; the longest first (past durations from
        O(history_db), else a unit per GPU the model asks for) to the node with the least work,
        among the nodes with enough GPUs (O(node_gpus)).
    type: str
    choices: [replicate, distribute]
    default: replicate
  node_gpus:
    description: GPU count per node (C(madengine_gpu_count) of the inventory); a node left out, or C(-1), is not limited.
    type: dict
    default: {}
  resume:
    description:
      - Leave out each (image, node) pair that already has a SUCCESS or SKIPPED row in O(perf_csv)
        or O(history_db) (same model, machine, image and, when recorded, image sha).
      - In C(distribute) mode an image settled on any node is left out.
    type: bool
    default: false
  perf_csv:
    description: The perf.csv O(resume) reads.
    type: path
  history_db:
    description: The results history (SQLite) for O(resume) and for the past durations of C(distribute).
    type: path
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Discovery changes nothing; it runs the same in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
author:
  - madengine maintainers (@madengine)
notes:
  - Errors (no C(models.json), malformed JSON, a model without name, failing package code,
    an unknown tag, an unknown context key) fail the task with one message and
    C(exit_code=4).
"""

EXAMPLES = r"""
- name: Select the dummy models and one directory model with a parameter
  madengine.core.mad_discover:
    mad_dir: /srv/MAD
    tags:
      - dummy
      - dummy3/model4:batch_size=512
    additional_context:
      gpu_vendor: AMD
      guest_os: UBUNTU
  register: discovered

- name: Every model of a directory, context from a file
  madengine.core.mad_discover:
    mad_dir: /srv/MAD
    tags: dummy2/all
    additional_context_file: /srv/MAD/context.json
"""

RETURN = r"""
models:
  description:
    - The selected models (the "Selected model" record of docs/contracts.md), in tag
      order, each once per distinct args. Every field of the entry is kept.
  returned: success
  type: list
  elements: dict
  sample:
    - name: dummy2/model2
      tags: [dummies]
      args: "--foo 1 --batch_size 512"
      n_gpus: "1"
      timeout: null
      scripts: scripts/dummy2/run.sh
      dockerfile: docker/dummy
      dockercontext: docker
      dockerfiles: [docker/dummy.ubuntu.amd.Dockerfile]
context:
  description: The validated, merged additional context; C(guest_os) defaults to C(UBUNTU).
  returned: success
  type: dict
  sample: {"gpu_vendor": "AMD", "guest_os": "UBUNTU"}
discover_warnings:
  description:
    - Things worth knowing that do not stop discovery (context keys accepted but not acted
      on yet, unreadable Dockerfile CONTEXT lines, repeated model names).
    - The same lines are also emitted as Ansible warnings.
  returned: success
  type: list
  elements: str
mad_dir:
  description: The package folder, absolute; model paths are relative to it.
  returned: success
  type: str
  sample: /srv/MAD
summary:
  description: One line per selected model (name, n_gpus, args, Dockerfiles), for people.
  returned: success
  type: list
  elements: str
runs:
  description:
    - With O(manifest_file), the run plan, one entry per built image to run, in manifest order.
    - C(build) is the manifest's built_images entry, C(model) its built_models entry.
  returned: when O(manifest_file) is given
  type: list
  elements: dict
  sample:
    - image: ci-dummy_dummy.ubuntu.amd
      build: {docker_image: ci-dummy_dummy.ubuntu.amd, registry_image: "localhost:5000/ci-dummy_dummy.ubuntu.amd"}
      model: {name: dummy, n_gpus: "1", scripts: scripts/dummy/run.sh}
run_id:
  description:
    - With O(manifest_file), a name for the run this plan starts (UTC time and a random part); the nodes
      keep their logs and logins for the run under it.
  returned: when O(manifest_file) is given
  type: str
  sample: 20261128T184500Z-9f3a2c1d
started:
  description: With O(manifest_file), when the plan was made (epoch seconds), the start of the run for its summary.
  returned: when O(manifest_file) is given
  type: float
failed_builds:
  description: With O(manifest_file), the builds the manifest records as failed (C({model, error})).
  returned: when O(manifest_file) is given
  type: list
  elements: dict
registry:
  description: With O(manifest_file), the registry the images were pushed to (empty when none).
  returned: when O(manifest_file) is given
  type: str
assignment:
  description:
    - With O(nodes), the runs of each node, in plan order. Each entry of RV(runs) then also has
      C(nodes), the nodes that run it; runs no node is to run (O(resume)) are left out of RV(runs).
  returned: when O(manifest_file) and O(nodes) are given
  type: dict
  sample: {"gpu-01": [{"image": "ci-dummy_dummy.ubuntu.amd", "nodes": ["gpu-01"]}], "gpu-02": []}
settled:
  description: With O(resume), the pairs left out because they already have a settled row (C({model, image, node})).
  returned: when O(manifest_file) and O(nodes) are given
  type: list
  elements: dict
node_files:
  description:
    - With O(nodes), the paths (relative to the package) a remote node needs - the script folders of
      the runs, C(scripts/common/tools.json) with the folders of the pre/post scripts of the tools the
      context uses, the folders of the context's pre/post scripts (a script may use its siblings) and
      C(data.json). Nothing else of the package travels.
  returned: when O(manifest_file) and O(nodes) are given
  type: list
  elements: str
node_files_key:
  description: A digest of the content of RV(node_files); a node's work directory is named after it.
  returned: when O(manifest_file) and O(nodes) are given
  type: str
node_credentials:
  description: Names of the C(credential.json) entries a node needs (the pull login of the registry, the models' C(cred)); never their values.
  returned: when O(manifest_file) and O(nodes) are given
  type: list
  elements: str
mode:
  description: With O(nodes), the mode the runs were given out in.
  returned: when O(manifest_file) and O(nodes) are given
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.madengine.core.plugins.module_utils._entrypoints import SPECS
from ansible_collections.madengine.core.plugins.module_utils._module import run_body


def main():
    run_body(AnsibleModule(**SPECS["mad_discover"]), "mad_discover")


if __name__ == "__main__":
    main()
