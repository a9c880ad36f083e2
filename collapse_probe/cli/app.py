"""The ``collapse-probe`` typer application. Each command lives in its own module."""

from __future__ import annotations

import typer

from .._version import __version__
from . import audit, finetune, gate, inspect, log, report, trend, usage, watch, zoo

app = typer.Typer(
    name="collapse-probe",
    help="Find, watch and repair partial prototype collapse in DINO-family checkpoints.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
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


# Each command module defines ``register(app)`` and imports heavy libraries only inside its
# command; the order here is the order of ``--help``.
for _module in (audit, report, usage, trend, watch, log, gate, inspect, zoo, finetune):
    _module.register(app)


def main() -> None:
    app()
