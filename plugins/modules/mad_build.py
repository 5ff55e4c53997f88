#!/usr/bin/python
# Copyright: (c) 2026, madengine maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: mad_build
short_description: Build the Docker images of selected MAD models, optionally push them, and write the build manifest
version_added: "0.1.0"
description:
  - Builds one image per model and selected Dockerfile with the Docker SDK, named
    C(ci-<model>_<Dockerfile basename>), streaming each build to
    C(<model>_<Dockerfile basename>.build.live.log) in O(output_dir).
  - Build args are the context's C(docker_build_arg), the model's credential as
    C(<CRED>_<KEY>), and C(MAD_SYSTEM_GPU_ARCHITECTURE) from O(gpu_architecture).
  - Each image carries the label C(org.madengine.content-hash), a hash of the Dockerfile, every
    file of the build context the engine receives (C(.dockerignore) honoured), the build args
    and the base image ids. When an image with that hash exists locally or in O(registry), the
    build is skipped and the image reported with C(skipped_unchanged=true).
  - With O(registry), logs in with the registry's entry of C(credential.json) (or the
    C(MAD_DOCKERHUB_*) variables, or O(registry_username)/O(registry_password)), tags and pushes
    each image and records C(registry_image) and C(registry_digest).
  - A failed build or push fails the task with C(exit_code=2), but the result still carries
    every build record and the manifest, and O(manifest_file) is still written, so the images
    that did build stay usable.
options:
  mad_dir:
    description: The MAD package directory; paths in O(models) are relative to it.
    type: path
    required: true
  models:
    description: Selected models, as C(madengine.core.mad_discover) returns them in C(models).
    type: list
    elements: dict
    required: true
  context:
    description: The additional context, as C(madengine.core.mad_discover) returns it.
    type: dict
    default: {}
  output_dir:
    description: Where the build logs go. Defaults to O(mad_dir).
    type: path
  registry:
    description: Registry to push to (C(host[:port]), C(host/namespace), or C(docker.io)). No push when omitted.
    type: str
  credential_file:
    description: The credential file. Defaults to C(<mad_dir>/credential.json); a missing file means no credentials.
    type: path
  registry_username:
    description: Login for O(registry); overrides the credential file's entry.
    type: str
  registry_password:
    description: Password for O(registry_username).
    type: str
  registry_repository:
    description: Repository inside O(registry) to push into; overrides the credential entry's C(repository).
    type: str
  parallel:
    description: How many images to build at once; C(0) means one per CPU of the build host.
    type: int
    default: 0
  clean_docker_cache:
    description: Build without the layer cache, and never skip an unchanged image.
    type: bool
    default: false
  pull:
    description: Pull the base images before building. Off by default because base images are often local only.
    type: bool
    default: false
  gpu_architecture:
    description: Passed as build arg C(MAD_SYSTEM_GPU_ARCHITECTURE) unless the context's C(docker_build_arg) sets it.
    type: str
  previous_manifest:
    description:
      - The manifest an earlier build wrote. An image found unchanged keeps its entry there
        (same content hash and image id), so an unchanged rebuild writes the same manifest.
      - Defaults to the one at O(manifest_file) when that exists.
    type: dict
  manifest_file:
    description:
      - When given, the manifest is written there atomically (also when some builds failed), on
        the controller. When the build host is another machine, the action plugin hands it the
        manifest found there as O(previous_manifest) and writes the new one there itself.
    type: path
  docker_host:
    description: The engine to talk to, e.g. C(unix:///var/run/docker.sock). Defaults to C(DOCKER_HOST) or the local socket.
    type: str
attributes:
  check_mode:
    support: full
    description: Computes content hashes and reports which images would be built (C(would_build)); builds, tags and pushes nothing.
  diff_mode:
    support: none
    description: Not supported.
  platform:
    support: full
    platforms: posix
    description: Runs on the build host, which needs a Docker engine and the Python C(docker) package.
requirements:
  - docker (Python SDK) >= 5
author:
  - madengine maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Build the selected models and push them
  madengine.core.mad_build:
    mad_dir: /srv/MAD
    models: "{{ discovered.models }}"
    context: "{{ discovered.context }}"
    registry: registry.example.com:5000
    manifest_file: /srv/MAD/build_manifest.json
  register: built

- name: Rebuild from scratch, four at a time
  madengine.core.mad_build:
    mad_dir: /srv/MAD
    models: "{{ discovered.models }}"
    clean_docker_cache: true
    parallel: 4
"""

RETURN = r"""
builds:
  description: One build record per image (docs/contracts.md "Build record").
  returned: always
  type: list
  elements: dict
  sample:
    - image: ci-dummy_dummy.ubuntu.amd
      model: dummy
      docker_image: ci-dummy_dummy.ubuntu.amd
      dockerfile: docker/dummy.ubuntu.amd.Dockerfile
      status: SUCCESS
      skipped_unchanged: false
      content_hash: 5d41402abc4b2a76b9719d911017c592...
      image_id: sha256:0be5842878ae...
      log_file: /srv/MAD/dummy_dummy.ubuntu.amd.build.live.log
      registry_image: registry.example.com:5000/ci-dummy_dummy.ubuntu.amd
      registry_digest: sha256:6c3c624b58db...
manifest:
  description: The build_manifest.json document (MAD-FORMAT section 5).
  returned: always
  type: dict
summary:
  description: The manifest's summary (successful_builds, failed_builds, successful_pushes, failed_pushes, total_models, total_build_time).
  returned: always
  type: dict
manifest_file:
  description: Where the manifest was written.
  returned: when O(manifest_file) is given and not in check mode
  type: str
exit_code:
  description: The madengine exit code of the failure (2 build or push, 1 engine, 4 invalid input).
  returned: failure
  type: int
error_kind:
  description: The class of the failure (build, engine, invalid_input).
  returned: failure
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.madengine.core.plugins.module_utils._entrypoints import SPECS
from ansible_collections.madengine.core.plugins.module_utils._module import run_body


def main():
    run_body(AnsibleModule(**SPECS["mad_build"]), "mad_build")


if __name__ == "__main__":
    main()
