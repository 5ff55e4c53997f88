"""`madengine build`: build (and push) the images of the selected models, write the manifest."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from madengine import console, options
from madengine.commands import _workflow

Registry = Annotated[Optional[str], typer.Option(
    "--registry", "-r", help="Push the images to this registry (HOST:PORT or HOST:PORT/NAMESPACE).")]
ManifestOutput = Annotated[Path, typer.Option(
    "--manifest-output", "-m", help="Where to write build_manifest.json.")]
CleanCache = Annotated[bool, typer.Option(
    "--clean-docker-cache", help="Build without the engine's layer cache.")]
Parallel = Annotated[int, typer.Option(
    "--parallel", "-p", min=0, help="Concurrent builds (0: as the build host's CPUs allow).")]


def build_vars(mad_dir: Path, tags: list[str] | None, additional_context: str | None,
               additional_context_file: Path | None, registry: str | None, manifest_output: Path,
               clean_docker_cache: bool, parallel: int, output_dir: Path) -> dict:
    extravars = {
        "madengine_mad_dir": str(mad_dir.resolve()),
        "madengine_tags": options.tag_list(tags),
        "madengine_output_dir": str(output_dir.resolve()),
        "madengine_manifest_output": str(manifest_output.resolve()),
        "madengine_clean_docker_cache": clean_docker_cache,
        "madengine_parallel": parallel,
        **options.context_vars(additional_context, additional_context_file),
    }
    if registry:
        extravars["madengine_registry"] = registry
    return extravars


def register(app: typer.Typer) -> None:
    @app.command()
    def build(
        tags: options.Tags = None,
        additional_context: options.AdditionalContext = None,
        additional_context_file: options.AdditionalContextFile = None,
        registry: Registry = None,
        manifest_output: ManifestOutput = Path("build_manifest.json"),
        clean_docker_cache: CleanCache = False,
        parallel: Parallel = 0,
        mad_dir: options.MadDir = Path("."),
        inventory: options.Inventory = None,
        json_output: options.Json = False,
        verbose: options.Verbose = False,
    ) -> None:
        """Build one image per selected model (and push it with --registry); write build_manifest.json."""
        extravars = build_vars(mad_dir, tags, additional_context, additional_context_file, registry,
                               manifest_output, clean_docker_cache, parallel, Path("."))
        result = _workflow.execute("build.yml", extravars, title="build", inventory=inventory,
                                   verbose=verbose, quiet=json_output)
        code = _workflow.exit_code(result, verbose=verbose)
        builds = _workflow.builds_of(result)
        if json_output:
            console.print_json({"exit_code": code, "manifest_file": str(manifest_output.resolve()),
                                "changed": any(bool(res.get("changed")) for res in result.of("mad_build")),
                                "builds": builds})
        elif builds:
            console.out.print(_workflow.build_table(builds))
            console.err.print(f"manifest: {manifest_output}")
        _workflow.finish(code)
