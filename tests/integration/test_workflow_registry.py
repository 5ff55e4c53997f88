"""Build on one host, run on another (issue 4), end to end with the driver and a real registry.

The "build host" is ``madengine build --registry``; then every local image of the build is
removed (a clean local store, as on a fresh GPU node) and ``madengine run --manifest-file``
pulls the images back by the digests the manifest recorded. The registry is Debian's
docker-registry with htpasswd auth (tests/integration/conftest.py), whose password is
unique to the session: the secret search looks for it in every process's argv and in
every file madengine and ansible-runner wrote, also while they ran.
"""
from __future__ import annotations

import base64
import io
import json
import os
import urllib.request

import pytest
from workflow import (SecretWatch, WorkflowPackage, explain, files_holding, madengine, read_perf_csv,
                      tiny_base_image)

pytestmark = [pytest.mark.docker, pytest.mark.registry]
ENV_SECRET = "env-secret-" + os.urandom(8).hex()


def write_credentials(pkg: WorkflowPackage, entries: dict) -> None:
    (pkg.root / "credential.json").write_text(json.dumps(entries))


def remove_images(client, ids) -> None:
    """Every local tag of these images, so the next run must pull them."""
    for image_id in set(ids):
        try:
            client.api.remove_image(image_id, force=True)
        except Exception:  # noqa: BLE001 - already gone
            pass


def auth_header(registry: dict) -> str:
    pair = f"{registry['username']}:{registry['password']}".encode()
    return "Basic " + base64.b64encode(pair).decode()


class Pushed:
    """The build + push, the removal of the local images, and the run that pulled them back."""

    def __init__(self, pkg, build_out, run_out, build, run, watch):
        self.pkg, self.build_out, self.run_out = pkg, build_out, run_out
        self.build, self.run, self.watch = build, run, watch
        self.manifest = json.loads((build_out / "build_manifest.json").read_text())

    def entry(self, base: str) -> dict:
        return self.manifest["built_images"][self.pkg.image(base, "wfreg")]


@pytest.fixture(scope="module")
def tiny_image(docker_client) -> str:
    return tiny_base_image(docker_client)


@pytest.fixture(scope="module")
def pushed(tmp_path_factory, registry, docker_client, tiny_image):
    pkg = WorkflowPackage("wfreg", tmp_path_factory.mktemp("wfreg-package") / "wfreg")
    pkg.write_dockerfile_marker("wfreg", f"marker-{pkg.token}")
    write_credentials(pkg, {registry["host"]: {"username": registry["username"], "password": registry["password"]}})
    build_out, run_out = tmp_path_factory.mktemp("wfreg-build"), tmp_path_factory.mktemp("wfreg-run")
    # A secret in the user's environment too (the Docker Hub route; unused by this registry).
    env = {"MAD_DOCKERHUB_USER": "wf-user", "MAD_DOCKERHUB_PASSWORD": ENV_SECRET}
    try:
        with SecretWatch([registry["password"], ENV_SECRET]) as watch:
            build = madengine("build", "--mad-dir", str(pkg.root), "--tags", "wfreg", "--registry", registry["host"],
                              "--json", cwd=build_out, env=env)
            assert build.returncode == 0, explain(build)
            ids = [b["image_id"] for b in json.loads(build.stdout)["builds"]]
            remove_images(docker_client, ids)
            assert not set(ids) & set(docker_client.api.images(quiet=True, all=True))  # a clean local store
            run = madengine("run", "--manifest-file", str(build_out / "build_manifest.json"),
                            "--mad-dir", str(pkg.root), "--json", cwd=run_out, env=env)
        yield Pushed(pkg, build_out, run_out, build, run, watch)
    finally:
        pkg.cleanup(docker_client)


def test_the_build_pushes_and_the_manifest_records_registry_image_and_digest(pushed, registry):
    for base in ("wf_push_a", "wf_push_b"):
        entry = pushed.entry(base)
        assert entry["registry"] == registry["host"]
        assert entry["registry_image"] == f"{registry['host']}/{pushed.pkg.image(base, 'wfreg')}"
        assert entry["registry_digest"].startswith("sha256:") and "push_error" not in entry
    assert pushed.manifest["registry"] == registry["host"]
    summary = pushed.manifest["summary"]
    assert len(summary["successful_pushes"]) == 2 and summary["failed_pushes"] == []
    assert summary["total_models"] == 2


def test_a_clean_node_pulls_the_images_back_and_runs_them(pushed, docker_client):
    assert pushed.run.returncode == 0, explain(pushed.run)
    header, rows = read_perf_csv(pushed.run_out / "perf.csv")
    assert [r["status"] for r in rows] == ["SUCCESS", "SUCCESS"]
    for row, base in zip(rows, ("wf_push_a", "wf_push_b")):
        entry = pushed.entry(base)
        assert row["model"] == pushed.pkg.name(base)
        assert row["image_digest"] == entry["registry_digest"]
        assert docker_client.images.get(f"{entry['registry_image']}@{entry['registry_digest']}").id == entry["image_id"]
    log = (pushed.run_out / f"{pushed.pkg.name('wf_push_a')}_wfreg.run.live.log").read_text()
    assert f"WF_MARKER=marker-{pushed.pkg.token} args=--which a" in log


def test_the_run_summary_records_the_digest_that_ran(pushed):
    summary = json.loads((pushed.run_out / "run_summary.json").read_text())
    digests = {m["model"]: m["image_digest"] for m in summary["models"]}
    assert digests == {pushed.pkg.name(b): pushed.entry(b)["registry_digest"] for b in ("wf_push_a", "wf_push_b")}
    assert json.loads(pushed.run.stdout)["summary"]["models"][0]["image_digest"] == pushed.entry("wf_push_a")["registry_digest"]


def test_the_password_is_in_no_file_and_no_process_argv(pushed, registry):
    # Several looks while the runs went on, one of them inside a runner's private data dir.
    assert pushed.watch.polls >= 3 and pushed.watch.files_seen, "the watch saw nothing of the runs"
    assert any("madengine-runner-" in path for path, _size, _mtime in pushed.watch.files_seen)
    assert pushed.watch.hits_of(registry["password"]) == []
    written = files_holding(registry["password"], pushed.build_out, pushed.run_out, pushed.pkg.root,
                            skip=("credential.json",))
    assert written == []
    for done in (pushed.build, pushed.run):
        assert registry["password"] not in done.stdout + done.stderr


def test_a_secret_of_the_users_environment_is_in_no_argv_and_no_output_file(pushed):
    assert [hit for hit in pushed.watch.hits_of(ENV_SECRET) if hit[0] == "argv"] == []
    assert files_holding(ENV_SECRET, pushed.build_out, pushed.run_out, pushed.pkg.root) == []
    for done in (pushed.build, pushed.run):
        assert ENV_SECRET not in done.stdout + done.stderr


def test_a_secret_of_the_users_environment_is_in_no_file_ansible_runner_writes(pushed):
    assert [hit for hit in pushed.watch.hits_of(ENV_SECRET) if hit[0] == "file"] == []


def test_a_retagged_registry_image_never_runs_and_a_vanished_one_is_a_failure_with_reason(
        pushed, registry, docker_client, tiny_image, tmp_path):
    """After the build, someone pushes other content under A's tag and deletes B's image:
    A still runs the image the manifest recorded (pulled by digest), B fails saying why."""
    a, b = pushed.entry("wf_push_a"), pushed.entry("wf_push_b")
    impostor = docker_client.images.build(
        fileobj=io.BytesIO(f"FROM {tiny_image}\nRUN echo impostor > /wf-marker\n".encode()),
        tag=a["registry_image"], rm=True, pull=False)[0]
    auth = {"username": registry["username"], "password": registry["password"]}
    for chunk in docker_client.api.push(a["registry_image"], stream=True, decode=True, auth_config=auth):
        assert "error" not in chunk, chunk
    repository_b = b["registry_image"].split("/", 1)[1]
    request = urllib.request.Request(f"{registry['url']}/v2/{repository_b}/manifests/{b['registry_digest']}",
                                     method="DELETE", headers={"Authorization": auth_header(registry)})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 202
    remove_images(docker_client, [impostor.id, a["image_id"], b["image_id"]])

    done = madengine("run", "--manifest-file", str(pushed.build_out / "build_manifest.json"),
                     "--mad-dir", str(pushed.pkg.root), cwd=tmp_path)
    assert done.returncode == 3, explain(done)
    rows = {r["model"]: r for r in read_perf_csv(tmp_path / "perf.csv")[1]}
    ran = rows[pushed.pkg.name("wf_push_a")]
    assert ran["status"] == "SUCCESS" and ran["image_digest"] == a["registry_digest"]
    log = (tmp_path / f"{pushed.pkg.name('wf_push_a')}_wfreg.run.live.log").read_text()
    assert f"WF_MARKER=marker-{pushed.pkg.token}" in log and "impostor" not in log
    gone = rows[pushed.pkg.name("wf_push_b")]
    assert gone["status"] == "FAILURE"
    assert f"cannot pull {b['registry_image']} at digest {b['registry_digest']}" in gone["reason"]
    assert "no longer has the image the manifest recorded" in gone["reason"]
    assert registry["password"] not in done.stdout + done.stderr + gone["reason"]


# ----------------------------------------------------------------------- faults of the push

@pytest.fixture
def fresh_package(tmp_path, docker_client, tiny_image):
    pkg = WorkflowPackage("wfreg", tmp_path / "wfreg")
    pkg.write_dockerfile_marker("wfreg", f"marker-{pkg.token}")
    yield pkg
    pkg.cleanup(docker_client)


def test_a_wrong_password_is_a_clear_authentication_error_naming_the_registry(fresh_package, registry, tmp_path):
    wrong = "wrong-" + fresh_package.token + "-" + base64.b32encode(registry["password"].encode()).decode()[:10]
    write_credentials(fresh_package, {registry["host"]: {"username": registry["username"], "password": wrong}})
    out = tmp_path / "out"
    out.mkdir()
    done = madengine("build", "--mad-dir", str(fresh_package.root), "--tags", "wfreg", "--registry", registry["host"],
                     cwd=out)
    assert done.returncode == 2, explain(done)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    assert registry["host"] in errors[0] and "authentication failed" in errors[0]
    assert "Traceback" not in done.stderr
    assert wrong not in done.stdout + done.stderr
    assert files_holding(wrong, out) == []


def test_docker_hub_environment_credentials_are_never_sent_to_another_registry(fresh_package, registry, tmp_path):
    """MAD_DOCKERHUB_USER/PASSWORD stand for the credential.json "dockerhub" entry, as upstream:
    a push to a registry without an entry of its own is refused, not logged in with them."""
    out = tmp_path / "out"
    out.mkdir()
    env = {"MAD_DOCKERHUB_USER": registry["username"], "MAD_DOCKERHUB_PASSWORD": registry["password"]}
    done = madengine("build", "--mad-dir", str(fresh_package.root), "--tags", "wfreg", "--registry", registry["host"],
                     "--json", cwd=out, env=env)
    assert done.returncode == 2, explain(done)
    builds = json.loads(done.stdout)["builds"]
    assert [b["status"] for b in builds] == ["SUCCESS", "SUCCESS"]
    for build in builds:
        assert registry["host"] in build["push_error"] and "registry_digest" not in build
    assert registry["password"] not in done.stdout + done.stderr
    assert files_holding(registry["password"], out) == []


def test_a_registry_that_is_down_is_recorded_and_the_images_stay_usable(
        fresh_package, registry_factory, tmp_path, docker_client):
    server = registry_factory(username=None)
    server.stop()
    done = madengine("build", "--mad-dir", str(fresh_package.root), "--tags", "wfreg", "--registry", server.host,
                     "--json", cwd=tmp_path)
    assert done.returncode == 2, explain(done)
    manifest = json.loads((tmp_path / "build_manifest.json").read_text())
    assert len(manifest["built_images"]) == 2
    assert [p["model"] for p in manifest["summary"]["failed_pushes"]] == [
        fresh_package.name("wf_push_a"), fresh_package.name("wf_push_b")]
    for push in manifest["summary"]["failed_pushes"]:
        assert server.host in push["error"]
    for build in json.loads(done.stdout)["builds"]:
        assert docker_client.api.inspect_image(build["image"])["Id"] == build["image_id"]


# ------------------------------------------------------------------------- incremental builds

def test_an_unchanged_rebuild_is_skipped_and_a_changed_file_rebuilds(fresh_package, tmp_path):
    def build() -> dict:
        done = madengine("build", "--mad-dir", str(fresh_package.root), "--tags", "wfreg", "--json", cwd=tmp_path)
        assert done.returncode == 0, explain(done)
        return json.loads(done.stdout)

    first = build()
    assert first["changed"] is True
    again = build()
    assert again["changed"] is False
    assert [b["skipped_unchanged"] for b in again["builds"]] == [True, True]
    assert [b["image_id"] for b in again["builds"]] == [b["image_id"] for b in first["builds"]]

    (fresh_package.root / "docker" / "notes.txt").write_text("a file of the build context changed\n")
    changed = build()
    assert changed["changed"] is True
    assert [b["skipped_unchanged"] for b in changed["builds"]][0] is False
    assert changed["builds"][0]["image_id"] != first["builds"][0]["image_id"]
    assert changed["builds"][0]["content_hash"] != first["builds"][0]["content_hash"]
