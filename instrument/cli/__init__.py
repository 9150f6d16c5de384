"""Command-line interface: parses arguments and calls the API; no numerics live here.

Each command group lives in its own module of this package and is listed in `COMMANDS`.
"""
from __future__ import annotations

import importlib

import click

from instrument import __version__

# (module of instrument.cli, command objects in it) — one line per module.
COMMANDS: list[tuple[str, tuple[str, ...]]] = [
    ("validate", ("validate",)),
    ("items", ("items",)),
    ("data", ("simulate", "ingest", "scores")),
    ("cfa", ("cfa",)),
    ("invariance", ("invariance",)),
    ("reliability", ("reliability", "icc")),
    ("twolevel", ("twolevel",)),
    ("link", ("link",)),
    ("policy", ("rollup", "change")),
    ("report", ("report",)),
    ("montecarlo", ("dfi", "power")),
    ("shortform", ("shortform",)),
]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="instrument")
def main() -> None:
    """Build and validate the school-family partnership instrument."""


for _module, _names in COMMANDS:
    _mod = importlib.import_module(f"instrument.cli.{_module}")
    for _name in _names:
        main.add_command(getattr(_mod, _name))
