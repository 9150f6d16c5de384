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
            df = pd.read_csv(p, dtype=ids)
        elif ext == ".tsv":
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
    return df


def write_table(df: pd.DataFrame, path: str | Path) -> None:
    """Write a table as CSV with spreadsheet formulas neutralised (`safe_to_csv`)."""
    safe_to_csv(df, path)
