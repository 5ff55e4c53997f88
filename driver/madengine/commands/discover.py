"""`madengine discover`: which models the tags select, and what each would build."""
from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from madengine import console, options
from madengine.runner import run_playbook


def discover_vars(mad_dir: Path, tags: list[str] | None, additional_context: str | None,
                  additional_context_file: Path | None) -> dict:
    return {
        "madengine_mad_dir": str(mad_dir.expanduser().resolve()),
        "madengine_tags": options.tag_list(tags),
        **options.context_vars(additional_context, additional_context_file),
        "madengine_discover_show": False,  # the driver prints its own table
    }


def models_table(models: list[dict]) -> Table:
    table = Table(title=f"Selected models ({len(models)})", title_justify="left")
    table.add_column("name", no_wrap=True)
    for column in ("tags", "n_gpus", "args", "Dockerfiles", "script"):
        table.add_column(column, overflow="fold")
    for model in models:
        files = escape("\n".join(model.get("dockerfiles") or [])) or "[red]none (see below)[/]"
        table.add_row(escape(model.get("name", "")), escape(", ".join(model.get("tags") or [])),
                      str(model.get("n_gpus", "")), escape((model.get("args") or "").strip()), files,
                      escape(model.get("scripts") or ""))
    return table


def register(app: typer.Typer) -> None:
    @app.command()
    def discover(
        tags: options.Tags = None,
        additional_context: options.AdditionalContext = None,
        additional_context_file: options.AdditionalContextFile = None,
        mad_dir: options.MadDir = Path("."),
        json_output: options.Json = False,
        verbose: options.Verbose = False,
    ) -> None:
        """List the models the tags select (all without --tags), with their args and Dockerfiles."""
        extravars = discover_vars(mad_dir, tags, additional_context, additional_context_file)
        with console.playbook_progress("discover", quiet=json_output) as observer:
            result = run_playbook("discover.yml", extravars, observer=observer, verbose=verbose)
        console.check_playbook(result, verbose=verbose)
        found = result.last("mad_discover")
        if found is None:
            console.fail("the discover playbook returned no selection; rerun with --verbose",
                         console.EXIT_FAILURE)
        for line in found.get("discover_warnings") or []:
            console.err.print(f"[yellow]warning:[/] {escape(line)}", soft_wrap=True)
        models = found.get("models") or []
        if json_output:
            console.print_json(models)
        else:
            console.out.print(models_table(models))
            for model in models:
                if model.get("dockerfile_error"):
                    console.out.print(f"[yellow]{escape(model['name'])}[/]: {escape(model['dockerfile_error'])}",
                                      soft_wrap=True)
