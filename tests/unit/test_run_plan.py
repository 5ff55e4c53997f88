"""How a model run is planned: GPUs, environment, argv, skips, timeouts, names (no engine).

GPU facts here are made up in the shape of the madengine_gpu fact: no GPU exists on this host.
"""
from __future__ import annotations

import pytest

from ansible_collections.madengine.core.plugins.module_utils._errors import InvalidInputError
from ansible_collections.madengine.core.plugins.module_utils._run import (
    DEFAULT_TIMEOUT, arch_matches, log_file_name, plan_run, resolve_timeout, run_model,
    script_command)

AMD = {"vendor": "AMD", "architecture": "gfx942", "count": 4, "total_count": 8,
       "devices": ["/dev/dri/renderD128", "/dev/dri/renderD136", "/dev/dri/renderD144",
                   "/dev/dri/renderD152"]}
NVIDIA = {"vendor": "NVIDIA", "architecture": "H100", "count": 2, "total_count": 2,
          "devices": ["0", "1"]}
NO_GPU = {"vendor": "NONE", "architecture": None, "count": 0, "devices": [],
          "reason": "no GPU tool found"}


@pytest.fixture
def mad(tmp_path):
    (tmp_path / "scripts" / "dummy").mkdir(parents=True)
    (tmp_path / "scripts" / "dummy" / "run.sh").write_text("echo performance: 1 x\n")
    (tmp_path / "scripts" / "dummy" / "train.py").write_text("print('performance: 1 x')\n")
    return tmp_path


def model(**extra):
    entry = {"name": "dummy", "scripts": "scripts/dummy/run.sh", "n_gpus": "1", "args": "",
             "tags": ["a", "b"]}
    entry.update(extra)
    return entry


def plan(mad, gpu=None, context=None, **extra):
    return plan_run(str(mad), model(**extra), "ci-dummy_dummy.ubuntu.amd", {}, context or {},
                    AMD if gpu is None else gpu, str(mad / "out"))


def test_amd_gets_kfd_one_render_node_per_gpu_and_group_video(mad):
    spec = plan(mad, n_gpus="2").spec
    assert spec.devices == ["/dev/kfd:/dev/kfd:rwm", "/dev/dri/renderD128:/dev/dri/renderD128:rwm",
                            "/dev/dri/renderD136:/dev/dri/renderD136:rwm"]
    assert spec.group_add == ["video"] and spec.device_requests == []
    assert spec.environment["HIP_VISIBLE_DEVICES"] == "0,1"
    assert spec.environment["ROCR_VISIBLE_DEVICES"] == "0,1"
    assert "CUDA_VISIBLE_DEVICES" not in spec.environment
    assert "--device=/dev/kfd:/dev/kfd:rwm" in spec.docker_argv()


def test_nvidia_gets_a_device_request_with_the_device_ids(mad):
    spec = plan(mad, gpu=NVIDIA, n_gpus="-1").spec
    assert spec.devices == [] and spec.group_add == []
    assert spec.device_requests == [{"driver": "nvidia", "device_ids": ["0", "1"],
                                     "capabilities": [["gpu"]]}]
    assert spec.environment["CUDA_VISIBLE_DEVICES"] == "0,1"
    argv = spec.docker_argv()
    assert argv[argv.index("--gpus") + 1] == '"device=0,1"'


def test_nvidia_device_request_reaches_the_sdk_host_config(mad):
    import docker

    api = docker.APIClient(version="1.41")
    host = plan(mad, gpu=NVIDIA, n_gpus="1").spec.create_kwargs(api)["host_config"]
    assert host["DeviceRequests"] == [{"Driver": "nvidia", "Count": 0, "DeviceIDs": ["0"],
                                       "Capabilities": [["gpu"]], "Options": {}}]


def test_the_environment_of_mad_format_section_4(mad):
    context = {"guest_os": "UBUNTU", "docker_env_vars": {"HIP_VISIBLE_DEVICES": "3", "MY": "v"},
               "docker_mounts": {"/data": "/srv/data"}}
    p = plan(mad, context=context, multiple_results="perf_dummy.csv", data="mnist")
    env = p.spec.environment
    assert env["MAD_MODEL_NAME"] == "dummy"
    assert env["MAD_GPU_VENDOR"] == "AMD"
    assert env["MAD_SYSTEM_GPU_ARCHITECTURE"] == "gfx942"
    assert env["MAD_SYSTEM_NGPUS"] == "8" and env["MAD_RUNTIME_NGPUS"] == "1"
    assert env["MAD_GUEST_OS"] == "UBUNTU"
    assert env["MAD_OUTPUT_CSV"] == "perf_dummy.csv"
    assert env["MAD_MULTI_NODE_RUNNER"] == "torchrun --standalone --nproc_per_node=1"
    assert (env["MAD_DATANAME"], env["MAD_DATAHOME"]) == ("mnist", "/data")
    assert env["HIP_VISIBLE_DEVICES"] == "3"  # docker_env_vars has the last word
    assert env["MY"] == "v"
    assert "/srv/data:/data" in p.spec.binds


def test_multi_node_runner_from_the_distributed_context(mad):
    context = {"distributed": {"launcher": "torchrun", "nnodes": 2, "nproc_per_node": 4,
                               "node_rank": 1, "master_addr": "n0", "master_port": 1234}}
    p = plan(mad, context=context, n_gpus="4")
    assert p.spec.environment["MAD_MULTI_NODE_RUNNER"] == (
        "torchrun --nnodes=2 --nproc_per_node=4 --node_rank=1 --master_addr=n0 --master_port=1234")
    assert (p.base_row["nnodes"], p.base_row["launcher"]) == ("2", "torchrun")


def test_model_options_add_to_and_override_the_defaults(mad):
    p = plan(mad, additional_docker_run_options="--network none --shm-size 1g -e MY=opt "
                                                "--cap-add SYS_ADMIN -v /a:/b")
    spec = p.spec
    assert spec.network_mode == "none"
    assert spec.shm_size == 1024 ** 3 and spec.ipc_mode is None  # a private IPC namespace
    assert spec.cap_add == ["SYS_PTRACE", "SYS_ADMIN"]
    assert spec.environment["MY"] == "opt"
    assert "/a:/b" in spec.binds
    assert p.base_row["additional_docker_run_options"].startswith("--network none")


def test_an_unknown_model_option_is_invalid_input_naming_the_model(mad):
    with pytest.raises(InvalidInputError, match="'--pid'.*additional_docker_run_options of model dummy"):
        plan(mad, additional_docker_run_options="--pid host")


def test_a_workdir_option_moves_the_run_directory(mad):
    p = plan(mad, additional_docker_run_options="-w /workspace")
    assert p.run_dir == "/workspace/run_directory" == p.spec.working_dir
    assert not p.workspace_is_default


@pytest.mark.parametrize("scripts, args, expected", [
    ("scripts/d/run.sh", "--a 1", ("scripts/d", ["bash", "run.sh", "--a", "1"])),
    ("scripts/d/train.py", "", ("scripts/d", ["python3", "train.py"])),
    ("scripts/d", "", ("scripts/d", ["bash", "run.sh"])),
    ("scripts/d/", "x", ("scripts/d", ["bash", "run.sh", "x"])),
    ("scripts/d/run.sh", """--name "a b" --q 'it'"'"'s' --e "" --d '$HOME' '*'""",
     ("scripts/d", ["bash", "run.sh", "--name", "a b", "--q", "it's", "--e", "", "--d", "$HOME", "*"])),
])
def test_scripts_become_an_argv_split_like_a_shell(scripts, args, expected):
    assert script_command(scripts, args, "model m") == expected


def test_context_model_args_replace_the_models_args(mad):
    p = plan(mad, context={"model_args": "--steps 5"}, args="--steps 100")
    assert p.spec.command == ["bash", "run.sh", "--steps", "5"]
    assert p.base_row["args"] == "--steps 5"


def test_unbalanced_quotes_in_args_are_invalid_input(mad):
    with pytest.raises(InvalidInputError, match="cannot split args"):
        plan(mad, args="--name 'oops")


def test_a_model_that_needs_gpus_is_skipped_on_a_node_without(mad):
    p = plan(mad, gpu=NO_GPU, n_gpus="1")
    assert p.skip_reason and "needs 1 GPU" in p.skip_reason and "has none" in p.skip_reason
    assert p.spec is None


def test_all_gpus_on_a_node_without_is_skipped_too(mad):
    assert "all GPUs" in plan(mad, gpu=NO_GPU, n_gpus="-1").skip_reason


def test_a_cpu_model_runs_without_gpus(mad):
    p = plan(mad, gpu=NO_GPU, n_gpus="0")
    assert p.skip_reason is None and p.spec.devices == [] and p.spec.device_requests == []
    assert p.spec.environment["MAD_RUNTIME_NGPUS"] == "0"
    assert "HIP_VISIBLE_DEVICES" not in p.spec.environment


def test_more_gpus_than_the_node_offers_is_skipped(mad):
    assert "offers 4" in plan(mad, n_gpus="5").skip_reason


@pytest.mark.parametrize("skip, arch, hit", [
    ("gfx90a", "gfx90a", True), ("gfx90a", "gfx90a:sramecc+:xnack-", True),
    ("A100", "NVIDIA A100-SXM4-80GB", True), ("gfx90a", "gfx942", False),
    ("", "gfx942", False), ("gfx942", "", False),
])
def test_skip_gpu_arch_matching(skip, arch, hit):
    assert arch_matches(skip, arch) is hit


def test_skip_gpu_arch_skips_before_looking_at_gpus(mad):
    p = plan(mad, gpu=AMD, skip_gpu_arch="gfx90a, gfx942")
    assert p.skip_reason == "skip_gpu_arch lists gfx942 (this node: gfx942)"


def test_a_missing_script_is_a_failure_reason_not_an_exception(mad):
    p = plan(mad, scripts="scripts/dummy/nope.sh")
    assert "nope.sh not found" in p.fail_reason
    assert "not found" in plan(mad, scripts="scripts/absent").fail_reason


@pytest.mark.parametrize("model_t, context_t, override, expected", [
    (None, None, None, DEFAULT_TIMEOUT), (30, None, None, 30), (30, 60, None, 60),
    (30, 60, 90, 90), (30, None, 0, None), (0, None, None, None), (30, None, -1, 30),
])
def test_timeout_resolution(model_t, context_t, override, expected):
    context = {} if context_t is None else {"timeout": context_t}
    assert resolve_timeout({"name": "m", "timeout": model_t}, context, override) == expected


def test_a_bad_timeout_is_invalid_input():
    with pytest.raises(InvalidInputError, match="timeout"):
        resolve_timeout({"name": "m", "timeout": "soon"}, {}, None)


@pytest.mark.parametrize("name, image, build, expected", [
    ("dummy", "ci-dummy_dummy.ubuntu.amd", {}, "dummy_dummy.ubuntu.amd.run.live.log"),
    ("d/m1", "ci-d_m1_pyt.ubuntu.amd", {}, "d_m1_pyt.ubuntu.amd.run.live.log"),
    ("dummy", "reg:5000/ns/x:ci-dummy_dummy.ubuntu.amd", {}, "dummy_dummy.ubuntu.amd.run.live.log"),
    ("dummy", "whatever", {"dockerfile": "docker/dummy.ubuntu.amd.Dockerfile"},
     "dummy_dummy.ubuntu.amd.run.live.log"),
])
def test_log_file_names_pair_with_the_build_logs(name, image, build, expected):
    assert log_file_name(name, image, build) == expected


def test_container_names_are_unique_and_docker_safe(mad):
    names = {plan(mad, name="Dir/Model Name!").container_name for _attempt in range(20)}
    assert len(names) == 20
    assert all(n.startswith("madengine-dir-model-name-") for n in names)


def test_the_row_carries_build_and_model_facts(mad, monkeypatch):
    monkeypatch.setenv("BUILD_NUMBER", "77")
    monkeypatch.setenv("pipeline", "nightly")
    build = {"docker_sha": "sha256:1", "base_docker": "rocm/pytorch", "build_duration": 12.5,
             "dockerfile": "docker/dummy.ubuntu.amd.Dockerfile"}
    p = plan_run(str(mad), model(training_precision="fp16"), "ci-dummy", build, {}, AMD,
                 str(mad))
    row = p.base_row
    assert (row["docker_sha"], row["base_docker"], row["build_duration"]) == ("sha256:1", "rocm/pytorch", 12.5)
    assert (row["build_number"], row["pipeline"], row["tags"]) == ("77", "nightly", "a,b")
    assert (row["deployment_type"], row["gpu_architecture"], row["n_gpus"]) == ("local", "gfx942", "1")
    assert row["training_precision"] == "fp16" and row["machine_name"]


def test_check_mode_returns_the_docker_run_list_without_an_engine(mad):
    result = run_model(str(mad), model(n_gpus="0", args="--x 'y z'"), "img:1", gpu=NO_GPU,
                       output_dir=str(mad / "out"), check_mode=True, docker_host="tcp://127.0.0.1:1")
    assert result["changed"] is True and result["records"] == []
    argv = result["docker_run"]
    assert argv[:2] == ["docker", "run"] and argv[-5:] == ["img:1", "bash", "run.sh", "--x", "y z"]
    assert "madengine.run=1" in argv and "madengine.model=dummy" in argv


def test_check_mode_of_a_skipped_model_would_change_nothing(mad):
    result = run_model(str(mad), model(), "img:1", gpu=NO_GPU, output_dir=str(mad), check_mode=True)
    assert result["changed"] is False and result["status"] == "SKIPPED"


def test_a_skipped_model_returns_its_row_without_touching_the_engine(mad):
    result = run_model(str(mad), model(), "img:1", gpu=NO_GPU, output_dir=str(mad / "out"),
                       docker_host="tcp://127.0.0.1:1")
    assert result["status"] == "SKIPPED" and result["changed"] is False
    (row,) = result["records"]
    assert row["status"] == "SKIPPED" and "has none" in row["reason"] and row["n_gpus"] == "1"


def test_model_credentials_become_variables_and_stay_out_of_the_output(mad):
    (mad / "credential.json").write_text('{"HF": {"username": "me", "password": "s3cret-token"}}')
    result = run_model(str(mad), model(n_gpus="0", cred="HF"), "img", gpu=NO_GPU,
                       output_dir=str(mad), check_mode=True)
    assert "-e" in result["docker_run"] and "HF_USERNAME=me" in result["docker_run"]
    assert "s3cret-token" not in repr(result)
