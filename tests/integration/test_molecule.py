"""The roles' molecule scenarios (roles/<role>/molecule/default), run as `molecule test`.

Each scenario starts a real container of the local test node image (nothing can be pulled
here) with the host's Docker socket, applies the role to it and checks the result with
testinfra. Each run gets its own instance name (MADENGINE_MOLECULE_ID) and its own
MOLECULE_EPHEMERAL_DIRECTORY, so the scenarios run at the same time and share nothing with
runs in other test processes. Needs molecule, molecule-plugins[docker], pytest-testinfra (the
`test` extra) and community.docker (tools/vendor-collections). Select with `-m molecule`.
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

# A fixture: importing it is using it.
from nodes import testnode_image  # noqa: F401 pylint: disable=unused-import

pytestmark = [pytest.mark.docker, pytest.mark.molecule]

REPO = Path(__file__).resolve().parents[2]
ROLES = ("build_host", "gpu_node")
SCENARIO_TIMEOUT_S = 600
TAIL_CHARS = 6000


def _molecule() -> str:
    found = shutil.which("molecule", path=str(Path(sys.executable).parent)) or shutil.which("molecule")
    if not found:
        pytest.fail("molecule is not installed: pip install -e '.[test]' (molecule, molecule-plugins[docker], "
                    "pytest-testinfra)")
    return found


def _require_docker_collection(env: dict) -> None:
    """community.docker drives molecule's containers; Galaxy cannot be reached, so it is vendored."""
    listed = subprocess.run([str(Path(sys.executable).parent / "ansible-galaxy"), "collection", "list",
                             "community.docker", "--format", "json"],
                            env=env, capture_output=True, text=True, check=False)
    if listed.returncode != 0 or "community.docker" not in listed.stdout:
        pytest.fail("the collection community.docker is not installed; run tools/vendor-collections "
                    f"(ansible-galaxy said: {(listed.stderr or listed.stdout).strip()[-500:]})")


class ScenarioRun:
    """One `molecule test -s default` of a role, started in the background, its output in a file."""

    def __init__(self, role: str, workdir: Path, env: dict):
        self.role = role
        self.role_dir = REPO / "roles" / role
        self.env = {**env, "MADENGINE_MOLECULE_ID": secrets.token_hex(3),
                    "MOLECULE_EPHEMERAL_DIRECTORY": str(workdir / "ephemeral")}
        self.log = workdir / "molecule.log"
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen([_molecule(), "test", "-s", "default"], cwd=self.role_dir, env=self.env,
                                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def wait(self, timeout: float) -> tuple:
        """(exit status, output); a run past ``timeout`` is killed and its instance destroyed."""
        try:
            returncode = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            # The killed run left its container and what it started in the host's engine.
            subprocess.run([_molecule(), "destroy", "-s", "default"], cwd=self.role_dir, env=self.env,
                           capture_output=True, timeout=180, check=False)
            returncode = None
        return returncode, self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def scenario_runs(request, tmp_path_factory, testnode_image):  # noqa: F811 pylint: disable=redefined-outer-name
    """The selected scenarios, started at once (they share only the engine); each test waits for its own."""
    selected = {item.callspec.params["role"] for item in request.session.items
                if item.originalname == "test_molecule_scenario_passes" and hasattr(item, "callspec")}
    env = {
        **os.environ,
        "MADENGINE_TEST_NODE_IMAGE": testnode_image,
        # Plain text, so the tail shown on failure is readable.
        "NO_COLOR": "1",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "PY_COLORS": "0",
    }
    _require_docker_collection(env)
    runs = {role: ScenarioRun(role, tmp_path_factory.mktemp(f"molecule-{role}"), env) for role in ROLES if role in selected}
    yield runs
    for run in runs.values():
        if run.process.poll() is None:
            run.wait(0)


@pytest.mark.parametrize("role", ROLES)
def test_molecule_scenario_passes(role, scenario_runs):
    returncode, output = scenario_runs[role].wait(SCENARIO_TIMEOUT_S)
    if returncode is None:
        pytest.fail(f"`molecule test` of {role} ran past {SCENARIO_TIMEOUT_S} s:\n{output[-TAIL_CHARS:]}")
    if returncode != 0:
        pytest.fail(f"`molecule test` of {role} exited {returncode}; its last lines:\n{output[-TAIL_CHARS:]}")
    assert "Verifier completed successfully" in output, output[-TAIL_CHARS:]
