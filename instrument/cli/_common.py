"""Argument helpers shared by the CLI commands (reading a model argument and a data file)."""
from __future__ import annotations

from pathlib import Path

import click


def model_text(model: str) -> str:
    """MODEL is a syntax file or lavaan syntax itself; a file name that does not exist is an
    error saying so (not a syntax error)."""
    if "=~" in model or "\n" in model:
        return model
    p = Path(model)
    try:
        is_file, is_dir = p.is_file(), p.is_dir()
    except OSError:          # not a possible file name: syntax
        return model
    if is_file:
        try:
            return p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise click.ClickException(f"{model}: cannot read the model file ({exc}); expected "
                                       "a UTF-8 text file of lavaan syntax.") from None
    if is_dir:
        raise click.ClickException(f"{model}: is a folder; expected a lavaan syntax file or "
                                   "syntax text such as 'f =~ x1 + x2 + x3'.")
    if "~" not in model:
        raise click.ClickException(f"{model}: model file not found; expected a lavaan syntax "
                                   "file or syntax text such as 'f =~ x1 + x2 + x3'.")
    return model


class OutputPath(click.ParamType):
    """A file or folder the command will write, checked before any work starts: its folder
    must exist and be writable (a folder to write into may be created inside an existing,
    writable one)."""

    name = "path"

    def __init__(self, kind: str = "file") -> None:
        self.kind = kind

    def convert(self, value, param, ctx):
        import tempfile

        p = Path(value)
        if self.kind == "file" and p.is_dir():
            self.fail(f"{value}: is a folder; expected a file name to write.", param, ctx)
        if self.kind == "dir" and p.exists() and not p.is_dir():
            self.fail(f"{value}: is a file; expected a folder to write into.", param, ctx)
        target = p if (self.kind == "dir" and p.is_dir()) else p.parent
        probe = target
        if self.kind == "dir" and not p.exists():
            probe = p.parent
        probe = probe if str(probe) else Path(".")
        if not probe.is_dir():
            self.fail(f"{value}: folder {str(probe)!r} does not exist; expected an existing, "
                      "writable folder.", param, ctx)
        try:   # the one reliable test (permissions, read-only mounts, root): write a file
            with tempfile.TemporaryFile(dir=probe):
                pass
        except OSError as exc:
            self.fail(f"{value}: folder {str(probe)!r} is not writable ({exc.strerror}); "
                      "expected a folder you can write to.", param, ctx)
        return value


OUT_FILE = OutputPath("file")
OUT_DIR = OutputPath("dir")


def read_data(path: str):
    """Read a data table (`instrument.io.tables.read_table`); a failure is a one-line CLI error."""
    from instrument.io.tables import read_table

    try:
        return read_table(path)
    except ValueError as e:
        raise click.ClickException(str(e)) from e


def split_list(text: str) -> tuple[str, ...]:
    """``"a, b,c"`` -> ``("a", "b", "c")``."""
    return tuple(s.strip() for s in text.split(",") if s.strip())


def echo_result(summary_text: str, payload, json_out: str | None) -> None:
    """Print a result's summary and, with ``--json``, write ``payload`` as JSON
    (`instrument.results.dumps`) and say where."""
    from instrument.results import dumps

    click.echo(summary_text)
    if json_out:
        Path(json_out).write_text(dumps(payload, indent=1))
        click.echo(f"Result written to {json_out}")
