# Copyright: (c) 2026, madengine maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inventories of the MAD world (MAD-FORMAT section 7), checked and turned into hosts.

A MAD inventory document is a mapping with any of ``nodes`` (SSH GPU nodes), ``pods``
(Kubernetes pod templates) and ``slurm_cluster`` (a SLURM login node and its partitions).
:func:`validate` checks it against :data:`SCHEMA` and reports every problem at once, each
with its entry (``nodes[1] (hostname 'gpu-02')``) and, for a misspelt key, the closest valid
one. :func:`inventory_hosts` turns a valid document into :class:`HostEntry` records (name,
groups, variables) that the ``madengine.core.mad_nodes`` inventory plugin adds as they are.
"""
from __future__ import annotations

import difflib
import json
import os
import re
from typing import Any, Dict, List, Optional, Sequence

from ansible_collections.madengine.core.plugins.module_utils._errors import InvalidInputError

try:
    import jsonschema
except ImportError:  # pragma: no cover - reported by validate()
    jsonschema = None

SECTIONS = ("nodes", "pods", "slurm_cluster")
GPU_VENDORS = ("AMD", "NVIDIA")
CONTROLLER = "localhost"
MAX_PROBLEMS = 10

_TEXT = {"type": "string", "minLength": 1}
_NAME = {"type": "string", "minLength": 1, "pattern": r"^\S+$", "x-rule": "must not contain spaces"}
_SCALAR = {"type": ["string", "integer", "number", "boolean"]}
_SCALARS = {"type": "object", "additionalProperties": _SCALAR}
_VENDOR = {"enum": list(GPU_VENDORS)}
_PORT = {"type": "integer", "minimum": 1, "maximum": 65535}
_SSH = {
    "hostname": _NAME,
    "address": _TEXT,
    "port": _PORT,
    "username": _TEXT,
    "ssh_key_path": _TEXT,
}

SCHEMA: Dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "MAD inventory (MAD-FORMAT section 7)",
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": {
        "nodes": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["hostname", "address"],
                "properties": dict(
                    _SSH,
                    gpu_count={"type": "integer", "minimum": 0},
                    gpu_vendor=_VENDOR,
                    labels=_SCALARS,
                    environment=_SCALARS,
                ),
            },
        },
        "pods": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name"],
                "properties": {
                    "name": _NAME,
                    "node_selector": _SCALARS,
                    "resources": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {"requests": _SCALARS, "limits": _SCALARS},
                    },
                    "gpu_vendor": _VENDOR,
                    "labels": _SCALARS,
                },
            },
        },
        "slurm_cluster": {
            "type": "object",
            "additionalProperties": False,
            "required": ["login_node"],
            "properties": {
                "login_node": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["hostname", "address"],
                    "properties": _SSH,
                },
                "partitions": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["name"],
                        "properties": {
                            "name": _NAME,
                            "max_time": {"type": ["string", "integer"]},
                            "nodes": {"type": ["integer", "string"]},
                            "gpu_types": {"type": "array", "items": _TEXT},
                            "gpu_vendor": _VENDOR,
                            "qos": _TEXT,
                        },
                    },
                },
                "modules": {"type": "array", "items": _TEXT},
            },
        },
    },
}

_TYPE_WORDS = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "object": "a mapping",
    "array": "a list",
    "null": "null",
}
_PY_WORDS = {
    bool: "a boolean", int: "an integer", float: "a number", str: "a string",
    list: "a list", dict: "a mapping", type(None): "null",
}


class HostEntry:
    """One inventory host: its name, the groups it joins and its variables."""

    __slots__ = ("name", "groups", "variables")

    def __init__(self, name: str, groups: List[str], variables: Dict[str, Any]):
        self.name = name
        self.groups = groups
        self.variables = variables

    def __repr__(self) -> str:
        return f"HostEntry({self.name!r}, groups={self.groups!r})"


def closest(word: str, candidates: Sequence[str]) -> Optional[str]:
    """The candidate nearest to ``word`` (case-insensitive), or None when none is near."""
    lowered = {c.lower(): c for c in candidates}
    found = difflib.get_close_matches(str(word).lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[found[0]] if found else None


def group_name(*parts: Any) -> str:
    """A safe Ansible group name: lower case, anything but [a-z0-9_] turned into ``_``."""
    text = "_".join(_scalar_text(p) for p in parts)
    return re.sub(r"[^a-z0-9_]", "_", text.lower())


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _describe(value: Any) -> str:
    for kind, word in _PY_WORDS.items():  # bool before int: a bool is an int too
        if isinstance(value, kind):
            return word
    return type(value).__name__


def _location(document: Any, path: Sequence[Any]) -> str:
    """``nodes[1] (hostname 'gpu-02'), key 'port'`` for the path of a failing value."""
    path = list(path)
    cut = next((i + 1 for i, part in enumerate(path) if isinstance(part, int)), max(len(path) - 1, 0))
    entry, node = "", document
    for part in path[:cut]:
        entry += f"[{part}]" if isinstance(part, int) else (f".{part}" if entry else str(part))
        node = node[part] if isinstance(node, (dict, list)) else None
    if isinstance(node, dict) and isinstance(path[cut - 1] if cut else None, int):
        for field in ("hostname", "name"):
            if isinstance(node.get(field), str) and node[field]:
                entry += f" ({field} {node[field]!r})"
                break
    keys = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path[cut:]).lstrip(".")
    text = entry or "the top level"
    return f"{text}, key {keys!r}" if keys else text


def _problem(document: Any, error: Any) -> str:
    """One line for one jsonschema error, in the user's words."""
    path = list(error.absolute_path)
    where = _location(document, path)
    kind = error.validator
    schema = error.schema
    value = error.instance
    if kind == "required":
        missing = [k for k in error.validator_value if k not in value]
        return f"{where}: missing required key {', '.join(repr(k) for k in missing)}"
    if kind == "additionalProperties":
        known = sorted(schema.get("properties", {}))
        lines = []
        for key in sorted(set(value) - set(known), key=str):
            hint = closest(str(key), known)
            suggestion = f"; did you mean {hint!r}?" if hint else ""
            lines.append(f"{where}: unknown key {key!r}{suggestion} (valid keys: {', '.join(known)})")
        return "; ".join(lines)
    if kind == "minProperties":
        return f"{where}: empty; give at least one of {', '.join(SECTIONS)}"
    if kind == "type":
        wanted = error.validator_value
        if isinstance(wanted, list):
            words = [_TYPE_WORDS[w] for w in wanted]
            wanted_text = ", ".join(words[:-1]) + " or " + words[-1]
        else:
            wanted_text = _TYPE_WORDS[wanted]
        return f"{where}: must be {wanted_text}, got {_describe(value)} ({value!r})"
    if kind == "enum":
        choices = [str(c) for c in error.validator_value]
        hint = closest(str(value), choices)
        suggestion = f"; did you mean {hint!r}?" if hint else ""
        return f"{where}: {value!r} is not one of {', '.join(choices)}{suggestion}"
    if kind in ("minimum", "maximum"):
        low, high = schema.get("minimum"), schema.get("maximum")
        if low is not None and high is not None:
            return f"{where}: must be between {low} and {high}, got {value!r}"
        return f"{where}: must be at least {low}, got {value!r}"
    if kind == "minLength":
        return f"{where}: must not be empty"
    if kind == "minItems":
        return f"{where}: must list at least one entry"
    if kind == "pattern":
        return f"{where}: {schema.get('x-rule', 'has an invalid form')}, got {value!r}"
    return f"{where}: {error.message}"  # pragma: no cover - every keyword in SCHEMA is handled above


def _duplicates(document: Dict[str, Any]) -> List[str]:
    seen: Dict[str, str] = {}
    problems = []
    named = [(f"nodes[{i}]", n.get("hostname")) for i, n in enumerate(document.get("nodes", []))]
    named += [(f"pods[{i}]", p.get("name")) for i, p in enumerate(document.get("pods", []))]
    login = document.get("slurm_cluster", {}).get("login_node", {})
    named.append(("slurm_cluster.login_node", login.get("hostname")))
    for where, name in named:
        if not isinstance(name, str):
            continue
        if name in seen:
            problems.append(f"{where}: host name {name!r} is already used by {seen[name]}")
        else:
            seen[name] = where
    return problems


def validate(document: Any, source: str) -> Dict[str, Any]:
    """Check a MAD inventory document; return it unchanged or raise one InvalidInputError.

    ``source`` names the file in the message. Every problem is listed (up to
    :data:`MAX_PROBLEMS`), each with the entry it is in.
    """
    if jsonschema is None:
        raise InvalidInputError(
            "reading a MAD inventory needs the Python library jsonschema on the controller",
            where=source, fix="Install it: pip install jsonschema")
    if not isinstance(document, dict):
        raise InvalidInputError(
            f"a MAD inventory must be a mapping with {', '.join(SECTIONS)}, got {_describe(document)}",
            where=source, fix="Put the node list under a top-level 'nodes:' key (MAD-FORMAT section 7)")
    validator = jsonschema.Draft202012Validator(SCHEMA)
    errors = sorted(validator.iter_errors(document), key=lambda e: [str(p) for p in e.absolute_path])
    problems = [_problem(document, e) for e in errors]
    if not problems:
        problems = _duplicates(document)
    if problems:
        shown = problems[:MAX_PROBLEMS]
        if len(problems) > MAX_PROBLEMS:
            shown.append(f"and {len(problems) - MAX_PROBLEMS} more")
        listing = shown[0] if len(shown) == 1 else "".join("\n  - " + p for p in shown)
        raise InvalidInputError(
            f"invalid MAD inventory {source}: {listing}\n"
            "MAD-FORMAT section 7 lists the fields of nodes, pods and slurm_cluster")
    return document


def is_mad_inventory(document: Any) -> bool:
    """True for a MAD node file's content (top-level nodes/pods/slurm_cluster, no ``plugin``)."""
    return isinstance(document, dict) and "plugin" not in document and any(k in document for k in SECTIONS)


def plugin_config(node_file: str, build_hosts: Sequence[str] = (CONTROLLER,)) -> str:
    """The text of a ``*.mad_nodes.yml`` config that reads ``node_file`` (made absolute).

    Ansible's default plugins then read the file through this plugin and a bad file stops
    the run, instead of the ``yaml`` plugin taking it as an inventory with no hosts.
    """
    return (f"plugin: madengine.core.mad_nodes\npath: {json.dumps(os.path.abspath(node_file))}\n"
            f"build_hosts: {json.dumps(list(build_hosts))}\n")


def _key_path(path: Optional[str], base_dir: str) -> Optional[str]:
    """A relative key path is relative to the inventory file; ``~`` is left to ssh."""
    if path is None or path.startswith("~") or os.path.isabs(path):
        return path
    return os.path.normpath(os.path.join(base_dir, path))


def _ssh_vars(entry: Dict[str, Any], base_dir: str) -> Dict[str, Any]:
    variables: Dict[str, Any] = {"ansible_host": entry["address"], "ansible_port": entry.get("port", 22)}
    if "username" in entry:
        variables["ansible_user"] = entry["username"]
    if "ssh_key_path" in entry:
        variables["ansible_ssh_private_key_file"] = _key_path(entry["ssh_key_path"], base_dir)
    return variables


def _text_map(values: Optional[Dict[str, Any]]) -> Dict[str, str]:
    return {str(k): _scalar_text(v) for k, v in (values or {}).items()}


def _label_groups(labels: Dict[str, str]) -> List[str]:
    return [group_name("label", key, value) for key, value in labels.items()]


def _node_host(entry: Dict[str, Any], base_dir: str) -> HostEntry:
    labels = _text_map(entry.get("labels"))
    variables = _ssh_vars(entry, base_dir)
    variables["madengine_node_labels"] = labels
    variables["madengine_node_environment"] = _text_map(entry.get("environment"))
    groups = ["gpu_nodes"] + _label_groups(labels)
    if "gpu_count" in entry:
        variables["madengine_gpu_count"] = entry["gpu_count"]
    if "gpu_vendor" in entry:
        variables["madengine_gpu_vendor"] = entry["gpu_vendor"]
        groups.append(group_name("gpu_vendor", entry["gpu_vendor"]))
    return HostEntry(entry["hostname"], groups, variables)


def _pod_host(entry: Dict[str, Any], python: str) -> HostEntry:
    labels = _text_map(entry.get("labels"))
    resources = entry.get("resources") or {}
    variables: Dict[str, Any] = {
        # A pod is a template for the Kubernetes API, not a machine to log into: its
        # tasks run on the controller, which talks to the API.
        "ansible_connection": "local",
        "ansible_python_interpreter": python,
        "madengine_k8s_node_selector": _text_map(entry.get("node_selector")),
        "madengine_k8s_resources": {k: _text_map(resources.get(k)) for k in ("requests", "limits") if k in resources},
        "madengine_node_labels": labels,
    }
    groups = ["k8s_pods"] + _label_groups(labels)
    if "gpu_vendor" in entry:
        variables["madengine_gpu_vendor"] = entry["gpu_vendor"]
        groups.append(group_name("gpu_vendor", entry["gpu_vendor"]))
    return HostEntry(entry["name"], groups, variables)


def _slurm_host(cluster: Dict[str, Any], base_dir: str) -> HostEntry:
    login = cluster["login_node"]
    variables = _ssh_vars(login, base_dir)
    variables["madengine_slurm_partitions"] = [dict(p) for p in cluster.get("partitions", [])]
    variables["madengine_slurm_modules"] = list(cluster.get("modules", []))
    return HostEntry(login["hostname"], ["slurm_login"], variables)


def inventory_hosts(document: Dict[str, Any], source: str, base_dir: Optional[str] = None,
                    build_hosts: Sequence[str] = (CONTROLLER,), python: str = "{{ ansible_playbook_python }}") -> List[HostEntry]:
    """The hosts of a MAD inventory document (validated here) with their groups and variables.

    ``base_dir`` anchors relative ``ssh_key_path`` values (default: the directory of
    ``source``). ``build_hosts`` names the hosts put in group ``build_hosts``: host names of
    the document, or ``localhost`` for the controller itself (local connection, ``python``).
    """
    validate(document, source)
    base = base_dir if base_dir is not None else os.path.dirname(os.path.abspath(source))
    hosts = [_node_host(n, base) for n in document.get("nodes", [])]
    hosts += [_pod_host(p, python) for p in document.get("pods", [])]
    if "slurm_cluster" in document:
        hosts.append(_slurm_host(document["slurm_cluster"], base))
    by_name = {h.name: h for h in hosts}
    for name in build_hosts:
        if name in by_name:
            by_name[name].groups.append("build_hosts")
        elif name == CONTROLLER:
            hosts.append(HostEntry(CONTROLLER, ["build_hosts"],
                                   {"ansible_connection": "local", "ansible_python_interpreter": python}))
        else:
            hint = closest(name, list(by_name) + [CONTROLLER])
            raise InvalidInputError(
                f"build host {name!r} is not a host of the inventory"
                + (f"; did you mean {hint!r}?" if hint else ""),
                where=source, fix="List host names of the file, or 'localhost' for the controller, in build_hosts")
    return hosts
