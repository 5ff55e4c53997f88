"""The `madengine` command: flags -> extra-vars -> playbook -> events -> table."""
from __future__ import annotations

import importlib
import sys
from typing import Annotated

import typer

try:  # typer >= 0.20 carries its own copy of click
    from typer._click.exceptions import ClickException, UsageError
except ImportError:  # pragma: no cover - older typer on top of click
    from click.exceptions import ClickException, UsageError

from madengine import __version__

app = typer.Typer(
    name="madengine",
    help="Build, run and compare AI-model benchmarks from MAD packages, "
    "on this machine or across GPU nodes (Ansible collection madengine.core).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# One module per command; each defines register(app).
COMMANDS = ("discover", "build", "run", "report", "validate_gpu", "base_image", "runner")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"madengine {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    """madengine: MAD package benchmarks, reproducible and fast."""


for _name in COMMANDS:
    try:
        _module = importlib.import_module(f"madengine.commands.{_name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"madengine.commands.{_name}":
            raise
        continue
    _module.register(app)


def main() -> None:
    try:
        code = app(standalone_mode=False)
    except ClickException as exc:
        try:
            from typer import rich_utils

            rich_utils.rich_format_error(exc)
        except Exception:  # noqa: BLE001 - plain text is the fallback for a failed pretty print
            exc.show()
        # A bad flag is invalid input: the contract's 4, not click's 2 (which means a build failure).
        sys.exit(4 if isinstance(exc, UsageError) else exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
