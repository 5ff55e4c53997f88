# Copyright: (c) 2026, madengine maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""credential.json (MAD-FORMAT section 3): loading, the entry for a registry, build args.

Secrets never leave this module in a message: errors name files, entries and keys,
never values. ``secret_values`` lists what callers must scrub from engine messages.
"""
from __future__ import annotations

import json
import os
from typing import Mapping

from ansible_collections.madengine.core.plugins.module_utils._errors import InvalidInputError

DOCKERHUB = "dockerhub"
DOCKERHUB_ALIASES = ("", "dockerhub", "docker.io", "index.docker.io", "registry-1.docker.io",
                     "https://index.docker.io/v1/")
ENV_USER, ENV_PASSWORD, ENV_REPO = "MAD_DOCKERHUB_USER", "MAD_DOCKERHUB_PASSWORD", "MAD_DOCKERHUB_REPO"
SECRET_KEYS = ("password", "token", "secret", "key", "pat")


def load_credentials(path: str | None, environ: Mapping[str, str] | None = None) -> dict:
    """The credentials: ``path`` (absent file = none) with the MAD_DOCKERHUB_* variables on top."""
    environ = os.environ if environ is None else environ
    creds: dict = {}
    if path and os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as fh:
                creds = json.load(fh)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(
                f"credential file is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
                where=path,
                fix='Write an object keyed by registry host or credential name, e.g. '
                    '{"dockerhub": {"username": "...", "password": "...", "repository": "..."}}',
            ) from None
        except OSError as exc:
            raise InvalidInputError(f"cannot read the credential file: {exc.strerror}", where=path) from None
        if not isinstance(creds, dict):
            raise InvalidInputError(
                f"credential file must hold a JSON object, not a {type(creds).__name__}", where=path,
                fix='Write {"<registry host or name>": {"username": "...", "password": "..."}}')
        # Non-object entries (e.g. upstream's NAS_NODES list for data providers) are kept as they are.
        creds = {name: ({key: str(value) for key, value in entry.items()} if isinstance(entry, dict) else entry)
                 for name, entry in creds.items()}
    user, password = environ.get(ENV_USER), environ.get(ENV_PASSWORD)
    if user and password:
        creds[DOCKERHUB] = {"username": user, "password": password}
        if environ.get(ENV_REPO):
            creds[DOCKERHUB]["repository"] = environ[ENV_REPO]
    return creds


def registry_host(registry: str) -> str:
    """The host[:port] of a registry given as ``host``, ``host/path`` or ``https://host/``."""
    text = registry.strip()
    for scheme in ("https://", "http://"):
        if text.startswith(scheme):
            text = text[len(scheme):]
    return text.split("/", 1)[0]


def is_dockerhub(registry: str | None) -> bool:
    return (registry or "").strip().lower() in DOCKERHUB_ALIASES or \
        registry_host(registry or "").lower() in DOCKERHUB_ALIASES


def credential_key_for_registry(creds: Mapping[str, dict], registry: str | None) -> str | None:
    """The entry name that holds the login for ``registry`` (exact, host, or dockerhub), or None."""
    if is_dockerhub(registry):
        return DOCKERHUB if DOCKERHUB in creds else None
    for key in (registry.strip().rstrip("/"), registry_host(registry)):
        if key in creds:
            return key
    return None


def credential_for_registry(creds: Mapping[str, dict], registry: str | None) -> dict | None:
    """The credential entry for ``registry`` (``{"username", "password", "repository"?}``), or None."""
    key = credential_key_for_registry(creds, registry)
    return dict(creds[key]) if key else None


def build_args_for_model(model: Mapping, creds: Mapping[str, dict], credential_file: str | None) -> dict:
    """``<CRED>_<KEY>`` build args for the model's ``cred`` (none when it names no credential)."""
    name = str(model.get("cred") or "").strip()
    if not name:
        return {}
    if name not in creds:
        known = ", ".join(sorted(creds)) or "none"
        raise InvalidInputError(
            f"model '{model.get('name')}' needs credential '{name}', which is not in "
            f"{credential_file or 'credential.json'} (entries: {known})",
            fix=f'Add "{name}": {{"username": "...", "password": "..."}} to credential.json '
                "beside models.json",
        )
    if not isinstance(creds[name], dict):
        raise InvalidInputError(
            f"credential '{name}' of model '{model.get('name')}' must be an object of strings, "
            f"not a {type(creds[name]).__name__}", where=credential_file,
            fix=f'Write "{name}": {{"username": "...", "password": "..."}}')
    return {f"{name}_{key.upper()}": str(value) for key, value in creds[name].items()}


def secret_values(creds) -> list:
    """Every secret-looking value (password, token, ...) anywhere in ``creds``, longest first."""
    values = set()

    def walk(node, key=""):
        if isinstance(node, dict):
            for child_key, child in node.items():
                walk(child, str(child_key))
        elif isinstance(node, list):
            for child in node:
                walk(child, key)
        elif node not in (None, "") and any(part in key.lower() for part in SECRET_KEYS):
            values.add(str(node))

    walk(dict(creds))
    return sorted(values, key=len, reverse=True)


def scrub(text: str, secrets) -> str:
    """``text`` with every secret replaced by ``********``."""
    for value in secrets:
        if value and len(value) >= 3:
            text = text.replace(value, "********")
    return text
