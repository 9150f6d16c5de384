"""Reading and writing plain tables (school scores, outcomes, item data) for the CLI and plans.

Fielded survey files go through `instrument.io.ingest` (checks and quarantine); this module is for
tables the package itself wrote or that need no row checks. Identifier columns are read as text
so that ``007`` stays ``007``; exported tables neutralise spreadsheet formulas (`safe_to_csv`).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from instrument.io.safe import safe_to_csv

ID_COLUMNS = ("school_id", "district_id")
READABLE = (".csv", ".txt", ".tsv", ".xlsx", ".parquet", ".sav", ".dta")


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a whole table by its extension (csv/txt, tsv, xlsx, parquet, sav, dta).

    Raises
    ------
    ValueError
        Naming the file when the extension is not readable or the reader fails.
    """
    p = Path(path)
    ext = p.suffix.lower()
    ids = {c: str for c in ID_COLUMNS}
    try:
        if ext in (".csv", ".txt"):
            _check_header(p, ",")
            df = pd.read_csv(p, dtype=ids)
        elif ext == ".tsv":
            _check_header(p, "\t")
            df = pd.read_csv(p, sep="\t", dtype=ids)
        elif ext == ".xlsx":
            df = pd.read_excel(p, dtype=ids)
        elif ext == ".parquet":
            df = pd.read_parquet(p)
        elif ext in (".sav", ".dta"):
            import pyreadstat

            reader = pyreadstat.read_sav if ext == ".sav" else pyreadstat.read_dta
            df, _ = reader(str(p))
        else:
            raise ValueError(f"{p}: expected one of {', '.join(READABLE)}; got "
                             f"{ext or 'no extension'!r}.")
    except (OSError, ValueError, pd.errors.ParserError) as e:
        if str(p) in str(e):
            raise
        raise ValueError(f"{p}: cannot be read as a {ext} table ({e}).") from e
    for c in ID_COLUMNS:
        if c in df.columns:
            df[c] = df[c].astype("str")
    _check_values(df, p)
    return df


def _check_header(p: Path, sep: str) -> None:
    """A text table's header: each name once, and split by the expected delimiter."""
    import csv

    try:
        with open(p, newline="", encoding="utf-8-sig") as fh:
            header = next(csv.reader(fh, delimiter=sep), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return     # the reader reports these
    seen: dict[str, int] = {}
    for j, c in enumerate(header, start=1):
        if c in seen:
            raise ValueError(f"{p}: line 1: column {c!r} appears twice in the header (columns "
                             f"{seen[c]} and {j}); expected each column name once.")
        seen[c] = j
    if len(header) == 1:
        other = next((d for d in (";", "\t", "|", ",") if d != sep and d in header[0]), None)
        if other:
            raise ValueError(f"{p}: line 1: the header is one column split by {other!r}; "
                             f"expected {sep!r}-separated columns (save the file with "
                             f"{sep!r} as the delimiter).")


def _check_values(df: pd.DataFrame, p: Path) -> None:
    """No infinite numbers (a typo such as 1e400, or an export of a division by zero)."""
    import numpy as np

    for c in df.columns:
        if pd.api.types.is_float_dtype(df[c]):
            inf = np.isinf(df[c].to_numpy(float))
            if inf.any():
                k = int(np.flatnonzero(inf)[0])
                raise ValueError(f"{p}: data row {k + 1}, column {c!r}: an infinite value "
                                 f"({float(df[c].iloc[k])}); expected finite numbers "
                                 f"({int(inf.sum())} such cell(s) in the column).")


def write_table(df: pd.DataFrame, path: str | Path) -> None:
    """Write a table as CSV with spreadsheet formulas neutralised (`safe_to_csv`)."""
    safe_to_csv(df, path)
