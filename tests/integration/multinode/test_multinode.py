"""The multi-node run on real SSH nodes: modes, what travels, lost nodes, resume, the runner commands.

Every test runs the real workflow (driver through ansible-runner, or ansible-playbook) against
the session's three SSH test nodes, whose runs go to the host's engine.
"""
from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter

import pytest
from multinode_support import Package, ansible_playbook, explain, madengine, node_files, perf_rows, remove_leftovers

pytestmark = [pytest.mark.docker, pytest.mark.ssh]


def pairs(rows):
    return sorted((r["model"], r["machine_name"], r["status"]) for r in rows)


def test_replicate_runs_every_model_on_every_node_into_one_perf_csv(ssh_nodes, node_env, mn_package, tmp_path):
    pkg, names = mn_package, [n.name for n in ssh_nodes.nodes]
    done = madengine("run", "--inventory", str(ssh_nodes.node_file), "--manifest-file", str(pkg.manifest),
                     "--mad-dir", str(pkg.root), "--tags", pkg.names("one", "two"),
                     "--output", str(tmp_path / "out" / "perf.csv"), cwd=tmp_path, env=node_env)
    assert done.returncode == 0, explain(done)

    rows = perf_rows(tmp_path / "out" / "perf.csv")
    assert pairs(rows) == sorted((pkg.name(m), n, "SUCCESS") for m in ("one", "two") for n in names)
    for node in ssh_nodes.nodes:
        # the node's log came back, and the node's environment reached its container
        log = (tmp_path / "out" / "nodes" / node.name / pkg.log("two")).read_text()
        assert f"model two on node {node.name}" in log
        # only the selected models' folder travelled (no models.json, credential.json, other scripts)
        travelled = node_files(ssh_nodes, node)
        work = {}
        for path in (f.split("/", 2) for f in travelled if f.startswith("work/")):
            work.setdefault(path[1], []).append(path[2])
        assert [".madengine-files", "scripts/fast/run.sh"] in work.values(), travelled
        assert not [f for f in travelled if "models.json" in f or "credential" in f or "unused" in f], travelled
        assert any(f.startswith("runs/") and f.endswith(pkg.log("two")) for f in travelled)


def test_distribute_shares_the_models_out_and_pulls_from_the_registry_with_logins_that_do_not_stay(
        ssh_nodes, node_env, mn_package, registry, docker_client, tmp_path):
    """ansible-playbook with a plain inventory; the images exist only in the registry."""
    pkg = Package(tmp_path / "pkg", mn_package.prefix + "p")  # images of its own: they are removed
    (pkg.root / "credential.json").write_text(json.dumps(
        {registry["host"]: {"username": registry["username"], "password": registry["password"]}}))
    pulled = pkg.names("one", "two", "three")
    try:
        # The session's images, pushed under this package's names as `madengine build --registry`
        # would (build and push are tested on their own): only the registry has them.
        built = json.loads(mn_package.manifest.read_text())
        manifest = {**built, "registry": registry["host"], "built_images": {}, "built_models": {}}
        for short in ("one", "two", "three"):
            source, name = f"ci-{mn_package.name(short)}_mn", f"ci-{pkg.name(short)}_mn"
            remote = f"{registry['host']}/{name}"
            docker_client.images.get(source).tag(remote, "latest")
            digest = push(docker_client, remote, registry)
            docker_client.images.remove(f"{remote}:latest")
            manifest["built_images"][name] = dict(built["built_images"][source], docker_image=name,
                                                  registry=registry["host"], registry_image=remote,
                                                  registry_digest=digest)
            manifest["built_models"][name] = dict(built["built_models"][source], name=pkg.name(short))
        pkg.manifest.write_text(json.dumps(manifest, indent=1))

        extravars = {"madengine_manifest_file": str(pkg.manifest), "madengine_mad_dir": str(pkg.root),
                     "madengine_output_dir": str(tmp_path / "out"), "madengine_mode": "distribute"}
        done = ansible_playbook(ssh_nodes.plain_inventory, extravars, cwd=tmp_path, env=node_env)
        assert done.returncode == 0, explain(done)
        rows = perf_rows(tmp_path / "out" / "perf.csv")
        assert sorted(r["model"] for r in rows) == sorted(pulled.split(","))
        assert sorted(r["machine_name"] for r in rows) == sorted(n.name for n in ssh_nodes.nodes)
        assert {r["status"] for r in rows} == {"SUCCESS"}
        assert all(r["image_digest"].startswith("sha256:") for r in rows)
        assert registry["password"] not in done.stdout + done.stderr
        for node in ssh_nodes.nodes:
            assert not [f for f in node_files(ssh_nodes, node) if "credentials-" in f]

        # the files are on the node already: a second run copies nothing (one node is enough to see it)
        again = ansible_playbook(ssh_nodes.plain_inventory, {**extravars, "madengine_tags": pkg.name("one")},
                                 cwd=tmp_path, env=node_env, limit="node-1,localhost")
        assert again.returncode == 0, explain(again)
        assert "Copy the script folders" in again.stdout  # the login still travels, in the same step
        copy = again.stdout.split("Copy the script folders")[1].split("TASK [")[0]
        assert "skipping: [node-1]" in copy and "changed" not in copy, copy
        assert Counter(r["machine_name"] for r in perf_rows(tmp_path / "out" / "perf.csv")) == {
            "node-1": 2, "node-2": 1, "node-3": 1}
    finally:
        remove_leftovers(docker_client, pkg.prefix)  # the pulled images too (by their digest references)


def push(client, reference: str, registry: dict) -> str:
    """Push ``reference:latest`` with the registry's login; its digest."""
    digest = ""
    for line in client.images.push(reference, tag="latest", stream=True, decode=True, auth_config={
            "username": registry["username"], "password": registry["password"]}):
        assert "error" not in line, line
        digest = (line.get("aux") or {}).get("Digest") or digest
    assert digest.startswith("sha256:")
    return digest


def _slow_model_runs_on(cluster, model: str, node) -> bool:
    for container in cluster.client.containers.list(filters={"label": f"madengine.model={model}"}):
        if f"MADENGINE_TEST_NODE={node.name}" in container.attrs["Config"]["Env"]:
            return True
    return False


def test_a_node_lost_in_the_middle_gets_failure_rows_the_others_complete_and_resume_fills_the_gaps(
        ssh_nodes, node_env, mn_package, docker_client, tmp_path):
    pkg, victim = mn_package, ssh_nodes.nodes[1]
    out = tmp_path / "out"
    args = ["--inventory", str(ssh_nodes.config_inventory), "--manifest-file", str(pkg.manifest),
            "--mad-dir", str(pkg.root), "--tags", pkg.names("slow", "after"), "--output", str(out / "perf.csv")]
    result = {}
    runner = threading.Thread(target=lambda: result.update(done=madengine(
        "runner", "ssh", *args, "--report-output", str(out / "runner_report.json"), cwd=tmp_path, env=node_env)))
    runner.start()
    deadline = time.monotonic() + 120
    while runner.is_alive() and time.monotonic() < deadline and not _slow_model_runs_on(ssh_nodes, pkg.name("slow"), victim):
        time.sleep(0.2)
    assert _slow_model_runs_on(ssh_nodes, pkg.name("slow"), victim), (
        "the slow model never started on the node\n" + (explain(result["done"]) if "done" in result else ""))
    ssh_nodes.stop(victim)
    runner.join(timeout=300)
    done = result["done"]
    assert done.returncode == 3, explain(done)

    rows = perf_rows(out / "perf.csv")
    others = [n.name for n in ssh_nodes.nodes if n is not victim]
    assert pairs(r for r in rows if r["machine_name"] != victim.name) == sorted(
        (pkg.name(m), n, "SUCCESS") for m in ("slow", "after") for n in others)
    lost = {r["model"]: r for r in rows if r["machine_name"] == victim.name}
    assert set(lost) == {pkg.name("slow"), pkg.name("after")}
    assert all(r["status"] == "FAILURE" and r["reason"].startswith("node unreachable") for r in lost.values()), lost
    report = json.loads((out / "runner_report.json").read_text())
    assert (report["total_nodes"], report["successful_nodes"], report["failed_nodes"]) == (3, 2, 1)
    assert report["nodes"][victim.name]["unreachable"] is True and report["exit_code"] == 3
    assert (report["successful_executions"], report["failed_executions"]) == (4, 2)

    ssh_nodes.start(victim)
    resumed = madengine("run", *args, "--resume", cwd=tmp_path, env=node_env)
    assert resumed.returncode == 0, explain(resumed)
    rows = perf_rows(out / "perf.csv")
    assert pairs(rows[6:]) == sorted((pkg.name(m), victim.name, "SUCCESS") for m in ("slow", "after"))
    successes = Counter((r["model"], r["machine_name"]) for r in rows if r["status"] == "SUCCESS")
    assert len(successes) == 6 and set(successes.values()) == {1}
    remove_leftovers(docker_client, pkg.name("slow"))  # the lost node's container ran on


USER_PLAYBOOK = """\
- name: The user's own play
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Leave a mark
      ansible.builtin.copy:
        content: "ran\\n"
        dest: "{{ madengine_output_dir }}/user_play_ran"
        mode: "0644"

- name: The madengine run workflow
  ansible.builtin.import_playbook: madengine.core.run
"""


SDK = "/usr/lib/python3/dist-packages/docker"


def test_runner_ansible_runs_a_users_playbook_a_node_down_and_a_node_without_docker_sdk_get_failure_rows(
        ssh_nodes, node_env, mn_package, tmp_path):
    pkg, fine, no_sdk, down = mn_package, *ssh_nodes.nodes
    playbook = tmp_path / "site.yml"
    playbook.write_text(USER_PLAYBOOK)
    sdk_less = ssh_nodes.client.containers.get(no_sdk.container)
    assert sdk_less.exec_run(["mv", SDK, SDK + ".away"]).exit_code == 0
    ssh_nodes.stop(down)
    try:
        done = madengine("runner", "ansible", "--inventory", str(ssh_nodes.plain_inventory), "--playbook",
                         str(playbook), "--manifest-file", str(pkg.manifest), "--mad-dir", str(pkg.root),
                         "--tags", pkg.names("three", "one"), "--output", str(tmp_path / "perf.csv"),
                         cwd=tmp_path, env=node_env)
    finally:
        sdk_less.exec_run(["mv", SDK + ".away", SDK])
    assert done.returncode == 3, explain(done)
    assert (tmp_path / "user_play_ran").read_text() == "ran\n"
    report = json.loads((tmp_path / "ansible_results.json").read_text())
    assert (report["runner"], report["total_nodes"], report["successful_nodes"], report["failed_nodes"]) == (
        "ansible", 3, 1, 2)
    results = {(r["node_id"], r["model_tag"]): r for r in report["node_results"]}
    assert len(results) == 6 and {node for node, _result in results} == {n.name for n in ssh_nodes.nodes}
    for model in (pkg.name("three"), pkg.name("one")):
        assert results[(fine.name, model)]["performance_metrics"] == {"performance": 1.0, "metric": "ops"}
        assert results[(down.name, model)]["error_message"].startswith("node unreachable")
        # the same clear reason for every model of the node, though only the first one tried
        assert "docker" in results[(no_sdk.name, model)]["error_message"]
        assert "python3 -m pip install docker" in results[(no_sdk.name, model)]["error_message"]


@pytest.mark.parametrize("command", [["run"], ["runner", "ssh"]])
def test_a_bad_mad_node_file_stops_before_any_work_with_the_entry_named(command, tmp_path, mn_package):
    bad = tmp_path / "nodes.json"
    bad.write_text(json.dumps({"nodes": [{"hostname": "gpu-01", "adress": "10.0.0.1"}]}))
    done = madengine(*command, "--inventory", str(bad), "--manifest-file", str(mn_package.manifest),
                     cwd=tmp_path, env=dict(os.environ))
    assert done.returncode == 4, explain(done)
    assert "nodes[0] (hostname 'gpu-01'): unknown key 'adress'; did you mean 'address'?" in done.stderr
    assert "Traceback" not in done.stderr
