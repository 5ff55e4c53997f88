"""Options shared by several commands, declared once (upstream-compatible names)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

Tags = Annotated[Optional[list[str]], typer.Option(
    "--tags", "-t", help="Model names or tags to select (repeatable, comma-separated; "
    "'all', 'dir/name', 'dir/tag', 'dir:model', 'name:key=value').")]
AdditionalContext = Annotated[Optional[str], typer.Option(
    "--additional-context", "-c", help="Context as JSON (or a Python dict literal); wins over the file.")]
AdditionalContextFile = Annotated[Optional[Path], typer.Option(
    "--additional-context-file", "-f", help="Context from a JSON file.")]
MadDir = Annotated[Path, typer.Option(
    "--mad-dir", help="The MAD package (folder with models.json).", envvar="MAD_DIR")]
Json = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Show Ansible output and tracebacks.")]
Inventory = Annotated[Optional[Path], typer.Option(
    "--inventory", "-i", help="Ansible inventory or MAD node file; default: this machine.")]


def context_vars(additional_context: str | None, additional_context_file: Path | None) -> dict:
    """Extra-vars for the context; the collection parses and validates them."""
    data: dict = {}
    if additional_context:
        data["madengine_additional_context"] = additional_context
    if additional_context_file:
        data["madengine_additional_context_file"] = str(additional_context_file.resolve())
    return data


def tag_list(tags: list[str] | None) -> list[str]:
    return [t.strip() for raw in tags or [] for t in raw.split(",") if t.strip()]
