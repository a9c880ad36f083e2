"""The ``collapse-probe`` typer application. Each command lives in its own module."""

from __future__ import annotations

import importlib

import typer

from .._version import __version__

app = typer.Typer(
    name="collapse-probe",
    help="Find, watch and repair partial prototype collapse in DINO-family checkpoints.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Each module defines ``register(app)``; modules import heavy libraries only inside commands.
_COMMAND_MODULES: tuple[str, ...] = (
    "audit",
    "report",
    "usage",
    "trend",
    "watch",
    "log",
    "gate",
    "inspect",
    "zoo",
    "finetune",
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"collapse-probe {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Find, watch and repair partial prototype collapse in DINO-family checkpoints."""


for _name in _COMMAND_MODULES:
    importlib.import_module(f".{_name}", __package__).register(app)


def main() -> None:
    app()
