"""Argument helpers shared by the CLI commands (reading a model argument and a data file)."""
from __future__ import annotations

from pathlib import Path

import click


def model_text(model: str) -> str:
    """MODEL is a syntax file or lavaan syntax itself."""
    p = Path(model)
    return p.read_text() if ("=~" not in model and p.is_file()) else model


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
