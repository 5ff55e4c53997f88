"""`madengine report`: reports of a perf.csv, rendered by the collection (playbooks/report.yml)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from madengine import console, options
from madengine.runner import run_playbook

CsvFile = Annotated[Path, typer.Option(
    "--csv-file", "--csv-file-path", help="The perf.csv to report on.")]
Output = Annotated[Optional[Path], typer.Option(
    "--output", "-o", help="The HTML file to write (default: the CSV's path with .html).")]


def report_vars(csv_file: Path, output: Path | None) -> dict:
    csv_path = csv_file.expanduser().resolve()
    html = (output.expanduser().resolve() if output else csv_path.with_suffix(".html"))
    return {"madengine_report_csv": str(csv_path), "madengine_report_html": str(html),
            "madengine_output_dir": str(html.parent)}


def register(app: typer.Typer) -> None:
    report_app = typer.Typer(name="report", help="Reports of a perf.csv.", no_args_is_help=True)

    @report_app.command("to-html")
    def to_html(
        csv_file: CsvFile = Path("perf.csv"),
        output: Output = None,
        json_output: options.Json = False,
        verbose: options.Verbose = False,
    ) -> None:
        """Render perf.csv as an HTML page: totals, the latest result of each model, every row."""
        if not csv_file.is_file():
            console.fail(f"no CSV file at {csv_file}; give one with --csv-file", console.EXIT_INVALID)
        extravars = report_vars(csv_file, output)
        with console.playbook_progress("report", quiet=json_output) as observer:
            result = run_playbook("report.yml", extravars, observer=observer, verbose=verbose)
        console.check_playbook(result, verbose=verbose)
        done = result.last("perf_collect") or {}
        path = done.get("html_report") or extravars["madengine_report_html"]
        if json_output:
            console.print_json({"html_report": path, "perf_csv": done.get("perf_csv"),
                                 "changed": bool(done.get("changed"))})
        else:
            state = "written" if done.get("changed") else "unchanged"
            console.out.print(f"report {state}: {escape(path)}", soft_wrap=True)

    app.add_typer(report_app, name="report")
