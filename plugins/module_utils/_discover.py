# Copyright: (c) 2026, madengine maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Discovery as one call: context, package, tags, Dockerfiles -> the selected models."""
from __future__ import annotations

import os
from typing import Any, Iterable, List, Optional

from ansible_collections.madengine.core.plugins.module_utils._context import build_context
from ansible_collections.madengine.core.plugins.module_utils._dockerfiles import DockerfileFinder
from ansible_collections.madengine.core.plugins.module_utils._package import load_package, prepare, resolve
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
    picks = select(package.models, tags, package.mad_dir)
    prepare([package.models[index] for index, _args in picks], package.mad_dir)
    finder = DockerfileFinder(package.mad_dir, context)
    models: List[dict] = []
    for index, extra_args in picks:
        model = resolve(package.models[index], package.mad_dir, extra_args)
        model["dockerfiles"], error = finder.select(model["dockerfile"])
        if error:
            model["dockerfile_error"] = error
        models.append(model)
    return {"models": models, "context": context, "warnings": warnings + package.warnings + finder.warnings,
            "mad_dir": package.mad_dir}


def summary_lines(models: List[dict]) -> List[str]:
    """One line per model, for people reading ansible-playbook output."""
    lines = []
    for model in models:
        files = ", ".join(model.get("dockerfiles") or []) or f"none ({model.get('dockerfile_error', '')})"
        args = f" args='{model['args'].strip()}'" if model.get("args", "").strip() else ""
        lines.append(f"{model['name']} [n_gpus {model.get('n_gpus')}]{args} -> {files}")
    return lines
