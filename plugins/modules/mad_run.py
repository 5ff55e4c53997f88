#!/usr/bin/python
# Copyright: (c) 2026, madengine maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: mad_run
short_description: Run one MAD model in its own container and return its run record
version_added: "0.1.0"
description:
  - Runs the model's script in a new container of O(image), named
    C(madengine-<model>-<random>) and labelled C(madengine.run=1) and C(madengine.model=<name>).
    The model's scripts folder is copied into C(/myworkspace/run_directory) and the script
    runs there (C(*.sh) with bash, C(*.py) with python3, a folder with its C(run.sh)), its
    args split like a shell would and passed as an argv list, never through a shell.
  - The container gets the GPUs the model asks for (AMD C(/dev/kfd), one render node per GPU
    and group C(video); NVIDIA a device request), the C(MAD_*) variables of MAD-FORMAT
    section 4, the context's C(docker_env_vars) and C(docker_mounts), and the model's
    C(additional_docker_run_options) (validated; an unknown option fails the task).
  - The context's C(pre_scripts) and C(post_scripts) (C([{path, args}]), paths in the MAD
    package) run around the model, each copied into the run directory and run there with
    bash and its args (split like a shell, never through a shell). C(tools) entries
    (C([{name, cmd?, env_vars?}])) pick tools of the package's C(scripts/common/tools.json).
    As upstream, each tool's pre_scripts go first, its post_scripts last, its C(cmd) in front
    of the model's command (the last tool listed is the outermost), then
    C(encapsulate_script); a tool entry's C(cmd) replaces the catalogue's and its
    C(env_vars) are merged over the catalogue's; tool variables reach the container
    (C(docker_env_vars) win over them). C(cmd) and C(encapsulate_script) are argv prefixes,
    so shell operators in them are refused. C(scripts/common) and pre/post scripts outside it
    are copied into the workspace at their package paths (C(../scripts/common/...) from the
    run directory). A missing script or unknown tool fails the task before any container starts.
  - A model with a C(url) runs in a clone of that git repository, as upstream. The node's
    C(git) clones it (shallow, C(--depth 1); submodules too) into a temporary folder of
    O(output_dir) before the container starts, the tree is copied into
    C(/myworkspace/<last part of the url, less .git>), the model's scripts folder is copied
    over it (its files replace the repository's) and the script runs there; images need no
    git and no network. C(git rev-parse HEAD) of the clone is the row's C(git_commit). The
    model's C(cred) entry (C(username) with C(password) or C(token); C(ssh_key_file) for ssh
    URLs) reaches git only through environment variables read by a credential helper scoped
    to the URL's host; a password written in the URL is taken out of it. Neither ever shows in
    argv, the log or the result. The clone counts against the timeout (a hanging git is
    killed); a failed clone is a FAILURE naming the URL and git's message, git missing on the
    node a FAILURE saying how to install it. The node's clone is removed after the run, even
    with O(keep_alive) (the kept container holds its own copy).
  - With pre/post scripts, each step runs as an exec in the container, output into the same
    log. A failing pre_script stops the run (FAILURE naming the script and its exit code;
    the model does not run). post_scripts run after the model whatever its exit status; one
    that fails makes the run a FAILURE and is added to the reason after the model's own.
  - Output streams to C(<model>_<dockerfile>.run.live.log) in O(output_dir). At the timeout
    (which covers the clone, pre_scripts, model and post_scripts together) the container is killed and
    the model is a FAILURE with reason C(timeout after N s) (plus C(during <script>) when a
    pre/post script was running, C(during git clone of <url>) when the clone was).
  - The status is SUCCESS when the script exits 0, a performance was found (the
    C(performance:) line, or every row of the C(multiple_results) CSV) and no error signature
    is in the log (C(log_error_patterns), C(log_error_benign_patterns), C(log_error_pattern_scan)
    of the context). A model needing GPUs this node lacks, or listed in C(skip_gpu_arch), is
    SKIPPED. A model that fails or cannot run (missing script, missing image) still returns
    normally with a row saying why; the task fails only on bad input or a missing engine.
  - The container is removed at the end, unless O(keep_alive); it never touches containers
    it did not create.
options:
  mad_dir:
    description: Directory holding the model's scripts (the MAD package, or a per-run work dir on a remote node).
    type: path
    required: true
  model:
    description: The selected model, as C(madengine.core.mad_discover) returns it.
    type: dict
    required: true
  image:
    description: The image to run.
    type: str
    required: true
  build:
    description:
      - The build record of the image (manifest C(built_images) entry). Its C(docker_sha),
        C(base_docker), C(build_duration) and C(dockerfile) go into the row.
      - When O(image) is not local and the record has C(registry_image), that image is pulled
        (by C(registry_digest) when recorded) and run.
    type: dict
    default: {}
  context:
    description: The additional context (MAD-FORMAT section 2).
    type: dict
    default: {}
  gpu:
    description: The C(madengine_gpu) fact of C(madengine.core.gpu_facts). Without it the node has no GPUs.
    type: dict
    default: {}
  output_dir:
    description: Where the run log goes.
    type: path
    default: .
  timeout:
    description:
      - Seconds before the container is killed; overrides the context's and the model's C(timeout) (default 7200).
      - C(0) means no limit; a negative value means not given.
    type: int
  live_output:
    description:
      - Also copy the output to the terminal (C(/dev/tty)) as it comes.
      - Under ansible-runner or AWX the terminal is the runner's, so follow the log file instead (the C(madengine) driver does).
    type: bool
    default: false
  keep_alive:
    description: Leave the container after the run; the result says how to enter it. The script then runs as an exec in a container that stays up.
    type: bool
    default: false
  fetch_log_to:
    description:
      - A folder on the controller. When the node is another machine, the run log is copied
        there right after the run (by the action plugin, over the task's connection); RV(log_file)
        is then that copy and RV(node_log_file) the node's own. Ignored when the node is the controller.
    type: path
  data:
    description:
      - The model's data source, when it has C(data) - C(home) (C(MAD_DATAHOME), default C(/data)),
        C(path) (host directory mounted there), C(readwrite), C(env).
    type: dict
  credential_file:
    description: The credential file (model C(cred) variables, registry login for a pull). Defaults to C(<mad_dir>/credential.json); a missing file means none.
    type: path
  registry_username:
    description: Login for pulling O(build)'s C(registry_image); overrides the credential file.
    type: str
  registry_password:
    description: Password for O(registry_username).
    type: str
  docker_host:
    description: The engine to talk to. Defaults to C(DOCKER_HOST) or the local socket.
    type: str
attributes:
  check_mode:
    support: full
    description: Plans the run and returns C(docker_run) (what would run) without touching the engine.
  diff_mode:
    support: none
    description: Not supported.
  platform:
    support: full
    platforms: posix
    description: Runs on the GPU node, which needs a Docker engine and the Python C(docker) package.
requirements:
  - docker (Python SDK) >= 5
author:
  - madengine maintainers (@madengine)
"""

EXAMPLES = r"""
- name: Run a model from the manifest
  madengine.core.mad_run:
    mad_dir: /srv/MAD
    model: "{{ run.model }}"
    image: "{{ run.image }}"
    build: "{{ run.build }}"
    context: "{{ plan.context }}"
    gpu: "{{ madengine_gpu }}"
    output_dir: /srv/results
    timeout: 3600
  register: ran

- name: Show what would run
  madengine.core.mad_run:
    mad_dir: /srv/MAD
    model: {name: dummy, scripts: scripts/dummy/run.sh, n_gpus: "0", args: "--batch 8"}
    image: ci-dummy_dummy.ubuntu.amd
  check_mode: true
"""

RETURN = r"""
records:
  description:
    - Perf rows (docs/contracts.md "Run record") - every perf.csv column, then C(reason),
      C(image_digest) and any extra C(multiple_results) columns. One row, or one per
      C(multiple_results) row (named C(<model>_<row model>)). Empty in check mode.
  returned: always
  type: list
  elements: dict
status:
  description: C(SUCCESS), C(FAILURE) or C(SKIPPED) (empty in check mode when the model would run).
  returned: always
  type: str
reason:
  description: Why it failed or was skipped (empty on success).
  returned: always
  type: str
  sample: timeout after 600 s
log_file:
  description: The run log (on the controller when O(fetch_log_to) copied it there).
  returned: always
  type: str
node_log_file:
  description: The run log on the node, when O(fetch_log_to) copied it to the controller.
  returned: when the log was copied
  type: str
test_duration:
  description: Seconds from the container's start to the script's end.
  returned: always
  type: float
container_name:
  description: The container's name.
  returned: always
  type: str
  sample: madengine-dummy-3fa9c1
docker_run:
  description: The equivalent C(docker run) command as a list (the scripts are copied into the container, not mounted).
  returned: always
  type: list
  elements: str
container_exit_code:
  description: The script's exit status (137 when killed), or null when it did not run.
  returned: always
  type: int
image_digest:
  description: The digest (or id) of the image that ran.
  returned: always
  type: str
timeout:
  description: The timeout applied, in seconds (null = none).
  returned: always
  type: int
performance:
  description: The performance value, as printed.
  returned: on success with a single result
  type: str
metric:
  description: The performance metric.
  returned: on success with a single result
  type: str
keep_alive_hint:
  description: How to enter and remove the kept container.
  returned: when O(keep_alive) kept a container
  type: str
exit_code:
  description: The madengine exit code of a task failure - 4 invalid input, 1 engine.
  returned: failure
  type: int
error_kind:
  description: The class of a task failure (invalid_input, engine).
  returned: failure
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.madengine.core.plugins.module_utils._entrypoints import SPECS
from ansible_collections.madengine.core.plugins.module_utils._module import run_body


def main():
    run_body(AnsibleModule(**SPECS["mad_run"]), "mad_run")


if __name__ == "__main__":
    main()
