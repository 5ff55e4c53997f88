# Copyright: (c) 2026, madengine maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Discovery as one call: context, package, tags, Dockerfiles -> the selected models."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterable, List, Optional

from ansible_collections.madengine.core.plugins.module_utils._context import build_context, load_file, merge, parse_inline, validate
from ansible_collections.madengine.core.plugins.module_utils._dockerfiles import DockerfileFinder
from ansible_collections.madengine.core.plugins.module_utils._hooks import plan_hooks
from ansible_collections.madengine.core.plugins.module_utils._manifest import plan_runs, read_manifest
from ansible_collections.madengine.core.plugins.module_utils._package import load_package, prepare, resolve
from ansible_collections.madengine.core.plugins.module_utils._repo import plan_repo
from ansible_collections.madengine.core.plugins.module_utils._tags import select


def _context_file(path: Optional[str], mad_dir: str) -> Optional[str]:
    """A relative context file is looked up from the working directory, then the package."""
    if not path:
        return None
    path = os.path.expanduser(path)
    if os.path.isabs(path) or os.path.exists(path):
        return path
    beside = os.path.join(os.path.abspath(mad_dir or "."), path)
    return beside if os.path.exists(beside) else path


def discover(mad_dir: Optional[str], tags: Iterable[str] = (), additional_context: Any = None,
             additional_context_file: Optional[str] = None) -> dict:
    """The mad_discover result: ``models``, ``context``, ``warnings``, ``mad_dir``.

    Raises InvalidInputError (exit code 4) for every problem of the input.
    """
    mad_dir = mad_dir or os.getcwd()
    context, warnings = build_context(additional_context, _context_file(additional_context_file, mad_dir))
    package = load_package(mad_dir)
    plan_hooks(package.mad_dir, context)  # a missing pre/post script or tool stops the run before any build
    picks = select(package.models, tags, package.mad_dir)
    prepare([package.models[index] for index, _args in picks], package.mad_dir)
    finder = DockerfileFinder(package.mad_dir, context)
    models: List[dict] = []
    for index, extra_args in picks:
        model = resolve(package.models[index], package.mad_dir, extra_args)
        plan_repo(model)  # a url naming no usable folder is bad input, found before any build
        model["dockerfiles"], error = finder.select(model["dockerfile"])
        if error:
            model["dockerfile_error"] = error
        models.append(model)
    return {"models": models, "context": context, "warnings": warnings + package.warnings + finder.warnings,
            "mad_dir": package.mad_dir}


@dataclass
class _BuiltModel:
    """A manifest's model as the tag grammar sees it."""

    name: str
    tags: List[str]
    directory: Optional[str]


def plan_from_manifest(manifest_file: str, tags: Iterable[str] = (), additional_context: Any = None,
                       additional_context_file: Optional[str] = None, mad_dir: Optional[str] = None) -> dict:
    """The run plan of a build manifest: ``runs`` ([{image, build, model}]), ``context``,
    ``failed_builds``, ``registry``, ``warnings``, ``mad_dir``.

    The context the build recorded is the base; the run's context file, then its inline
    context, win over it. Tags, when given, pick among the manifest's models.
    """
    mad_dir = os.path.abspath(mad_dir or os.getcwd())
    manifest = read_manifest(manifest_file)
    # Empty values in a manifest's context mean "not set" (builds record every key).
    recorded = {k: v for k, v in (manifest.get("context") or {}).items() if v not in ("", None)}
    raw = merge(recorded, load_file(_context_file(additional_context_file, mad_dir))
                if additional_context_file else {})
    context, warnings = validate(merge(raw, parse_inline(additional_context)))
    plan_hooks(mad_dir, context)
    runs = plan_runs(manifest)
    summary = manifest.get("summary") or {}
    failed = [f for f in summary.get("failed_builds") or [] if isinstance(f, dict) and f.get("model")]
    if list(tags):
        # Failed builds are selectable too: a tag that picked a model whose image did not
        # build gives that model its FAILURE row; one that picked other models drops it.
        built = [_built_model(run["model"]) for run in runs] + [_built_model(entry) for entry in failed]
        picked, picked_failed = [], []
        for index, extra_args in select(built, tags, manifest_file):
            if index >= len(runs):
                if failed[index - len(runs)] not in picked_failed:
                    picked_failed.append(failed[index - len(runs)])
                continue
            run = dict(runs[index], model=dict(runs[index]["model"]))
            run["model"]["args"] = (run["model"].get("args") or "") + extra_args
            picked.append(run)
        runs, failed = picked, picked_failed
    return {"runs": runs, "context": context, "warnings": warnings, "mad_dir": mad_dir,
            "registry": manifest.get("registry") or "", "failed_builds": failed}


def _built_model(model: dict) -> _BuiltModel:
    name = str(model.get("name") or model.get("model") or "")
    tags = model.get("tags") or []
    if isinstance(tags, str):
        tags = [t.strip() for t in tags.split(",") if t.strip()]
    return _BuiltModel(name, list(tags), name.split("/", 1)[0] if "/" in name else None)


def summary_lines(models: List[dict]) -> List[str]:
    """One line per model, for people reading ansible-playbook output."""
    lines = []
    for model in models:
        files = ", ".join(model.get("dockerfiles") or []) or f"none ({model.get('dockerfile_error', '')})"
        args = f" args='{model['args'].strip()}'" if model.get("args", "").strip() else ""
        lines.append(f"{model['name']} [n_gpus {model.get('n_gpus')}]{args} -> {files}")
    return lines
