# Copyright: (c) 2026, madengine maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Building the images of selected models with the Docker SDK, pushing them, and the records.

One *build record* per image (docs/contracts.md "Build record"). A build is skipped when an
image labelled with the same *content hash* (Dockerfile, every file of the context the
engine would receive, build args, base image ids) exists locally or in the registry; the
hash travels as the label ``org.madengine.content-hash``, so a reused tag can never hand
out an image built from other inputs.
"""
from __future__ import annotations

import collections
import concurrent.futures
import hashlib
import json
import os
import re
import threading
import time
from typing import Mapping

from ansible_collections.madengine.core.plugins.module_utils import _credentials as credentials_mod
from ansible_collections.madengine.core.plugins.module_utils import _dockerfiles
from ansible_collections.madengine.core.plugins.module_utils import _registry as registry_mod
from ansible_collections.madengine.core.plugins.module_utils._engine import (
    START_HINT, engine_error_text, get_client, image_id)
from ansible_collections.madengine.core.plugins.module_utils._errors import (
    BuildError, EngineError, MadError)
from ansible_collections.madengine.core.plugins.module_utils._manifest import RECORD_ONLY, assemble_manifest

try:
    import docker.errors
    from docker.utils.build import exclude_paths
    import requests.exceptions
    _TRANSIENT = (docker.errors.DockerException, requests.exceptions.RequestException, OSError)
except ImportError:  # get_client reports the missing package before any build starts
    _TRANSIENT = (OSError,)

CONTENT_HASH_LABEL = "org.madengine.content-hash"
HASH_SCHEME = "madengine-content-hash-v1"
GPU_ARCH_ARG = "MAD_SYSTEM_GPU_ARCHITECTURE"
SUCCESS, FAILURE = "SUCCESS", "FAILURE"
MASK = "********"
ERROR_TAIL_LINES = 8
_NOISE = re.compile(r"\s*(---> |Removing intermediate container)")


def image_name(model_name: str, dockerfile: str) -> str:
    """``ci-<model, '/'->'_', lowercased>_<Dockerfile basename without .Dockerfile>`` (lowercase:
    the engine accepts no other)."""
    return f"ci-{model_name.replace('/', '_')}_{_dockerfile_stem(dockerfile)}".lower()


def log_name(model_name: str, dockerfile: str) -> str:
    """``<model, '/'->'_'>_<Dockerfile basename without .Dockerfile>.build.live.log``."""
    return f"{model_name.replace('/', '_')}_{_dockerfile_stem(dockerfile)}.build.live.log"


def _dockerfile_stem(dockerfile: str) -> str:
    base = os.path.basename(dockerfile)
    return base[: -len(".Dockerfile")] if base.endswith(".Dockerfile") else base


# --- reading Dockerfiles ----------------------------------------------------------------

_ARG_REF = re.compile(r"\$(?:\{(\w+)(?::?([-+])([^}]*))?\}|(\w+))")


def _logical_lines(text: str) -> list:
    """Instruction lines with ``\\`` continuations joined and comments dropped."""
    lines, current = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    if current:
        lines.append(current)
    return lines


def _substitute(text: str, values: Mapping) -> str:
    def replace(match):
        name = match.group(1) or match.group(4)
        value = values.get(name)
        if match.group(2) == "-":
            return value if value else match.group(3)
        if match.group(2) == "+":
            return match.group(3) if value else ""
        return value or ""
    return _ARG_REF.sub(replace, text)


def dockerfile_arg_default(text: str, name: str) -> str | None:
    """The default of ``ARG <name>=<value>`` (or ``ENV``) in a Dockerfile, or None."""
    for line in _logical_lines(text):
        match = re.match(rf"(?i)(?:ARG|ENV)\s+{re.escape(name)}[=\s]\s*(\S+)", line)
        if match:
            return match.group(1).strip("\"'")
    return None


def base_images(text: str, build_args: Mapping) -> list:
    """The external images the Dockerfile builds FROM (ARGs resolved, stages and scratch left out)."""
    global_args, stages, bases = {}, set(), []
    seen_from = False
    for line in _logical_lines(text):
        keyword, _sep, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "ARG" and not seen_from:
            name, _eq, default = rest.strip().partition("=")
            name = name.strip()
            global_args[name] = build_args.get(name, _substitute(default.strip().strip("\"'"), global_args))
        elif keyword == "FROM":
            seen_from = True
            words = [w for w in rest.split() if not w.startswith("--")]
            if not words:
                continue
            ref = _substitute(words[0], global_args)
            if len(words) >= 3 and words[1].lower() == "as":
                stages.add(words[2].lower())
            if ref.lower() != "scratch" and ref.lower() not in stages and ref not in bases:
                bases.append(ref)
    return bases


# --- content hash -----------------------------------------------------------------------

_context_cache: dict = {}
_context_lock = threading.Lock()


def _dockerignore_patterns(context_dir: str) -> list:
    path = os.path.join(context_dir, ".dockerignore")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as fh:
        return [line.strip() for line in fh.read().splitlines() if line.strip() and not line.strip().startswith("#")]


def context_digest(context_dir: str, dockerfile_in_context: str | None) -> str:
    """A digest of every file the engine would receive (as the SDK tars it, .dockerignore honoured).

    Paths, kinds, permission bits and contents count; times and owners do not. File digests
    are memoised for one build_images run, so models sharing a context read it once.
    """
    patterns = _dockerignore_patterns(context_dir)
    # The SDK re-includes the Dockerfile it was given; an outside Dockerfile travels under another name.
    names = sorted(exclude_paths(context_dir, list(patterns), dockerfile=dockerfile_in_context or ".dockerfile"))
    digest = hashlib.sha256()
    for rel in names:
        full = os.path.join(context_dir, rel)
        try:
            info = os.lstat(full)
        except OSError:
            continue
        if os.path.islink(full):
            entry = f"L {rel} {os.readlink(full)}"
        elif os.path.isdir(full):
            entry = f"D {rel} {info.st_mode & 0o7777:o}"
        elif os.path.isfile(full):
            entry = f"F {rel} {info.st_mode & 0o7777:o} {_file_digest(full, info)}"
        else:
            continue  # sockets and fifos are not sent
        digest.update(entry.encode("utf-8", "surrogateescape") + b"\0")
    return digest.hexdigest()


def _file_digest(path: str, info: os.stat_result) -> str:
    key = (path, info.st_ino, info.st_size, info.st_mtime_ns)
    with _context_lock:
        cached = _context_cache.get(key)
    if cached:
        return cached
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    with _context_lock:
        _context_cache[key] = digest.hexdigest()
    return digest.hexdigest()


def content_hash(dockerfile_text: str, context_dir: str, dockerfile_in_context: str | None,
                 build_args: Mapping, base_ids: Mapping) -> str:
    """The content hash an image carries in its CONTENT_HASH_LABEL."""
    document = {
        "scheme": HASH_SCHEME,
        "dockerfile": hashlib.sha256(dockerfile_text.encode("utf-8", "surrogateescape")).hexdigest(),
        "context": context_digest(context_dir, dockerfile_in_context),
        "build_args": {str(k): str(v) for k, v in sorted(build_args.items())},
        "bases": dict(sorted(base_ids.items())),
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


# --- planning ---------------------------------------------------------------------------

def select_dockerfiles(mad_dir: str, model: Mapping, context: Mapping) -> list:
    """The model's Dockerfiles: mad_discover's ``dockerfiles``, or (for hand-made model lists)
    the same selection mad_discover makes. Raises BuildError with the reason when there is none."""
    if model.get("dockerfile_error"):
        raise BuildError(str(model["dockerfile_error"]))
    if model.get("dockerfiles"):
        return list(model["dockerfiles"])
    kept, problem = _dockerfiles.select_dockerfiles(mad_dir, str(model.get("dockerfile") or ""), dict(context))
    if not kept:
        raise BuildError(f"model '{model.get('name')}': {problem}", where=mad_dir)
    return kept


def _gpu_vendor(dockerfile: str, context: Mapping) -> str:
    lowered = os.path.basename(dockerfile).lower()
    if ".amd." in lowered or lowered.endswith(".amd"):
        return "AMD"
    if ".nvidia." in lowered or lowered.endswith(".nvidia"):
        return "NVIDIA"
    return str(context.get("gpu_vendor") or "")


class _Job:
    """One image to build: its inputs and its record."""

    def __init__(self, record: dict, model: dict):
        self.record = record
        self.model = model
        self.dockerfile_path = ""
        self.context_dir = ""
        self.build_args: dict = {}
        self.secret_args: frozenset = frozenset()
        self.bases: list = []
        self.registry_checked = False


def _new_record(model: Mapping, dockerfile: str, output_dir: str, context: Mapping) -> dict:
    """A record; without a Dockerfile (nothing to build) it is named after the model alone."""
    name = str(model.get("name"))
    image = image_name(name, dockerfile) if dockerfile else f"ci-{name.replace('/', '_')}".lower()
    return {
        "image": image, "model": name, "docker_image": image, "dockerfile": dockerfile,
        "base_docker": "", "docker_sha": "", "build_duration": 0.0, "build_command": "",
        "log_file": os.path.join(output_dir, log_name(name, dockerfile)) if dockerfile else "",
        "gpu_vendor": _gpu_vendor(dockerfile, context), "content_hash": "", "image_id": "",
        "status": SUCCESS, "skipped_unchanged": False,
    }


def _fail(record: dict, message: str) -> dict:
    record["status"] = FAILURE
    record["error"] = message
    return record


def plan_jobs(mad_dir: str, models: list, context: Mapping, output_dir: str, creds: Mapping,
              credential_file: str | None, gpu_architecture: str | None = None,
              environ: Mapping | None = None) -> list:
    """One _Job per (model, Dockerfile); models that cannot be built get a FAILURE record."""
    environ = os.environ if environ is None else environ
    common_args = {str(k): str(v) for k, v in (context.get("docker_build_arg") or {}).items()}
    if gpu_architecture and GPU_ARCH_ARG not in common_args:
        common_args[GPU_ARCH_ARG] = str(gpu_architecture)
    # Upstream passes MAD_SECRETS* variables of the build host as build args.
    secret_env = {k: v for k, v in environ.items() if "MAD_SECRETS" in k and k not in common_args}
    jobs = []
    for model in models:
        try:
            dockerfiles = select_dockerfiles(mad_dir, model, context)
        except MadError as exc:
            record = _new_record(model, "", output_dir, context)
            jobs.append(_Job(_fail(record, exc.message), dict(model)))
            continue
        try:
            cred_args = credentials_mod.build_args_for_model(model, creds, credential_file)
            cred_error = None
        except MadError as exc:
            cred_args, cred_error = {}, exc.message
        for dockerfile in dockerfiles:
            record = _new_record(model, dockerfile, output_dir, context)
            job = _Job(record, dict(model))
            if cred_error:
                _fail(record, cred_error)
            else:
                job.dockerfile_path = os.path.normpath(os.path.join(mad_dir, dockerfile))
                job.context_dir = os.path.normpath(os.path.join(mad_dir, model.get("dockercontext") or "docker"))
                job.build_args = {**common_args, **secret_env, **cred_args}
                job.secret_args = frozenset(cred_args) | frozenset(secret_env)
                if not os.path.isfile(job.dockerfile_path):
                    _fail(record, f"Dockerfile {dockerfile} does not exist (in {mad_dir})")
                elif not os.path.isdir(job.context_dir):
                    _fail(record, f"build context {model.get('dockercontext') or 'docker'} of model "
                                  f"'{record['model']}' is not a directory (in {mad_dir})")
            jobs.append(job)
    return jobs


# --- building ---------------------------------------------------------------------------

class BuildOptions:
    """How to build: cache, pull, registry, check mode."""

    def __init__(self, registry: str | None = None, registry_credential: Mapping | None = None,
                 auth: dict | None = None, clean_docker_cache: bool = False, pull: bool = False,
                 check_mode: bool = False, secrets=()):
        self.registry = registry or None
        self.registry_credential = registry_credential
        self.auth = auth
        self.clean_docker_cache = clean_docker_cache
        self.pull = pull
        self.check_mode = check_mode
        self.secrets = list(secrets)
        self.insecure_registry = False


def _build_command(job: _Job, options: BuildOptions, image: str, hash_value: str) -> str:
    parts = ["docker", "build", "--network=host"]
    if options.clean_docker_cache:
        parts.append("--no-cache")
    if options.pull:
        parts.append("--pull")
    parts += ["-t", image, "-f", job.dockerfile_path]
    for key, value in job.build_args.items():
        shown = MASK if key in job.secret_args else value
        parts.append(f"--build-arg {key}='{shown}'")
    parts += ["--label", f"{CONTENT_HASH_LABEL}={hash_value}", job.context_dir]
    return " ".join(parts)


def _dockerfile_arg_for_sdk(job: _Job) -> tuple:
    """(dockerfile argument for the SDK, its path inside the context or None when outside)."""
    rel = os.path.relpath(job.dockerfile_path, job.context_dir)
    if rel.startswith(".."):
        return job.dockerfile_path, None
    return rel, rel


def _find_labelled_image(client, hash_value: str, tag: str) -> str | None:
    """The id of a local image carrying this content hash (the one ``tag`` names, if it does)."""
    found = client.api.images(filters={"label": f"{CONTENT_HASH_LABEL}={hash_value}"})
    if not found:
        return None
    current = image_id(client, tag)
    for entry in found:
        if entry["Id"] == current:
            return current
    return max(found, key=lambda entry: entry.get("Created", 0))["Id"]


class _Log:
    """A build's log file: opened fresh when a build runs, appended to when it is skipped,
    so the log of the build that made the image survives later unchanged runs."""

    def __init__(self, path: str, discard: bool = False):
        self.path = path
        self.discard = discard  # check mode writes no files
        self.pending: list = []
        self.fh = None

    def write(self, text: str) -> None:
        if self.fh is None:
            self.pending.append(text)
        else:
            self.fh.write(text)

    def open(self, mode: str) -> None:
        if self.fh is None and not self.discard:
            self.fh = open(self.path, mode, encoding="utf-8")  # noqa: SIM115 - closed in close()
            self.fh.write("".join(self.pending))
            self.pending = []

    def close(self) -> None:
        self.open("a")
        if self.fh is not None:
            self.fh.close()


def _run_job(client, job: _Job, options: BuildOptions) -> None:
    record = job.record
    started = time.monotonic()
    if not options.check_mode:
        os.makedirs(os.path.dirname(record["log_file"]) or ".", exist_ok=True)
    log = _Log(record["log_file"], discard=options.check_mode)
    try:
        _build_or_reuse(client, job, options, log)
        if options.registry and not options.check_mode:
            _push(client, job, options, log)
    except BuildError as exc:
        _fail(record, exc.message)
    except _TRANSIENT as exc:  # engine gone mid-build, unreadable file, ...
        text = credentials_mod.scrub(engine_error_text(exc), options.secrets)
        _fail(record, f"build of {record['image']} failed: {text}")
    finally:
        record["build_duration"] = round(time.monotonic() - started, 3)
        if record.get("error"):
            log.write(f"\nFAILED: {record['error']}\n")
        log.close()


def _build_or_reuse(client, job: _Job, options: BuildOptions, log) -> None:
    record = job.record
    with open(job.dockerfile_path, encoding="utf-8", errors="surrogateescape") as fh:
        text = fh.read()
    job.bases = base_images(text, job.build_args)
    record["base_docker"] = job.build_args.get("BASE_DOCKER") or dockerfile_arg_default(text, "BASE_DOCKER") \
        or (job.bases[0] if job.bases else "")
    arch = job.build_args.get(GPU_ARCH_ARG) or dockerfile_arg_default(text, GPU_ARCH_ARG)
    if arch:
        record["gpu_architecture"] = arch
    if options.pull and not options.check_mode:
        for base in job.bases:
            _pull_base(client, base, log)
    base_ids = {base: (image_id(client, base) or f"absent:{base}") for base in job.bases}
    if record["base_docker"]:
        record["docker_sha"] = _base_sha(client, record["base_docker"]) or base_ids.get(record["base_docker"], "")
    sdk_dockerfile, in_context = _dockerfile_arg_for_sdk(job)
    hash_value = content_hash(text, job.context_dir, in_context, job.build_args, base_ids)
    record["content_hash"] = hash_value
    record["build_command"] = _build_command(job, options, record["image"], hash_value)
    log.write(f"# madengine build of {record['image']} (model {record['model']})\n"
              f"# {record['build_command']}\n# content hash {hash_value}\n")

    if not options.clean_docker_cache:
        existing = _find_labelled_image(client, hash_value, record["image"])
        if existing:
            if image_id(client, record["image"]) != existing:
                if not options.check_mode:
                    repository, tag = registry_mod.split_image_ref(record["image"])
                    client.api.tag(existing, repository, tag, force=True)
                record["retagged"] = True
            record.update(image_id=existing, skipped_unchanged=True)
            log.write(f"unchanged: {existing} already carries this content hash; build skipped\n")
            return
        if options.registry and _registry_has(client, job, options, hash_value, log):
            return
    if options.check_mode:
        record["would_build"] = True
        log.write("check mode: would build\n")
        return
    log.open("w")
    record["image_id"] = _stream_build(client, job, options, sdk_dockerfile, hash_value, log)


def _registry_has(client, job: _Job, options: BuildOptions, hash_value: str, log) -> bool:
    """True (and the record filled) when the registry already holds an image with this hash."""
    record = job.record
    registry_image = registry_mod.registry_image_name(
        record["image"], options.registry, options.registry_credential)
    remote = _remote_or_none(registry_image, options, log)
    job.registry_checked = True
    if not remote or remote["labels"].get(CONTENT_HASH_LABEL) != hash_value:
        return False
    record.update(registry=options.registry, registry_image=registry_image,
                  registry_digest=remote["digest"], image_id=remote["config_digest"],
                  skipped_unchanged=True, pushed=False)
    log.write(f"unchanged: {registry_image}@{remote['digest']} already carries this content hash; "
              "build and push skipped\n")
    return True


def _remote_or_none(registry_image: str, options: BuildOptions, log) -> dict | None:
    """What the registry holds under ``registry_image``; None when unknown (the push will say why)."""
    try:
        return registry_mod.remote_image(registry_image, options.auth, options.insecure_registry)
    except MadError as exc:
        log.write(f"cannot look up {registry_image} in the registry: {exc.message}\n")
        return None


def _pull_base(client, base: str, log) -> None:
    repository, tag = registry_mod.split_image_ref(base)
    log.write(f"pulling base image {base}\n")
    try:
        for chunk in client.api.pull(repository, tag=tag, stream=True, decode=True):
            if "error" in chunk or "errorDetail" in chunk:
                message = (chunk.get("errorDetail") or {}).get("message") or chunk.get("error")
                raise BuildError(f"cannot pull base image {base}: {message}",
                                 fix="Leave out --pull to build from the local base image")
    except docker.errors.APIError as exc:
        raise BuildError(f"cannot pull base image {base}: {engine_error_text(exc)}",
                         fix="Leave out --pull to build from the local base image") from None


def _base_sha(client, ref: str) -> str:
    try:
        attrs = client.api.inspect_image(ref)
    except docker.errors.APIError:
        return ""
    for entry in attrs.get("RepoDigests") or []:
        return entry.partition("@")[2]
    return attrs.get("Id", "")


def _stream_build(client, job: _Job, options: BuildOptions, sdk_dockerfile: str, hash_value: str, log) -> str:
    """Run the build, streaming the engine's output to ``log``; return the image id."""
    record = job.record
    repository, tag = registry_mod.split_image_ref(record["image"])
    tail: collections.deque = collections.deque(maxlen=ERROR_TAIL_LINES)
    built_id = None
    try:
        stream = client.api.build(
            path=job.context_dir, dockerfile=sdk_dockerfile, tag=f"{repository}:{tag}",
            buildargs=job.build_args or None, labels={CONTENT_HASH_LABEL: hash_value},
            nocache=options.clean_docker_cache, pull=False, rm=True, forcerm=True,
            network_mode="host", decode=True)
        for chunk in stream:
            if "stream" in chunk:
                text = credentials_mod.scrub(chunk["stream"], options.secrets)
                log.write(text)
                tail.extend(line for line in text.splitlines() if line.strip() and not _NOISE.match(line))
            elif "status" in chunk:
                log.write(f"{chunk['status']} {chunk.get('id', '')}".rstrip() + "\n")
            if "error" in chunk or "errorDetail" in chunk:
                message = (chunk.get("errorDetail") or {}).get("message") or chunk.get("error")
                raise BuildError(_build_failure(record, message, tail, options))
            aux = chunk.get("aux") or {}
            if aux.get("ID"):
                built_id = aux["ID"]
    except docker.errors.APIError as exc:
        raise BuildError(_build_failure(record, engine_error_text(exc), tail, options)) from None
    return built_id or image_id(client, record["image"]) or ""


def _build_failure(record: dict, message: str, tail, options: BuildOptions) -> str:
    message = credentials_mod.scrub(str(message).strip(), options.secrets)
    lines = [line for line in tail if message not in line][-ERROR_TAIL_LINES:]
    text = f"docker build of {record['image']} failed: {message}"
    if lines:
        text += " | last output: " + " / ".join(line.strip()[:200] for line in lines[-4:])
    return text + f" | full log: {record['log_file']}"


def _push(client, job: _Job, options: BuildOptions, log) -> None:
    record = job.record
    if record.get("pushed") is False or record["status"] != SUCCESS:
        return  # the registry already had it, or nothing was built
    try:
        registry_image = registry_mod.registry_image_name(
            record["image"], options.registry, options.registry_credential)
    except MadError as exc:
        record.update(registry=options.registry, push_error=exc.message)
        return
    record.update(registry=options.registry, registry_image=registry_image)
    try:
        # Only a reused local image can already be there: a fresh build was looked up before.
        remote = None if job.registry_checked else _remote_or_none(registry_image, options, log)
        if remote and remote["labels"].get(CONTENT_HASH_LABEL) == record["content_hash"] \
                and remote["config_digest"] == record["image_id"]:
            record.update(registry_digest=remote["digest"], pushed=False)
            log.write(f"registry already holds {registry_image}@{remote['digest']}; push skipped\n")
            return
        log.write(f"pushing {registry_image}\n")
        record["registry_digest"] = registry_mod.push_image(
            client, record["image"], registry_image, options.auth, log=log)
        record["pushed"] = True
        log.write(f"pushed {registry_image}@{record['registry_digest']}\n")
    except MadError as exc:
        record["push_error"] = credentials_mod.scrub(exc.message, options.secrets)
        log.write(f"PUSH FAILED: {record['push_error']}\n")


def _waves(jobs: list) -> list:
    """Jobs grouped so that an image built FROM another image of this run comes after it."""
    pending = [job for job in jobs if job.record["status"] == SUCCESS]
    names = {job.record["image"]: job for job in pending}
    deps = {}
    for job in pending:
        try:
            with open(job.dockerfile_path, encoding="utf-8", errors="surrogateescape") as fh:
                refs = base_images(fh.read(), job.build_args)
        except OSError:
            refs = []
        deps[id(job)] = {names[r.split(":")[0]] for r in refs
                         if r.split(":")[0] in names and r.partition(":")[2] in ("", "latest")} - {job}
    waves, done = [], set()
    while pending:
        ready = [job for job in pending if all(id(dep) in done for dep in deps[id(job)])]
        if not ready:  # a cycle: let the engine report it
            ready = pending
        waves.append(ready)
        done.update(id(job) for job in ready)
        pending = [job for job in pending if id(job) not in done]
    return waves


def default_parallel() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def run_jobs(client, jobs: list, options: BuildOptions, parallel: int = 0) -> list:
    """Build (or skip) every job, ``parallel`` at a time; returns the records in job order."""
    workers = parallel if parallel and parallel > 0 else default_parallel()
    for wave in _waves(jobs):
        if workers == 1 or len(wave) == 1:
            for job in wave:
                _run_job(client, job, options)
            continue
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(workers, len(wave)),
                                                   thread_name_prefix="mad-build") as pool:
            for future in [pool.submit(_run_job, client, job, options) for job in wave]:
                future.result()
    return [job.record for job in jobs]


# --- the whole step ----------------------------------------------------------------------

def build_images(mad_dir: str, models: list, context: Mapping | None = None, output_dir: str | None = None,
                 *, registry: str | None = None, credential_file: str | None = None, parallel: int = 0,
                 clean_docker_cache: bool = False, pull: bool = False, docker_host: str | None = None,
                 gpu_architecture: str | None = None, check_mode: bool = False,
                 registry_username: str | None = None, registry_password: str | None = None,
                 registry_repository: str | None = None, client=None,
                 environ: Mapping | None = None, previous_manifest: Mapping | None = None) -> dict:
    """Build every image of ``models`` and assemble the manifest.

    Returns ``{"builds", "manifest", "changed", "error"}``; ``error`` is a MadError (or None)
    the caller raises after writing the manifest: BuildError when any build or push failed,
    EngineError when no engine answers. Bad input (credential.json) raises InvalidInputError.
    An image found unchanged keeps its entry of ``previous_manifest`` (same content hash and
    image id), so rebuilding nothing rewrites nothing.
    """
    context = dict(context or {})
    with _context_lock:
        _context_cache.clear()  # file digests are shared by the models of one run only
    mad_dir = os.path.abspath(mad_dir)
    output_dir = os.path.abspath(output_dir or mad_dir)
    credential_file = credential_file or os.path.join(mad_dir, "credential.json")
    creds = credentials_mod.load_credentials(credential_file, environ)
    jobs = plan_jobs(mad_dir, models, context, output_dir, creds, credential_file, gpu_architecture, environ)
    secrets = credentials_mod.secret_values(creds) + ([registry_password] if registry_password else [])
    secrets += sorted({job.build_args[key] for job in jobs for key in job.secret_args if job.build_args[key]})
    options = BuildOptions(registry=registry, clean_docker_cache=clean_docker_cache, pull=pull,
                           check_mode=check_mode, secrets=secrets)
    error = None
    try:
        client = client or get_client(docker_host)
        if registry:
            credential = credentials_mod.credential_for_registry(creds, registry) or {}
            if registry_username:
                credential.update(username=registry_username, password=registry_password or "")
            if registry_repository:
                credential["repository"] = registry_repository
            options.registry_credential = credential
            options.auth = registry_mod.login(client, registry, credential)
            options.insecure_registry = registry_mod.is_insecure_registry(
                client, credentials_mod.registry_host(registry))
    except MadError as exc:
        error = exc
        for job in jobs:
            if job.record["status"] == SUCCESS:
                _fail(job.record, exc.message)
    if error is None:
        run_jobs(client, jobs, options, parallel)
    records = [job.record for job in jobs]
    _keep_recorded_entries(records, previous_manifest)
    manifest = assemble_manifest(records, {job.record["image"]: job.model for job in jobs}, context,
                                 registry or "")
    changed = any(not r.get("skipped_unchanged") or r.get("retagged") or r.get("pushed")
                  for r in records if r["status"] == SUCCESS)
    if check_mode:
        changed = any(r.get("would_build") or r.get("retagged") for r in records)
    if error is None:
        error = _failure_error(records)
    return {"builds": records, "manifest": manifest, "changed": bool(changed), "error": error}


def _keep_recorded_entries(records: list, previous_manifest: Mapping | None) -> None:
    """An unchanged image keeps what the earlier build recorded (its duration, log, command)."""
    recorded = (previous_manifest or {}).get("built_images") or {}
    for record in records:
        before = recorded.get(record["image"])
        if (record["status"] != SUCCESS or not record.get("skipped_unchanged") or record.get("retagged")
                or record.get("pushed") or not isinstance(before, Mapping)):
            continue
        if before.get("content_hash") == record.get("content_hash") and before.get("image_id") == record.get("image_id"):
            record.update({key: value for key, value in before.items() if key not in RECORD_ONLY})


def _failure_error(records: list) -> MadError | None:
    failed = [r for r in records if r["status"] == FAILURE]
    push_failed = [r for r in records if r["status"] == SUCCESS and r.get("push_error")]
    if not failed and not push_failed:
        return None
    parts = [r["error"] for r in failed] + [r["push_error"] for r in push_failed]
    what = []
    if failed:
        what.append(f"{len(failed)} of {len(records)} image(s) failed to build")
    if push_failed:
        what.append(f"{len(push_failed)} image(s) failed to push")
    return BuildError(" and ".join(what) + ": " + "; ".join(parts),
                      fix="The images that did build are in the manifest; see each build log")


__all__ = ["build_images", "image_name", "log_name", "content_hash", "base_images", "plan_jobs",
           "run_jobs", "BuildOptions", "CONTENT_HASH_LABEL", "EngineError", "START_HINT"]
