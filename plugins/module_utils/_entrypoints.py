# Copyright: (c) 2026, madengine maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What each module does with its parameters, in one place.

A module's argument spec (``SPECS``) and body (``ENTRYPOINTS``) are read the same way by the
module file, which Ansible runs on the target, and by the module's action plugin, which runs
the same body inside the controller's worker process when the target is the controller
itself (no interpreter to start, no payload to build). A body takes the validated
parameters and check mode and returns the module's result; a failure comes back as a
result with ``failed`` and ``msg`` (never as an exception), so both callers report it alike.
"""
from __future__ import annotations

import os
import secrets
import time
from typing import Callable

from ansible.module_utils.common.parameters import env_fallback

from ansible_collections.madengine.core.plugins.module_utils._errors import InvalidInputError, MadError

# How mad_build and mad_run reach the engine and log in to a registry.
_ENGINE_LOGIN = dict(
    credential_file=dict(type="path"),
    registry_username=dict(type="str"),
    registry_password=dict(type="str", no_log=True),
    docker_host=dict(type="str"),
)

SPECS: dict = {
    "gpu_facts": dict(
        argument_spec=dict(
            context=dict(type="raw", default={}),
            file_context=dict(type="raw"),
            context_file=dict(type="str"),
            timeout=dict(type="float", default=20),
            tool_dirs=dict(type="list", elements="path", fallback=(env_fallback, ["MADENGINE_GPU_TOOL_DIRS"])),
            sysfs_root=dict(type="path", default="/sys"),
            dev_root=dict(type="path", default="/dev"),
            node_name=dict(type="str"),
            expected_vendor=dict(type="str"),
            expected_count=dict(type="int"),
        ),
        supports_check_mode=True,
    ),
    "mad_discover": dict(
        argument_spec=dict(
            mad_dir=dict(type="path"),
            tags=dict(type="list", elements="str", default=[]),
            additional_context=dict(type="raw"),
            additional_context_file=dict(type="path"),
            manifest_file=dict(type="path"),
            nodes=dict(type="list", elements="str"),
            mode=dict(type="str", choices=["replicate", "distribute"], default="replicate"),
            node_gpus=dict(type="dict", default={}),
            resume=dict(type="bool", default=False),
            perf_csv=dict(type="path"),
            history_db=dict(type="path"),
        ),
        supports_check_mode=True,
    ),
    "mad_build": dict(
        argument_spec=dict(
            mad_dir=dict(type="path", required=True),
            models=dict(type="list", elements="dict", required=True),
            context=dict(type="dict", default={}),
            output_dir=dict(type="path"),
            registry=dict(type="str"),
            **_ENGINE_LOGIN,
            registry_repository=dict(type="str"),
            parallel=dict(type="int", default=0),
            clean_docker_cache=dict(type="bool", default=False),
            pull=dict(type="bool", default=False),
            gpu_architecture=dict(type="str"),
            manifest_file=dict(type="path"),
            previous_manifest=dict(type="dict"),
        ),
        required_by={"registry_password": "registry_username"},
        supports_check_mode=True,
    ),
    "mad_run": dict(
        argument_spec=dict(
            mad_dir=dict(type="path", required=True),
            model=dict(type="dict", required=True),
            image=dict(type="str", required=True),
            build=dict(type="dict", default={}),
            context=dict(type="dict", default={}),
            gpu=dict(type="dict", default={}),
            output_dir=dict(type="path", default="."),
            timeout=dict(type="int"),
            live_output=dict(type="bool", default=False),
            keep_alive=dict(type="bool", default=False),
            data=dict(type="dict"),
            fetch_log_to=dict(type="path"),
            **_ENGINE_LOGIN,
        ),
        required_by={"registry_password": "registry_username"},
        supports_check_mode=True,
    ),
    "perf_collect": dict(
        argument_spec=dict(
            records=dict(type="raw", default=[], aliases=["results"]),
            build_records=dict(type="raw", default=[], aliases=["failed_builds", "builds"]),
            plan=dict(type="list", elements="dict", default=[]),
            node_failures=dict(type="dict", default={}),
            output_dir=dict(type="path", default="."),
            perf_csv=dict(type="path", default="perf.csv"),
            perf_entry=dict(type="path", default="perf_entry.json"),
            summary_output=dict(type="path", default="run_summary.json"),
            history_db=dict(type="str", default="madengine_history.db"),
            html_report=dict(type="path"),
            context=dict(type="dict", default={}),
            started=dict(type="raw"),
            mode=dict(type="str", choices=["collect", "report"], default="collect"),
        ),
        supports_check_mode=True,
    ),
}

# The third-party library each body cannot do without (checked before the body runs).
REQUIRED_LIBRARY = {"mad_build": "docker", "mad_run": "docker"}


def missing_library(name: str) -> str | None:
    """Why the module cannot run in this interpreter (a library missing), or None."""
    library = REQUIRED_LIBRARY.get(name)
    if library == "docker":
        from ansible_collections.madengine.core.plugins.module_utils._engine import DOCKER_IMPORT_ERROR, HAS_DOCKER
        if not HAS_DOCKER:
            return (f"the Python library 'docker' (the Docker SDK for Python) is needed and cannot be imported "
                    f"({DOCKER_IMPORT_ERROR}). Install it on the node with `python3 -m pip install docker` "
                    f"or the package python3-docker")
    return None


def call(name: str, params: dict, check_mode: bool) -> dict:
    """Run module ``name``'s body; a MadError or a missing library becomes a failed result."""
    missing = missing_library(name)
    if missing:
        return {"failed": True, "msg": missing, "exit_code": 1, "error_kind": "engine"}
    try:
        return ENTRYPOINTS[name](params, check_mode)
    except MadError as err:
        return {"failed": True, **err.to_result()}


def _gpu_facts(p: dict, check_mode: bool) -> dict:
    from ansible_collections.madengine.core.plugins.module_utils._gpu import gather_gpu_facts, parse_context

    if p["context_file"] and p["file_context"] is None:
        raise InvalidInputError(f"the context file {p['context_file']} cannot be read",
                                fix="Check the path given to --additional-context-file")
    context = parse_context(p["file_context"], p["context_file"] or "the context file")
    context.update(parse_context(p["context"]))
    tool_dirs = [d for item in p["tool_dirs"] or [] for d in str(item).split(os.pathsep) if d] or None
    facts = gather_gpu_facts(context, tool_dirs=tool_dirs, sysfs_root=p["sysfs_root"], dev_root=p["dev_root"],
                             timeout=p["timeout"], node=p["node_name"],
                             expected={"vendor": p["expected_vendor"], "count": p["expected_count"]})
    return {"changed": False, "ansible_facts": {"madengine_gpu": facts}}


def _mad_discover(p: dict, check_mode: bool) -> dict:
    from ansible_collections.madengine.core.plugins.module_utils._discover import (
        discover, plan_from_manifest, summary_lines)
    from ansible_collections.madengine.core.plugins.module_utils._plan import plan_nodes

    if not p["manifest_file"]:
        found = discover(p["mad_dir"], p["tags"], p["additional_context"], p["additional_context_file"])
        return {"changed": False, "models": found["models"], "context": found["context"],
                "discover_warnings": found["warnings"], "warnings": list(found["warnings"]),
                "mad_dir": found["mad_dir"], "summary": summary_lines(found["models"])}
    plan = plan_from_manifest(p["manifest_file"], p["tags"], p["additional_context"],
                              p["additional_context_file"], p["mad_dir"])
    nodes = None
    if p["nodes"] is not None:
        nodes = plan_nodes(plan["runs"], p["nodes"], p["mode"], node_gpus=p["node_gpus"], resume=p["resume"],
                           perf_csv=p["perf_csv"], history_db=p["history_db"], mad_dir=plan["mad_dir"],
                           context=plan["context"], registry=plan["registry"])
        plan["runs"] = nodes.pop("runs")
    return {"changed": False, "runs": plan["runs"], "context": plan["context"], "mad_dir": plan["mad_dir"],
            "run_id": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(4),
            "started": time.time(),
            "failed_builds": plan["failed_builds"], "registry": plan["registry"],
            "discover_warnings": plan["warnings"], "warnings": list(plan["warnings"]),
            "summary": [f"{run['model'].get('name')} -> {run['image']}"
                        + (f" on {', '.join(run['nodes'])}" if nodes is not None else "")
                        for run in plan["runs"]],
            **(nodes or {})}


def read_previous_manifest(path: str) -> dict | None:
    """The manifest an earlier build wrote there, if it is one (anything else is replaced)."""
    from ansible_collections.madengine.core.plugins.module_utils._manifest import read_manifest

    try:
        return read_manifest(path) if os.path.exists(path) else None
    except MadError:
        return None


def _mad_build(p: dict, check_mode: bool) -> dict:
    from ansible_collections.madengine.core.plugins.module_utils._build import build_images
    from ansible_collections.madengine.core.plugins.module_utils._manifest import write_manifest

    previous = p["previous_manifest"]
    if previous is None and p["manifest_file"]:
        previous = read_previous_manifest(p["manifest_file"])
    outcome = build_images(
        p["mad_dir"], p["models"], p["context"], p["output_dir"], registry=p["registry"],
        credential_file=p["credential_file"], parallel=p["parallel"], clean_docker_cache=p["clean_docker_cache"],
        pull=p["pull"], docker_host=p["docker_host"], gpu_architecture=p["gpu_architecture"],
        check_mode=check_mode, registry_username=p["registry_username"], registry_password=p["registry_password"],
        registry_repository=p["registry_repository"], previous_manifest=previous)
    result = {"changed": outcome["changed"], "builds": outcome["builds"], "manifest": outcome["manifest"],
              "summary": outcome["manifest"]["summary"]}
    if p["manifest_file"] and not check_mode:
        try:
            result["manifest_file"] = write_manifest(outcome["manifest"], p["manifest_file"])
        except OSError as exc:
            return {**result, "failed": True, "exit_code": 1, "error_kind": "error",
                    "msg": f"cannot write the build manifest {p['manifest_file']}: {exc.strerror}"}
    if outcome["error"] is not None:
        return {**result, "failed": True, **outcome["error"].to_result()}
    return result


def _terminal(live_output: bool):
    """The terminal to echo to, unless ansible-runner owns it (then the log is followed)."""
    if not live_output or os.environ.get("AWX_ISOLATED_DATA_DIR"):
        return None
    try:
        return open("/dev/tty", "wb", buffering=0)  # pylint: disable=consider-using-with
    except OSError:
        return None


def _mad_run(p: dict, check_mode: bool) -> dict:
    from ansible_collections.madengine.core.plugins.module_utils._run import run_model

    echo = None if check_mode else _terminal(p["live_output"])
    try:
        result = run_model(
            p["mad_dir"], p["model"], p["image"], build=p["build"], context=p["context"], gpu=p["gpu"],
            output_dir=p["output_dir"], timeout=p["timeout"], keep_alive=p["keep_alive"], echo=echo,
            docker_host=p["docker_host"], data=p["data"], credential_file=p["credential_file"],
            registry_username=p["registry_username"], registry_password=p["registry_password"],
            check_mode=check_mode)
    finally:
        if echo is not None:
            echo.close()
    result["msg"] = f"{p['model'].get('name')}: {result['status'] or 'would run'}" + (
        f" ({result['reason']})" if result["reason"] else "")
    return result


def _perf_collect(p: dict, check_mode: bool) -> dict:
    from ansible_collections.madengine.core.plugins.module_utils._report import (
        HAS_JINJA2, JINJA2_IMPORT_ERROR, write_html_report)
    from ansible_collections.madengine.core.plugins.module_utils._summary import Paths, collect

    paths = Paths.resolve(p["output_dir"], perf_csv=p["perf_csv"], perf_entry=p["perf_entry"],
                          summary=p["summary_output"], history_db=p["history_db"], html_report=p["html_report"])
    if p["mode"] == "report" and not paths.html_report:
        paths.html_report = os.path.splitext(paths.perf_csv)[0] + ".html"
    if paths.html_report and not HAS_JINJA2:
        return {"failed": True, "msg": f"the Python library 'jinja2' is needed for the HTML report and cannot be "
                                       f"imported ({JINJA2_IMPORT_ERROR}); install it with `python3 -m pip install jinja2`"}
    if p["mode"] == "report":
        changed = write_html_report(paths.perf_csv, paths.html_report, check_mode=check_mode)
        return {"changed": changed, "perf_csv": paths.perf_csv, "html_report": paths.html_report}
    return collect(p["records"], paths, build_records=p["build_records"], plan=p["plan"],
                   node_failures=p["node_failures"], context=p["context"], started=p["started"],
                   check_mode=check_mode, html_renderer=write_html_report)


ENTRYPOINTS: dict[str, Callable[[dict, bool], dict]] = {
    "gpu_facts": _gpu_facts,
    "mad_discover": _mad_discover,
    "mad_build": _mad_build,
    "mad_run": _mad_run,
    "perf_collect": _perf_collect,
}
