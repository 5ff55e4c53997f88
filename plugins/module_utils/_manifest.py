# Copyright: (c) 2026, madengine maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""build_manifest.json (MAD-FORMAT section 5): assembling, writing, reading, and run plans.

Readers accept manifests written by other madengine versions: unknown keys are kept,
missing optional sections default to empty.
"""
from __future__ import annotations

import json
import os
from typing import Mapping

from ansible_collections.madengine.core.plugins.module_utils._errors import InvalidInputError
from ansible_collections.madengine.core.plugins.module_utils._files import write_json

CONTEXT_KEYS = ("docker_env_vars", "docker_mounts", "docker_build_arg", "gpu_vendor", "guest_os", "docker_gpus")
CONTEXT_DEFAULTS = {"docker_env_vars": {}, "docker_mounts": {}, "docker_build_arg": {}, "gpu_vendor": "",
                    "guest_os": "UBUNTU", "docker_gpus": ""}
OPTIONAL_CONTEXT_KEYS = ("tools", "pre_scripts", "post_scripts", "encapsulate_script")
DEPLOYMENT_KEYS = ("slurm", "k8s", "kubernetes", "distributed", "vllm", "env_vars", "debug")
# Record fields that describe this build step, not the image: they stay out of built_images,
# so an unchanged rebuild writes the same manifest.
RECORD_ONLY = ("image", "status", "error", "would_build", "skipped_unchanged", "retagged", "pushed")
# What a failed build's summary entry keeps of its model, so its FAILURE row and a later
# tag selection (run --manifest-file --tags) know the model without an image.
FAILED_MODEL_FIELDS = ("tags", "n_gpus", "args", "training_precision")
EXPECTED = ('a JSON object with "built_images": {"<image name>": {"docker_image": ..., "model": ..., ...}}, '
            '"built_models", "context" (as `madengine build` writes it)')


def new_manifest(registry: str = "") -> dict:
    """An empty manifest."""
    return {"registry": registry or "", "built_images": {}, "built_models": {},
            "context": dict(CONTEXT_DEFAULTS), "credentials_required": [],
            "summary": {"successful_builds": [], "failed_builds": [], "successful_pushes": [],
                        "failed_pushes": [], "total_models": 0, "total_build_time": 0.0}}


def manifest_context(context: Mapping) -> dict:
    """The context section: the keys the run side needs, with their defaults."""
    section = {key: context.get(key, CONTEXT_DEFAULTS[key]) for key in CONTEXT_KEYS}
    section.update({key: context[key] for key in OPTIONAL_CONTEXT_KEYS if key in context})
    return section


def deployment_config(context: Mapping) -> dict | None:
    """Where the images are meant to run (omitted for a plain local run), as upstream records it."""
    target = context.get("deploy")
    if not target:
        if context.get("slurm"):
            target = "slurm"
        elif context.get("k8s") or context.get("kubernetes"):
            target = "k8s"
    if not target:
        return None
    config = {"target": target}
    config.update({key: context[key] for key in DEPLOYMENT_KEYS if context.get(key) is not None})
    return config


def assemble_manifest(records: list, models_by_image: Mapping, context: Mapping, registry: str = "") -> dict:
    """The manifest document for build ``records`` (failed images are only in the summary)."""
    manifest = new_manifest(registry)
    manifest["context"] = manifest_context(context)
    summary = manifest["summary"]
    creds = set()
    for record in records:
        model = dict(models_by_image.get(record["image"]) or {"name": record["model"]})
        summary["total_build_time"] += float(record.get("build_duration") or 0.0)
        if record.get("status") != "SUCCESS":
            failure = {"model": record["model"], "image": record["image"],
                       "dockerfile": record.get("dockerfile", ""), "error": record.get("error", "")}
            failure.update({key: model[key] for key in FAILED_MODEL_FIELDS if model.get(key) not in (None, "", [])})
            summary["failed_builds"].append(failure)
            continue
        entry = {key: value for key, value in record.items() if key not in RECORD_ONLY}
        manifest["built_images"][record["image"]] = entry
        manifest["built_models"][record["image"]] = model
        summary["successful_builds"].append(entry)
        if model.get("cred"):
            creds.add(str(model["cred"]))
        if record.get("push_error"):
            summary["failed_pushes"].append({"model": record["model"], "image": record["image"],
                                             "registry_image": record.get("registry_image", ""),
                                             "error": record["push_error"]})
        elif record.get("registry_digest"):
            summary["successful_pushes"].append({"model": record["model"], "image": record["image"],
                                                 "registry_image": record["registry_image"],
                                                 "digest": record["registry_digest"]})
    summary["total_models"] = len({record["model"] for record in records})
    summary["total_build_time"] = round(summary["total_build_time"], 3)
    manifest["credentials_required"] = sorted(creds)
    deployment = deployment_config(context)
    if deployment:
        manifest["deployment_config"] = deployment
    return manifest


def write_manifest(manifest: Mapping, path: str) -> str:
    """Write ``manifest`` to ``path`` atomically (a reader never sees half a file); returns the path."""
    return write_json(path, manifest)


def read_manifest(path: str) -> dict:
    """Read and validate a build manifest; raises InvalidInputError saying what was expected."""
    if not os.path.exists(path):
        raise InvalidInputError(f"build manifest {path} does not exist",
                                fix="Run `madengine build` first, or give --manifest-file the path "
                                    "of a build_manifest.json")
    try:
        with open(path, encoding="utf-8") as fh:
            document = json.load(fh)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(
            f"build manifest is not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
            where=path, fix=f"Expected {EXPECTED}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"cannot read build manifest: {exc}", where=path) from None
    return validate_manifest(document, path)


def validate_manifest(document, where: str = "build manifest") -> dict:
    """The manifest with optional sections defaulted; unknown keys kept. Raises InvalidInputError."""
    if not isinstance(document, dict):
        raise InvalidInputError(f"build manifest holds a JSON {type(document).__name__}, not an object",
                                where=where, fix=f"Expected {EXPECTED}")
    images = document.get("built_images")
    if not isinstance(images, dict):
        found = ", ".join(sorted(document)) or "nothing"
        raise InvalidInputError(f"build manifest has no \"built_images\" object (found keys: {found})",
                                where=where, fix=f"Expected {EXPECTED}")
    for name, entry in images.items():
        if not isinstance(entry, dict):
            raise InvalidInputError(f"built_images[\"{name}\"] is a {type(entry).__name__}, not an object",
                                    where=where, fix=f"Expected {EXPECTED}")
        if not (entry.get("docker_image") or entry.get("registry_image")):
            raise InvalidInputError(f"built_images[\"{name}\"] names no docker_image or registry_image",
                                    where=where, fix=f"Expected {EXPECTED}")
    for key, kind in (("built_models", dict), ("context", dict), ("summary", dict),
                      ("credentials_required", list)):
        if key in document and document[key] is not None and not isinstance(document[key], kind):
            raise InvalidInputError(f"\"{key}\" in the build manifest must be a JSON {kind.__name__}",
                                    where=where, fix=f"Expected {EXPECTED}")
    manifest = dict(document)
    manifest["registry"] = manifest.get("registry") or ""
    manifest["built_models"] = manifest.get("built_models") or {}
    manifest["context"] = manifest.get("context") or {}
    manifest["credentials_required"] = manifest.get("credentials_required") or []
    return manifest


def plan_runs(manifest: Mapping) -> list:
    """``[{"image", "build", "model"}]``: what the run side runs, one per built image, in order.

    ``build`` is the built_images entry (``registry_image`` + ``registry_digest`` when pushed),
    ``model`` the built_models entry (at least ``{"name"}``).
    """
    models = manifest.get("built_models") or {}
    plans = []
    for image, build in (manifest.get("built_images") or {}).items():
        model = models.get(image)
        if not isinstance(model, dict):
            model = {"name": build.get("model") or image}
        plans.append({"image": image, "build": dict(build), "model": dict(model)})
    return plans
