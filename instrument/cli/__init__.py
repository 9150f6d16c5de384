"""Command-line interface: parses arguments and calls the API; no numerics live here.

Each command group lives in its own module of this package and is registered below.
"""
from __future__ import annotations

import click

from instrument import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="instrument")
def main() -> None:
    """Build and validate the school-family partnership instrument."""


def _register() -> None:
    """Attach every command module's commands to ``main``."""
    from instrument.cli import validate as _validate

    main.add_command(_validate.validate)
    from instrument.cli import data as _data  # simulate / ingest / scores (issue 9)

    for _cmd in (_data.simulate, _data.ingest, _data.scores):
        main.add_command(_cmd)


_register()
