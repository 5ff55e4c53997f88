"""Terminal output: one Rich console for humans (stderr), plain stdout for --json."""
from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

from madengine.runner import Event, PlaybookResult

err = Console(stderr=True, highlight=False)
out = Console(highlight=False)

EXIT_OK, EXIT_FAILURE, EXIT_BUILD, EXIT_RUN, EXIT_INVALID = 0, 1, 2, 3, 4


def error(message: str) -> None:
    """One error line; the message is printed as it is (no markup: it may hold brackets)."""
    err.print(Text("error: ", style="bold red") + Text(message), soft_wrap=True)


def fail(message: str, code: int = EXIT_INVALID) -> NoReturn:
    error(message)
    raise typer.Exit(code)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def check_playbook(result: PlaybookResult, *, verbose: bool = False) -> None:
    """Turn a failed playbook into one clear message and the contract's exit code."""
    problems = result.failures + result.unreachable
    if not problems and result.rc == 0:
        return
    if not problems:
        if verbose and result.stdout:
            err.print(result.stdout, markup=False)
        fail(f"the playbook failed (ansible rc={result.rc}); rerun with --verbose for its output",
             EXIT_FAILURE)
    for problem in problems:
        where = f"{problem.host}: " if problem.host not in ("localhost", "") else ""
        msg = problem.msg or f"task '{problem.task}' failed"
        error(f"{where}{msg}")
        if verbose:
            err.print(problem.result, markup=False)
    codes = [int(p.exit_code) for p in problems if p.exit_code]
    raise typer.Exit(codes[0] if codes else EXIT_FAILURE)


@contextmanager
def playbook_progress(title: str, *, quiet: bool = False) -> Iterator[Any]:
    """A spinner that follows the playbook's task names; yields an event observer."""
    if quiet or not err.is_terminal:
        yield None
        return
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=err, transient=True) as progress:
        task = progress.add_task(title)

        def observe(event: Event) -> None:
            data = event.get("event_data") or {}
            if event.get("event") == "playbook_on_task_start" and data.get("task"):
                progress.update(task, description=f"{title}: {data['task']}")

        yield observe
