"""A model's ``url``: the repository is cloned on this node with the real git and runs, as
its run directory, in a real container.

Repositories are made with ``git init`` in tmp_path and reached through ``file://`` (smart
protocol) or a small HTTP server that demands a login (dumb protocol). Model names carry
this session's id, so "no container left" looks only at containers this file created.
"""
from __future__ import annotations

import base64
import functools
import http.server
import os
import secrets
import subprocess
import textwrap
import threading
import time
from pathlib import Path

import pytest

from ansible_collections.madengine.core.plugins.module_utils._run import run_model

from workflow import model_containers

pytestmark = pytest.mark.docker

SESSION = secrets.token_hex(3)
NO_GPU = {"vendor": "NONE", "architecture": None, "count": 0, "devices": []}
GIT_ID = ["-c", "user.name=madengine test", "-c", "user.email=test@example.invalid"]
REAL_GIT = "/usr/bin/git"


@pytest.fixture(scope="module")
def repo_image(labelled_image):
    return labelled_image("repo")


def git(cwd: Path, *args: str) -> str:
    return subprocess.run([REAL_GIT, *GIT_ID, *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.strip()


def make_repo(path: Path, files: dict) -> str:
    """A repository with ``files`` in two commits; its HEAD."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    (path / "old.txt").write_text("first commit\n")
    git(path, "add", ".")
    git(path, "commit", "-qm", "first")
    for rel, text in files.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_text(text)
    os.symlink("data.txt", path / "data-link")
    git(path, "add", ".")
    git(path, "commit", "-qm", "second")
    return git(path, "rev-parse", "HEAD")


@pytest.fixture
def mad(tmp_path):
    (tmp_path / "pkg" / "scripts" / "repo_model").mkdir(parents=True)
    (tmp_path / "pkg" / "scripts" / "repo_model" / "run.sh").write_text(textwrap.dedent("""\
        echo "PWD $(pwd)"
        echo "DATA $(cat data.txt)"
        echo "LINK $(readlink data-link)"
        echo "NESTED $(cat sub/nested.txt)"
        echo "SHARED $(cat shared.txt)"
        echo "HELPER $(cat helper.txt)"
        echo "SHALLOW $(test -f .git/shallow && echo yes || echo no)"
        echo "performance: 7 items/s"
    """))
    (tmp_path / "pkg" / "scripts" / "repo_model" / "shared.txt").write_text("from the scripts\n")
    (tmp_path / "pkg" / "scripts" / "repo_model" / "helper.txt").write_text("helper of the scripts\n")
    return tmp_path / "pkg"


def name(label: str) -> str:
    return f"repo{SESSION}-{label}"


def run(mad, image, docker_client, label, url, **kw):
    model = {"name": name(label), "scripts": "scripts/repo_model/run.sh", "n_gpus": "0", "url": url}
    model.update(kw.pop("model", {}))
    result = run_model(str(mad), model, image, gpu=NO_GPU, output_dir=str(mad / "out"), **kw)
    assert model_containers(docker_client, model["name"]) == []
    assert list((mad / "out").glob(".madengine-repo-*")) == []  # the clone is gone
    return result


def lines(result) -> dict:
    out = {}
    for line in Path(result["log_file"]).read_text().splitlines():
        key, _sep, value = line.partition(" ")
        out.setdefault(key, value)
    return out


def test_repo_script_runs_in_the_cloned_tree_with_the_models_scripts_copied_over_it(
        mad, repo_image, docker_client, tmp_path):
    head = make_repo(tmp_path / "src" / "bench-repo", {
        "data.txt": "from the repository\n", "sub/nested.txt": "nested file\n",
        "shared.txt": "from the repository\n"})
    result = run(mad, repo_image, docker_client, "ok", f"file://{tmp_path}/src/bench-repo")
    assert (result["status"], result["reason"]) == ("SUCCESS", ""), Path(result["log_file"]).read_text()
    seen = lines(result)
    assert seen["PWD"] == "/myworkspace/bench-repo"
    assert seen["DATA"] == "from the repository"
    assert seen["LINK"] == "data.txt"  # a link in the repository stays a link
    assert seen["NESTED"] == "nested file"
    assert seen["SHARED"] == "from the scripts"  # the scripts replace the repository's file, as cp does
    assert seen["HELPER"] == "helper of the scripts"
    assert seen["SHALLOW"] == "yes"
    assert result["records"][0]["git_commit"] == head
    assert f"madengine: bench-repo at commit {head}" in Path(result["log_file"]).read_text()


def test_repo_a_url_ending_in_dot_git_runs_in_the_folder_git_names(mad, repo_image, docker_client, tmp_path):
    head = make_repo(tmp_path / "src" / "other.git", {"data.txt": "d\n", "sub/nested.txt": "n\n",
                                                      "shared.txt": "s\n"})
    result = run(mad, repo_image, docker_client, "dotgit", f"file://{tmp_path}/src/other.git/")
    assert result["status"] == "SUCCESS", result["reason"]
    assert lines(result)["PWD"] == "/myworkspace/other"
    assert result["records"][0]["git_commit"] == head


def test_repo_a_bad_url_fails_with_gits_message_and_no_container(mad, repo_image, docker_client, tmp_path):
    url = f"file://{tmp_path}/nowhere/missing-repo"
    result = run(mad, repo_image, docker_client, "badurl", url)
    assert result["status"] == "FAILURE"
    assert result["reason"].startswith(f"git clone of {url} failed (exit 128): fatal: ")
    assert "does not appear to be a git repository" in result["reason"]
    assert result["container_exit_code"] is None and not result["changed"]
    assert result["records"][0]["git_commit"] == ""
    assert "does not appear to be a git repository" in Path(result["log_file"]).read_text()


def test_repo_the_clone_counts_against_the_timeout_and_a_hanging_git_is_killed(
        mad, repo_image, docker_client, tmp_path, monkeypatch):
    fake = tmp_path / "bin"
    fake.mkdir()
    # a child of its own, as git's remote helpers are: it must die too
    (fake / "git").write_text(f"#!/bin/sh\nsleep 120 &\necho $! > {tmp_path}/sleep.pid\nwait\n")
    (fake / "git").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:/usr/bin:/bin")
    url = f"file://{tmp_path}/src/slow-repo"
    started = time.monotonic()
    result = run(mad, repo_image, docker_client, "hang", url, timeout=2)
    assert time.monotonic() - started < 2 + 6
    assert (result["status"], result["reason"]) == ("FAILURE", f"timeout after 2 s (during git clone of {url})")
    assert gone(int((tmp_path / "sleep.pid").read_text()))
    assert "killed at the timeout after 2 s during git clone" in Path(result["log_file"]).read_text()


def gone(pid: int) -> bool:
    for _attempt in range(50):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":  # killed, waiting for its reaper
            return True
        time.sleep(0.1)
    return False


def test_repo_git_missing_on_the_node_is_a_failure_saying_how_to_install_it(
        mad, repo_image, docker_client, tmp_path, monkeypatch):
    empty = tmp_path / "nogit"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    result = run(mad, repo_image, docker_client, "nogit", f"file://{tmp_path}/src/r")
    assert result["status"] == "FAILURE"
    assert result["reason"].startswith("git is not installed on this node")
    assert "apt-get install git" in result["reason"]


class _AuthRepoServer(http.server.SimpleHTTPRequestHandler):
    """Serves a bare repository (dumb HTTP) to one login only."""

    expected = ""
    seen: list = []

    def do_GET(self):  # noqa: N802 - the http.server API
        header = self.headers.get("Authorization", "")
        self.seen.append(header == self.expected)
        if header != self.expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="repo"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.path = self.path.split("?", 1)[0]
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def auth_server(tmp_path):
    head = make_repo(tmp_path / "work", {"data.txt": "private data\n", "sub/nested.txt": "n\n",
                                         "shared.txt": "s\n"})
    bare = tmp_path / "served" / "private-repo.git"
    subprocess.run([REAL_GIT, "clone", "-q", "--bare", str(tmp_path / "work"), str(bare)], check=True)
    subprocess.run([REAL_GIT, "update-server-info"], cwd=bare, check=True)
    password = "s3cret-" + secrets.token_hex(8)
    handler = type("Handler", (_AuthRepoServer,), {
        "expected": "Basic " + base64.b64encode(f"reader:{password}".encode()).decode(), "seen": []})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(tmp_path / "served")))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/private-repo.git", password, head, handler
    server.shutdown()
    server.server_close()


@pytest.fixture
def git_spy(tmp_path, monkeypatch):
    """A ``git`` on PATH that records its argv and whether it got the password, then runs git."""
    spy = tmp_path / "spy"
    spy.mkdir()
    (spy / "git").write_text(textwrap.dedent(f"""\
        #!/bin/sh
        printf '%s\\n' "$*" >> {spy}/argv
        [ -n "$MADENGINE_GIT_PASSWORD" ] && echo yes >> {spy}/env
        exec {REAL_GIT} "$@"
    """))
    (spy / "git").chmod(0o755)
    monkeypatch.setenv("PATH", f"{spy}:/usr/bin:/bin")
    return spy


def test_repo_credentials_reach_git_through_the_environment_never_argv_or_output(
        mad, repo_image, docker_client, auth_server, git_spy):
    url, password, head, handler = auth_server
    (mad / "credential.json").write_text(
        f'{{"PRIVATE_GIT": {{"username": "reader", "password": "{password}"}}}}')
    result = run(mad, repo_image, docker_client, "auth", url, model={"cred": "PRIVATE_GIT"})
    assert (result["status"], result["reason"]) == ("SUCCESS", ""), result["reason"]
    assert True in handler.seen and lines(result)["DATA"] == "private data"
    assert result["records"][0]["git_commit"] == head
    argv = (git_spy / "argv").read_text()
    assert "clone" in argv and password not in argv
    assert (git_spy / "env").read_text().count("yes") >= 1
    assert password not in Path(result["log_file"]).read_text()
    assert password not in repr(result)


def test_repo_a_rejected_login_fails_with_gits_message_and_the_password_scrubbed(
        mad, repo_image, docker_client, auth_server, tmp_path):
    url, password, _head, handler = auth_server
    wrong = "wrong-" + secrets.token_hex(8)
    (mad / "credential.json").write_text(f'{{"PRIVATE_GIT": {{"username": "reader", "password": "{wrong}"}}}}')
    bad_url = url.replace("http://", f"http://reader:{wrong}@")  # a password in the url is hidden too
    result = run(mad, repo_image, docker_client, "authfail", bad_url, model={"cred": "PRIVATE_GIT"})
    assert result["status"] == "FAILURE"
    assert result["reason"].startswith(f"git clone of {url.replace('http://', 'http://reader@')} "
                                       "with credential 'PRIVATE_GIT' failed (exit 128): ")
    assert "Authentication failed" in result["reason"]
    assert handler.seen and not any(handler.seen)
    assert wrong not in repr(result) and wrong not in Path(result["log_file"]).read_text()


def test_repo_keep_alive_keeps_the_tree_in_the_container_and_removes_the_nodes_clone(
        mad, repo_image, docker_client, tmp_path):
    make_repo(tmp_path / "src" / "kept-repo", {"data.txt": "kept data\n", "sub/nested.txt": "n\n",
                                               "shared.txt": "s\n"})
    model = {"name": name("keep"), "scripts": "scripts/repo_model/run.sh", "n_gpus": "0",
             "url": f"file://{tmp_path}/src/kept-repo"}
    result = run_model(str(mad), model, repo_image, gpu=NO_GPU, output_dir=str(mad / "out"), keep_alive=True)
    try:
        assert result["status"] == "SUCCESS", result["reason"]
        [container] = model_containers(docker_client, model["name"])
        code, output = container.exec_run(["cat", "/myworkspace/kept-repo/data.txt"])
        assert (code, output) == (0, b"kept data\n")
        assert list((mad / "out").glob(".madengine-repo-*")) == []
    finally:
        for container in model_containers(docker_client, model["name"]):
            container.remove(force=True)
