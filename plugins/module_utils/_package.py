# Copyright: (c) 2026, madengine maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read a MAD package: root models.json, scripts/<dir>/models.json, scripts/<dir>/get_models_json.py.

Directory models are named ``<dir>/<name>`` and their ``dockerfile`` and ``scripts``
are relative to ``scripts/<dir>/``. Dynamic models come from ``list_models()`` of
the package's own code, run in this process with the package as working directory
and ``madengine.utils.discover_models`` importable, as upstream madengine ran it.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import os
import re
import sys
import traceback
import types
from dataclasses import dataclass, field
from typing import Any, Iterator, List, Optional

from ansible_collections.madengine.core.plugins.module_utils._custom_model import CustomModel
from ansible_collections.madengine.core.plugins.module_utils._errors import InvalidInputError

MODELS_JSON = "models.json"
DYNAMIC = "get_models_json.py"
DEFAULT_N_GPUS = "1"
DEFAULT_DOCKERCONTEXT = "docker"
UPSTREAM_MODULE = "madengine.utils.discover_models"
WHAT_IS_A_PACKAGE = (
    "A MAD package is a folder with models.json (a JSON list of model entries), "
    "docker/<name>.*.Dockerfile and scripts/<dir>/; run from that folder or pass --mad-dir "
    "(madengine_mad_dir for playbooks)")


@dataclass
class PackageModel:
    """A model as found, before selection: enough to match tags."""

    name: str
    tags: List[str]
    directory: Optional[str]
    source: str
    entry: Optional[dict] = None
    custom: Any = None
    _resolved: Optional[dict] = None


@dataclass
class Package:
    mad_dir: str
    models: List[PackageModel] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)


def _tags_of(value: Any, model: str, source: str) -> List[str]:
    if value is None:
        return []
    if isinstance(value, str):  # upstream also accepts "a,b"
        return [t.strip() for t in value.split(",") if t.strip()]
    if isinstance(value, (list, tuple)) and all(isinstance(t, str) for t in value):
        return list(value)
    raise InvalidInputError(f"model '{model}' has 'tags' that are not a list of strings: {value!r:.60}", source)


def _read_json_list(path: str, rel: str) -> list:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except json.JSONDecodeError as err:
        raise InvalidInputError(f"{rel} is not valid JSON: {err.msg}",
                                f"{path}, line {err.lineno}, column {err.colno}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InvalidInputError(f"{rel} cannot be read: {err}", path) from None
    if not isinstance(data, list):
        raise InvalidInputError(f"{rel} must be a JSON list of model entries, not a JSON {type(data).__name__}",
                                path, 'Write it as [{"name": "...", ...}, ...]')
    return data


def _static_models(path: str, rel: str, directory: Optional[str]) -> List[PackageModel]:
    found = []
    for number, entry in enumerate(_read_json_list(path, rel), start=1):
        if not isinstance(entry, dict):
            raise InvalidInputError(f"model entry #{number} of {rel} is not a JSON object", path)
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            problem = "has no 'name'" if name is None else f"has a 'name' that is not a text: {name!r:.40}"
            raise InvalidInputError(f"model entry #{number} of {rel} {problem}", path,
                                    "Every model needs a unique name")
        full = f"{directory}/{name}" if directory else name
        found.append(PackageModel(full, _tags_of(entry.get("tags"), full, rel), directory, rel, entry=entry))
    return found


@contextlib.contextmanager
def upstream_import() -> Iterator[None]:
    """Make ``from madengine.utils.discover_models import CustomModel`` work.

    The installed driver re-exports this very class; without it (a bare Ansible host)
    the missing modules are registered for as long as package code runs.
    """
    added = []
    try:
        importlib.import_module(UPSTREAM_MODULE)
    except Exception:  # noqa: BLE001 - absent or broken: stand in for it
        parts = UPSTREAM_MODULE.split(".")
        for depth in range(1, len(parts) + 1):
            name = ".".join(parts[:depth])
            if name in sys.modules:
                continue
            module = types.ModuleType(name)
            if depth < len(parts):
                module.__path__ = []
            else:
                module.CustomModel = CustomModel
            sys.modules[name] = module
            added.append(name)
            if depth > 1:
                setattr(sys.modules[".".join(parts[:depth - 1])], parts[depth - 1], module)
    try:
        yield
    finally:
        for name in reversed(added):
            sys.modules.pop(name, None)
            parent, _dot, leaf = name.rpartition(".")
            if parent in sys.modules and getattr(sys.modules[parent], leaf, None) is not None:
                with contextlib.suppress(AttributeError):
                    delattr(sys.modules[parent], leaf)


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Package code may print; stdout belongs to the module's JSON result."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:
        saved = None
    try:
        if saved is not None:
            os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stderr.flush()
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)


@contextlib.contextmanager
def package_code(mad_dir: str) -> Iterator[None]:
    """Run package code as upstream did: from the package folder, with its import available."""
    cwd = os.getcwd()
    os.chdir(mad_dir)
    try:
        with upstream_import(), _stdout_to_stderr():
            yield
    finally:
        os.chdir(cwd)


def _code_error(rel: str, path: str, doing: str, err: BaseException) -> InvalidInputError:
    line = getattr(err, "lineno", None) if isinstance(err, SyntaxError) else None
    if line is None:
        frames = [f for f in traceback.extract_tb(err.__traceback__) if os.path.abspath(f.filename) == path]
        line = frames[-1].lineno if frames else None
    where = f"{path}, line {line}" if line else path
    detail = str(err).strip() or "(no message)"
    return InvalidInputError(f"{rel}: {doing} failed: {type(err).__name__}: {detail}", where,
                             "Fix the package's code (it runs on the machine doing discovery)")


def _is_model(item: Any) -> bool:
    if isinstance(item, CustomModel):
        return True
    return callable(getattr(item, "to_dict", None)) and isinstance(getattr(item, "name", None), str)


def _dynamic_models(mad_dir: str, path: str, rel: str, directory: str) -> List[PackageModel]:
    module_name = "madengine_package_" + re.sub(r"\W", "_", directory) + "_get_models_json"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise InvalidInputError(f"{rel} cannot be loaded as Python", path)
    module = importlib.util.module_from_spec(spec)
    previous = sys.modules.get(module_name)
    sys.modules[module_name] = module  # dataclasses defined in the file look themselves up here
    try:
        with package_code(mad_dir):
            try:
                spec.loader.exec_module(module)
            except BaseException as err:  # noqa: BLE001 - package code: report, never crash
                if isinstance(err, KeyboardInterrupt):
                    raise
                raise _code_error(rel, path, "loading it", err) from None
            list_models = getattr(module, "list_models", None)
            if not callable(list_models):
                raise InvalidInputError(f"{rel} defines no list_models() function", path,
                                        "Define list_models() returning a list of CustomModel "
                                        "(from madengine.utils.discover_models import CustomModel)")
            try:
                items = list_models()
            except BaseException as err:  # noqa: BLE001
                if isinstance(err, KeyboardInterrupt):
                    raise
                raise _code_error(rel, path, "list_models()", err) from None
    finally:
        if previous is not None:
            sys.modules[module_name] = previous
    if not isinstance(items, (list, tuple)):
        raise InvalidInputError(f"{rel}: list_models() returned {type(items).__name__}, not a list of CustomModel",
                                path, "Return a list of CustomModel objects")
    found = []
    for number, item in enumerate(items, start=1):
        if not _is_model(item):
            raise InvalidInputError(
                f"{rel}: list_models() item #{number} is {type(item).__name__}, not a CustomModel", path,
                "Build items with CustomModel(name=..., ...) from madengine.utils.discover_models")
        if not item.name.strip():
            raise InvalidInputError(f"{rel}: list_models() item #{number} has an empty name", path)
        item.name = f"{directory}/{item.name}"  # upstream renames before update_model() runs
        found.append(PackageModel(item.name, _tags_of(getattr(item, "tags", None), item.name, rel),
                                  directory, rel, custom=item))
    return found


def load_package(mad_dir: str) -> Package:
    """Every model of the package, named and tagged; nothing resolved yet."""
    root = os.path.abspath(os.path.expanduser(mad_dir or "."))
    if not os.path.isdir(root):
        raise InvalidInputError(f"the MAD package folder {root} does not exist", fix=WHAT_IS_A_PACKAGE)
    top = os.path.join(root, MODELS_JSON)
    if not os.path.isfile(top):
        raise InvalidInputError(f"no models.json in {root}", fix=WHAT_IS_A_PACKAGE)
    package = Package(root, _static_models(top, MODELS_JSON, None))
    scripts = os.path.join(root, "scripts")
    try:
        with os.scandir(scripts) as entries:
            directories = sorted(e.name for e in entries if e.is_dir())
    except OSError:
        directories = []
    for directory in directories:
        folder = os.path.join(scripts, directory)
        static = os.path.join(folder, MODELS_JSON)
        dynamic = os.path.join(folder, DYNAMIC)
        has_static, has_dynamic = os.path.isfile(static), os.path.isfile(dynamic)
        if has_static and has_dynamic:
            raise InvalidInputError(
                f"scripts/{directory} has both models.json and get_models_json.py", folder,
                "Keep one of them: a directory's models are either listed or generated")
        if has_static:
            package.models += _static_models(static, f"scripts/{directory}/{MODELS_JSON}", directory)
        elif has_dynamic:
            package.models += _dynamic_models(root, dynamic, f"scripts/{directory}/{DYNAMIC}", directory)
    seen = set()
    for model in package.models:
        if model.name in seen:
            package.warnings.append(f"model name '{model.name}' appears more than once ({model.source})")
        seen.add(model.name)
    return package


def _field_error(model: PackageModel, key: str, expected: str, value: Any) -> InvalidInputError:
    return InvalidInputError(f"model '{model.name}' has '{key}' {value!r:.60}, which is not {expected}",
                             model.source)


def _path(model: PackageModel, value: Any, key: str, empty: str = "") -> str:
    if value is None or value == "":
        return empty
    if not isinstance(value, str):
        raise _field_error(model, key, "a path", value)
    if model.directory and not os.path.isabs(value):
        value = os.path.join("scripts", model.directory, value)
    return os.path.normpath(value)


def _update(model: PackageModel, mad_dir: str) -> None:
    """A dynamic model's update_model() and to_dict(), once; call inside package_code()."""
    rel = model.source
    path = os.path.join(mad_dir, rel)
    try:
        hook = getattr(model.custom, "update_model", None)
        if callable(hook):
            hook()
        data = model.custom.to_dict()
    except BaseException as err:  # noqa: BLE001 - package code
        if isinstance(err, KeyboardInterrupt):
            raise
        raise _code_error(rel, path, f"update_model() of '{model.name}'", err) from None
    if not isinstance(data, dict):
        raise InvalidInputError(f"{rel}: to_dict() of '{model.name}' returned {type(data).__name__}, not a dict",
                                path)
    model._resolved = data


def prepare(models: List[PackageModel], mad_dir: str) -> None:
    """Run update_model() of the selected dynamic models, all in one pass of package code."""
    pending = [m for m in models if m.custom is not None and m._resolved is None]
    if pending:
        with package_code(mad_dir):
            for model in pending:
                if model._resolved is None:
                    _update(model, mad_dir)


def resolve(model: PackageModel, mad_dir: str, extra_args: str = "") -> dict:
    """The selected-model record of docs/contracts.md, without its Dockerfiles."""
    prepare([model], mad_dir)
    entry = dict(model._resolved if model.custom is not None else model.entry or {})
    entry["name"] = model.name
    entry["tags"] = list(model.tags)
    args = entry.get("args")
    if args is None:
        args = ""
    elif isinstance(args, (int, float)) and not isinstance(args, bool):
        args = str(args)
    elif not isinstance(args, str):
        raise _field_error(model, "args", "a string of arguments", args)
    entry["args"] = args + extra_args
    n_gpus = entry.get("n_gpus")
    if n_gpus is None or n_gpus == "":
        n_gpus = DEFAULT_N_GPUS
    if isinstance(n_gpus, bool) or not isinstance(n_gpus, (str, int)) or not re.fullmatch(r"-?\d+", str(n_gpus).strip()):
        raise _field_error(model, "n_gpus", 'a GPU count such as "1", "-1" (all) or "0"', n_gpus)
    entry["n_gpus"] = str(n_gpus).strip()
    timeout = entry.get("timeout")
    if isinstance(timeout, str) and timeout.strip().isdigit():
        timeout = int(timeout)
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0):
        raise _field_error(model, "timeout", "a number of seconds (0 = no limit)", timeout)
    entry["timeout"] = int(timeout) if timeout is not None else None
    default_scripts = os.path.join("scripts", model.directory) if model.directory else ""
    entry["scripts"] = _path(model, entry.get("scripts"), "scripts", default_scripts)
    entry["dockerfile"] = _path(model, entry.get("dockerfile"), "dockerfile")
    context_dir = entry.get("dockercontext") or DEFAULT_DOCKERCONTEXT
    if not isinstance(context_dir, str):
        raise _field_error(model, "dockercontext", "a path", context_dir)
    entry["dockercontext"] = os.path.normpath(context_dir)
    return entry
