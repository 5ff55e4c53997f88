"""mad_build against the real Docker engine: logs, engine errors, build args, skipping, parallelism."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import uuid
from pathlib import Path

import pytest

from ansible_collections.madengine.core.plugins.module_utils._build import CONTENT_HASH_LABEL, build_images
from ansible_collections.madengine.core.plugins.module_utils._errors import BuildError, EngineError

pytestmark = pytest.mark.docker


class Package:
    """A MAD package in a temp dir whose images are removed after the test."""

    def __init__(self, root: Path, client, base_image: str):
        self.root = root
        self.client = client
        self.base = base_image
        self.token = uuid.uuid4().hex[:8]  # unique content, so no other test's image matches
        (root / "docker").mkdir(parents=True)
        self.image_ids: set = set()

    def dockerfile(self, name: str, body: str = "", context_line: str = "") -> str:
        text = (f"{context_line}\n" if context_line else "") + f"FROM {self.base}\n" \
            f"RUN echo {self.token} > /token\n" + body
        (self.root / "docker" / f"{name}.Dockerfile").write_text(text)
        return f"docker/{name}.Dockerfile"

    def model(self, name: str, dockerfile: str, **extra) -> dict:
        return {"name": f"buildtest-{self.token}-{name}", "dockerfiles": [dockerfile], "dockercontext": "docker",
                **extra}

    def build(self, models, context=None, **kwargs) -> dict:
        outcome = build_images(str(self.root), models, context or {}, str(self.root / "out"), **kwargs)
        self.image_ids.update(r["image_id"] for r in outcome["builds"] if r.get("image_id"))
        return outcome

    def cleanup(self) -> None:
        for image_id in self.image_ids:
            try:
                self.client.api.remove_image(image_id, force=True)
            except Exception:  # noqa: BLE001 - already gone
                pass


@pytest.fixture
def package(tmp_path, docker_client, base_image):
    pkg = Package(tmp_path / "mad", docker_client, base_image)
    yield pkg
    pkg.cleanup()


def run_in(client, image: str, command: str) -> str:
    return client.containers.run(image, ["bash", "-c", command], remove=True).decode()


def test_a_build_streams_its_log_and_labels_the_image_with_its_content_hash(package, docker_client):
    dockerfile = package.dockerfile("hello.ubuntu.amd", "RUN echo building-hello\n")
    outcome = package.build([package.model("hello", dockerfile)])
    [record] = outcome["builds"]
    assert outcome["error"] is None and outcome["changed"] is True
    assert record["status"] == "SUCCESS" and record["skipped_unchanged"] is False
    assert record["image"] == f"ci-buildtest-{package.token}-hello_hello.ubuntu.amd"
    assert record["gpu_vendor"] == "AMD"
    log = Path(record["log_file"])
    assert log.name == f"buildtest-{package.token}-hello_hello.ubuntu.amd.build.live.log"
    assert "building-hello" in log.read_text()
    labels = docker_client.api.inspect_image(record["image"])["Config"]["Labels"]
    assert labels[CONTENT_HASH_LABEL] == record["content_hash"]
    assert docker_client.api.inspect_image(record["image"])["Id"] == record["image_id"]
    assert outcome["manifest"]["built_images"][record["image"]]["docker_image"] == record["image"]


def test_a_failed_build_carries_the_engine_error_and_the_other_model_still_builds(package):
    bad = package.dockerfile("bad", "RUN echo about-to-fail && exit 3\n")
    good = package.dockerfile("good")
    outcome = package.build([package.model("bad", bad), package.model("good", good)])
    bad_record, good_record = outcome["builds"]
    assert bad_record["status"] == "FAILURE"
    assert "returned a non-zero code: 3" in bad_record["error"]
    assert "about-to-fail" in bad_record["error"] and bad_record["log_file"] in bad_record["error"]
    assert "returned a non-zero code: 3" in Path(bad_record["log_file"]).read_text()
    assert good_record["status"] == "SUCCESS"
    assert list(outcome["manifest"]["built_images"]) == [good_record["image"]]
    assert outcome["manifest"]["summary"]["failed_builds"][0]["error"] == bad_record["error"]
    assert isinstance(outcome["error"], BuildError) and outcome["error"].exit_code == 2
    assert "returned a non-zero code: 3" in outcome["error"].message


def test_no_dockerfile_and_no_context_match_are_failures_of_those_models_only(package):
    package.dockerfile("only.ubuntu.amd", context_line="# CONTEXT {'gpu_vendor': 'AMD'}")
    good = package.dockerfile("fine")
    models = [{"name": f"buildtest-{package.token}-missing", "dockerfile": "docker/nothing"},
              {"name": f"buildtest-{package.token}-mismatch", "dockerfile": "docker/only"},
              package.model("fine", good)]
    outcome = package.build(models, {"gpu_vendor": "NVIDIA"})
    missing, mismatch, fine = outcome["builds"]
    assert missing["status"] == "FAILURE" and "docker/nothing.*" in missing["error"]
    assert "docker/fine.Dockerfile" in missing["error"]  # what exists
    assert mismatch["status"] == "FAILURE" and "NVIDIA" in mismatch["error"]
    assert "docker/only.ubuntu.amd.Dockerfile" in mismatch["error"]
    assert fine["status"] == "SUCCESS"
    assert [f["model"] for f in outcome["manifest"]["summary"]["failed_builds"]] == [missing["model"], mismatch["model"]]


def test_context_and_credential_build_args_arrive_in_the_image(package, docker_client):
    (package.root / "credential.json").write_text(json.dumps(
        {"MAD_TEST_CRED": {"username": "bot", "password": "tok-secret-123"}}))
    dockerfile = package.dockerfile("args", "ARG MYARG\nARG MAD_TEST_CRED_USERNAME\nARG MAD_TEST_CRED_PASSWORD\n"
                                            "RUN echo \"$MYARG $MAD_TEST_CRED_USERNAME $MAD_TEST_CRED_PASSWORD\" > /args\n")
    outcome = package.build([package.model("args", dockerfile, cred="MAD_TEST_CRED")],
                            {"docker_build_arg": {"MYARG": "from-context"}})
    [record] = outcome["builds"]
    assert record["status"] == "SUCCESS", record.get("error")
    assert run_in(docker_client, record["image"], "cat /args").strip() == "from-context bot tok-secret-123"
    assert "tok-secret-123" not in record["build_command"]
    assert "tok-secret-123" not in json.dumps(outcome["manifest"])
    assert outcome["manifest"]["credentials_required"] == ["MAD_TEST_CRED"]


def test_an_unchanged_rebuild_is_skipped_and_any_change_rebuilds(package, docker_client):
    dockerfile = package.dockerfile("inc", "ARG MYARG=a\nCOPY data.txt /data.txt\nRUN echo $MYARG > /arg\n")
    (package.root / "docker" / "data.txt").write_text("one\n")
    (package.root / "docker" / "scratch.tmp").write_text("ignored\n")
    (package.root / "docker" / ".dockerignore").write_text("*.tmp\n")
    models = [package.model("inc", dockerfile)]

    first = package.build(models)["builds"][0]
    log_of_first_build = Path(first["log_file"]).read_text()
    second = package.build(models)
    assert second["builds"][0]["skipped_unchanged"] is True and second["changed"] is False
    assert second["builds"][0]["image_id"] == first["image_id"]
    assert Path(first["log_file"]).read_text().startswith(log_of_first_build)  # the build's log survives

    (package.root / "docker" / "scratch.tmp").write_text("still ignored\n")
    assert package.build(models)["builds"][0]["skipped_unchanged"] is True

    (package.root / "docker" / "data.txt").write_text("two\n")
    changed_file = package.build(models)["builds"][0]
    assert changed_file["skipped_unchanged"] is False and changed_file["image_id"] != first["image_id"]
    assert run_in(docker_client, changed_file["image"], "cat /data.txt").strip() == "two"

    changed_arg = package.build(models, {"docker_build_arg": {"MYARG": "b"}})["builds"][0]
    assert changed_arg["skipped_unchanged"] is False
    assert run_in(docker_client, changed_arg["image"], "cat /arg").strip() == "b"

    # Going back to earlier inputs hands out the image built from them, never the latest tag's.
    (package.root / "docker" / "data.txt").write_text("one\n")
    back = package.build(models)
    assert back["builds"][0]["skipped_unchanged"] is True and back["changed"] is True  # the tag moved
    assert back["builds"][0]["image_id"] == first["image_id"]
    assert run_in(docker_client, first["image"], "cat /data.txt").strip() == "one"


def test_clean_docker_cache_always_builds(package):
    models = [package.model("clean", package.dockerfile("clean"))]
    first = package.build(models)["builds"][0]
    again = package.build(models, clean_docker_cache=True)["builds"][0]
    assert again["skipped_unchanged"] is False and again["image_id"] != first["image_id"]
    assert "--no-cache" in again["build_command"]


def test_check_mode_reports_what_would_be_built_and_builds_nothing(package, docker_client):
    models = [package.model("check", package.dockerfile("check"))]
    outcome = package.build(models, check_mode=True)
    [record] = outcome["builds"]
    assert record["would_build"] is True and outcome["changed"] is True
    assert not docker_client.api.images(name=record["image"])
    assert not Path(record["log_file"]).exists()
    package.build(models)
    assert package.build(models, check_mode=True)["changed"] is False


def test_parallel_builds_run_at_the_same_time_each_with_its_own_log(package):
    # The two builds meet over a TCP port (builds use the host network): built one after the
    # other, the first would wait for a partner that never comes and fail after 120 s.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (package.root / "docker" / "meet.py").write_text(
        "import socket, sys, time\n"
        "role, port = sys.argv[1], int(sys.argv[2])\n"
        "if role == 'listen':\n"
        "    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        "    s.bind(('127.0.0.1', port)); s.listen(1); s.settimeout(120)\n"
        "    c, _ = s.accept(); c.sendall(b'met'); c.close(); print('listener met its partner')\n"
        "else:\n"
        "    deadline = time.time() + 120\n"
        "    while True:\n"
        "        try:\n"
        "            c = socket.create_connection(('127.0.0.1', port), timeout=5); break\n"
        "        except OSError:\n"
        "            if time.time() > deadline: raise\n"
        "            time.sleep(0.2)\n"
        "    print('connector got', c.recv(3).decode())\n")
    models = [package.model(role, package.dockerfile(role, f"COPY meet.py /meet.py\nRUN python3 /meet.py {role} {port}\n"))
              for role in ("listen", "connect")]
    outcome = package.build(models, parallel=2)
    listen, connect = outcome["builds"]
    assert listen["status"] == "SUCCESS", listen.get("error")
    assert connect["status"] == "SUCCESS", connect.get("error")
    assert listen["log_file"] != connect["log_file"]
    assert "listener met its partner" in Path(listen["log_file"]).read_text()
    assert "connector got met" in Path(connect["log_file"]).read_text()


def test_an_unreachable_engine_says_how_to_start_it_for_every_model(package):
    outcome = package.build([package.model("x", package.dockerfile("x"))],
                            docker_host="unix:///tmp/madengine-no-engine-here.sock")
    assert isinstance(outcome["error"], EngineError)
    assert "unix:///tmp/madengine-no-engine-here.sock" in outcome["error"].message
    assert "systemctl start docker" in outcome["error"].message
    assert outcome["builds"][0]["status"] == "FAILURE"


def test_the_module_through_ansible_writes_the_manifest_and_fails_with_exit_code_2(package, tmp_path):
    good = package.model("modgood", package.dockerfile("modgood"))
    bad = package.model("modbad", package.dockerfile("modbad", "RUN exit 7\n"))
    manifest_file = tmp_path / "out" / "build_manifest.json"
    result_file = tmp_path / "result.json"
    playbook = tmp_path / "build.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - name: Build\n      madengine.core.mad_build:\n"
        "        mad_dir: '{{ mad_dir }}'\n        models: '{{ models }}'\n        context: {}\n"
        "        manifest_file: '{{ manifest_file }}'\n        parallel: 1\n"
        "      register: built\n      ignore_errors: true\n"
        "    - name: Keep the result\n      ansible.builtin.copy:\n"
        "        content: '{{ built | to_json }}'\n        dest: '{{ result_file }}'\n        mode: '0644'\n")
    extra = {"mad_dir": str(package.root), "models": [good, bad], "manifest_file": str(manifest_file),
             "result_file": str(result_file)}
    (tmp_path / "vars.json").write_text(json.dumps(extra))
    inventory = Path(__file__).resolve().parents[2] / "inventories" / "local" / "hosts.yml"
    run = subprocess.run(["ansible-playbook", "-i", str(inventory), str(playbook),
                          "-e", f"@{tmp_path / 'vars.json'}"], capture_output=True, check=False, text=True, env=os.environ.copy())
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(result_file.read_text())
    package.image_ids.update(b["image_id"] for b in result["builds"] if b.get("image_id"))
    assert result["failed"] is True and result["exit_code"] == 2 and result["error_kind"] == "build"
    assert "returned a non-zero code: 7" in result["msg"]
    manifest = json.loads(manifest_file.read_text())
    assert list(manifest["built_images"]) == [f"ci-{good['name']}_modgood"]
    assert manifest["summary"]["failed_builds"][0]["model"] == bad["name"]
    assert result["manifest_file"] == str(manifest_file)
