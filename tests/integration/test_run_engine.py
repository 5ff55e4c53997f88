"""mad_run against the real Docker engine: one container per model, its log, its row.

Every model name carries this session's id, so "no container left behind" looks only at
containers this file created. The image is built once per session, FROM the base image.
"""
from __future__ import annotations

import io
import json
import os
import secrets
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ansible_collections.madengine.core.plugins.module_utils._gpu import gather_gpu_facts
from ansible_collections.madengine.core.plugins.module_utils._run import run_model

from workflow import model_containers

pytestmark = pytest.mark.docker

SESSION = secrets.token_hex(3)
NO_GPU = {"vendor": "NONE", "architecture": None, "count": 0, "devices": []}


@pytest.fixture(scope="module")
def run_image(labelled_image):
    return labelled_image("run")


@pytest.fixture
def mad(tmp_path):
    """A MAD package in tmp_path; ``mad.script(path, text)`` adds a script."""
    class Package:
        root = tmp_path
        out = tmp_path / "out"

        def script(self, rel: str, text: str) -> str:
            path = tmp_path / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text))
            return rel
    return Package()


def name(label: str) -> str:
    return f"t{SESSION}-{label}"


def run(mad, run_image, docker_client, label, scripts, keep=False, **kw):
    model = {"name": name(label), "scripts": scripts, "n_gpus": "0", "tags": ["t"]}
    model.update(kw.pop("model", {}))
    kw.setdefault("gpu", NO_GPU)
    result = run_model(str(mad.root), model, kw.pop("image", run_image),
                       output_dir=str(mad.out), **kw)
    if not keep:
        assert model_containers(docker_client, model["name"]) == []
    return result


def test_a_model_runs_and_its_performance_is_parsed(mad, run_image, docker_client):
    mad.script("scripts/ok/run.sh", """\
        echo "starting in $(pwd)"
        echo "performance: 123.4 samples_per_second"
        """)
    result = run(mad, run_image, docker_client, "ok", "scripts/ok/run.sh")
    assert (result["status"], result["reason"], result["changed"]) == ("SUCCESS", "", True)
    assert (result["performance"], result["metric"]) == ("123.4", "samples_per_second")
    (row,) = result["records"]
    assert row["model"] == name("ok") and row["status"] == "SUCCESS"
    assert row["docker_image"] == run_image and row["image_digest"].startswith("sha256:")
    assert row["test_duration"] == result["test_duration"] > 0
    log = Path(result["log_file"])
    assert log.name == f"{name('ok')}_madengine-run-test.run.live.log"
    assert "starting in /myworkspace/run_directory" in log.read_text()


def test_args_with_spaces_and_quotes_arrive_intact(mad, run_image, docker_client):
    mad.script("scripts/argv/show.py", """\
        import json, sys
        print("ARGV=" + json.dumps(sys.argv[1:]))
        print("performance: 1 x")
        """)
    args = """--name "a b" --quote 'it'"'"'s' --empty "" --dollar '$HOME' --glob '*' ';' '&&' 'rm -rf /'"""
    result = run(mad, run_image, docker_client, "argv", "scripts/argv/show.py", model={"args": args})
    assert result["status"] == "SUCCESS"
    line = next(x for x in Path(result["log_file"]).read_text().splitlines() if x.startswith("ARGV="))
    assert json.loads(line[5:]) == ["--name", "a b", "--quote", "it's", "--empty", "", "--dollar",
                                    "$HOME", "--glob", "*", ";", "&&", "rm -rf /"]


def test_a_directory_model_runs_its_run_sh_with_its_other_files(mad, run_image, docker_client):
    mad.script("scripts/dir/run.sh", "bash helper.sh\n")
    mad.script("scripts/dir/helper.sh", "echo performance: 5 fps\n")
    result = run(mad, run_image, docker_client, "dir", "scripts/dir")
    assert (result["status"], result["performance"]) == ("SUCCESS", "5")


def test_environment_and_mounts_are_visible_in_the_container(mad, run_image, docker_client, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "input.txt").write_text("from the host\n")
    mad.script("scripts/env/run.sh", """\
        env | grep -E '^(MAD_|MY_|OPT_)' | sort
        cat /mnt/shared/input.txt
        echo written > /mnt/shared/output.txt
        echo "performance: 1 x"
        """)
    context = {"docker_env_vars": {"MY_VAR": "two words"}, "docker_mounts": {"/mnt/shared": str(shared)},
               "guest_os": "UBUNTU"}
    result = run(mad, run_image, docker_client, "env", "scripts/env/run.sh", context=context,
                 model={"additional_docker_run_options": "-e OPT_VAR=from-options --shm-size 64m",
                        "multiple_results": "none.csv"})
    log = Path(result["log_file"]).read_text()
    for line in (f"MAD_MODEL_NAME={name('env')}", "MAD_GPU_VENDOR=NONE", "MAD_RUNTIME_NGPUS=0",
                 "MAD_SYSTEM_NGPUS=0", "MAD_GUEST_OS=UBUNTU", "MAD_OUTPUT_CSV=none.csv",
                 "MAD_MULTI_NODE_RUNNER=torchrun --standalone --nproc_per_node=1",
                 "MY_VAR=two words", "OPT_VAR=from-options", "from the host"):
        assert line in log
    assert (shared / "output.txt").read_text() == "written\n"


def test_multiple_results_become_one_row_each_with_extra_columns(mad, run_image, docker_client):
    mad.script("scripts/multi/run.sh", """\
        printf 'model, performance ,metric,batch_size\\nsmall,10.5,tok/s,8\\nlarge,3.25,tok/s,64\\n' > "$MAD_OUTPUT_CSV"
        """)
    result = run(mad, run_image, docker_client, "multi", "scripts/multi/run.sh",
                 model={"multiple_results": "perf_multi.csv"})
    assert result["status"] == "SUCCESS", result["reason"]
    rows = [(r["model"], r["performance"], r["metric"], r["batch_size"], r["status"])
            for r in result["records"]]
    assert rows == [(name("multi") + "_small", "10.5", "tok/s", "8", "SUCCESS"),
                    (name("multi") + "_large", "3.25", "tok/s", "64", "SUCCESS")]


def test_a_multiple_results_row_without_performance_is_a_failure(mad, run_image, docker_client):
    mad.script("scripts/multi2/run.sh", """\
        printf 'model,performance,metric\\na,1,x\\nb,,x\\n' > ../perf_multi2.csv
        """)
    result = run(mad, run_image, docker_client, "multi2", "scripts/multi2/run.sh",
                 model={"multiple_results": "perf_multi2.csv"})  # written to the workspace, as upstream
    assert [r["status"] for r in result["records"]] == ["SUCCESS", "FAILURE"]
    assert result["status"] == "FAILURE"
    assert result["reason"] == "1 of 2 results failed: no performance for 'b' in perf_multi2.csv"


def test_a_multiple_results_file_never_written_is_a_failure(mad, run_image, docker_client):
    mad.script("scripts/multi3/run.sh", "echo forgot the csv\n")
    result = run(mad, run_image, docker_client, "multi3", "scripts/multi3/run.sh",
                 model={"multiple_results": "perf.csv"})
    assert (result["status"], result["reason"]) == (
        "FAILURE", "multiple_results file perf.csv was not written by the model")


def test_a_non_zero_exit_is_a_failure_even_with_performance(mad, run_image, docker_client):
    mad.script("scripts/bad/run.sh", "echo performance: 9 x\nexit 3\n")
    result = run(mad, run_image, docker_client, "bad", "scripts/bad/run.sh")
    assert (result["status"], result["reason"], result["container_exit_code"]) == ("FAILURE", "exit code 3", 3)
    assert result["records"][0]["performance"] == "9"


def test_no_performance_line_is_a_failure(mad, run_image, docker_client):
    mad.script("scripts/quiet/run.sh", "echo done\n")
    result = run(mad, run_image, docker_client, "quiet", "scripts/quiet/run.sh")
    assert (result["status"], result["reason"]) == ("FAILURE", "no performance in the log")


def test_an_error_signature_fails_the_run_unless_declared_benign(mad, run_image, docker_client):
    mad.script("scripts/trace/run.py", """\
        import traceback
        try:
            raise ValueError("handled")
        except ValueError:
            traceback.print_exc()
        print("performance: 2 x")
        """)
    result = run(mad, run_image, docker_client, "trace", "scripts/trace/run.py")
    assert result["status"] == "FAILURE"
    assert result["reason"].startswith("error signature 'Traceback (most recent call last)' in the log")
    result = run(mad, run_image, docker_client, "trace", "scripts/trace/run.py",
                 context={"log_error_benign_patterns": ["Traceback (most recent call last)"]})
    assert result["status"] == "SUCCESS"


def test_the_container_is_killed_at_the_timeout(mad, run_image, docker_client):
    mad.script("scripts/slow/run.sh", "echo begun\nsleep 60\necho performance: 1 x\n")
    started = time.monotonic()
    result = run(mad, run_image, docker_client, "slow", "scripts/slow/run.sh", timeout=2)
    assert (result["status"], result["reason"]) == ("FAILURE", "timeout after 2 s")
    assert 2 <= result["test_duration"] < 2 + 3
    assert time.monotonic() - started < 2 + 6
    log = Path(result["log_file"]).read_text()
    assert "begun" in log and "killed at the timeout after 2 s" in log


def test_the_models_own_timeout_applies_when_none_is_given(mad, run_image, docker_client):
    mad.script("scripts/slow2/run.sh", "sleep 60\n")
    result = run(mad, run_image, docker_client, "slow2", "scripts/slow2/run.sh", model={"timeout": 1})
    assert result["reason"] == "timeout after 1 s"


def test_models_needing_gpus_are_skipped_on_this_gpu_less_host(mad, run_image, docker_client):
    facts = gather_gpu_facts({})
    assert facts["count"] == 0
    mad.script("scripts/gpu/run.sh", "echo performance: 1 x\n")
    result = run(mad, run_image, docker_client, "gpu", "scripts/gpu/run.sh", gpu=facts,
                 model={"n_gpus": "1"})
    assert result["status"] == "SKIPPED" and result["changed"] is False
    assert "needs 1 GPU" in result["reason"]
    assert result["records"][0]["status"] == "SKIPPED"
    assert "not run" in Path(result["log_file"]).read_text()


def test_skip_gpu_arch_skips_the_model(mad, run_image, docker_client):
    mad.script("scripts/arch/run.sh", "echo performance: 1 x\n")
    result = run(mad, run_image, docker_client, "arch", "scripts/arch/run.sh",
                 context={"docker_build_arg": {"MAD_SYSTEM_GPU_ARCHITECTURE": "gfx90a"}},
                 model={"skip_gpu_arch": "gfx90a"})
    assert (result["status"], result["reason"]) == ("SKIPPED", "skip_gpu_arch lists gfx90a (this node: gfx90a)")


def test_a_missing_script_gives_a_failure_row_and_no_container(mad, run_image, docker_client):
    result = run(mad, run_image, docker_client, "noscript", "scripts/none/run.sh")
    assert result["status"] == "FAILURE" and result["changed"] is False
    assert "scripts/none/run.sh not found" in result["reason"]
    assert result["records"][0]["reason"] == result["reason"]


def test_a_missing_image_gives_a_failure_row(mad, run_image, docker_client):
    mad.script("scripts/ok/run.sh", "echo performance: 1 x\n")
    image = f"madengine-run-test/absent:{SESSION}"
    result = run(mad, run_image, docker_client, "noimage", "scripts/ok/run.sh", image=image)
    assert (result["status"], result["reason"]) == (
        "FAILURE", f"image {image} not found locally; build it or run from a manifest with a registry")
    assert result["records"][0]["status"] == "FAILURE"


def test_a_broken_link_among_the_scripts_gives_a_failure_row(mad, run_image, docker_client):
    mad.script("scripts/link/run.sh", "echo performance: 1 x\n")
    (mad.root / "scripts/link/data").symlink_to(mad.root / "nowhere")
    result = run(mad, run_image, docker_client, "link", "scripts/link/run.sh")
    assert result["status"] == "FAILURE"
    assert result["reason"].startswith(f"cannot copy the scripts of {name('link')}: ")
    assert "scripts/link/data" in result["reason"]


def test_a_custom_workdir_gets_the_scripts(mad, run_image, docker_client):
    mad.script("scripts/wd/run.sh", 'echo "in $(pwd)"; echo performance: 1 x\n')
    result = run(mad, run_image, docker_client, "wd", "scripts/wd/run.sh",
                 model={"additional_docker_run_options": "-w /opt/work"})
    assert result["status"] == "SUCCESS", result["reason"]
    assert "in /opt/work/run_directory" in Path(result["log_file"]).read_text()


def test_keep_alive_leaves_the_container_and_says_how_to_enter(mad, run_image, docker_client):
    mad.script("scripts/keep/run.sh", "echo performance: 4 x\n")
    result = run(mad, run_image, docker_client, "keep", "scripts/keep/run.sh", keep=True, keep_alive=True)
    try:
        assert result["status"] == "SUCCESS"
        assert f"docker exec -it {result['container_name']} bash" in result["keep_alive_hint"]
        (container,) = model_containers(docker_client, name("keep"))
        assert container.status == "running"
        code, output = container.exec_run(["cat", "/myworkspace/run_directory/run.sh"])
        assert code == 0 and b"performance: 4 x" in output
    finally:
        for container in model_containers(docker_client, name("keep")):
            container.remove(force=True)


def test_keep_alive_timeout_kills_the_model_but_keeps_the_container(mad, run_image, docker_client):
    mad.script("scripts/keep2/run.sh", "sleep 60\n")
    result = run(mad, run_image, docker_client, "keep2", "scripts/keep2/run.sh", keep=True,
                 keep_alive=True, timeout=2)
    try:
        assert (result["status"], result["reason"]) == ("FAILURE", "timeout after 2 s")
        assert result["test_duration"] < 2 + 3
        (container,) = model_containers(docker_client, name("keep2"))
        assert container.status == "running"
    finally:
        for container in model_containers(docker_client, name("keep2")):
            container.remove(force=True)


def test_a_run_takes_few_engine_round_trips(mad, run_image, docker_client):
    import docker

    client = docker.from_env(version="auto")
    calls = []
    send = client.api.send
    client.api.send = lambda request, **kw: (calls.append(f"{request.method} {request.path_url.split('?')[0]}"),
                                             send(request, **kw))[1]
    mad.script("scripts/ok/run.sh", "echo performance: 1 x\n")
    result = run(mad, run_image, docker_client, "trips", "scripts/ok/run.sh", client=client)
    assert result["status"] == "SUCCESS"
    # inspect image, create, put_archive, inspect (attach's tty check), attach, start, wait, remove
    assert len(calls) <= 8, calls


FLOOD = r"""
import json, resource, sys
from ansible_collections.madengine.core.plugins.module_utils._run import run_model
mad, image, out, name = sys.argv[1:5]
result = run_model(mad, {"name": name, "scripts": "scripts/flood/run.sh", "n_gpus": "0"}, image,
                   gpu={}, output_dir=out)
print(json.dumps({"status": result["status"], "reason": result["reason"], "log": result["log_file"],
                  "max_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def test_a_flood_of_output_keeps_memory_bounded_and_the_log_whole(mad, run_image, docker_client, collections_path):
    mad.script("scripts/flood/run.sh", """\
        yes "flood line with some text to make it longer 0123456789 abcdefghijklmnopqrstuvwxyz" | head -c 200000000
        echo
        echo "performance: 7 lines_per_second"
        """)
    proc = subprocess.run([sys.executable, "-c", FLOOD, str(mad.root), run_image, str(mad.out), name("flood")],
                          capture_output=True, text=True, check=True,
                          env=dict(os.environ, PYTHONPATH=str(collections_path)))
    result = json.loads(proc.stdout)
    assert (result["status"], result["reason"]) == ("SUCCESS", "")
    assert os.path.getsize(result["log"]) > 200_000_000
    assert result["max_rss_kib"] < 100 * 1024  # 200 MB went through; the process stayed small
    assert model_containers(docker_client, name("flood")) == []


SIGTERM = r"""
import sys
from ansible_collections.madengine.core.plugins.module_utils._run import run_model
mad, image, out, name = sys.argv[1:5]
run_model(mad, {"name": name, "scripts": "scripts/sleep/run.sh", "n_gpus": "0"}, image, output_dir=out)
"""


def test_a_stopped_module_removes_its_container(mad, run_image, docker_client, collections_path):
    mad.script("scripts/sleep/run.sh", "echo started\nsleep 60\n")
    proc = subprocess.Popen([sys.executable, "-c", SIGTERM, str(mad.root), run_image, str(mad.out), name("term")],
                            env=dict(os.environ, PYTHONPATH=str(collections_path)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = mad.out / f"{name('term')}_madengine-run-test.run.live.log"
    deadline = time.monotonic() + 30
    while not (log.exists() and "started" in log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(model_containers(docker_client, name("term"))) == 1
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    assert model_containers(docker_client, name("term")) == []


@pytest.mark.registry
def test_an_image_missing_locally_is_pulled_by_its_recorded_digest(mad, run_image, docker_client, registry):
    from ansible_collections.madengine.core.plugins.module_utils._registry import push_image

    local = f"madengine-run-test:pull-{SESSION}"
    image, _build_log = docker_client.images.build(fileobj=io.BytesIO(f"FROM {run_image}\nLABEL pull={SESSION}\n".encode()),
                                                   tag=local, rm=True, pull=False)
    registry_image = f"{registry['host']}/{local}"
    auth = {"username": registry["username"], "password": registry["password"]}
    digest = push_image(docker_client, local, registry_image, auth)
    docker_client.api.remove_image(image.id, force=True)
    (mad.root / "credential.json").write_text(json.dumps({registry["host"]: auth}))
    mad.script("scripts/ok/run.sh", "echo performance: 1 x\n")
    build = {"registry": registry["host"], "registry_image": registry_image, "registry_digest": digest}
    try:
        result = run(mad, run_image, docker_client, "pull", "scripts/ok/run.sh", image=local, build=build)
        assert result["status"] == "SUCCESS", result["reason"]
        assert result["image_digest"] == digest
        assert result["records"][0]["docker_image"] == local  # the row keeps the manifest's name
        assert registry["password"] not in json.dumps(result)
    finally:
        docker_client.api.remove_image(image.id, force=True)


@pytest.mark.registry
def test_an_image_that_cannot_be_pulled_gives_a_failure_row_saying_why(mad, run_image, docker_client, registry):
    mad.script("scripts/ok/run.sh", "echo performance: 1 x\n")
    missing = "sha256:" + "0" * 64
    build = {"registry": registry["host"], "registry_image": f"{registry['host']}/absent:{SESSION}",
             "registry_digest": missing}
    result = run(mad, run_image, docker_client, "nopull", "scripts/ok/run.sh",
                 image=f"absent:{SESSION}", build=build)
    assert result["status"] == "FAILURE"
    assert result["reason"].startswith(f"cannot pull {registry['host']}/absent:{SESSION} at digest {missing}")
