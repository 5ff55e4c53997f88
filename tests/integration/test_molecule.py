"""The roles' molecule scenarios (roles/<role>/molecule/default), run as `molecule test`.

Each scenario starts a real container of the local test node image (nothing can be pulled
here) with the host's Docker socket, applies the role to it and checks the result with
testinfra. Each run gets its own instance name (MADENGINE_MOLECULE_ID) and its own
MOLECULE_EPHEMERAL_DIRECTORY, so runs in parallel processes do not share state. Needs
molecule, molecule-plugins[docker], pytest-testinfra (the `test` extra) and community.docker
(tools/vendor-collections). Select with `-m molecule`.
"""
from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nodes import testnode_image  # noqa: F401 pylint: disable=unused-import (fixture)

pytestmark = [pytest.mark.docker, pytest.mark.molecule]

REPO = Path(__file__).resolve().parents[2]
SCENARIO_TIMEOUT_S = 600
TAIL_CHARS = 6000

# The build_host role rewrites build_manifest.json on every converge: an unchanged image is
# recorded with the duration of the cache check and skipped_unchanged=true, so the second
# converge reports the manifest task as changed. Until the role (or mad_build) keeps the
# recorded entry of an unchanged image, exactly this idempotence failure is expected; any
# other failure, or this one together with another, fails the test. Remove when fixed.
KNOWN_IDEMPOTENCE_DEFECTS = {
    "build_host": {"madengine.core.build_host : Write the build manifest on the controller"},
}


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


def _failed_idempotence_tasks(output: str) -> set:
    """The tasks molecule names after 'Idempotence test failed because of the following tasks:'."""
    tasks = set()
    for block in re.findall(r"Idempotence test failed because of the following tasks:\n((?:\* .*\n?)+)", output):
        for line in block.splitlines():
            tasks.add(re.sub(r"^\* \[[^\]]*\] => ", "", line.strip()))
    return tasks


@pytest.fixture
def molecule_env(tmp_path, testnode_image) -> dict:  # noqa: F811 pylint: disable=redefined-outer-name
    env = {
        **os.environ,
        "MADENGINE_MOLECULE_ID": secrets.token_hex(3),
        "MADENGINE_TEST_NODE_IMAGE": testnode_image,
        "MOLECULE_EPHEMERAL_DIRECTORY": str(tmp_path / "molecule"),
        # Plain text, so the tail shown on failure is readable.
        "NO_COLOR": "1",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "PY_COLORS": "0",
    }
    _require_docker_collection(env)
    return env


@pytest.mark.parametrize("role", ["build_host", "gpu_node"])
def test_molecule_scenario_passes(role, molecule_env):
    role_dir = REPO / "roles" / role
    command = [_molecule(), "test", "-s", "default"]
    try:
        done = subprocess.run(command, cwd=role_dir, env=molecule_env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=SCENARIO_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        # The killed run left its container and what it started in the host's engine.
        subprocess.run([_molecule(), "destroy", "-s", "default"], cwd=role_dir, env=molecule_env,
                       capture_output=True, timeout=180, check=False)
        output = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout or ""
        pytest.fail(f"`molecule test` of {role} ran past {SCENARIO_TIMEOUT_S} s:\n{output[-TAIL_CHARS:]}")
    output = done.stdout
    if done.returncode != 0:
        known = KNOWN_IDEMPOTENCE_DEFECTS.get(role)
        failed = _failed_idempotence_tasks(output)
        if known and failed == known and "Verifier completed successfully" in output:
            pytest.xfail(f"known defect: the second converge of {role} changes {sorted(failed)}")
        pytest.fail(f"`molecule test` of {role} exited {done.returncode}; its last lines:\n{output[-TAIL_CHARS:]}")
    assert "Verifier completed successfully" in output, output[-TAIL_CHARS:]
