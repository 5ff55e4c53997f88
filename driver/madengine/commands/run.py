"""`madengine run`: run models (building them first when no manifest is given), collect perf.csv."""
from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from madengine import console, options
from madengine.commands import _workflow
from madengine.commands.build import CleanCache, ManifestOutput, Parallel, Registry, build_vars
from madengine.runner import inventory_problem

ManifestFile = Annotated[Optional[Path], typer.Option(
    "--manifest-file", help="Run the images of this build_manifest.json (no build).")]
Timeout = Annotated[Optional[int], typer.Option(
    "--timeout", min=0, help="Seconds before a model is killed (overrides models.json; 0: none).")]
LiveOutput = Annotated[bool, typer.Option("--live-output", "-l", help="Print the models' output as it comes.")]
KeepAlive = Annotated[bool, typer.Option("--keep-alive", help="Leave the containers after the run.")]
Output = Annotated[Path, typer.Option("--output", "-o", help="The perf.csv to append to.")]
SummaryOutput = Annotated[Optional[Path], typer.Option(
    "--summary-output", help="Where to write the run summary JSON (default run_summary.json).")]


class RunMode(str, Enum):
    replicate = "replicate"
    distribute = "distribute"


Mode = Annotated[RunMode, typer.Option(
    "--mode", help="With --inventory: every node runs every model (replicate), or the models "
    "are shared out among the nodes (distribute).")]
Resume = Annotated[bool, typer.Option(
    "--resume", help="Run only the (model, node) pairs that have no SUCCESS or SKIPPED row in perf.csv yet.")]


def node_vars(mode: RunMode, resume: bool, inventory: Path | None) -> dict:
    """Extra-vars of a run across nodes (checked here so a wrong path exits 4 before any work)."""
    if inventory is not None and not inventory.expanduser().is_file():
        console.fail(f"the inventory {inventory} does not exist; give an Ansible inventory or a MAD node file")
    problem = inventory_problem(inventory) if inventory is not None else None
    if problem:
        console.fail(problem)
    return {"madengine_mode": mode.value, "madengine_resume": resume}


def run_vars(mad_dir: Path, tags: list[str] | None, manifest_file: Path | None, additional_context: str | None,
             additional_context_file: Path | None, output: Path, timeout: int | None,
             summary_output: Path | None, live_output: bool = False, keep_alive: bool = False,
             registry: str | None = None, manifest_output: Path = Path("build_manifest.json"),
             clean_docker_cache: bool = False, parallel: int = 0, required: bool = True) -> dict:
    """The extra-vars of run.yml (shared by `run` and `runner`)."""
    output_dir = output.resolve().parent
    extravars = build_vars(mad_dir, tags, additional_context, additional_context_file, registry,
                           manifest_output, clean_docker_cache, parallel, output_dir)
    if manifest_file is not None:
        if not manifest_file.is_file():
            console.fail(f"the manifest {manifest_file} does not exist; build one with "
                         "`madengine build --tags ...` or give the right --manifest-file")
        extravars["madengine_manifest_file"] = str(manifest_file.resolve())
    elif not tags and required:
        console.fail("nothing to run: give --tags to build and run models, "
                     "or --manifest-file to run what a build recorded")
    extravars.update({
        "madengine_perf_csv": str(output.resolve()),
        "madengine_live_output": live_output,
        "madengine_keep_alive": keep_alive,
    })
    if timeout is not None:
        extravars["madengine_timeout"] = timeout
    if summary_output is not None:
        extravars["madengine_summary_output"] = str(summary_output.resolve())
    return extravars


def register(app: typer.Typer) -> None:
    @app.command()
    def run(
        tags: options.Tags = None,
        manifest_file: ManifestFile = None,
        additional_context: options.AdditionalContext = None,
        additional_context_file: options.AdditionalContextFile = None,
        timeout: Timeout = None,
        live_output: LiveOutput = False,
        keep_alive: KeepAlive = False,
        output: Output = Path("perf.csv"),
        summary_output: SummaryOutput = None,
        registry: Registry = None,
        manifest_output: ManifestOutput = Path("build_manifest.json"),
        clean_docker_cache: CleanCache = False,
        parallel: Parallel = 0,
        mad_dir: options.MadDir = Path("."),
        inventory: options.Inventory = None,
        mode: Mode = RunMode.replicate,
        resume: Resume = False,
        json_output: options.Json = False,
        verbose: options.Verbose = False,
    ) -> None:
        """Run the selected models and append their performance to perf.csv.

        With --manifest-file, run the images a build recorded (pulling them from its registry);
        otherwise build the models selected by --tags first. With --inventory, run on its
        gpu_nodes (an Ansible inventory or a MAD node file): one perf.csv on this machine, a
        machine_name per node, the nodes' logs under nodes/<host>/ beside it.
        """
        output_dir = output.resolve().parent
        extravars = run_vars(mad_dir, tags, manifest_file, additional_context, additional_context_file,
                             output, timeout, summary_output, live_output, keep_alive, registry,
                             manifest_output, clean_docker_cache, parallel)
        extravars.update(node_vars(mode, resume, inventory))
        follow = output_dir if live_output and inventory is None and not json_output else None
        result = _workflow.execute("run.yml", extravars, title="run", inventory=inventory,
                                   verbose=verbose, quiet=json_output, follow_logs=follow)
        code = _workflow.exit_code(result, verbose=verbose)
        collected = result.last("perf_collect") or {}
        rows = collected.get("rows") or []
        if json_output:
            console.print_json({"exit_code": code, "summary": collected.get("summary"), "rows": rows,
                                "builds": _workflow.builds_of(result)})
        else:
            builds = [b for b in _workflow.builds_of(result) if _workflow.build_failed(b)]
            if builds:
                console.out.print(_workflow.build_table(builds))
            if rows:
                console.out.print(_workflow.results_table(rows))
                console.err.print(f"perf.csv: {output}")
            for res in result.of("mad_run"):
                if res.get("keep_alive_hint"):
                    console.err.print(res["keep_alive_hint"])
        _workflow.finish(code)
