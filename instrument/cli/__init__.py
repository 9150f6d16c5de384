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


class _Main(click.Group):
    """The command group; an error from the API becomes one line on stderr (exit 2), with the
    traceback only under ``--debug``."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:  # noqa: BLE001 - every error reaches the user as one line
            if ctx.params.get("debug"):
                raise
            raise click.ClickException(one_line(exc)) from None


def one_line(exc: BaseException) -> str:
    """An exception as one line: its message (the exception's type when the message does not
    say what went wrong, e.g. a bare KeyError) and a pointer to ``--debug``."""
    text = " ".join(str(exc).split())
    if isinstance(exc, (ValueError, OSError)) and text:
        return text
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return f"{text} (unexpected; `instrument --debug ...` shows the traceback)"


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="instrument")
@click.option("--debug", is_flag=True, help="Show the Python traceback of an error.")
def main(debug: bool) -> None:
    """Build and validate the school-family partnership instrument."""


for _module, _names in COMMANDS:
    _mod = importlib.import_module(f"instrument.cli.{_module}")
    for _name in _names:
        main.add_command(getattr(_mod, _name))
