# Copyright: (c) 2026, madengine maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Image registries: names, login, push, pull by digest, and reading an image's labels.

Passwords travel only in the SDK's ``auth_config`` (never argv, never a message) and in
the HTTP ``Authorization`` header of registry API reads. Layers are never downloaded:
a label lookup reads the manifest and the small config blob.
"""
from __future__ import annotations

import base64
import ipaddress
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from typing import Mapping

from ansible_collections.madengine.core.plugins.module_utils._credentials import (
    is_dockerhub, registry_host, scrub)
from ansible_collections.madengine.core.plugins.module_utils._engine import engine_error_text
from ansible_collections.madengine.core.plugins.module_utils._errors import BuildError, RunError

try:
    import docker.errors
    from docker.utils import parse_repository_tag
except ImportError:  # _engine.get_client reports the missing package
    pass

DOCKERHUB_LOGIN = "https://index.docker.io/v1/"
DOCKERHUB_API = "registry-1.docker.io"
MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
)
INDEX_TYPES = (
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
)
HTTP_TIMEOUT = 30


def registry_image_name(image: str, registry: str, credential: Mapping | None = None) -> str:
    """Where ``image`` goes in ``registry`` (as upstream madengine names it).

    Docker Hub: ``<repository>:<image>``. Other registries: ``<registry>/<repository>:<image>``
    with a credential ``repository``, else ``<registry>/<image>``.
    """
    repository = (credential or {}).get("repository")
    if is_dockerhub(registry) and "/" not in registry.strip().rstrip("/"):
        if not repository:
            raise BuildError(
                "a Docker Hub push needs a repository to push into",
                fix='Add "repository" to the "dockerhub" entry of credential.json, '
                    "or set MAD_DOCKERHUB_REPO, or give --registry docker.io/<namespace>",
            )
        return f"{repository}:{image}"
    base = registry.strip().rstrip("/")
    for scheme in ("https://", "http://"):
        if base.startswith(scheme):
            base = base[len(scheme):]
    return f"{base}/{repository}:{image}" if repository else f"{base}/{image}"


def split_image_ref(ref: str) -> tuple:
    """``(repository, tag or digest)``; the tag defaults to ``latest``."""
    repository, tag = parse_repository_tag(ref)
    return repository, tag or "latest"


def auth_config(credential: Mapping | None, registry: str) -> dict | None:
    """The SDK auth config for ``registry`` from a credential entry (None: anonymous)."""
    if not credential or not credential.get("username"):
        return None
    server = DOCKERHUB_LOGIN if is_dockerhub(registry) else registry_host(registry)
    return {"username": credential["username"], "password": credential.get("password", ""),
            "serveraddress": server}


def login(client, registry: str, credential: Mapping | None) -> dict | None:
    """Check the credential against ``registry`` through the engine; returns the auth config.

    Raises BuildError naming the registry (never the secret) when it is refused or unreachable.
    """
    auth = auth_config(credential, registry)
    if auth is None:
        return None
    try:
        client.login(username=auth["username"], password=auth["password"],
                     registry=auth["serveraddress"], reauth=True)
    except docker.errors.APIError as exc:
        text = scrub(engine_error_text(exc), [auth["password"]])
        if _is_auth_failure(exc, text):
            raise BuildError(
                f"registry {registry} refused the login of user '{auth['username']}': "
                "authentication failed (wrong username or password)",
                fix="Check the entry for this registry in credential.json "
                    "(or MAD_DOCKERHUB_USER / MAD_DOCKERHUB_PASSWORD for Docker Hub)",
            ) from None
        raise BuildError(f"cannot log in to registry {registry}: {text}",
                         fix="Check that the registry is up and reachable from the engine") from None
    return auth


def _is_auth_failure(exc, text: str) -> bool:
    lowered = text.lower()
    return getattr(exc, "status_code", None) == 401 or "401" in lowered or "unauthorized" in lowered \
        or "incorrect username or password" in lowered or "authentication required" in lowered


def push_image(client, local_image: str, registry_image: str, auth: dict | None = None,
               log=None) -> str:
    """Tag ``local_image`` as ``registry_image``, push it, return the pushed manifest digest.

    The SDK reports push errors inside its output stream; they are raised here as BuildError.
    ``log`` (a text file) receives the push progress lines when given.
    """
    repository, tag = split_image_ref(registry_image)
    secrets = [auth["password"]] if auth and auth.get("password") else []
    try:
        client.api.tag(local_image, repository, tag, force=True)
        stream = client.api.push(repository, tag=tag, stream=True, decode=True, auth_config=auth)
        digest = None
        for chunk in stream:
            if "error" in chunk or "errorDetail" in chunk:
                message = (chunk.get("errorDetail") or {}).get("message") or chunk.get("error")
                raise BuildError(f"push of {registry_image} failed: {scrub(str(message), secrets)}",
                                 fix="Check that the registry is up and the credential may push there")
            aux = chunk.get("aux") or {}
            if aux.get("Digest"):
                digest = aux["Digest"]
            if log is not None and chunk.get("status") and "progress" not in chunk:
                log.write(f"{chunk['status']} {chunk.get('id', '')}".rstrip() + "\n")
    except docker.errors.APIError as exc:
        raise BuildError(f"push of {registry_image} failed: {scrub(engine_error_text(exc), secrets)}",
                         fix="Check that the registry is up and the credential may push there") from None
    if not digest:
        digest = _repo_digest(client, registry_image, repository)
    if not digest:
        raise BuildError(f"push of {registry_image} reported no digest",
                         fix="Look at the registry's log; the push may not have completed")
    return digest


def _repo_digest(client, ref: str, repository: str) -> str | None:
    try:
        digests = client.api.inspect_image(ref).get("RepoDigests") or []
    except docker.errors.APIError:
        return None
    for entry in digests:
        name, _at, digest = entry.partition("@")
        if name == repository or name.endswith("/" + repository):
            return digest
    return None


def pull_image(client, registry_image: str, expected_digest: str | None = None,
               auth: dict | None = None) -> tuple:
    """Pull ``registry_image`` (by ``expected_digest`` when given); return ``(image, digest)``.

    Pulling by digest means a tag pushed again later can never hand out another image.
    The pulled image is also tagged as ``registry_image``. Raises RunError with the reason
    when the registry refuses, lacks the digest, or hands out other content.
    """
    repository, tag = split_image_ref(registry_image)
    if "@" in registry_image and not expected_digest:
        expected_digest = tag
    reference = expected_digest or tag
    secrets = [auth["password"]] if auth and auth.get("password") else []
    try:
        for chunk in client.api.pull(repository, tag=reference, stream=True, decode=True, auth_config=auth):
            if "error" in chunk or "errorDetail" in chunk:
                message = (chunk.get("errorDetail") or {}).get("message") or chunk.get("error")
                raise RunError(_pull_reason(registry_image, expected_digest, scrub(str(message), secrets)))
        ref = f"{repository}@{expected_digest}" if expected_digest else f"{repository}:{tag}"
        image = client.images.get(ref)
    except docker.errors.APIError as exc:
        raise RunError(_pull_reason(registry_image, expected_digest,
                                    scrub(engine_error_text(exc), secrets))) from None
    digest = _repo_digest(client, image.id, repository)
    digests = {entry.partition("@")[2] for entry in image.attrs.get("RepoDigests") or []}
    if expected_digest and expected_digest not in digests:
        raise RunError(
            f"image pulled for {registry_image} has digests {sorted(digests) or 'none'}, "
            f"not the {expected_digest} recorded in the manifest",
            fix="Rebuild and push with `madengine build --registry ...` to get a consistent manifest")
    if expected_digest and not tag.startswith("sha256:"):
        client.api.tag(image.id, repository, tag, force=True)
    return image, expected_digest or digest


def _pull_reason(registry_image: str, expected_digest: str | None, message: str) -> str:
    wanted = f"{registry_image} at digest {expected_digest}" if expected_digest else registry_image
    hint = ""
    if expected_digest and "manifest unknown" in message.lower():
        hint = " (the registry no longer has the image the manifest recorded: it was deleted " \
               "or garbage-collected; rebuild and push again)"
    return f"cannot pull {wanted}: {message}{hint}"


# --- reading labels straight from the registry's HTTP API (no layers) -------------------

def is_insecure_registry(client, host: str) -> bool:
    """True when the engine talks plain HTTP to ``host`` (loopback, or configured insecure)."""
    name = host.rsplit(":", 1)[0].strip("[]")
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        address = None
    if address is not None and address.is_loopback:
        return True
    try:
        config = client.info().get("RegistryConfig") or {}
    except Exception:  # noqa: BLE001 - without engine info, assume TLS
        return False
    index = (config.get("IndexConfigs") or {}).get(host)
    if index is not None:
        return not index.get("Secure", True)
    if address is not None:
        for cidr in config.get("InsecureRegistryCIDRs") or []:
            try:
                if address in ipaddress.ip_network(cidr, strict=False):
                    return True
            except ValueError:
                continue
    return False


def remote_image(registry_image: str, auth: dict | None = None, insecure: bool = False) -> dict | None:
    """``{"digest", "config_digest", "labels"}`` of ``registry_image`` in its registry, or None.

    None when the registry has no such tag (or holds a multi-platform index there).
    Raises BuildError when the registry cannot be asked (down, refused).
    """
    repository, tag = split_image_ref(registry_image)
    host, _slash, path = repository.partition("/")
    if "." not in host and ":" not in host and host != "localhost" or not path:
        host, path = DOCKERHUB_API, repository  # a Docker Hub name: no registry part
    elif host in ("docker.io", "index.docker.io"):
        host = DOCKERHUB_API
    if host == DOCKERHUB_API and "/" not in path:
        path = f"library/{path}"
    session = _RegistrySession(host, auth, insecure)
    status, headers, body = session.get(f"/v2/{path}/manifests/{tag}",
                                        {"Accept": ", ".join(MANIFEST_TYPES + INDEX_TYPES)})
    if status == 404:
        return None
    if status != 200:
        raise BuildError(f"registry {host} answered HTTP {status} for {registry_image}",
                         fix="Check that the registry is up and the credential may read it")
    manifest = json.loads(body)
    media_type = manifest.get("mediaType") or headers.get("Content-Type", "")
    if media_type in INDEX_TYPES or "manifests" in manifest:
        return None
    config_digest = (manifest.get("config") or {}).get("digest")
    if not config_digest:
        return None
    status, _headers, blob = session.get(f"/v2/{path}/blobs/{config_digest}", {})
    if status != 200:
        return None
    config = json.loads(blob)
    labels = (config.get("config") or {}).get("Labels") or {}
    digest = headers.get("Docker-Content-Digest")
    if not digest:
        import hashlib
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
    return {"digest": digest, "config_digest": config_digest, "labels": labels}


class _DropAuthOnRedirect(urllib.request.HTTPRedirectHandler):
    """Blob reads may redirect to object storage, which must not receive our credentials."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and urllib.parse.urlsplit(newurl).netloc != urllib.parse.urlsplit(req.full_url).netloc:
            new.remove_header("Authorization")
        return new


class _RegistrySession:
    """Minimal registry API v2 reader: basic auth, or the bearer-token dance when asked."""

    def __init__(self, host: str, auth: dict | None, insecure: bool):
        self.host = host
        self.auth = auth
        self.schemes = ["https", "http"] if insecure else ["https"]
        self.authorization = None
        self.opener = urllib.request.build_opener(_DropAuthOnRedirect())

    def get(self, path: str, headers: dict) -> tuple:
        status, response_headers, body = self._get(path, headers)
        if status == 401 and self.authorization is None:
            self.authorization = self._authorize(response_headers.get("WWW-Authenticate", ""))
            if self.authorization:
                status, response_headers, body = self._get(path, headers)
        if status == 401:
            raise BuildError(f"registry {self.host} refused to let us read {path} (HTTP 401)",
                             fix="Check the registry's entry in credential.json")
        return status, response_headers, body

    def _get(self, path: str, headers: dict) -> tuple:
        last_error = None
        for scheme in list(self.schemes):
            request = urllib.request.Request(f"{scheme}://{self.host}{path}", headers=dict(headers))
            if self.authorization:
                request.add_header("Authorization", self.authorization)
            try:
                with self.opener.open(request, timeout=HTTP_TIMEOUT) as response:
                    self.schemes = [scheme]
                    return response.status, response.headers, response.read()
            except urllib.error.HTTPError as exc:
                self.schemes = [scheme]
                return exc.code, exc.headers, exc.read()
            except (urllib.error.URLError, ssl.SSLError, OSError) as exc:
                last_error = getattr(exc, "reason", exc)
        raise BuildError(f"registry {self.host} does not answer: {last_error}",
                         fix="Check that the registry is up and reachable from this host")

    def _authorize(self, challenge: str) -> str | None:
        basic = None
        if self.auth and self.auth.get("username"):
            pair = f"{self.auth['username']}:{self.auth.get('password', '')}".encode()
            basic = "Basic " + base64.b64encode(pair).decode()
        scheme, _space, params = challenge.partition(" ")
        if scheme.lower() != "bearer":
            return basic
        fields = dict(part.split("=", 1) for part in _split_challenge(params) if "=" in part)
        fields = {key.strip(): value.strip().strip('"') for key, value in fields.items()}
        realm = fields.pop("realm", None)
        if not realm:
            return basic
        request = urllib.request.Request(f"{realm}?{urllib.parse.urlencode(fields)}")
        if basic:
            request.add_header("Authorization", basic)
        try:
            with self.opener.open(request, timeout=HTTP_TIMEOUT) as response:
                answer = json.loads(response.read())
        except (urllib.error.URLError, OSError, ValueError):
            return basic
        token = answer.get("token") or answer.get("access_token")
        return f"Bearer {token}" if token else basic


def _split_challenge(params: str) -> list:
    """Split ``a="x,y",b="z"`` at the commas outside quotes."""
    parts, current, quoted = [], "", False
    for char in params:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            parts.append(current)
            current = ""
        else:
            current += char
    if current:
        parts.append(current)
    return parts
