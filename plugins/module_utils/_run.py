# Copyright: (c) 2026, madengine maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running one model in one container (MAD-FORMAT section 4).

:func:`plan_run` is pure: it turns the model, build record, context and GPU facts into a
:class:`RunPlan` (skip or fail reasons, a :class:`ContainerSpec`, the log path, the
timeout). :func:`execute` talks to the engine with as few round trips as it can:
inspect the image, create, copy the scripts in (``put_archive``), attach, start, stream,
wait, fetch the multiple_results CSV, remove. With the context's pre/post scripts (or
keep_alive) the container idles and each step runs as an exec, in order, under one deadline
(see ``_hooks`` for what the steps are). A model with a ``url`` is cloned on the node first
(``_repo``, under the same deadline) and the tree goes into the container with the scripts.
:func:`run_model` does both and returns the run record of docs/contracts.md.
"""
from __future__ import annotations

import io
import os
import posixpath
import re
import secrets
import shlex
import shutil
import signal
import socket
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Dict, List, Optional, Sequence, Tuple

from ansible_collections.madengine.core.plugins.module_utils._credentials import (
    build_args_for_model, credential_for_registry, load_credentials, scrub, secret_values)
from ansible_collections.madengine.core.plugins.module_utils._docker_args import (
    RunOptions, parse_run_options)
from ansible_collections.madengine.core.plugins.module_utils._engine import (
    engine_error_text, get_client)
from ansible_collections.madengine.core.plugins.module_utils._errors import (
    InvalidInputError, RunError)
from ansible_collections.madengine.core.plugins.module_utils._gpu import (
    docker_device_options, select_devices, visibility_env)
from ansible_collections.madengine.core.plugins.module_utils._hooks import Hooks, Step, plan_hooks
from ansible_collections.madengine.core.plugins.module_utils._perf import (
    FAILURE, SKIPPED, SUCCESS, ErrorScan, LogScanner, error_scan_config,
    parse_multiple_results, perf_row, run_status, summarize_rows, to_number)
from ansible_collections.madengine.core.plugins.module_utils._registry import (
    auth_config, pull_image, split_image_ref)
from ansible_collections.madengine.core.plugins.module_utils._repo import (
    CloneTimeout, RepoPlan, clone, plan_repo)

try:
    from docker.errors import APIError, DockerException, ImageNotFound, NotFound
    from docker.types import DeviceRequest, Ulimit
    from docker.utils.socket import frames_iter
except ImportError:  # _engine.get_client reports the missing package
    pass

WORKSPACE = "/myworkspace"
RUN_DIR_NAME = "run_directory"
DEFAULT_TIMEOUT = 7200
LABEL_RUN = "madengine.run"
LABEL_MODEL = "madengine.model"
MAX_CSV_BYTES = 64 << 20
_SPOOL_BYTES = 32 << 20
# The run log is ours (streamed through attach); a second copy in the engine's json-file
# log costs disk and makes floods about five times slower. Upstream's docker-exec output
# never reached `docker logs` either.
LOG_CONFIG = {"type": "none", "config": {}}
_NO_IMAGE = "image {} not found locally; build it or run from a manifest with a registry"


# ----------------------------------------------------------------------------- plan

@dataclass
class ContainerSpec:
    """Everything ``docker run`` needs, as data (also rendered as a CLI list for humans)."""

    image: str
    name: str
    command: List[str]
    working_dir: str
    environment: Dict[str, str] = field(default_factory=dict)
    labels: Dict[str, str] = field(default_factory=dict)
    entrypoint: Optional[List[str]] = None
    user: Optional[str] = None
    hostname: Optional[str] = None
    binds: List[str] = field(default_factory=list)
    devices: List[str] = field(default_factory=list)
    device_requests: List[Dict[str, Any]] = field(default_factory=list)
    group_add: List[str] = field(default_factory=list)
    cap_add: List[str] = field(default_factory=list)
    security_opt: List[str] = field(default_factory=list)
    ulimits: List[Dict[str, Any]] = field(default_factory=list)
    tmpfs: Dict[str, str] = field(default_factory=dict)
    extra_hosts: Dict[str, str] = field(default_factory=dict)
    shm_size: Optional[int] = None
    mem_limit: Optional[int] = None
    ipc_mode: Optional[str] = None
    network_mode: Optional[str] = None
    privileged: bool = False
    cpuset_cpus: Optional[str] = None

    def docker_argv(self) -> List[str]:
        """The equivalent ``docker run`` command line (the scripts are copied, not mounted)."""
        argv = ["docker", "run", "--name", self.name, "--log-driver", LOG_CONFIG["type"]]
        argv += [a for k, v in self.labels.items() for a in ("--label", f"{k}={v}")]
        for flag, value in (("--network", self.network_mode), ("--ipc", self.ipc_mode),
                            ("--user", self.user), ("--hostname", self.hostname),
                            ("--cpuset-cpus", self.cpuset_cpus)):
            if value:
                argv += [flag, value]
        if self.shm_size:
            argv += ["--shm-size", str(self.shm_size)]
        if self.mem_limit:
            argv += ["--memory", str(self.mem_limit)]
        if self.privileged:
            argv.append("--privileged")
        argv += [f"--cap-add={c}" for c in self.cap_add]
        argv += [f"--security-opt={s}" for s in self.security_opt]
        argv += [f"--device={d}" for d in self.devices]
        for request in self.device_requests:
            argv += ["--gpus", '"device={}"'.format(",".join(request.get("device_ids") or []))]
        argv += [f"--group-add={g}" for g in self.group_add]
        argv += ["--ulimit={}={}:{}".format(u["name"], u["soft"], u["hard"]) for u in self.ulimits]
        argv += [a for b in self.binds for a in ("-v", b)]
        argv += [f"--tmpfs={k}:{v}" if v else f"--tmpfs={k}" for k, v in self.tmpfs.items()]
        argv += [f"--add-host={k}:{v}" for k, v in self.extra_hosts.items()]
        argv += [a for k, v in self.environment.items() for a in ("-e", f"{k}={v}")]
        argv += ["-w", self.working_dir]
        if self.entrypoint is not None:
            argv += ["--entrypoint", " ".join(self.entrypoint)]
        return argv + [self.image] + self.command

    def create_kwargs(self, api: Any) -> Dict[str, Any]:
        """Arguments of ``APIClient.create_container``."""
        host = api.create_host_config(
            binds=self.binds or None, devices=self.devices or None,
            device_requests=[DeviceRequest(**r) for r in self.device_requests] or None,
            group_add=self.group_add or None, cap_add=self.cap_add or None,
            security_opt=self.security_opt or None,
            ulimits=[Ulimit(**u) for u in self.ulimits] or None,
            tmpfs=self.tmpfs or None, extra_hosts=self.extra_hosts or None,
            shm_size=self.shm_size, mem_limit=self.mem_limit, ipc_mode=self.ipc_mode,
            network_mode=self.network_mode, privileged=self.privileged,
            cpuset_cpus=self.cpuset_cpus, log_config=LOG_CONFIG)
        return dict(image=self.image, command=self.command, name=self.name,
                    working_dir=self.working_dir, environment=self.environment,
                    labels=self.labels, entrypoint=self.entrypoint, user=self.user or "",
                    hostname=self.hostname, host_config=host, detach=True)


@dataclass
class RunPlan:
    """What :func:`execute` will do for one model, or why it will not run."""

    model: Dict[str, Any]
    image: str
    container_name: str
    log_file: str
    base_row: Dict[str, Any]
    timeout: Optional[int] = None
    spec: Optional[ContainerSpec] = None
    script_dir: Optional[str] = None
    run_dir: str = posixpath.join(WORKSPACE, RUN_DIR_NAME)
    workspace_is_default: bool = True
    multiple_results: Optional[str] = None
    errors: ErrorScan = field(default_factory=ErrorScan)
    skip_reason: Optional[str] = None
    fail_reason: Optional[str] = None
    keep_alive: bool = False
    pull_ref: Optional[str] = None
    pull_digest: Optional[str] = None
    expected_id: Optional[str] = None  # the image id the build recorded (manifest image_id)
    secrets: List[str] = field(default_factory=list)
    mad_dir: str = "."
    hooks: Hooks = field(default_factory=Hooks)  # pre/post scripts, tools, encapsulate_script
    repo: Optional[RepoPlan] = None  # the model's url: cloned as the run directory


def sanitize(name: str) -> str:
    """A model name made safe for container and file names."""
    return re.sub(r"[^a-z0-9_.-]+", "-", name.lower()).strip("-.") or "model"


def container_name(model_name: str) -> str:
    return f"madengine-{sanitize(model_name)[:40]}-{secrets.token_hex(3)}"


def log_file_name(model_name: str, image: str, build: Dict[str, Any]) -> str:
    """``<model>_<dockerfile>.run.live.log``, the dockerfile part as the build log has it."""
    model_part = model_name.replace("/", "_")
    dockerfile = build.get("dockerfile") or ""
    if dockerfile:
        part = posixpath.basename(str(dockerfile))
        part = part[:-len(".Dockerfile")] if part.endswith(".Dockerfile") else part
    else:
        ref = image.split("@", 1)[0].rsplit("/", 1)[-1]
        name, _sep, tag = ref.partition(":")
        part = tag if tag.startswith("ci-") else name
        part = part[3:] if part.startswith("ci-") else part
        prefix = model_part.lower() + "_"
        part = part[len(prefix):] if part.startswith(prefix) else part
    return f"{model_part}_{re.sub(r'[^A-Za-z0-9_.-]', '_', part)}.run.live.log"


def resolve_timeout(model: Dict[str, Any], context: Dict[str, Any],
                    override: Optional[int]) -> Optional[int]:
    """Seconds, or ``None`` for no limit: the override (CLI), else context, else model."""
    for value, where in ((override, "timeout"), (context.get("timeout"), "context timeout"),
                         (model.get("timeout"), f"model {model.get('name')} timeout")):
        if value is None or value == "":
            continue
        try:
            seconds = int(value)
        except (TypeError, ValueError):
            raise InvalidInputError(f"{where} must be a whole number of seconds, got {value!r}",
                                    fix="Use 0 for no limit") from None
        if seconds < 0 and where == "timeout":
            continue  # the CLI's "not given"
        if seconds < 0:
            raise InvalidInputError(f"{where} must be 0 or more, got {seconds}")
        return seconds or None
    return DEFAULT_TIMEOUT


def arch_matches(skip: str, arch: str) -> bool:
    """skip_gpu_arch entry vs the node: ``gfx90a`` ~ ``gfx90a:sramecc+``, ``A100`` ~ ``NVIDIA A100-SXM4``."""
    skip, arch = skip.strip().lower(), arch.strip().lower()
    if not skip or not arch:
        return False
    tokens = set(re.split(r"[\s:_-]+", arch))
    return skip == arch or skip == arch.split(":")[0] or skip in tokens


def script_command(scripts: str, args: str, where: str) -> Tuple[str, List[str]]:
    """(folder to copy, argv in the run directory). Args are split like a shell would."""
    try:
        extra = shlex.split(args or "")
    except ValueError as exc:
        raise InvalidInputError(f"cannot split args {args!r}: {exc}", where,
                                "Check the quotes in the model's args") from None
    scripts = scripts.rstrip("/")
    if scripts.endswith(".sh"):
        return posixpath.dirname(scripts), ["bash", posixpath.basename(scripts)] + extra
    if scripts.endswith(".py"):
        return posixpath.dirname(scripts), ["python3", posixpath.basename(scripts)] + extra
    return scripts, ["bash", "run.sh"] + extra


def _multi_node_runner(distributed: Dict[str, Any], n_gpus: int) -> Optional[str]:
    launcher = str(distributed.get("launcher") or "torchrun")
    if launcher != "torchrun":
        return None
    nproc = int(distributed.get("nproc_per_node") or max(n_gpus, 1))
    nnodes = int(distributed.get("nnodes") or 1)
    if nnodes <= 1:
        return f"torchrun --standalone --nproc_per_node={nproc}"
    return ("torchrun --nnodes={} --nproc_per_node={} --node_rank={} --master_addr={} "
            "--master_port={}").format(nnodes, nproc, int(distributed.get("node_rank") or 0),
                                       distributed.get("master_addr") or "localhost",
                                       int(distributed.get("master_port") or 29500))


def _base_row(model: Dict[str, Any], image: str, build: Dict[str, Any], context: Dict[str, Any],
              arch: str, args: str, n_gpus: str) -> Dict[str, Any]:
    distributed = context.get("distributed") or {}
    tags = model.get("tags") or []
    return {
        "model": model["name"], "n_gpus": n_gpus,
        "nnodes": str(distributed.get("nnodes") or 1),
        "gpus_per_node": str(context.get("gpus_per_node") or n_gpus),
        "training_precision": model.get("training_precision") or "",
        "pipeline": os.environ.get("pipeline", ""), "args": args,
        "tags": ",".join(tags) if isinstance(tags, list) else str(tags),
        "docker_file": build.get("dockerfile") or "", "base_docker": build.get("base_docker") or "",
        "docker_sha": build.get("docker_sha") or "", "docker_image": image,
        "git_commit": "", "machine_name": socket.gethostname(), "deployment_type": "local",
        "launcher": distributed.get("launcher") or "", "gpu_architecture": arch,
        "build_duration": build.get("build_duration", ""),
        "dataname": model.get("data") or "",
        "build_number": os.environ.get("BUILD_NUMBER", "0"),
        "additional_docker_run_options": model.get("additional_docker_run_options") or "",
    }


def plan_run(mad_dir: str, model: Dict[str, Any], image: str, build: Optional[Dict[str, Any]],
             context: Optional[Dict[str, Any]], gpu: Optional[Dict[str, Any]], output_dir: str,
             timeout: Optional[int] = None, keep_alive: bool = False,
             data: Optional[Dict[str, Any]] = None,
             credentials: Optional[Dict[str, Dict[str, str]]] = None) -> RunPlan:
    """Decide how ``model`` runs here. Raises :class:`InvalidInputError` on bad input.

    ``gpu`` is the ``madengine_gpu`` fact (``_gpu.gather_gpu_facts``); ``credentials`` the
    loaded credential.json (the model's ``cred`` entry becomes ``<CRED>_<KEY>`` variables).
    """
    build, context, gpu, data = build or {}, context or {}, gpu or {}, data or {}
    name = model.get("name")
    if not name:
        raise InvalidInputError("the model has no name", "mad_run model")
    where = f"model {name}"
    args = str(context["model_args"]) if context.get("model_args") else str(model.get("args") or "")
    build_args = context.get("docker_build_arg") or {}
    arch = str(gpu.get("architecture") or build_args.get("MAD_SYSTEM_GPU_ARCHITECTURE") or "")
    raw_n = str(model.get("n_gpus")) if model.get("n_gpus") not in (None, "") else "1"
    plan = RunPlan(model=model, image=image, container_name=container_name(name),
                   log_file=str(Path(output_dir) / log_file_name(name, image, build)),
                   base_row=_base_row(model, image, build, context, arch, args, raw_n),
                   timeout=resolve_timeout(model, context, timeout), keep_alive=keep_alive,
                   multiple_results=model.get("multiple_results") or None,
                   errors=error_scan_config(context, model),
                   pull_ref=build.get("registry_image") or None,
                   pull_digest=build.get("registry_digest") or None,
                   expected_id=build.get("image_id") or None, mad_dir=mad_dir,
                   hooks=plan_hooks(mad_dir, context))

    for skip in str(model.get("skip_gpu_arch") or "").split(","):
        if arch_matches(skip, arch):
            plan.skip_reason = f"skip_gpu_arch lists {skip.strip()} (this node: {arch})"
            return plan
    chosen, why_not = select_devices(gpu, raw_n)
    if why_not:
        plan.skip_reason = why_not
        return plan
    plan.base_row["n_gpus"] = str(len(chosen))
    if not context.get("gpus_per_node"):
        plan.base_row["gpus_per_node"] = str(len(chosen))

    opts = parse_run_options(str(model.get("additional_docker_run_options") or ""),
                             f"additional_docker_run_options of {where}")
    cred_env: Dict[str, str] = {}
    if model.get("cred"):
        cred_env = build_args_for_model(model, credentials or {}, "credential.json")
        plan.secrets = secret_values({"cred": {k.split("_", 1)[-1].lower(): v
                                               for k, v in cred_env.items()}})
    plan.repo = plan_repo(model, credentials, where)
    if plan.repo is not None:
        plan.secrets = sorted(set(plan.secrets + plan.repo.secrets), key=len, reverse=True)
    script_dir, argv = script_command(str(model.get("scripts") or ""), args, where)
    argv = plan.hooks.wrapper + argv  # tool cmds and encapsulate_script, outermost first
    if not model.get("scripts"):
        plan.fail_reason = f"model {name} has no scripts to run"
    else:
        target = Path(mad_dir) / str(model["scripts"])
        if target.is_dir():
            target = target / "run.sh"
        if not target.is_file():
            plan.fail_reason = (f"script {target} not found (scripts {model['scripts']!r} "
                                f"of {where}); check the path in models.json")
        plan.script_dir = str(Path(mad_dir) / script_dir)
    workspace = opts.working_dir or WORKSPACE
    if not workspace.startswith("/"):
        raise InvalidInputError(f"-w/--workdir {workspace!r} must be an absolute path", where)
    plan.workspace_is_default = opts.working_dir is None
    # as upstream: a cloned repository is the run directory, under its own name
    plan.run_dir = posixpath.join(workspace, plan.repo.name if plan.repo else RUN_DIR_NAME)
    plan.spec = _container_spec(plan, opts, argv, context, gpu, arch, chosen, data, cred_env)
    return plan


def _vendor(gpu: Dict[str, Any], context: Dict[str, Any]) -> str:
    vendor = str(gpu.get("vendor") or "").upper()
    if vendor in ("AMD", "NVIDIA"):
        return vendor
    return str(context.get("gpu_vendor") or vendor or "NONE").upper()


def _container_spec(plan: RunPlan, opts: RunOptions, argv: List[str], context: Dict[str, Any],
                    gpu: Dict[str, Any], arch: str, chosen: List[str], data: Dict[str, Any],
                    cred_env: Dict[str, str]) -> ContainerSpec:
    model, name = plan.model, plan.model["name"]
    env: Dict[str, str] = {
        "MAD_MODEL_NAME": name, "MAD_GPU_VENDOR": _vendor(gpu, context),
        "MAD_SYSTEM_GPU_ARCHITECTURE": arch,
        "MAD_SYSTEM_NGPUS": str(gpu.get("total_count", gpu.get("count")) or 0),
        "MAD_RUNTIME_NGPUS": str(len(chosen)),
        "MAD_GUEST_OS": str(context.get("guest_os") or "UBUNTU"),
        "JENKINS_BUILD_NUMBER": os.environ.get("BUILD_NUMBER", "0"),
        "PYTHONUNBUFFERED": "1",  # no tty: keep Python output live and whole at a kill
    }
    runner = _multi_node_runner(context.get("distributed") or {}, len(chosen))
    if runner:
        env["MAD_MULTI_NODE_RUNNER"] = runner
    if plan.multiple_results:
        env["MAD_OUTPUT_CSV"] = plan.multiple_results
    binds: List[str] = []
    if model.get("data"):
        env["MAD_DATANAME"] = str(model["data"])
        env["MAD_DATAHOME"] = str(data.get("home") or "/data")
        if data.get("path"):
            mode = "rw" if data.get("readwrite") else "ro"
            binds.append(f"{data['path']}:{env['MAD_DATAHOME']}:{mode}")
        env.update({str(k): str(v) for k, v in (data.get("env") or {}).items()})
    env.update(visibility_env(gpu, chosen))
    env.update(cred_env)
    env.update(plan.hooks.env)  # as upstream: after the data and cred variables, before docker_env_vars
    env.update({str(k): str(v) for k, v in (context.get("docker_env_vars") or {}).items()})
    env.update(opts.environment)
    binds += [f"{host}:{cont}" for cont, host in (context.get("docker_mounts") or {}).items()]
    labels = {LABEL_RUN: "1", LABEL_MODEL: name}
    labels.update(opts.labels)
    gpu_opts = docker_device_options(gpu, chosen)
    return ContainerSpec(
        image=plan.image, name=plan.container_name, command=argv, working_dir=plan.run_dir,
        environment=env, labels=labels, entrypoint=opts.entrypoint, user=opts.user,
        hostname=opts.hostname, binds=binds + opts.binds,
        devices=list(gpu_opts.get("devices") or []) + opts.devices,
        device_requests=list(gpu_opts.get("device_requests") or []),
        group_add=list(gpu_opts.get("group_add") or []) + opts.group_add,
        cap_add=["SYS_PTRACE"] + opts.cap_add,
        security_opt=["seccomp=unconfined"] + opts.security_opt,
        ulimits=opts.ulimits, tmpfs=opts.tmpfs, extra_hosts=opts.extra_hosts,
        shm_size=opts.shm_size, mem_limit=opts.mem_limit,
        # upstream runs with the host's IPC namespace and network; a model's own
        # --shm-size only means something with a private IPC namespace
        ipc_mode=opts.ipc_mode or (None if opts.shm_size else "host"),
        network_mode=opts.network_mode or "host", privileged=opts.privileged,
        cpuset_cpus=opts.cpuset_cpus or (str(context["docker_cpus"]).replace(" ", "")
                                         if context.get("docker_cpus") else None))


# --------------------------------------------------------------------------- engine

@dataclass
class Outcome:
    """What happened when the container ran (or why it could not)."""

    ran: bool = False
    exit_code: Optional[int] = None
    timed_out: bool = False
    test_duration: float = 0.0
    image_digest: str = ""
    failure: Optional[str] = None
    csv_text: Optional[str] = None
    csv_problem: Optional[str] = None
    scanner: LogScanner = field(default_factory=LogScanner)
    started: bool = False
    kept: bool = False
    post_failures: List[str] = field(default_factory=list)  # post_scripts that exited non-zero
    timeout_step: Optional[str] = None  # the pre/post script the timeout stopped, if not the model
    tree: Optional[str] = None  # the model's cloned repository on this node


def _owned(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mode |= 0o777 if info.isdir() else 0o666
    return info


def _tar_scripts(script_dir: str, run_dir_arc: str,
                 extra: Sequence[Tuple[str, str]] = (), tree: Optional[str] = None) -> IO[bytes]:
    """The script folder as a tar (built in memory, spilling to disk when large).

    Links are followed and everything made read-write for all, as ``cp -L`` + ``chmod
    a+rw`` do upstream; missing directories on the way are created, read-write for all
    too. ``extra`` holds (host path, path in the archive) pairs: the hooks' package files.
    ``tree`` (a cloned repository) comes first, its links kept as links; the scripts come
    after it, so the engine's extraction lets them replace its files and merge into its
    folders, as upstream's ``cp -R <scripts>/. <repo>/``.
    """
    spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # type: ignore
    now = time.time()
    made: set = set()

    with tarfile.open(fileobj=spool, mode="w", dereference=True) as tar:
        def folder(arc: str) -> None:
            if not arc or arc in made:
                return
            folder(posixpath.dirname(arc))
            info = tarfile.TarInfo(arc)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o777, now
            tar.addfile(_owned(info))
            made.add(arc)

        folder(run_dir_arc)
        for source, arcname in extra:
            folder(posixpath.dirname(arcname))
            tar.add(source, arcname=arcname, filter=_owned)
        if tree is not None:
            tar.dereference = False  # a link in the repository must not copy a node's file
            for entry in sorted(os.listdir(tree)):
                tar.add(os.path.join(tree, entry), arcname=f"{run_dir_arc}/{entry}", filter=_owned)
            tar.dereference = True
        for entry in sorted(os.listdir(script_dir)):
            tar.add(os.path.join(script_dir, entry), arcname=f"{run_dir_arc}/{entry}",
                    filter=_owned)
    spool.seek(0)
    return spool


def _copy_scripts(api: Any, cid: str, plan: RunPlan, tree: Optional[str] = None) -> None:
    """One ``put_archive`` into the deepest existing directory above the run directory:
    the model's scripts into the run directory, the hooks' package files (scripts/common,
    pre/post scripts) into the workspace above it, at their package paths."""
    run_dir = plan.run_dir
    candidates = ["/"] if plan.workspace_is_default else []
    if not candidates:
        path = posixpath.dirname(run_dir)
        while path != "/":
            candidates.append(path)
            path = posixpath.dirname(path)
        candidates.append("/")
    for target in candidates:
        rel = posixpath.relpath(run_dir, target)
        workspace = posixpath.dirname(rel)
        extra = [(os.path.join(plan.mad_dir, f), posixpath.join(workspace, f) if workspace else f)
                 for f in plan.hooks.files]
        try:
            archive = _tar_scripts(str(plan.script_dir), rel, extra, tree)
        except OSError as exc:  # a broken link, a file we may not read
            raise RunError(f"cannot copy the scripts of {plan.model['name']}: {exc}") from None
        try:
            api.put_archive(cid, target, archive)
            return
        except NotFound:
            continue
        finally:
            archive.close()


def _put_step_script(api: Any, cid: str, plan: RunPlan, step: Step) -> None:
    """The pre/post script into the run directory just before it runs, as upstream's
    ``cp`` does (a pre and a post script may share a name, e.g. trace.sh)."""
    buf = io.BytesIO()
    try:
        with tarfile.open(fileobj=buf, mode="w", dereference=True) as tar:
            tar.add(os.path.join(plan.mad_dir, step.path), arcname=step.name, filter=_owned)
    except OSError as exc:
        raise RunError(f"cannot copy {step.kind} {step.path}: {exc}") from None
    buf.seek(0)
    api.put_archive(cid, plan.run_dir, buf)


def _raw_socket(sock: Any) -> Any:
    """Streams must survive long silences: no read timeout on the attach socket."""
    for s in (sock, getattr(sock, "_sock", None)):
        if s is not None and hasattr(s, "settimeout"):
            s.settimeout(None)
    return sock


def _stream(sock: Any, log: IO[bytes], echo: Optional[IO[bytes]], scanner: LogScanner) -> None:
    """Copy the output to the log, the scanner and ``echo``; nothing is kept in memory."""
    try:
        for _stream_id, data in frames_iter(sock, tty=False):
            log.write(data)
            log.flush()  # a follower (--live-output) sees each line as it comes
            scanner.feed(data)
            if echo is not None:
                try:
                    echo.write(data)
                    echo.flush()
                except OSError:
                    echo = None
    finally:
        try:
            sock.close()
        except OSError:
            pass


def _read_csv(api: Any, cid: str, plan: RunPlan) -> Tuple[Optional[str], Optional[str]]:
    """(text, problem) of the multiple_results file, looked up in the run directory and,
    as upstream wrote it there, the workspace."""
    name = str(plan.multiple_results)
    paths = [name] if name.startswith("/") else [posixpath.join(plan.run_dir, name),
                                                 posixpath.join(posixpath.dirname(plan.run_dir), name)]
    for path in paths:
        try:
            stream, stat = api.get_archive(cid, path)
        except NotFound:
            continue
        if stat.get("size", 0) > MAX_CSV_BYTES:
            return None, f"multiple_results file {name} is larger than {MAX_CSV_BYTES >> 20} MiB"
        buf = io.BytesIO()
        for chunk in stream:
            buf.write(chunk)
        buf.seek(0)
        with tarfile.open(fileobj=buf) as tar:
            member = next((m for m in tar.getmembers() if m.isfile()), None)
            if member is None:
                return None, f"multiple_results {name} is not a file"
            handle = tar.extractfile(member)
            return (handle.read().decode("utf-8", errors="replace") if handle else ""), None
    return None, f"multiple_results file {name} was not written by the model"


def _image_digest(client: Any, plan: RunPlan, auth: Optional[Dict[str, str]]) -> str:
    """The image's digest (or id). When the image is not local and the build pushed it,
    pull it by its recorded digest and run that. Raises ``RunError`` with the reason.

    A local tag that now names another image than the build recorded (rebuilt, retagged)
    is never run in its place: the recorded image is pulled when the build pushed it,
    otherwise the run fails saying so.
    """
    try:
        info = client.api.inspect_image(plan.image)
    except ImageNotFound:
        info = None
    if info is not None and plan.expected_id and info.get("Id") != plan.expected_id:
        if not plan.pull_ref:
            raise RunError(
                f"local image {plan.image} is {info.get('Id')}, not the {plan.expected_id} the "
                "manifest recorded (it was rebuilt or retagged since the build); rebuild with "
                "`madengine build` to get a manifest of the current images")
        info = None
    if info is None:
        if not plan.pull_ref:
            raise RunError(_NO_IMAGE.format(plan.image))
        digest = pull_image(client, plan.pull_ref, plan.pull_digest, auth)[1]
        plan.image = plan.pull_ref
        if plan.spec is not None:
            plan.spec.image = plan.pull_ref
        return str(digest or "")
    digests = info.get("RepoDigests") or []
    if plan.pull_ref:  # the digest in the registry the build pushed to, when it is one of several
        repository = split_image_ref(plan.pull_ref)[0]
        digests = [d for d in digests if d.split("@", 1)[0] == repository] or digests
    return digests[0].split("@", 1)[-1] if digests else str(info.get("Id", ""))


def execute(plan: RunPlan, client: Any, echo: Optional[IO[bytes]] = None,
            registry_auth: Optional[Dict[str, str]] = None) -> Outcome:
    """Run the planned container; the container is removed unless kept alive."""
    if plan.spec is None:
        raise RunError(f"model {plan.model.get('name')} has nothing to run")
    api = client.api
    out = Outcome(scanner=LogScanner(errors=plan.errors))
    Path(plan.log_file).parent.mkdir(parents=True, exist_ok=True)
    with open(plan.log_file, "wb") as log:
        cid = None
        clone_parent = None
        try:
            out.image_digest = _image_digest(client, plan, registry_auth)
            # one deadline from here: the clone is part of the run
            deadline = time.monotonic() + plan.timeout if plan.timeout else None
            if plan.repo is not None:
                clone_parent = tempfile.mkdtemp(prefix=".madengine-repo-", dir=str(Path(plan.log_file).parent))
                _clone(plan, clone_parent, deadline, log, out)
            if not out.timed_out:
                kwargs = plan.spec.create_kwargs(api)
                stepwise = plan.keep_alive or plan.hooks.has_steps
                if stepwise:  # the model (and its pre/post scripts) run as execs in a container that stays up
                    kwargs["entrypoint"], kwargs["command"] = ["sleep", "infinity"], None
                cid = api.create_container(**kwargs)["Id"]
                _copy_scripts(api, cid, plan, out.tree)
                log.write(f"madengine: {plan.model['name']} in container {plan.container_name} "
                          f"(image {plan.image})\n".encode())
                log.flush()
                # at least a moment, so a deadline already past still kills at once
                limit = None if deadline is None else max(deadline - time.monotonic(), 0.01)
                if stepwise:
                    _run_steps(api, cid, plan, log, echo, out, limit)
                else:
                    _run_main(api, cid, plan, log, echo, out, limit)
                out.ran = True
            if plan.timeout and out.timed_out:
                during = f" during {out.timeout_step}" if out.timeout_step else ""
                log.write(f"\nmadengine: killed at the timeout after {plan.timeout} s{during}\n".encode())
            for problem in out.post_failures:
                log.write(f"madengine: {problem}\n".encode())
            if plan.multiple_results and out.exit_code == 0 and not out.timed_out and not out.failure:
                out.csv_text, out.csv_problem = _read_csv(api, cid, plan)
        except RunError as exc:
            out.failure = exc.message
        except APIError as exc:
            out.failure = f"the engine refused the run: {engine_error_text(exc)}"
        except (DockerException, OSError) as exc:  # the connection broke (requests' errors are OSErrors)
            out.failure = f"lost the engine during the run: {exc}"
        finally:
            out.scanner.finish()
            if clone_parent is not None:  # the container holds its own copy, even a kept one
                shutil.rmtree(clone_parent, ignore_errors=True)
            out.kept = cid is not None and plan.keep_alive and out.started
            if cid is not None and not out.kept:
                try:
                    api.remove_container(cid, force=True)
                except (DockerException, OSError):
                    pass
        if out.failure:
            log.write(f"madengine: {out.failure}\n".encode())
    return out


def _clone(plan: RunPlan, parent: str, deadline: Optional[float], log: IO[bytes], out: Outcome) -> None:
    """Clone the model's url on this node; its commit goes into the row. Sets the timeout
    on ``out`` when the deadline passes; raises ``RunError`` when git fails."""
    repo = plan.repo
    if repo is None:
        return
    log.write(f"madengine: cloning {repo.url} as {plan.run_dir}\n".encode())
    log.flush()
    try:
        out.tree, commit, output = clone(repo, parent, deadline, plan.secrets)
    except CloneTimeout as exc:
        out.timed_out = True
        out.timeout_step = exc.step
        return
    if output.strip():
        log.write(output.encode() + (b"" if output.endswith("\n") else b"\n"))
    log.write(f"madengine: {repo.name} at commit {commit}\n".encode())
    plan.base_row["git_commit"] = commit


class _Deadline:
    """Calls ``kill`` once the timeout passes; knows whether it did."""

    def __init__(self, seconds: Optional[float], kill: Any) -> None:
        self.fired = False
        self.triggered = False  # set before the kill: what follows must not start
        self._kill = kill
        self._timer = threading.Timer(seconds, self._fire) if seconds else None
        if self._timer is not None:
            self._timer.daemon = True

    def _fire(self) -> None:
        self.triggered = True
        try:
            self._kill()
            self.fired = True
        except Exception:  # noqa: BLE001 - it exited just now: not a timeout
            pass

    def __enter__(self) -> "_Deadline":
        if self._timer is not None:
            self._timer.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer.join()  # a kill under way finishes (and is counted) first


def _run_main(api: Any, cid: str, plan: RunPlan, log: IO[bytes], echo: Optional[IO[bytes]],
              out: Outcome, limit: Optional[float] = None) -> None:
    sock = _raw_socket(api.attach_socket(cid, params={"stdout": 1, "stderr": 1, "stream": 1}))
    start = time.monotonic()
    api.start(cid)
    out.started = True
    with _Deadline(limit, lambda: api.kill(cid)) as deadline:
        _stream(sock, log, echo, out.scanner)
        out.exit_code = int(api.wait(cid, timeout=60).get("StatusCode", -1))
        out.test_duration = time.monotonic() - start
    out.timed_out = deadline.fired


def _exec(api: Any, cid: str, plan: RunPlan, argv: List[str], log: IO[bytes],
          echo: Optional[IO[bytes]], out: Outcome, deadline: _Deadline) -> Optional[int]:
    """Run ``argv`` in the run directory, its output into the log; its exit code (None:
    stopped by the deadline before it could start or report)."""
    spec = plan.spec
    try:
        exec_id = api.exec_create(cid, argv, workdir=plan.run_dir,
                                  user=(spec.user if spec else None) or "")["Id"]
        sock = _raw_socket(api.exec_start(exec_id, socket=True))
    except APIError:
        if deadline.triggered:  # the container was killed under us
            return None
        raise
    _stream(sock, log, echo, out.scanner)
    try:
        code = api.exec_inspect(exec_id).get("ExitCode")
    except APIError:
        if deadline.triggered:
            return None
        raise
    return int(code) if code is not None else None


def _run_step(api: Any, cid: str, plan: RunPlan, step: Step, log: IO[bytes],
              echo: Optional[IO[bytes]], out: Outcome, deadline: _Deadline) -> Optional[int]:
    log.write(f"madengine: {step.describe()}\n".encode())
    log.flush()
    try:
        _put_step_script(api, cid, plan, step)
    except APIError:
        if deadline.triggered:
            return None
        raise
    return _exec(api, cid, plan, step.argv, log, echo, out, deadline)


def _run_steps(api: Any, cid: str, plan: RunPlan, log: IO[bytes], echo: Optional[IO[bytes]],
               out: Outcome, limit: Optional[float] = None) -> None:
    """pre_scripts, the model, post_scripts: one exec each, under one deadline.

    A failing pre_script stops the run before the model. post_scripts run after the
    model whatever its exit status (they clean up after tools) and each runs even when
    another failed; only the timeout stops them.
    """
    spec = plan.spec
    if spec is None:
        raise RunError("nothing to run")
    api.start(cid)
    out.started = True

    def kill_processes() -> None:
        # every process but the container's init, so the container stays for a look inside
        killer = api.exec_create(cid, ["sh", "-c", "kill -9 -1"])["Id"]
        api.exec_start(killer)

    kill = kill_processes if plan.keep_alive else (lambda: api.kill(cid))
    with _Deadline(limit, kill) as deadline:
        model_runs = True
        for step in plan.hooks.pre:
            code = _run_step(api, cid, plan, step, log, echo, out, deadline)
            if deadline.triggered:
                out.timeout_step, model_runs = step.describe(), False
                break
            if code != 0:
                out.failure = (f"{step.describe()} (from {step.origin}) exited with {code}; "
                               "the model did not run")
                model_runs = False
                break
        if model_runs:
            argv = (spec.entrypoint or []) + spec.command
            if plan.hooks.has_steps:
                log.write(f"madengine: model: {shlex.join(argv)}\n".encode())
                log.flush()
            start = time.monotonic()
            out.exit_code = _exec(api, cid, plan, argv, log, echo, out, deadline)
            out.test_duration = time.monotonic() - start
            for step in plan.hooks.post if not deadline.triggered else []:
                code = _run_step(api, cid, plan, step, log, echo, out, deadline)
                if deadline.triggered:
                    out.timeout_step = step.describe()
                    break
                if code != 0:
                    out.post_failures.append(f"{step.describe()} (from {step.origin}) exited with {code}")
    out.timed_out = deadline.fired


# --------------------------------------------------------------------------- record

def build_records(plan: RunPlan, out: Optional[Outcome]) -> Tuple[List[Dict[str, Any]], str, str]:
    """(records, status, reason) from a plan and what happened."""
    records, status, reason = _records(plan, out)
    if out is not None and out.post_failures:
        # a failed cleanup fails the run, as upstream, but the model's own verdict stays in the reason
        post = "; ".join(out.post_failures)
        for record in records:
            own = record.get("reason") or ""
            record.update(status=FAILURE, reason=f"{own}; {post}" if own else
                          f"{post} (the model itself succeeded)")
        status, reason = summarize_rows(records)
    return records, status, reason


def _records(plan: RunPlan, out: Optional[Outcome]) -> Tuple[List[Dict[str, Any]], str, str]:
    base = dict(plan.base_row, reason="", image_digest=out.image_digest if out else "")
    if plan.skip_reason:
        return [perf_row(base, status=SKIPPED, reason=plan.skip_reason)], SKIPPED, plan.skip_reason
    if plan.fail_reason or out is None or out.failure:
        reason = plan.fail_reason or (out.failure if out else "") or "not run"
        return [perf_row(base, status=FAILURE, reason=reason)], FAILURE, reason
    scanner = out.scanner
    base["test_duration"] = round(out.test_duration, 3)
    has_perf = scanner.performance is not None and to_number(scanner.performance) is not None
    status, reason = run_status(out.exit_code, out.timed_out, plan.timeout,
                                has_perf or bool(plan.multiple_results),
                                scanner.error_pattern, scanner.error_line)
    if out.timed_out and out.timeout_step:
        reason += f" (during {out.timeout_step})"
    if status != SUCCESS or not plan.multiple_results:
        values = {"performance": scanner.performance or "", "metric": scanner.metric or ""}
        return [perf_row(base, status=status, reason=reason, **values)], status, reason
    if out.csv_text is None:
        reason = out.csv_problem or "multiple_results missing"
        return [perf_row(base, status=FAILURE, reason=reason)], FAILURE, reason
    try:
        rows = parse_multiple_results(out.csv_text, str(plan.multiple_results))
    except InvalidInputError as exc:
        return [perf_row(base, status=FAILURE, reason=exc.message)], FAILURE, exc.message
    records = []
    for row in rows:
        records.append(perf_row(
            {**base, **row.extras}, model=f"{plan.model['name']}_{row.suffix}",
            performance=row.performance_text, metric=row.metric,
            status=FAILURE if row.problem else SUCCESS, reason=row.problem or ""))
    status, reason = summarize_rows(records)
    return records, status, reason


def enter_command(name: str) -> str:
    return (f"container {name} was kept: enter it with `docker exec -it {name} bash`; "
            f"remove it with `docker rm -f {name}`")


def registry_login(build: Dict[str, Any], credentials: Dict[str, Dict[str, str]],
                   username: Optional[str] = None,
                   password: Optional[str] = None) -> Optional[Dict[str, str]]:
    """The SDK auth config for pulling the build's registry image (None: anonymous)."""
    registry = str(build.get("registry") or "")
    if not build.get("registry_image") or not registry:
        return None
    credential = ({"username": username, "password": password or ""} if username
                  else credential_for_registry(credentials, registry))
    return auth_config(credential, registry)


def run_model(mad_dir: str, model: Dict[str, Any], image: str,
              build: Optional[Dict[str, Any]] = None, context: Optional[Dict[str, Any]] = None,
              gpu: Optional[Dict[str, Any]] = None, output_dir: str = ".",
              timeout: Optional[int] = None, keep_alive: bool = False,
              echo: Optional[IO[bytes]] = None, docker_host: Optional[str] = None,
              data: Optional[Dict[str, Any]] = None, credential_file: Optional[str] = None,
              registry_username: Optional[str] = None, registry_password: Optional[str] = None,
              check_mode: bool = False, client: Any = None) -> Dict[str, Any]:
    """Plan and run one model; the run record of docs/contracts.md plus details.

    A model that cannot run (skipped, script or image missing, refused by the engine,
    failed) still returns normally, with its row; bad input raises InvalidInputError and
    an engine that does not answer raises EngineError.
    """
    build = build or {}
    if credential_file is None:
        credential_file = str(Path(mad_dir) / "credential.json")
    credentials = load_credentials(credential_file) if model.get("cred") or \
        build.get("registry_image") else {}
    plan = plan_run(mad_dir, model, image, build, context, gpu, output_dir, timeout, keep_alive,
                    data, credentials)
    hidden = plan.secrets + ([registry_password] if registry_password else [])
    result: Dict[str, Any] = {
        "changed": False, "container_name": plan.container_name,
        "log_file": str(Path(plan.log_file).resolve()), "timeout": plan.timeout,
        "docker_run": [scrub(a, hidden) for a in plan.spec.docker_argv()] if plan.spec else [],
        "container_exit_code": None, "test_duration": 0.0, "image_digest": "",
    }
    would_run = not plan.skip_reason and not plan.fail_reason
    if check_mode:
        status = SKIPPED if plan.skip_reason else FAILURE if plan.fail_reason else ""
        result.update(changed=would_run, records=[], status=status,
                      reason=plan.skip_reason or plan.fail_reason or "check mode: not run")
        return result
    out = None
    if would_run:
        engine = client or get_client(docker_host)
        auth = registry_login(build, credentials, registry_username, registry_password)
        out = _guarded(lambda: execute(plan, engine, echo, auth))
        result.update(changed=out.ran or out.kept, container_exit_code=out.exit_code,
                      test_duration=round(out.test_duration, 3), image_digest=out.image_digest)
        if out.kept:
            result["keep_alive_hint"] = enter_command(plan.container_name)
    else:
        Path(plan.log_file).parent.mkdir(parents=True, exist_ok=True)
        Path(plan.log_file).write_text(
            f"madengine: {plan.model['name']} not run: {plan.skip_reason or plan.fail_reason}\n")
    records, status, reason = build_records(plan, out)
    result.update(records=records, status=status, reason=scrub(reason, hidden))
    if status == SUCCESS and len(records) == 1:
        result.update(performance=records[0]["performance"], metric=records[0]["metric"])
    return result


def _guarded(action: Any) -> Any:
    """Run ``action`` with SIGTERM turned into an exception, so cleanup still happens."""
    if threading.current_thread() is not threading.main_thread():
        return action()

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(f"stopped by signal {signum}")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        return action()
    finally:
        signal.signal(signal.SIGTERM, previous)
