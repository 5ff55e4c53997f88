"""SSH test nodes for the tests in this folder (fixtures from tests/integration/nodes.py)."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Fixtures are found by name in this module's namespace, so importing them is using them.
from nodes import _ssh_node_cluster, ssh_node_factory, ssh_nodes, testnode_image  # noqa: E402,F401 pylint: disable=unused-import,wrong-import-position
