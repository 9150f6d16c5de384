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
    from instrument.cli import link as _link

    main.add_command(_link.link)
    from instrument.cli import cfa as _cfa

    main.add_command(_cfa.cfa)


_register()
