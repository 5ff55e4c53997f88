"""The world of the multi-node tests: the session's 3 SSH test nodes and a tiny MAD package built once.

The package's images and the containers of its models are removed at the end of the session.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Dict

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

# Fixtures are found by name in this module's namespace, so importing them is using them.
from nodes import _ssh_node_cluster, ssh_node_factory, ssh_nodes, testnode_image  # noqa: E402,F401 pylint: disable=unused-import,wrong-import-position
from multinode_support import TOKEN, Package, explain, madengine, remove_leftovers  # noqa: E402 pylint: disable=wrong-import-position


@pytest.fixture(scope="session")
def mn_package(tmp_path_factory, docker_client, base_image) -> Package:
    """The package, its images built once with `madengine build` and its build_manifest.json."""
    prefix = f"mn{TOKEN}"
    package = Package(tmp_path_factory.mktemp("mn-package"), prefix)
    done = madengine("build", "--mad-dir", str(package.root), "--tags", prefix,
                     "--manifest-output", str(package.manifest), cwd=package.root, env=dict(os.environ))
    assert done.returncode == 0, explain(done)
    yield package
    remove_leftovers(docker_client, prefix)


@pytest.fixture
def node_env(ssh_nodes) -> Dict[str, str]:
    """The environment to reach the session's nodes (pipelining, ControlPersist, no host-key prompts)."""
    return dict(ssh_nodes.env)
