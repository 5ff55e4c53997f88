"""SSH GPU-node containers for multi-node tests (a pytest plugin module: fixtures + helpers).

A *test node* is a container of ``madengine/testnode:bookworm`` (the local base image plus
Debian's openssh-server, python3 and python3-docker) running sshd, reached by Ansible over
real SSH on 127.0.0.1:<published port> with an ed25519 key made for the session. Each node
has the host's Docker socket mounted, so what it runs goes to the host's engine (names of
containers started from a node must be unique per node). Nodes share a user-defined
network, where they reach each other by host name.

Use from a conftest.py (tests/integration is on sys.path when its conftest is loaded)::

    from nodes import ssh_nodes, ssh_node_factory, testnode_image  # noqa: F401 (fixtures)

``ssh_nodes`` gives the session's 3-node :class:`NodeCluster`, every node running;
``ssh_node_factory(count=..., labels=..., environment=..., gpu_vendor=..., gpu_count=...)``
starts a private cluster (removed at the end of the session). Run Ansible against a cluster
with ``env=cluster.env`` (pipelining, ControlPersist, no host-key prompts) and one of its
inventories: ``config_inventory`` (a ``plugin: madengine.core.mad_nodes`` file pointing at
``node_file``), ``node_file`` (the MAD node file itself) or ``plain_inventory`` (INI-free
YAML with groups build_hosts and gpu_nodes).
"""
from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import secrets
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import pytest
import yaml

NODE_IMAGE = os.environ.get("MADENGINE_TEST_NODE_IMAGE", "madengine/testnode:bookworm")
NODE_PACKAGES = ("openssh-server", "python3", "python3-docker")
RECIPE_LABEL = "org.madengine.testnode.recipe"
CLUSTER_LABEL = "org.madengine.testnode.cluster"
SSH_WAIT_S = 60
# -D: stay in the foreground as PID 1; -e: log to stderr (docker logs). StrictModes off so a
# key file owned by a non-root test user is accepted.
SSHD_COMMAND = ["bash", "-c", "mkdir -p /run/sshd && exec /usr/sbin/sshd -D -e -o StrictModes=no"]
DOCKERFILE = """\
FROM {base}
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {packages} \\
 && rm -rf /var/lib/apt/lists/* \\
 && mkdir -p /run/sshd /root/.ssh && chmod 700 /root/.ssh
"""
REPO = Path(__file__).resolve().parents[2]
LOCK = REPO / "tests" / "output" / "testnode-image.lock"


def _docker_socket() -> str:
    host = os.environ.get("DOCKER_HOST", "")
    return host[len("unix://"):] if host.startswith("unix://") else "/var/run/docker.sock"


def build_node_image(client, base_image: str) -> str:
    """The node image, built once per recipe (Dockerfile + base image id) and reused after."""
    import docker

    dockerfile = DOCKERFILE.format(base=base_image, packages=" ".join(NODE_PACKAGES))
    recipe = hashlib.sha256((dockerfile + client.images.get(base_image).id).encode()).hexdigest()[:16]

    def current() -> bool:
        try:
            return client.images.get(NODE_IMAGE).labels.get(RECIPE_LABEL) == recipe
        except docker.errors.ImageNotFound:
            return False

    if current():
        return NODE_IMAGE
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test process may be building it
        if not current():
            try:
                client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=NODE_IMAGE, rm=True,
                                    forcerm=True, pull=False, labels={RECIPE_LABEL: recipe})
            except docker.errors.BuildError as exc:
                tail = "".join(str(part.get("stream", part.get("error", ""))) for part in exc.build_log)[-3000:]
                pytest.fail(f"could not build the test node image {NODE_IMAGE} from {base_image} "
                            f"(apt-get inside the build must reach the Debian mirror):\n{tail}")
    return NODE_IMAGE


def make_key_pair(directory: Path) -> Path:
    """An ed25519 key pair (``id_ed25519``, ``id_ed25519.pub``) in ``directory``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = directory / "id_ed25519"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                          serialization.NoEncryption()))
    private.chmod(0o600)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    (directory / "id_ed25519.pub").write_bytes(public + b" madengine-test\n")
    return private


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ssh_answers(port: int, address: str = "127.0.0.1") -> bool:
    """True when sshd itself (not only docker's port proxy) sends its banner."""
    try:
        with socket.create_connection((address, port), timeout=2) as sock:
            sock.settimeout(2)
            return sock.recv(8).startswith(b"SSH-")
    except OSError:
        return False


@dataclass
class Node:
    """One test node: inventory host name, container name, where SSH answers, its MAD entry."""

    name: str
    container: str
    port: int
    address: str = "127.0.0.1"
    entry: Dict = field(default_factory=dict)


class NodeCluster:
    """Running test nodes, their key, their inventories and the Ansible settings to reach them."""

    def __init__(self, client, image: str, workdir: Path, count: int, labels: Optional[Dict] = None,
                 environment: Optional[Dict] = None, gpu_vendor: Optional[str] = None, gpu_count: int = 0):
        self.client = client
        self.image = image
        self.workdir = workdir
        self.id = secrets.token_hex(3)
        self.key_path = make_key_pair(workdir)
        self.network = client.networks.create(f"madengine-testnet-{self.id}", driver="bridge",
                                              labels={CLUSTER_LABEL: self.id})
        self.nodes: List[Node] = []
        self.node_file = workdir / "nodes.mad_nodes.json"
        self.config_inventory = workdir / "cluster.mad_nodes.yml"
        self.plain_inventory = workdir / "hosts.yml"
        control_dir = Path(tempfile.mkdtemp(prefix="mcp-"))  # short: ssh control socket paths are limited
        self._control_dir = control_dir
        self.env = {
            **os.environ,
            "ANSIBLE_HOST_KEY_CHECKING": "False",
            "ANSIBLE_PIPELINING": "True",
            "ANSIBLE_SSH_ARGS": "-o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile=/dev/null "
                                "-o StrictHostKeyChecking=no -o LogLevel=ERROR",
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control_dir),
            "ANSIBLE_TIMEOUT": "10",
            "ANSIBLE_PYTHON_INTERPRETER": "/usr/bin/python3",
            "ANSIBLE_INVENTORY_ENABLED": "madengine.core.mad_nodes,auto,yaml,ini",
            "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
            "ANSIBLE_NOCOLOR": "1",
        }
        try:
            for index in range(1, count + 1):
                self.nodes.append(self._start_container(index, labels, environment, gpu_vendor, gpu_count))
            for node in self.nodes:
                self.wait_for_ssh(node)
            self._write_inventories()
        except BaseException:
            self.remove()
            raise

    # --- nodes -------------------------------------------------------------------------------

    def _start_container(self, index: int, labels, environment, gpu_vendor, gpu_count) -> Node:
        import docker

        name = f"node-{index}"
        container = f"madengine-testnode-{index}-{self.id}"
        public_key = str(self.key_path) + ".pub"
        for _attempt in range(5):
            port = _free_port()
            try:
                self.client.containers.run(
                    self.image, SSHD_COMMAND, name=container, hostname=name, detach=True,
                    network=self.network.name, ports={"22/tcp": ("127.0.0.1", port)},
                    volumes={public_key: {"bind": "/root/.ssh/authorized_keys", "mode": "ro"},
                             _docker_socket(): {"bind": "/var/run/docker.sock", "mode": "rw"}},
                    labels={CLUSTER_LABEL: self.id})
                break
            except docker.errors.APIError as exc:
                self._remove_container(container)
                if "allocated" not in str(exc) and "in use" not in str(exc):
                    raise
        else:
            pytest.fail(f"no free port on 127.0.0.1 could be published for {container}")
        entry = {
            "hostname": name, "address": "127.0.0.1", "port": port, "username": "root",
            "ssh_key_path": str(self.key_path), "gpu_count": gpu_count,
            "labels": {"env": "test", "slot": index, **(labels or {})},
            "environment": {"MADENGINE_TEST_NODE": name, **(environment or {})},
        }
        if gpu_vendor:
            entry["gpu_vendor"] = gpu_vendor
        return Node(name=name, container=container, port=port, entry=entry)

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name or n.container == name)

    def is_running(self, node: Node) -> bool:
        import docker

        try:
            return self.client.containers.get(node.container).status == "running"
        except docker.errors.NotFound:
            return False

    def wait_for_ssh(self, node: Node, timeout: float = SSH_WAIT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ssh_answers(node.port, node.address):
                return
            time.sleep(0.1)
        logs = self.client.containers.get(node.container).logs(tail=40).decode(errors="replace")
        pytest.fail(f"sshd of {node.container} did not answer on 127.0.0.1:{node.port} in {timeout:.0f} s:\n{logs}")

    def stop(self, node: Node, timeout: int = 1) -> None:
        """Take a node down (its sshd gets SIGTERM, then SIGKILL after ``timeout`` s)."""
        self.client.containers.get(node.container).stop(timeout=timeout)

    def start(self, node: Node) -> None:
        """Bring a stopped node back on the same port and wait until SSH answers."""
        if not self.is_running(node):
            self.client.containers.get(node.container).start()
        self.wait_for_ssh(node)

    def ensure_running(self) -> None:
        for node in self.nodes:
            self.start(node)

    # --- inventories -------------------------------------------------------------------------

    def _write_inventories(self) -> None:
        self.node_file.write_text(json.dumps({"nodes": [n.entry for n in self.nodes]}, indent=2) + "\n")
        self.config_inventory.write_text(
            f"plugin: madengine.core.mad_nodes\npath: {self.node_file.name}\nbuild_hosts: [localhost]\n")
        hosts = {
            n.name: {"ansible_host": n.address, "ansible_port": n.port,
                     "madengine_node_environment": n.entry["environment"]}
            for n in self.nodes
        }
        plain = {"all": {"children": {
            "build_hosts": {"hosts": {"localhost": {
                "ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}}},
            "gpu_nodes": {"hosts": hosts, "vars": {
                "ansible_user": "root", "ansible_ssh_private_key_file": str(self.key_path)}},
        }}}
        self.plain_inventory.write_text(yaml.safe_dump(plain, sort_keys=False))

    # --- end ---------------------------------------------------------------------------------

    def _remove_container(self, name: str) -> None:
        import docker

        try:
            self.client.containers.get(name).remove(force=True)
        except docker.errors.NotFound:
            pass

    def remove(self) -> None:
        """Remove the node containers, their network and the key; only what this cluster made."""
        for node in self.nodes:
            self._remove_container(node.container)
        for container in self.client.containers.list(all=True, filters={"label": f"{CLUSTER_LABEL}={self.id}"}):
            container.remove(force=True)
        try:
            self.network.remove()
        except Exception:  # noqa: BLE001 - already gone
            pass
        shutil.rmtree(self._control_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def testnode_image(docker_client, base_image) -> str:
    """``madengine/testnode:bookworm``: the base image plus openssh-server, python3, python3-docker."""
    return build_node_image(docker_client, base_image)


@pytest.fixture(scope="session")
def ssh_node_factory(docker_client, testnode_image, tmp_path_factory):
    """``start(count=3, labels=None, environment=None, gpu_vendor=None, gpu_count=0) -> NodeCluster``."""
    clusters: List[NodeCluster] = []

    def start(count: int = 3, **options) -> NodeCluster:
        cluster = NodeCluster(docker_client, testnode_image, tmp_path_factory.mktemp("nodes"), count, **options)
        clusters.append(cluster)
        return cluster

    yield start
    for cluster in clusters:
        cluster.remove()


@pytest.fixture(scope="session")
def _ssh_node_cluster(ssh_node_factory) -> NodeCluster:
    return ssh_node_factory(3)


@pytest.fixture
def ssh_nodes(_ssh_node_cluster) -> NodeCluster:
    """The session's 3 test nodes, each running and answering SSH (a test may stop one)."""
    _ssh_node_cluster.ensure_running()
    return _ssh_node_cluster
