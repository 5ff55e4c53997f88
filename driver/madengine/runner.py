"""Run one playbook of the collection through ansible-runner and collect its results.

The driver never does the work itself: it hands extra-vars to a playbook, watches the
events, and reads the module results out of them.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from madengine import collection

Event = dict[str, Any]
Observer = Callable[[Event], None]

OUR_MODULES = ("gpu_facts", "mad_discover", "mad_build", "mad_run", "perf_collect")
# Ansible's default inventory plugins, with ours first (it only takes MAD files and its configs).
INVENTORY_PLUGINS = "madengine.core.mad_nodes,host_list,script,auto,yaml,ini,toml"
MAX_FORKS = 64


@dataclass
class TaskFailure:
    host: str
    task: str
    action: str
    msg: str
    exit_code: int | None
    result: dict


@dataclass
class PlaybookResult:
    rc: int
    status: str
    results: dict[str, list[dict]] = field(default_factory=dict)
    failures: list[TaskFailure] = field(default_factory=list)
    unreachable: list[TaskFailure] = field(default_factory=list)
    stdout: str = ""

    def of(self, module: str) -> list[dict]:
        """Results of one of our modules (short name), in the order they arrived."""
        return self.results.get(f"madengine.core.{module}", [])

    def last(self, module: str) -> dict | None:
        found = self.of(module)
        return found[-1] if found else None


def _module_results(res: dict) -> list[dict]:
    """A looped task's event carries its items under ``results``."""
    if isinstance(res.get("results"), list) and "msg" not in res:
        return [r for r in res["results"] if isinstance(r, dict)]
    return [res]


class _Collector:
    def __init__(self, observer: Observer | None):
        self.observer = observer
        self.result = PlaybookResult(rc=0, status="")

    def __call__(self, event: Event) -> bool:
        data = event.get("event_data") or {}
        name = event.get("event", "")
        action = data.get("resolved_action") or data.get("task_action") or ""
        res = data.get("res") if isinstance(data.get("res"), dict) else {}
        if name in ("runner_on_ok", "runner_item_on_ok") and action.startswith("madengine.core."):
            if name == "runner_on_ok" and "results" in res:
                pass  # items were already seen one by one
            else:
                self.result.results.setdefault(action, []).append(res)
        elif name == "runner_on_failed" and not data.get("ignore_errors"):
            items = [r for r in _module_results(res) if r.get("failed")] or [res]
            for item in items:
                self.result.failures.append(TaskFailure(
                    host=data.get("host", ""), task=data.get("task", ""), action=action,
                    msg=str(item.get("msg", "")), exit_code=item.get("exit_code"), result=item))
        elif name == "runner_on_unreachable":
            self.result.unreachable.append(TaskFailure(
                host=data.get("host", ""), task=data.get("task", ""), action=action,
                msg=str(res.get("msg", "")), exit_code=None, result=res))
        if self.observer is not None:
            self.observer(event)
        return True  # ansible-runner drops events (and stats) otherwise


def _load_document(path: Path) -> Any:
    """A JSON or YAML file's content; None when it is neither (an INI inventory, say)."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return None


def _is_mad_inventory(document: Any) -> bool:
    return collection.module_utils("_nodes").is_mad_inventory(document)


def _host_count(document: Any, path: Path) -> int:
    """How many hosts an inventory names (near enough to size the forks)."""
    if isinstance(document, dict) and isinstance(document.get("nodes"), list):
        return len(document["nodes"]) + 1  # a MAD node file's nodes, and the controller
    if isinstance(document, dict) and document.get("plugin") and document.get("path"):
        nested = _load_document(path.parent / str(document["path"]))
        return _host_count(nested, path.parent / str(document["path"])) if nested is not None else 0
    if isinstance(document, dict):
        names: set[str] = set()

        def walk(node: Any) -> None:
            if isinstance(node, dict):
                for key, value in node.items():
                    if key == "hosts" and isinstance(value, dict):
                        names.update(map(str, value))
                    else:
                        walk(value)

        walk(document)
        return len(names)
    try:  # INI: host lines of the non-:vars sections
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return 0
    hosts, in_vars = set(), False
    for line in lines:
        text = line.strip()
        if not text or text.startswith(("#", ";")):
            continue
        if text.startswith("["):
            in_vars = text.rstrip("]").endswith(":vars") or text.rstrip("]").endswith(":children")
            continue
        if not in_vars:
            hosts.add(text.split()[0])
    return len(hosts)


def prepare_inventory(inventory: str | os.PathLike, private: Path) -> tuple[str, int]:
    """(the inventory to give Ansible, how many hosts it has).

    A MAD node file (MAD-FORMAT section 7) is wrapped in a madengine.core.mad_nodes config
    written in the private data dir, so a file of any name is read by our plugin and a bad
    one stops the run with the plugin's message.
    """
    path = Path(inventory).expanduser().resolve()
    document = _load_document(path) if path.is_file() else None
    count = _host_count(document, path) if path.is_file() else 0
    if document is not None and _is_mad_inventory(document):
        config = private / "inventory" / "nodes.mad_nodes.yml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(collection.module_utils("_nodes").plugin_config(str(path)))
        return str(config), count
    return str(path), count


def inventory_problem(inventory: str | os.PathLike) -> str | None:
    """What is wrong with a MAD node file (the plugin's own check), or None; other inventories are Ansible's to read."""
    path = Path(inventory).expanduser()
    document = _load_document(path) if path.is_file() else None
    if document is None or not _is_mad_inventory(document):
        return None
    try:
        collection.module_utils("_nodes").validate(document, str(path))
    except collection.module_utils("_errors").MadError as err:
        return err.message
    return None


def default_forks(hosts: int) -> int:
    """As many forks as hosts (every node works at once), at least Ansible's 5."""
    return max(5, min(MAX_FORKS, hosts))


def _discard_environment_dump(private: Path, ident: str) -> Callable[[], None]:
    """ansible-runner writes its whole environment (a user's registry password among it) to
    artifacts/<ident>/command. That path is made a FIFO whose reader throws the bytes away,
    so the environment never lands on disk. Returns the function that ends the reader."""
    artifact = private / "artifacts" / ident
    artifact.mkdir(parents=True, mode=0o700)
    fifo = artifact / "command"
    os.mkfifo(fifo, 0o600)

    def drain() -> None:
        with open(fifo, "rb") as fh:  # blocks until ansible-runner opens it to write
            while fh.read(65536):
                pass

    reader = threading.Thread(target=drain, name="madengine-env-dump", daemon=True)
    reader.start()

    def close() -> None:
        if reader.is_alive():  # ansible-runner never wrote (it failed early): release the reader
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
            reader.join(timeout=2)

    return close


def run_playbook(
    playbook: str,
    extravars: dict[str, Any],
    *,
    inventory: str | os.PathLike | None = None,
    observer: Observer | None = None,
    verbose: bool = False,
    limit: str | None = None,
    forks: int | None = None,
) -> PlaybookResult:
    import ansible_runner  # slow import; only when a playbook really runs

    bindir = str(Path(sys.executable).parent)
    env = {
        "PATH": bindir + os.pathsep + os.environ.get("PATH", ""),
        "ANSIBLE_COLLECTIONS_PATH": os.pathsep.join(
            [str(collection.collections_path())]
            + [p for p in os.environ.get("ANSIBLE_COLLECTIONS_PATH", "").split(os.pathsep) if p]),
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_SSH_ARGS": "-o ControlMaster=auto -o ControlPersist=120s -o PreferredAuthentications=publickey",
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
        "ANSIBLE_INTERPRETER_PYTHON": "auto_silent",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_CALLBACK_RESULT_FORMAT": "yaml",
        # ansible-runner drops results over 700 kB from events (a 5,000-model discovery).
        "MAX_EVENT_RES": "1073741824",
    }
    private = tempfile.mkdtemp(prefix="madengine-runner-")
    # Extra-vars go in a private file, not on the command line (process lists are public).
    (Path(private) / "env").mkdir()
    (Path(private) / "env" / "extravars").write_text(json.dumps(extravars))
    collector = _Collector(observer)
    hosts = 1
    if inventory is not None:
        inventory, hosts = prepare_inventory(inventory, Path(private))
        env["ANSIBLE_INVENTORY_ENABLED"] = INVENTORY_PLUGINS
        # A broken inventory stops the run instead of running on no hosts.
        env["ANSIBLE_INVENTORY_UNPARSED_FAILED"] = "True"
    if not forks and not os.environ.get("ANSIBLE_FORKS"):
        forks = default_forks(hosts)
    cmdline = []
    if limit:
        cmdline += ["--limit", limit]
    if forks:
        cmdline += ["--forks", str(forks)]
    ident = uuid.uuid4().hex
    release_dump = _discard_environment_dump(Path(private), ident)
    try:
        runner = ansible_runner.run(
            private_data_dir=private,
            ident=ident,
            playbook=str(collection.playbook(playbook)),
            inventory=str(inventory or collection.local_inventory()),
            envvars=env,
            event_handler=collector,
            quiet=True,
            suppress_env_files=True,
            suppress_ansible_output=True,
            verbosity=1 if verbose else 0,
            cmdline=" ".join(cmdline) or None,
        )
        collector.result.rc = runner.rc
        collector.result.status = runner.status
        try:
            collector.result.stdout = runner.stdout.read()
        except (OSError, ValueError):
            collector.result.stdout = ""
    finally:
        release_dump()
        shutil.rmtree(private, ignore_errors=True)
    return collector.result
