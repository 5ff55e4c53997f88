"""`madengine validate-gpu`: what GPUs each node has, and whether it can run GPU models."""
from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from madengine import console, options
from madengine.runner import run_playbook

ROWS = (  # (label, fact)
    ("vendor", "vendor"), ("architecture", "architecture"), ("product", "product"),
    ("GPUs usable", "count"), ("GPUs on the node", "total_count"), ("devices", "devices"),
    ("driver", "driver_version"), ("ROCm", "rocm_version"), ("CUDA", "cuda_version"),
    ("answered by", "tool"), ("devices found by", "device_source"),
    ("set by the context", "overrides"), ("problems", "problems"),
)

RequireGpu = Annotated[bool, typer.Option(
    "--require-gpu", help="Exit 3 when a node cannot run GPU models.")]


def _show(value: Any) -> str:
    if value is None or value == [] or value == "":
        return "-"
    if isinstance(value, list):
        return "\n".join(str(v) for v in value)
    return str(value)


def facts_table(all_facts: list[dict]) -> Table:
    table = Table(title="GPU facts (madengine_gpu)", title_justify="left")
    table.add_column("fact", style="bold")
    for facts in all_facts:
        table.add_column(escape(str(facts.get("node", "?"))), overflow="fold")
    for label, key in ROWS:
        cells = [escape(_show(f.get(key))) for f in all_facts]
        if key == "problems":
            cells = [f"[yellow]{c}[/]" if c != "-" else c for c in cells]
        table.add_row(label, *cells)
    return table


def verdict_line(facts: dict) -> str:
    ok = bool(facts.get("can_run_gpu_models"))
    answer = "[green]yes[/]" if ok else "[red]no[/]"
    return f"{escape(str(facts.get('node', '')))}: can run GPU models: {answer} ({escape(str(facts.get('reason', '')))})"


def register(app: typer.Typer) -> None:
    @app.command("validate-gpu")
    def validate_gpu(
        additional_context: options.AdditionalContext = None,
        additional_context_file: options.AdditionalContextFile = None,
        inventory: options.Inventory = None,
        json_output: options.Json = False,
        require_gpu: RequireGpu = False,
        verbose: options.Verbose = False,
    ) -> None:
        """Detect the GPUs of this machine (or of the inventory's gpu_nodes) and say whether
        each node can run GPU models."""
        extravars = options.context_vars(additional_context, additional_context_file)
        with console.playbook_progress("validate-gpu", quiet=json_output) as observer:
            result = run_playbook("validate_gpu.yml", extravars, inventory=inventory,
                                  observer=observer, verbose=verbose)
        all_facts = [res["ansible_facts"]["madengine_gpu"] for res in result.of("gpu_facts")
                     if isinstance(res.get("ansible_facts"), dict) and "madengine_gpu" in res["ansible_facts"]]
        if json_output:
            console.print_json(all_facts)
        elif all_facts:
            console.out.print(facts_table(all_facts))
            for facts in all_facts:
                console.out.print(verdict_line(facts), soft_wrap=True)
        console.check_playbook(result, verbose=verbose)
        if not all_facts:
            console.fail("no node reported GPU facts; rerun with --verbose", console.EXIT_FAILURE)
        unable = [f for f in all_facts if not f.get("can_run_gpu_models")]
        if require_gpu and unable:
            console.fail("; ".join(f"{f.get('node')}: {f.get('reason')}" for f in unable), console.EXIT_RUN)
