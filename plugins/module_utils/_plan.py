# Copyright: (c) 2026, madengine maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which GPU node runs which planned model, and what a remote node needs to run them.

A *run* is an entry of the run plan (``{image, build, model}``, as ``mad_discover``
returns it from a manifest). :func:`plan_nodes` gives each run the list of ``nodes`` that
are to run it and returns the per-node ``assignment``:

``replicate``
    every node runs every run (to compare nodes).
``distribute``
    each run goes to one node, longest first to the node with the least planned work
    (LPT). A run's cost is the mean ``test_duration`` of its last successful results in
    the results history when there are some, otherwise a unit per GPU it asks for
    (``n_gpus``; ``-1`` counts as the largest node). A run that needs N GPUs goes only to
    nodes known to have at least N (``madengine_gpu_count`` of the inventory); when no node
    qualifies, any node may get it (it is then SKIPPED there, with the reason, as on one node).

With ``resume``, a (run, node) pair that already has a settled row (SUCCESS, or SKIPPED:
running it again would only skip it again) in perf.csv or in the results history is left
out; in ``distribute`` mode a run settled on any node is left out and the rest are shared
out again. Runs left with no node are dropped from the plan, so nothing is run twice and
no FAILURE row is invented for them.

A row belongs to a (run, node) pair when its ``machine_name`` is the node (or the same
short host name), its ``model`` is the run's model (or ``<model>_<row>`` of a
multiple_results run), its ``docker_image`` is the run's image, and - when both are
recorded - its ``docker_sha`` is the build's (a rebuilt image is a new run).

:func:`node_files` lists what travels to a remote node: the script folders of the runs,
``scripts/common/tools.json`` with the pre/post scripts of the tools the context uses, the
context's own pre/post scripts, and ``data.json``; :func:`files_key` is a digest of their
content (the node's work directory is named after it, so unchanged files are copied once).
:func:`credential_keys` names the entries of ``credential.json`` a node needs to pull the
manifest's images and to give the models their ``cred`` variables.
"""
from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import sqlite3
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple
from urllib.parse import quote

from ansible_collections.madengine.core.plugins.module_utils._credentials import (
    credential_key_for_registry)
from ansible_collections.madengine.core.plugins.module_utils._errors import InvalidInputError
from ansible_collections.madengine.core.plugins.module_utils._perfcsv import read_rows, to_float

MODES = ("replicate", "distribute")
SETTLED = ("SUCCESS", "SKIPPED")
HISTORY_WINDOW = 5
TOOLS_JSON = "scripts/common/tools.json"
DATA_JSON = "data.json"
_COMMON_PATH = re.compile(r"(?:\.\./)*(scripts/common/[^\s'\";|&]+)")


# --------------------------------------------------------------------------- runs


def model_name(run: Mapping[str, Any]) -> str:
    model = run.get("model") if isinstance(run.get("model"), Mapping) else {}
    name = model.get("name")
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError("a planned run names no model", where="runs",
                                fix="Pass the run plan as mad_discover returns it ({image, build, model})")
    return name.strip()


def gpus_needed(run: Mapping[str, Any]) -> int:
    """The model's n_gpus as a number (-1: all GPUs of the node; unreadable counts as 1)."""
    model = run.get("model") if isinstance(run.get("model"), Mapping) else {}
    text = str(model.get("n_gpus") if model.get("n_gpus") not in (None, "") else "1").strip()
    return int(text) if re.fullmatch(r"-1|\d+", text) else 1


def _images(run: Mapping[str, Any]) -> Set[str]:
    build = run.get("build") if isinstance(run.get("build"), Mapping) else {}
    found = {run.get("image"), build.get("docker_image"), build.get("registry_image")}
    return {str(i) for i in found if i}


# --------------------------------------------------------------------------- history and resume


def _same_host(machine: str, node: str) -> bool:
    machine, node = machine.strip().lower(), node.strip().lower()
    return bool(machine) and (machine == node or machine.split(".")[0] == node.split(".")[0])


def _row_is_of(row: Mapping[str, Any], run: Mapping[str, Any], name: str) -> bool:
    model = str(row.get("model") or "").strip()
    if model != name and not model.startswith(name + "_"):
        return False
    image = str(row.get("docker_image") or "").strip()
    if image and image not in _images(run):
        return False
    build = run.get("build") if isinstance(run.get("build"), Mapping) else {}
    sha, row_sha = str(build.get("docker_sha") or ""), str(row.get("docker_sha") or "")
    return not (sha and row_sha and sha != row_sha)


def history_rows(history_db: Optional[str]) -> List[dict]:
    """Every result row kept in the SQLite results history (oldest first); [] without one."""
    if not history_db or "://" in history_db or not os.path.isfile(history_db):
        return []
    try:
        flag = "mode=ro" if os.path.exists(history_db + "-wal") else "immutable=1"
        db = sqlite3.connect(f"file:{quote(os.path.abspath(history_db))}?{flag}", uri=True, timeout=30)
        try:
            found = db.execute("SELECT row_json FROM results ORDER BY id").fetchall()
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        raise InvalidInputError(f"the results history {history_db} cannot be read: {exc}", where="history_db",
                                fix="Point history_db at a madengine history database, or leave it out") from None
    rows = []
    for (text,) in found:
        try:
            row = json.loads(text)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def past_durations(rows: Iterable[Mapping[str, Any]], runs: Sequence[Mapping[str, Any]],
                   window: int = HISTORY_WINDOW) -> Dict[int, float]:
    """Mean test_duration of the last ``window`` successful results of each run (by plan index)."""
    rows = [r for r in rows if str(r.get("status") or "").upper() == "SUCCESS"
            and (to_float(r.get("test_duration")) or 0) > 0]
    found: Dict[int, float] = {}
    for index, run in enumerate(runs):
        name = model_name(run)
        recent = [to_float(r.get("test_duration")) or 0.0 for r in rows if _row_is_of(r, run, name)][-window:]
        if recent:
            found[index] = sum(recent) / len(recent)
    return found


def settled_pairs(rows: Iterable[Mapping[str, Any]], runs: Sequence[Mapping[str, Any]],
                  nodes: Sequence[str]) -> Set[Tuple[int, str]]:
    """(plan index, node) pairs that already have a SUCCESS or SKIPPED row."""
    settled = [r for r in rows if str(r.get("status") or "").strip().upper() in SETTLED]
    pairs: Set[Tuple[int, str]] = set()
    for index, run in enumerate(runs):
        name = model_name(run)
        mine = [r for r in settled if _row_is_of(r, run, name)]
        for node in nodes:
            if any(_same_host(str(r.get("machine_name") or ""), node) for r in mine):
                pairs.add((index, node))
    return pairs


# --------------------------------------------------------------------------- assignment


def _eligible(need: int, nodes: Sequence[str], gpus: Mapping[str, Optional[int]]) -> List[str]:
    if need == 0:
        return list(nodes)
    fit = [n for n in nodes if gpus.get(n) is None or gpus[n] >= max(need, 1)]
    return fit or list(nodes)


def _costs(runs: Sequence[Mapping[str, Any]], durations: Mapping[int, float],
           gpus: Mapping[str, Optional[int]]) -> List[float]:
    largest = max([g for g in gpus.values() if g] or [1])
    unit = sorted(durations.values())[len(durations) // 2] if durations else 1.0
    costs = []
    for index, run in enumerate(runs):
        if index in durations:
            costs.append(durations[index])
        else:
            need = gpus_needed(run)
            costs.append(unit * max(1, largest if need < 0 else need))
    return costs


def distribute(runs: Sequence[Mapping[str, Any]], nodes: Sequence[str], *,
               node_gpus: Optional[Mapping[str, Optional[int]]] = None,
               durations: Optional[Mapping[int, float]] = None,
               indices: Optional[Sequence[int]] = None) -> Dict[str, List[int]]:
    """Plan indices per node: longest run first, to the eligible node with the least work."""
    gpus = dict(node_gpus or {})
    costs = _costs(runs, durations or {}, gpus)
    load = {node: 0.0 for node in nodes}
    share: Dict[str, List[int]] = {node: [] for node in nodes}
    todo = list(range(len(runs)) if indices is None else indices)
    for index in sorted(todo, key=lambda i: (-costs[i], i)):
        candidates = _eligible(gpus_needed(runs[index]), nodes, gpus)
        # least load, then fewest runs, then inventory order
        node = min(candidates, key=lambda n: (load[n], len(share[n]), nodes.index(n)))
        load[node] += costs[index]
        share[node].append(index)
    return {node: sorted(found) for node, found in share.items()}


def _node_gpus(raw: Optional[Mapping[str, Any]]) -> Dict[str, Optional[int]]:
    gpus: Dict[str, Optional[int]] = {}
    for node, value in (raw or {}).items():
        number = to_float(value)
        gpus[str(node)] = int(number) if number is not None and number >= 0 else None
    return gpus


def assign(runs: Sequence[Mapping[str, Any]], nodes: Sequence[str], mode: str = "replicate", *,
           node_gpus: Optional[Mapping[str, Any]] = None, durations: Optional[Mapping[int, float]] = None,
           settled: Optional[Set[Tuple[int, str]]] = None) -> dict:
    """``{runs, assignment, settled}``: runs that still run, each with its ``nodes``; the
    runs of each node in plan order; the (model, image, node) triples resume left out."""
    if mode not in MODES:
        raise InvalidInputError(f"mode {mode!r} is not one of {', '.join(MODES)}", where="mode",
                                fix="Use replicate (every node runs every model) or distribute (models shared out)")
    nodes = [str(n) for n in nodes]
    if len(set(nodes)) != len(nodes):
        raise InvalidInputError(f"the node list names a node twice: {', '.join(nodes)}", where="nodes")
    settled = set(settled or ())
    runs = list(runs)
    for run in runs:
        model_name(run)
    if mode == "replicate":
        per_run = {i: [n for n in nodes if (i, n) not in settled] for i in range(len(runs))}
    else:
        open_runs = [i for i in range(len(runs)) if not any((i, n) in settled for n in nodes)]
        share = distribute(runs, nodes, node_gpus=_node_gpus(node_gpus), durations=durations,
                           indices=open_runs) if nodes else {}
        per_run = {i: [] for i in range(len(runs))}
        for node, indices in share.items():
            for i in indices:
                per_run[i].append(node)
    planned = [dict(runs[i], nodes=per_run[i]) for i in range(len(runs)) if per_run[i]]
    assignment = {node: [run for run in planned if node in run["nodes"]] for node in nodes}
    left_out = [{"model": model_name(runs[i]), "image": runs[i].get("image"), "node": n}
                for i in range(len(runs)) for n in nodes if (i, n) in settled]
    return {"runs": planned, "assignment": assignment, "settled": left_out}


# --------------------------------------------------------------------------- what travels


def _inside(path: str, where: str) -> str:
    """A package-relative path, normalised; an error when it leaves the package."""
    text = str(path).strip().replace("\\", "/")
    if not text or posixpath.isabs(text):
        raise InvalidInputError(f"{where} {path!r} is not a path inside the MAD package", where=where,
                                fix="Use a path relative to the folder of models.json")
    norm = posixpath.normpath(text)
    if norm == ".." or norm.startswith("../"):
        raise InvalidInputError(f"{where} {path!r} points outside the MAD package, so it cannot be sent to a node",
                                where=where, fix="Keep the scripts inside the MAD package")
    return norm


def _script_folder(run: Mapping[str, Any]) -> Optional[str]:
    model = run.get("model") if isinstance(run.get("model"), Mapping) else {}
    scripts = str(model.get("scripts") or "").strip().rstrip("/")
    if not scripts:
        return None
    path = _inside(scripts, f"scripts of model {model.get('name')}")
    if path.endswith((".sh", ".py")):
        return posixpath.dirname(path) or "."
    return path


def _script_paths(entries: Any) -> List[str]:
    """The folders of pre/post scripts: such a script may use what lies beside it (upstream's
    run_rocenv_tool.sh copies its sibling rocEnvTool/ into the run directory)."""
    return [posixpath.dirname(str(e["path"])) or str(e["path"])
            for e in entries or [] if isinstance(e, Mapping) and e.get("path")]


def node_files(mad_dir: str, runs: Sequence[Mapping[str, Any]], context: Optional[Mapping[str, Any]] = None) -> List[str]:
    """Package-relative paths (folders and files) a remote node needs, existing ones, sorted."""
    context = context or {}
    wanted: List[str] = [f for f in (_script_folder(r) for r in runs) if f]
    wanted += _script_paths(context.get("pre_scripts")) + _script_paths(context.get("post_scripts"))
    used = [str(t.get("name")) for t in context.get("tools") or [] if isinstance(t, Mapping) and t.get("name")]
    tools_file = os.path.join(mad_dir, TOOLS_JSON)
    if used and os.path.isfile(tools_file):
        wanted.append(TOOLS_JSON)
        try:
            with open(tools_file, encoding="utf-8") as handle:
                catalogue = json.load(handle).get("tools") or {}
        except (OSError, ValueError, AttributeError):
            catalogue = {}
        for name in used:
            tool = catalogue.get(name) if isinstance(catalogue, Mapping) else None
            if isinstance(tool, Mapping):
                wanted += _script_paths(tool.get("pre_scripts")) + _script_paths(tool.get("post_scripts"))
                wanted += _COMMON_PATH.findall(str(tool.get("cmd") or ""))
    if os.path.isfile(os.path.join(mad_dir, DATA_JSON)):
        wanted.append(DATA_JSON)
    found = sorted({_inside(p, "a file for the nodes") for p in wanted
                    if os.path.exists(os.path.join(mad_dir, p))})
    if "." in found:  # a script at the package's top: its folder is the whole package
        return ["."]
    # a folder already brings what lies under it
    return [p for p in found if not any(p.startswith(q + "/") for q in found if q != p)]


def _walk(mad_dir: str, rel: str) -> Iterable[Tuple[str, str]]:
    top = os.path.join(mad_dir, rel)
    if os.path.isfile(top):
        yield rel, top
        return
    for root, dirs, files in os.walk(top, followlinks=True):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            yield posixpath.normpath(posixpath.join(rel, os.path.relpath(full, top).replace(os.sep, "/"))), full


def files_key(mad_dir: str, files: Sequence[str]) -> str:
    """A digest of the files' names, exec bits and contents (16 hex digits)."""
    digest = hashlib.sha256()
    for rel in files:
        for name, full in _walk(mad_dir, rel):
            try:
                executable = os.access(full, os.X_OK)
                with open(full, "rb") as handle:
                    content = hashlib.sha256(handle.read()).hexdigest()
            except OSError as exc:
                raise InvalidInputError(f"cannot read {full}: {exc.strerror}", where="node files",
                                        fix="Make the model's scripts readable") from None
            digest.update(f"{name}\0{int(executable)}\0{content}\n".encode())
    return digest.hexdigest()[:16]


def credential_keys(credential_names: Iterable[str], runs: Sequence[Mapping[str, Any]], registry: str = "") -> List[str]:
    """Entries of credential.json a node needs: the pull login of each run's registry, and each model's cred."""
    names = {str(n): {} for n in credential_names}
    keys: List[str] = []
    for run in runs:
        build = run.get("build") if isinstance(run.get("build"), Mapping) else {}
        if build.get("registry_image"):
            key = credential_key_for_registry(names, str(build.get("registry") or registry or ""))
            if key and key not in keys:
                keys.append(key)
        model = run.get("model") if isinstance(run.get("model"), Mapping) else {}
        cred = str(model.get("cred") or "").strip()
        if cred and cred in names and cred not in keys:
            keys.append(cred)
    return keys


def _credential_names(mad_dir: str) -> List[str]:
    path = os.path.join(mad_dir, "credential.json")
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        data = {}
    names = list(data) if isinstance(data, dict) else []
    if os.environ.get("MAD_DOCKERHUB_USER") and os.environ.get("MAD_DOCKERHUB_PASSWORD") and "dockerhub" not in names:
        names.append("dockerhub")
    return names


# --------------------------------------------------------------------------- one call


def plan_nodes(runs: Sequence[Mapping[str, Any]], nodes: Sequence[str], mode: str = "replicate", *,
               node_gpus: Optional[Mapping[str, Any]] = None, resume: bool = False,
               perf_csv: Optional[str] = None, history_db: Optional[str] = None,
               mad_dir: str = ".", context: Optional[Mapping[str, Any]] = None, registry: str = "") -> dict:
    """The node plan of a run: ``runs`` (with ``nodes``), ``assignment``, ``settled``,
    ``node_files``, ``node_files_key``, ``node_credentials``, ``mode``."""
    past = history_rows(history_db) if (mode == "distribute" or resume) else []
    settled: Set[Tuple[int, str]] = set()
    if resume:
        rows = (read_rows(perf_csv)[1] if perf_csv else []) + past
        settled = settled_pairs(rows, runs, [str(n) for n in nodes])
    durations = past_durations(past, runs) if mode == "distribute" else {}
    plan = assign(runs, nodes, mode, node_gpus=node_gpus, durations=durations, settled=settled)
    files = node_files(mad_dir, plan["runs"], context)
    plan.update(mode=mode, node_files=files, node_files_key=files_key(mad_dir, files),
                node_credentials=credential_keys(_credential_names(mad_dir), plan["runs"], registry))
    return plan
