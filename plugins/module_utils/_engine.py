# Copyright: (c) 2026, madengine maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place that connects to the container engine (Docker, through its Python SDK).

Other module_utils (build, registry, run) get a client here and use the small read
helpers, so "the engine is not there" is reported the same way everywhere.
"""
from __future__ import annotations

import os

try:
    import docker
    import docker.errors
    HAS_DOCKER = True
    DOCKER_IMPORT_ERROR = None
except ImportError as exc:  # the module reports missing_required_lib('docker')
    docker = None
    HAS_DOCKER = False
    DOCKER_IMPORT_ERROR = exc

from ansible_collections.madengine.core.plugins.module_utils._errors import EngineError

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
START_HINT = "start it with `sudo systemctl start docker` or `dockerd &`"


def engine_address(base_url: str | None = None) -> str:
    """The address a client would talk to: the argument, else $DOCKER_HOST, else the local socket."""
    return base_url or os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST


def get_client(base_url: str | None = None, timeout: int = 600):
    """A ``docker.DockerClient`` that has answered a ping, with the API version negotiated.

    One client may be shared by threads (the SDK keeps a connection pool). Raises
    EngineError, saying how to start the engine, when nothing answers.
    """
    if not HAS_DOCKER:
        raise EngineError(
            f"the Python package 'docker' is not installed ({DOCKER_IMPORT_ERROR})",
            fix="Install it on the host that runs the module: `pip install docker`",
        )
    address = engine_address(base_url)
    try:
        # version="auto" asks the engine for its API version: that request is the ping.
        if base_url:
            client = docker.DockerClient(base_url=base_url, version="auto", timeout=timeout)
        else:
            client = docker.from_env(version="auto", timeout=timeout)
    except docker.errors.DockerException as exc:
        raise EngineError(
            f"no Docker engine answers at {address}: {START_HINT} "
            "(or point docker_host / DOCKER_HOST at a running engine)",
            fix=f"The client said: {_short(exc)}",
        ) from exc
    return client


def image_id(client, ref: str) -> str | None:
    """The local image id (``sha256:...``) of ``ref``, or None when the engine has no such image."""
    try:
        return client.api.inspect_image(ref)["Id"]
    except docker.errors.ImageNotFound:
        return None
    except docker.errors.APIError as exc:
        if exc.status_code == 404:
            return None
        raise EngineError(f"the engine could not inspect image {ref}: {_short(exc)}") from exc


def image_exists(client, ref: str) -> bool:
    """True when the engine has a local image ``ref`` (name:tag, id or repo@digest)."""
    return image_id(client, ref) is not None


def _short(exc: Exception) -> str:
    """The engine's own words for an SDK error, without the SDK's URL noise."""
    explanation = getattr(exc, "explanation", None)
    if explanation:
        return str(explanation.decode() if isinstance(explanation, bytes) else explanation)
    return str(exc)


engine_error_text = _short
