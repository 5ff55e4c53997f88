"""What `build` and `run` share: run the playbook under the live view, then decide the exit code."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from madengine import console
from madengine.progress import LogFollower, WorkflowProgress
from madengine.runner import PlaybookResult, run_playbook

VERDICT_ACTIONS = ("ansible.builtin.fail",)  # the playbooks' own "fail when a model failed" tasks


def execute(playbook: str, extravars: dict[str, Any], *, title: str, inventory: Path | None,
            verbose: bool, quiet: bool, follow_logs: Path | None = None) -> PlaybookResult:
    progress = WorkflowProgress(title, enabled=not quiet)
    follower = LogFollower(follow_logs) if follow_logs else None
    with progress:
        if follower:
            follower.__enter__()
        try:
            return run_playbook(playbook, extravars, inventory=inventory,
                                observer=progress, verbose=verbose)
        finally:
            if follower:
                follower.__exit__(None, None, None)


def builds_of(result: PlaybookResult) -> list[dict]:
    return [b for res in result.of("mad_build") for b in res.get("builds") or []]


def build_failed(build: dict) -> bool:
    return build.get("status") != "SUCCESS" or bool(build.get("push_error"))


def exit_code(result: PlaybookResult, *, verbose: bool) -> int:
    """The CLI contract: 4 bad input, 2 a build failed, 3 a model failed, 1 anything else."""
    problems = [p for p in result.failures + result.unreachable if p.action not in VERDICT_ACTIONS]
    for problem in problems:
        where = f"{problem.host}: " if problem.host not in ("", "localhost") else ""
        console.error(f"{where}{problem.msg or problem.task + ' failed'}")
        if verbose:
            console.err.print(problem.result, markup=False)
    codes = [int(p.exit_code) for p in problems if p.exit_code]
    if console.EXIT_INVALID in codes:
        return console.EXIT_INVALID
    if any(build_failed(b) for b in builds_of(result)):
        # The playbook goes on after a failed build (the other images run): say once why.
        for res in result.of("mad_build"):
            if res.get("exit_code") == console.EXIT_BUILD and res.get("msg"):
                console.error(str(res["msg"]))
        return console.EXIT_BUILD
    collected = result.last("perf_collect")
    if collected and collected.get("exit_code"):
        return int(collected["exit_code"])
    if codes:
        return codes[0]
    if problems or result.rc != 0:
        if verbose and result.stdout:
            console.err.print(result.stdout, markup=False)
        if not problems:
            console.error(f"the playbook failed (rc={result.rc}); rerun with --verbose to see its output")
        return console.EXIT_FAILURE
    return console.EXIT_OK


def build_table(builds: list[dict]) -> Table:
    table = Table(title="Images", title_justify="left")
    for col in ("image", "model", "status", "seconds", "pushed to", "error"):
        table.add_column(col, overflow="fold")
    for b in builds:
        status = "unchanged" if b.get("skipped_unchanged") and b.get("status") == "SUCCESS" else b.get("status", "")
        if b.get("push_error"):
            status = "PUSH FAILED"
        style = "red" if build_failed(b) else "green"
        table.add_row(b.get("image") or b.get("docker_image", ""), b.get("model", ""),
                      f"[{style}]{status}[/]", f"{float(b.get('build_duration') or 0):.1f}",
                      b.get("registry_image") or "", (b.get("error") or b.get("push_error") or "")[:200])
    return table


def results_table(rows: list[dict]) -> Table:
    multi = len({r.get("machine_name") for r in rows if r.get("machine_name")}) > 1  # a failed build has none
    table = Table(title="Results", title_justify="left")
    columns = ["model"] + (["node"] if multi else []) + ["status", "performance", "metric",
                                                         "vs history", "seconds", "reason"]
    for col in columns:
        table.add_column(col, overflow="fold", justify="right" if col in ("performance", "seconds") else "left")
    style = {"SUCCESS": "green", "FAILURE": "red", "SKIPPED": "yellow"}
    for r in rows:
        change = r.get("relative_change")
        cells = [r.get("model", "")] + ([r.get("machine_name", "")] if multi else []) + [
            f"[{style.get(r.get('status'), 'white')}]{r.get('status', '')}[/]",
            _text(r.get("performance")), _text(r.get("metric")),
            f"{float(change):+.1f}%" if change not in (None, "") else "",
            f"{float(r.get('test_duration') or 0):.1f}", _short(r.get("reason"))]
        table.add_row(*cells)
    return table


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _short(reason: Any, width: int = 32) -> str:
    """A table cell's reason: its first line, cut; the summary JSON keeps it whole."""
    text = str(reason or "").strip().splitlines()[0] if reason else ""
    return text if len(text) <= width else text[: width - 1] + "…"


def finish(code: int) -> None:
    raise typer.Exit(code)
