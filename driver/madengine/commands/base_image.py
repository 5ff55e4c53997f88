"""`madengine base-image`: make a local base image from Debian packages (no registry needed)."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from madengine import console, options
from madengine.runner import run_playbook


def register(app: typer.Typer) -> None:
    @app.command("base-image")
    def base_image(
        name: Annotated[str, typer.Option("--name", help="Image name:tag to create.")] = "madengine/base:bookworm",
        suite: Annotated[str, typer.Option("--suite", help="Debian suite to bootstrap.")] = "bookworm",
        packages: Annotated[Optional[list[str]], typer.Option(
            "--package", help="Packages to include (repeatable; default bash, python3, python3-numpy, ca-certificates).")] = None,
        force: Annotated[bool, typer.Option("--force", help="Remake the image even when it exists.")] = False,
        inventory: options.Inventory = None,
        verbose: options.Verbose = False,
    ) -> None:
        """Make a base image with mmdebstrap + docker import, for hosts that cannot pull images."""
        extravars: dict = {"madengine_base_image": name, "madengine_base_image_suite": suite,
                           "madengine_base_image_force": force}
        if packages:
            extravars["madengine_base_image_packages"] = packages
        if inventory:
            extravars["madengine_base_image_hosts"] = "all"
        with console.playbook_progress("base image") as observe:
            result = run_playbook("base_image.yml", extravars, inventory=inventory,
                                  observer=observe, verbose=verbose)
        console.check_playbook(result, verbose=verbose)
        console.err.print(f"[green]ready:[/] {name}")
