# Copyright: (c) 2026, madengine maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pre/post scripts, tools and encapsulate_script of the additional context (MAD-FORMAT 2).

:func:`plan_hooks` is pure: it reads the package's ``scripts/common/tools.json`` and turns
the context's ``tools``, ``pre_scripts``, ``post_scripts`` and ``encapsulate_script`` into
:class:`Hooks`: the steps around the model, the argv prefix that wraps the model command,
the tools' environment and the package files the container needs. As upstream
(``RunModels.apply_tools``), each tool in turn puts its pre_scripts before the steps so far,
its post_scripts after them and its cmd in front of the command, so the last tool listed is
the outermost; a context tool entry's ``cmd`` replaces the catalogue's and its ``env_vars``
are merged over the catalogue's.

Unlike upstream, nothing is pasted into a shell: ``cmd``, ``encapsulate_script`` and each
script's ``args`` are split like a shell would and run as argv lists, so a value with shell
operators (``&&``, ``;``, ``|``, redirections) is refused; leading ``NAME=value`` words
still work (they run through ``env``).
"""
from __future__ import annotations

import json
import os
import posixpath
import re
import shlex
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional

from ansible_collections.madengine.core.plugins.module_utils._errors import InvalidInputError

TOOLS_JSON = "scripts/common/tools.json"
COMMON_DIR = "scripts/common"
PRE, POST = "pre_script", "post_script"
_WHERE = "the additional context"
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_OPERATORS = {"&&", "||", ";", ";;", "|", "|&", "&", "(", ")", "!"}
_REDIRECTION = re.compile(r"^[0-9]*(?:[<>]|&>)")
_SHOWN = 12


@dataclass
class Step:
    """One pre or post script: copied into the run directory, run there with bash."""

    kind: str  # PRE or POST
    path: str  # package-relative, normalised
    args: List[str] = field(default_factory=list)
    origin: str = ""  # where it was asked for (context key or tool), for messages

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)

    @property
    def argv(self) -> List[str]:
        return ["bash", self.name] + self.args

    def describe(self) -> str:
        return f"{self.kind} {self.path}" + (f" {shlex.join(self.args)}" if self.args else "")


@dataclass
class Hooks:
    """What the context adds around one model run."""

    pre: List[Step] = field(default_factory=list)
    post: List[Step] = field(default_factory=list)
    wrapper: List[str] = field(default_factory=list)  # argv put before the model command
    env: Dict[str, str] = field(default_factory=dict)  # the tools' env_vars, in order
    files: List[str] = field(default_factory=list)  # package-relative paths for the workspace
    tools: List[str] = field(default_factory=list)

    @property
    def has_steps(self) -> bool:
        return bool(self.pre or self.post)


def _listing(mad_dir: str, rel: str) -> str:
    """What exists at the deepest existing folder above ``rel`` (for 'not found' messages)."""
    folder = posixpath.dirname(rel)
    while folder and not os.path.isdir(os.path.join(mad_dir, folder)):
        folder = posixpath.dirname(folder)
    try:
        names = sorted(os.listdir(os.path.join(mad_dir, folder)))
    except OSError:
        names = []
    shown = ", ".join(names[:_SHOWN]) + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")
    return f"{folder or 'the package top'} has: {shown or 'nothing'}"


def _script_path(mad_dir: str, raw: Any, where: str) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidInputError(f"{where}.path must be a non-empty string, not {raw!r}", _WHERE)
    path = posixpath.normpath(raw.strip())
    if path.startswith("/") or path == ".." or path.startswith("../"):
        raise InvalidInputError(f"{where}.path {raw!r} must be a path inside the MAD package", _WHERE,
                                "Give it relative to the package top, e.g. scripts/common/pre_scripts/x.sh")
    if not os.path.isfile(os.path.join(mad_dir, path)):
        raise InvalidInputError(f"{where}.path {raw!r}: no such file in the MAD package {mad_dir}",
                                _WHERE, _listing(mad_dir, path))
    return path


def _split(value: Any, where: str) -> List[str]:
    if value is None:
        return []
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise InvalidInputError(f"{where} must be a string, not {value!r}", _WHERE)
    try:
        return shlex.split(str(value))
    except ValueError as exc:
        raise InvalidInputError(f"cannot split {where} {value!r}: {exc}", _WHERE,
                                "Check its quotes") from None


def _steps(mad_dir: str, entries: Any, kind: str, where: str) -> List[Step]:
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise InvalidInputError(f"{where} must be a list of {{path, args}} objects, not {entries!r:.60}", _WHERE)
    steps = []
    for index, entry in enumerate(entries):
        at = f"{where}[{index}]"
        if not isinstance(entry, Mapping):
            raise InvalidInputError(f"{at} must be an object with 'path', not {entry!r:.60}", _WHERE)
        steps.append(Step(kind, _script_path(mad_dir, entry.get("path"), at),
                          _split(entry.get("args"), f"{at}.args"), where))
    return steps


def command_prefix(value: Any, where: str) -> List[str]:
    """A tool ``cmd`` or ``encapsulate_script`` as an argv prefix (see the module notes)."""
    words = _split(value, where)
    for word in words:
        if word in _OPERATORS or word.endswith(";") or _REDIRECTION.match(word):
            operator = ";" if word.endswith(";") and word not in _OPERATORS else word
            raise InvalidInputError(
                f"{where} {value!r} uses the shell operator {operator!r}; madengine runs it as a command "
                "in front of the model's command, not through a shell", _WHERE,
                "Use a command that runs the rest of its arguments (e.g. 'rocprofv3 --runtime-trace --'), "
                "or put the shell logic in a pre_script or a wrapper script")
    if words and _ASSIGNMENT.match(words[0]):
        words = ["env"] + words  # NAME=value words set the environment, as a shell would
    return words


def load_tools(mad_dir: str) -> Dict[str, Any]:
    """The ``tools`` object of the package's tools.json. Raises on a missing or bad file."""
    path = os.path.join(mad_dir, TOOLS_JSON)
    if not os.path.isfile(path):
        raise InvalidInputError(f"context key 'tools' needs {TOOLS_JSON}, which the MAD package {mad_dir} "
                                "does not have", _WHERE, _listing(mad_dir, TOOLS_JSON))
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{TOOLS_JSON} cannot be read: {exc}", mad_dir) from None
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{TOOLS_JSON} is not valid JSON: {exc.msg}",
                                f"{path}, line {exc.lineno}, column {exc.colno}") from None
    tools = data.get("tools") if isinstance(data, dict) else None
    if not isinstance(tools, dict):
        raise InvalidInputError(f"{TOOLS_JSON} must hold {{\"tools\": {{name: {{...}}}}}}", path)
    return tools


def _string_map(value: Any, where: str) -> Dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"{where} must be an object of variables, not {value!r:.60}", _WHERE)
    out = {}
    for key, item in value.items():
        if isinstance(item, bool):
            item = str(item).lower()
        if not isinstance(item, (str, int, float)):
            raise InvalidInputError(f"{where}.{key} must be a string, not {item!r:.60}", _WHERE)
        out[str(key)] = str(item)
    return out


def plan_hooks(mad_dir: str, context: Optional[Mapping[str, Any]]) -> Hooks:
    """The hooks the context asks for; :class:`InvalidInputError` names any bad entry."""
    context = context or {}
    hooks = Hooks(pre=_steps(mad_dir, context.get("pre_scripts"), PRE, "pre_scripts"),
                  post=_steps(mad_dir, context.get("post_scripts"), POST, "post_scripts"),
                  wrapper=command_prefix(context.get("encapsulate_script"), "encapsulate_script"))
    entries = context.get("tools") or []
    if not isinstance(entries, list):
        raise InvalidInputError(f"context key 'tools' must be a list of {{name, cmd?, env_vars?}}, not {entries!r:.60}",
                                _WHERE)
    catalogue = load_tools(mad_dir) if entries else {}
    for index, entry in enumerate(entries):
        at = f"tools[{index}]"
        name = entry.get("name") if isinstance(entry, Mapping) else None
        if not isinstance(name, str) or name not in catalogue:
            raise InvalidInputError(f"{at}.name {name!r} is not a tool of {TOOLS_JSON}", _WHERE,
                                    "Tools there: " + (", ".join(sorted(catalogue)) or "none"))
        tool = catalogue[name] if isinstance(catalogue[name], Mapping) else {}
        where = f"{TOOLS_JSON} tool '{name}'"
        cmd = entry["cmd"] if "cmd" in entry else tool.get("cmd")
        env = _string_map(tool.get("env_vars"), f"{where} env_vars")
        env.update(_string_map(entry.get("env_vars"), f"{at}.env_vars"))
        # the tool sets up before and cleans up after everything so far
        hooks.pre = _steps(mad_dir, tool.get("pre_scripts"), PRE, f"{where} pre_scripts") + hooks.pre
        hooks.post += _steps(mad_dir, tool.get("post_scripts"), POST, f"{where} post_scripts")
        hooks.env.update(env)
        hooks.wrapper = command_prefix(cmd, f"{at}.cmd" if "cmd" in entry else f"{where} cmd") + hooks.wrapper
        hooks.tools.append(name)
    if entries or hooks.has_steps or hooks.wrapper:
        hooks.files = workspace_files(mad_dir, hooks)
    return hooks


def workspace_files(mad_dir: str, hooks: Hooks) -> List[str]:
    """Package paths copied into the container's workspace, where ``../<path>`` from the run
    directory finds them as it does upstream (which mounts the whole package there): the
    package's scripts/common (tools.json, the tools' scripts and helpers) and any pre/post
    script outside it."""
    files = [COMMON_DIR] if os.path.isdir(os.path.join(mad_dir, COMMON_DIR)) else []
    for step in hooks.pre + hooks.post:
        if not step.path.startswith(COMMON_DIR + "/") and step.path not in files:
            files.append(step.path)
    return files
