"""How the multi-node run scales: one trivial model on 1, 4 and 16 SSH nodes.

Starts 16 test nodes (the containers of tests/integration/nodes.py: sshd, python3, the
docker SDK, the host's engine through its socket), builds a one-model package (`echo
performance: 1 ops`), then times `madengine run --inventory <first N nodes> --manifest-file`
for each N: a cold run (the model's files travel to the nodes) and warm runs (they are there
already), and prints the wall times and the 16-to-1 ratio of the warm runs. The driver's own
settings are used: forks = number of hosts, pipelining, SSH ControlPersist.

For scale it also times a playbook of three ping tasks on the same nodes: here the nodes are
containers on the controller's own CPUs, so every node's sshd, Python and model container
compete with the controller, and that floor ratio bounds what any multi-node run can reach.

With --nodes-file, the nodes of that MAD node file are used instead of containers (its first
1, 4, 16 nodes): a machine whose CPUs are not shared with the nodes shows the ratio the
playbooks themselves give.

    python bench/fanout.py [--sizes 1,4,16] [--warm 2] [--keep DIR] [--nodes-file nodes.json] [--base IMAGE]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "integration"))
BASE_IMAGE = os.environ.get("MADENGINE_TEST_BASE_IMAGE", "madengine/base:bookworm")


def driver(*args: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    # A private cache: the driver links the collection there, and another checkout's driver
    # running on the machine must not re-point that link in the middle of a measurement.
    merged = dict(env, PYTHONPATH=os.pathsep.join([str(REPO / "driver"), env.get("PYTHONPATH", "")]),
                  XDG_CACHE_HOME=str(cwd / "cache"))
    return subprocess.run([sys.executable, "-m", "madengine", *args], cwd=cwd, env=merged,
                          capture_output=True, text=True, check=False)


def make_package(root: Path, name: str, base: str) -> None:
    (root / "docker").mkdir(parents=True)
    (root / "scripts" / "trivial").mkdir(parents=True)
    (root / "docker" / "trivial.Dockerfile").write_text(f"FROM {base}\n")
    (root / "scripts" / "trivial" / "run.sh").write_text('echo "performance: 1 ops"\n')
    (root / "models.json").write_text(json.dumps([{
        "name": name, "dockerfile": "docker/trivial", "scripts": "scripts/trivial/run.sh", "n_gpus": "0",
        "tags": ["fanout"]}]))


def node_file(entries: list, count: int, path: Path) -> Path:
    path.write_text(json.dumps({"nodes": entries[:count]}, indent=1))
    return path


def timed_run(work: Path, inventory: Path, manifest: Path, package: Path, env: dict, count: int) -> float:
    out = work / f"out-{count}"
    began = time.monotonic()
    done = driver("run", "--inventory", str(inventory), "--manifest-file", str(manifest), "--mad-dir", str(package),
                  "--output", str(out / "perf.csv"), "--json", cwd=work, env=env)
    took = time.monotonic() - began
    if done.returncode != 0:
        sys.exit(f"the run on {count} node(s) failed (exit {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    rows = json.loads(done.stdout)["rows"]
    if len(rows) != count or {r["status"] for r in rows} != {"SUCCESS"}:
        sys.exit(f"expected {count} SUCCESS rows, got {[(r['machine_name'], r['status']) for r in rows]}")
    return took


FLOOR_PLAYBOOK = """\
- name: Three module tasks on every node, nothing else (this machine's floor)
  hosts: gpu_nodes
  gather_facts: false
  tasks:
    - {name: One, ansible.builtin.ping: {}}
    - {name: Two, ansible.builtin.ping: {}}
    - {name: Three, ansible.builtin.ping: {}}
"""


def floor_run(work: Path, inventory: Path, env: dict, count: int) -> float:
    """A 3-ping playbook on the same nodes: what any per-node work costs here, to judge the ratio."""
    playbook = work / "floor.yml"
    playbook.write_text(FLOOR_PLAYBOOK)
    nodes = json.loads(inventory.read_text())["nodes"]
    hosts = {n["hostname"]: {"ansible_host": n["address"], "ansible_port": n["port"], "ansible_user": n["username"],
                             "ansible_ssh_private_key_file": n["ssh_key_path"]} for n in nodes}
    plain = work / f"floor-{count}.json"
    plain.write_text(json.dumps({"gpu_nodes": {"hosts": hosts}}))
    began = time.monotonic()
    ansible_playbook = shutil.which("ansible-playbook", path=str(Path(sys.executable).parent)) or "ansible-playbook"
    done = subprocess.run([ansible_playbook, "-i", str(plain), str(playbook),
                           "--forks", str(max(5, count))], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"the floor playbook failed on {count} node(s):\n{done.stdout[-2000:]}")
    return time.monotonic() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--sizes", default="1,4,16", help="node counts, comma-separated")
    parser.add_argument("--warm", type=int, default=2, help="warm runs per size (the best one counts)")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    parser.add_argument("--nodes-file", type=Path, help="a MAD node file of nodes to use instead of containers")
    parser.add_argument("--base", default=BASE_IMAGE, help="the image the trivial model's image is built FROM")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    import docker

    client = docker.from_env()
    work = args.keep or Path(tempfile.mkdtemp(prefix="madengine-fanout-"))
    work.mkdir(parents=True, exist_ok=True)
    name = f"fanout{os.urandom(3).hex()}"
    package, manifest = work / "package", work / "build_manifest.json"
    cluster = None
    try:
        make_package(package, name, args.base)
        built = driver("build", "--mad-dir", str(package), "--tags", "fanout", "--manifest-output", str(manifest),
                       cwd=work, env=dict(os.environ))
        if built.returncode != 0:
            sys.exit(f"build failed:\n{built.stderr[-3000:]}")
        if args.nodes_file:
            entries = json.loads(args.nodes_file.read_text())["nodes"]
            if len(entries) < max(sizes):
                sys.exit(f"{args.nodes_file} has {len(entries)} nodes; --sizes asks for {max(sizes)}")
            env = dict(os.environ)
        else:
            from nodes import NodeCluster, build_node_image

            began = time.monotonic()
            (work / "nodes").mkdir(exist_ok=True)
            cluster = NodeCluster(client, build_node_image(client, BASE_IMAGE), work / "nodes", max(sizes))
            entries = [n.entry for n in cluster.nodes]
            print(f"{max(sizes)} nodes up in {time.monotonic() - began:.1f} s")
            env = dict(cluster.env)
        print(f"machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
        results = {}
        for count in sizes:
            inventory = node_file(entries, count, work / f"nodes-{count}.json")
            cold = timed_run(work, inventory, manifest, package, env, count)
            warm = [timed_run(work, inventory, manifest, package, env, count) for _ in range(args.warm)]
            floor = min(floor_run(work, inventory, env, count) for _ in range(max(1, args.warm)))
            results[count] = (cold, min(warm) if warm else cold, floor)
            print(f"{count:>3} node(s): cold {cold:6.1f} s   warm {results[count][1]:6.1f} s   "
                  f"(3 pings: {floor:5.1f} s; load {os.getloadavg()[0]:.1f})", flush=True)
        if 1 in results and max(sizes) > 1:
            top = max(sizes)
            ratio = results[top][1] / results[1][1]
            verdict = "meets" if ratio <= 2 else "misses"
            print(f"{top}-to-1 ratio (warm): {ratio:.2f} ({verdict} the goal of <= 2); "
                  f"the same ratio of the 3-ping playbook: {results[top][2] / results[1][2]:.2f}")
    finally:
        if cluster is not None:
            cluster.remove()
        for container in client.containers.list(all=True, filters={"label": f"madengine.model={name}"}):
            container.remove(force=True)
        for image in client.images.list():
            for ref in image.tags:
                if f"ci-{name}" in ref:
                    client.images.remove(ref, force=True)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
