"""A live view of a build/run playbook: one row per model, moving through its phases.

It only reads ansible-runner events (task starts and our modules' results); the rows
change as the playbook reports, nothing is inferred from timing.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from rich.console import Group
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from madengine.console import err
from madengine.runner import Event

STYLE = {"SUCCESS": "green", "FAILURE": "red", "SKIPPED": "yellow", "built": "green",
         "unchanged": "green", "failed": "red"}


class WorkflowProgress:
    """Observer for run_playbook that keeps a row per (node, model) and renders it live."""

    def __init__(self, title: str, *, enabled: bool = True):
        self.title = title
        self.enabled = enabled and err.is_terminal
        self.task = "starting"
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}
        self.plan: list[tuple[str, list | None]] = []
        self.started = time.monotonic()
        self.live: Live | None = None
        self._lock = threading.Lock()

    # -- event handling ------------------------------------------------------------------
    def __call__(self, event: Event) -> None:
        data = event.get("event_data") or {}
        kind = event.get("event")
        action = data.get("resolved_action") or data.get("task_action") or ""
        res = data.get("res") if isinstance(data.get("res"), dict) else {}
        host = data.get("host") or ""
        with self._lock:
            if kind == "playbook_on_task_start":
                self.task = data.get("task") or self.task
            if not action.startswith("madengine.core."):
                pass
            elif kind == "runner_on_start" and action.endswith("mad_build"):
                for row in self.rows.values():
                    row["phase"] = "building"
            elif kind == "runner_on_start" and action.endswith("mad_run"):
                self._start_next(host)
            elif kind == "runner_on_ok" and action.endswith("mad_discover"):
                self._discovered(res)
            elif kind in ("runner_on_ok", "runner_on_failed") and action.endswith("mad_build"):
                self._built(res)
            elif kind in ("runner_item_on_ok", "runner_item_on_failed") and action.endswith("mad_run"):
                self._ran(host, res, failed=kind.endswith("failed"))
                self._start_next(host)
        self.refresh()

    def _discovered(self, res: dict) -> None:
        if "runs" in res:  # the run plan, read from the manifest
            # In distribute mode each run names the nodes it goes to; replicate sends it to all.
            self.plan = [(run["model"]["name"], run.get("nodes")) for run in res["runs"]]
            self.rows = {}
        elif not self.rows:
            for model in res.get("models") or []:
                self.rows[("", model["name"])] = {"model": model["name"], "phase": "discovered"}

    def _built(self, res: dict) -> None:
        for build in res.get("builds") or []:
            row = self.rows.get(("", build.get("model", "")))
            if row is None:
                continue
            if build.get("status") == "SUCCESS":
                row["phase"] = "unchanged" if build.get("skipped_unchanged") else "built"
            else:
                row["phase"] = "failed"
                row["reason"] = build.get("error") or build.get("push_error") or ""

    def _host_rows(self, host: str) -> list[dict]:
        if not any(h == host for h, _ in self.rows):
            for name, nodes in self.plan:
                if nodes is None or host in nodes:
                    self.rows[(host, name)] = {"model": name, "phase": "queued"}
        return [row for (h, _), row in self.rows.items() if h == host]

    def _start_next(self, host: str) -> None:
        for row in self._host_rows(host):
            if row["phase"] == "queued":
                row["phase"] = "running"
                row["since"] = time.monotonic()
                return

    def _ran(self, host: str, res: dict, failed: bool) -> None:
        name = ((res.get("gpu_node_run") or {}).get("model") or {}).get("name")
        for row in self._host_rows(host):
            if row["phase"] == "running" and name in (None, row["model"]):
                row["phase"] = "FAILURE" if failed else str(res.get("status") or "done")
                row["reason"] = str(res.get("reason") or (res.get("msg") if failed else "") or "")
                records = res.get("records") or []
                if records and records[0].get("performance") not in (None, ""):
                    row["performance"] = f"{records[0]['performance']} {records[0].get('metric', '')}"
                return

    # -- rendering -----------------------------------------------------------------------
    def render(self) -> Any:
        elapsed = time.monotonic() - self.started
        head = Spinner("dots", text=Text.from_markup(
            f"[bold]{self.title}[/] [dim]{elapsed:5.1f}s[/]  {self.task}"))
        if not self.rows:
            return head
        table = Table(box=None, pad_edge=False, show_header=False)
        for _ in range(4):
            table.add_column()
        multi = len({h for h, _ in self.rows}) > 1
        for (host, _), row in list(self.rows.items())[:40]:
            phase = row["phase"]
            if phase == "running":
                phase = f"running {time.monotonic() - row.get('since', self.started):.0f}s"
            label = f"{host}: {row['model']}" if multi and host else row["model"]
            table.add_row("  " + label, Text(phase, style=STYLE.get(row["phase"], "cyan")),
                          row.get("performance", ""), Text(row.get("reason", "")[:60], style="dim"))
        return Group(head, table)

    def refresh(self) -> None:
        if self.live is not None:
            self.live.update(self.render())

    def __enter__(self) -> WorkflowProgress:
        if self.enabled:
            self.live = Live(self.render(), console=err, refresh_per_second=8, transient=True,
                             get_renderable=self.render)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)
            self.live = None


class LogFollower:
    """--live-output on this machine: print new lines of the run logs as they grow."""

    def __init__(self, directory: Path, pattern: str = "*.run.live.log"):
        self.directory = directory
        self.pattern = pattern
        self.offsets: dict[Path, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        # Logs of earlier runs: (mtime, size). One left untouched is not followed; one this
        # run rewrites (mad_run truncates it) is followed from its start.
        self._seen_before = {}
        for path in directory.glob(pattern):
            try:
                info = path.stat()
            except OSError:
                continue
            self._seen_before[path] = (info.st_mtime_ns, info.st_size)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(0.25)
        self.poll()

    def poll(self) -> None:
        for path in sorted(self.directory.glob(self.pattern)):
            start = self.offsets.get(path)
            if start is None:
                start = self._start_of(path)
                if start is None:
                    continue
            try:
                with open(path, "rb") as fh:
                    fh.seek(start)
                    chunk = fh.read(1 << 20)
            except OSError:
                continue
            if not chunk:
                continue
            cut = chunk.rfind(b"\n") + 1
            if not cut:
                continue
            self.offsets[path] = start + cut
            prefix = path.name.split(".run.live.log")[0]
            for line in chunk[:cut].decode(errors="replace").splitlines():
                err.print(Text(f"[{prefix}] ", style="dim") + Text(line))

    def _start_of(self, path: Path) -> int | None:
        """Where to start reading a log not followed yet; None while it is an earlier run's."""
        before = self._seen_before.get(path)
        if before is None:
            return 0
        try:
            info = path.stat()
        except OSError:
            return None
        if (info.st_mtime_ns, info.st_size) == before:
            return None
        return 0

    def __enter__(self) -> LogFollower:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
