"""Chunked readers of fielded files. Each yields raw object-dtype DataFrames of data rows.

Every reader returns a `Source`: the header (column names as in the file), an iterator of chunks
(DataFrames with those columns, values as read: str, int, float, None/NaN), value labels per column
(SPSS/Stata only) and the number of header rows. Nothing is evaluated: spreadsheet formulas are not
computed (the cached value is read; a formula without one is reported by its cell), YAML is never
read here, nothing is unpickled.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

FORMATS = ("csv", "qualtrics", "xlsx", "sav", "dta", "parquet")
SUFFIX_FORMAT = {".csv": "csv", ".txt": "csv", ".tsv": "csv", ".xlsx": "xlsx", ".xlsm": "xlsx",
                 ".sav": "sav", ".zsav": "sav", ".dta": "dta", ".parquet": "parquet",
                 ".pq": "parquet"}


class Formula(str):
    """Text of a spreadsheet formula that has no cached value (it is never evaluated)."""


class IngestError(ValueError):
    """A file that cannot be ingested; the message names file, row/column and what was expected."""


@dataclass
class Source:
    path: Path
    format: str
    columns: list[str]
    chunks: Iterator[pd.DataFrame]
    value_labels: dict[str, dict[Any, str]] = field(default_factory=dict)
    user_missing: dict[str, list[tuple[float, float]]] = field(default_factory=dict)


def detect_format(path: Path, fmt: str | None, encoding: str = "utf-8-sig") -> str:
    """The reader to use: ``fmt`` if given, else by suffix; a CSV whose 2nd and 3rd lines are
    Qualtrics' question-text and ImportId rows is read as ``"qualtrics"``."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise IngestError(f"{path}: format= must be one of {FORMATS}; got {fmt!r}.")
        return fmt
    f = SUFFIX_FORMAT.get(path.suffix.lower())
    if f is None:
        raise IngestError(f"{path}: unknown file type {path.suffix!r}; expected one of "
                          f"{sorted(SUFFIX_FORMAT)} or format=.")
    if f == "csv" and _looks_like_qualtrics(path, encoding):
        return "qualtrics"
    return f


def _looks_like_qualtrics(path: Path, encoding: str) -> bool:
    try:
        with open(path, newline="", encoding=encoding) as fh:
            rd = csv.reader(fh)
            rows = [next(rd, None) for _ in range(3)]
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    return rows[2] is not None and any('"ImportId"' in (v or "") for v in rows[2])


def _csv(path: Path, chunksize: int, skip_data_rows: int, fmt: str,
         encoding: str = "utf-8-sig") -> Source:
    sep = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        head = pd.read_csv(path, dtype=str, nrows=0, sep=sep, encoding=encoding)
    except pd.errors.EmptyDataError:
        raise IngestError(f"{path}: the file is empty; expected a header row.") from None
    except UnicodeDecodeError as exc:
        raise IngestError(f"{path}: not {encoding} text ({exc.reason} at byte {exc.start}); "
                          "expected a UTF-8 CSV or the file's encoding in the mapping "
                          "('encoding: latin-1').") from None
    except LookupError:
        raise IngestError(f"{path}: unknown encoding {encoding!r}; expected a Python codec name "
                          "such as utf-8 or latin-1.") from None
    cols = [str(c) for c in head.columns]

    def chunks() -> Iterator[pd.DataFrame]:
        to_skip = skip_data_rows
        try:
            reader = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False, sep=sep,
                                 chunksize=chunksize, encoding=encoding)
            for ch in reader:
                if to_skip:
                    k = min(to_skip, len(ch))
                    ch = ch.iloc[k:]
                    to_skip -= k
                yield ch.reset_index(drop=True)
        except pd.errors.ParserError as exc:
            m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
            if m:
                line = int(m.group(2))
                raise IngestError(f"{path}: line {line} (data row {line - 1 - skip_data_rows}): "
                                  f"malformed CSV row with {m.group(3)} fields; expected "
                                  f"{len(cols)} fields per row as in the header.") from None
            raise IngestError(f"{path}: malformed CSV ({str(exc).strip()}); expected {len(cols)} "
                              "fields per row as in the header.") from None
        except UnicodeDecodeError as exc:
            raise IngestError(f"{path}: not {encoding} text ({exc.reason}); expected a UTF-8 CSV "
                              "or the file's encoding in the mapping ('encoding: latin-1').") from None
    return Source(path, fmt, cols, chunks())


def _xlsx(path: Path, chunksize: int, sheet: str | None) -> Source:
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException
    import zipfile
    try:
        wb_v = openpyxl.load_workbook(path, read_only=True, data_only=True)
        wb_f = openpyxl.load_workbook(path, read_only=True, data_only=False)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError) as exc:
        raise IngestError(f"{path}: not a readable .xlsx workbook ({exc}).") from None
    if sheet is not None and sheet not in wb_v.sheetnames:
        raise IngestError(f"{path}: sheet {sheet!r} not found; expected one of {wb_v.sheetnames}.")
    ws_v = wb_v[sheet] if sheet else wb_v.worksheets[0]
    ws_f = wb_f[ws_v.title]
    it_v = ws_v.iter_rows(values_only=True)
    it_f = ws_f.iter_rows(values_only=True)
    header = next(it_v, None)
    next(it_f, None)
    if header is None:
        raise IngestError(f"{path}: sheet {ws_v.title!r} is empty; expected a header row.")
    while header and header[-1] is None:
        header = header[:-1]
    cols = ["" if h is None else str(h) for h in header]
    W = len(cols)

    def chunks() -> Iterator[pd.DataFrame]:
        from openpyxl.utils import get_column_letter
        buf: list[list[Any]] = []
        blank_run: list[list[Any]] = []
        for r, (rv, rf) in enumerate(zip(it_v, it_f), start=1):
            extra = [k for k, v in enumerate(rv[W:], start=W) if v is not None]
            if extra:
                cell = f"{get_column_letter(extra[0] + 1)}{r + 1}"
                raise IngestError(f"{path}: row {r}: cell {cell} holds {rv[extra[0]]!r} but its "
                                  "column has no header; expected every value under a named "
                                  "column.")
            row = list(rv[:W]) + [None] * max(0, W - len(rv))
            for j, (v, f) in enumerate(zip(row, rf[:W])):
                if v is None and isinstance(f, str) and f.startswith("="):
                    row[j] = Formula(f)  # formula never calculated: no cached value to read
            if all(v is None or (isinstance(v, str) and not v.strip()) for v in row):
                blank_run.append(row)   # kept only if a non-empty row follows (so row numbers
                continue                # stay sheet row - 1); trailing empty rows are not data
            buf.extend(blank_run)
            blank_run = []
            buf.append(row)
            if len(buf) >= chunksize:
                yield pd.DataFrame(buf, columns=cols, dtype=object)
                buf = []
        if buf:
            yield pd.DataFrame(buf, columns=cols, dtype=object)
        wb_v.close()
        wb_f.close()
    return Source(path, "xlsx", cols, chunks())


def _readstat(path: Path, chunksize: int, fmt: str) -> Source:
    import pyreadstat
    fn = pyreadstat.read_sav if fmt == "sav" else pyreadstat.read_dta
    kw = {"user_missing": True} if fmt == "sav" else {}
    try:
        _, meta = fn(str(path), metadataonly=True, **kw)
    except Exception as exc:  # pyreadstat raises its own ReadstatError / PyreadstatError
        raise IngestError(f"{path}: not a readable {fmt} file ({exc}).") from None
    cols = list(meta.column_names)

    def chunks() -> Iterator[pd.DataFrame]:
        for df, _ in pyreadstat.read_file_in_chunks(fn, str(path), chunksize=chunksize,
                                                    apply_value_formats=False, **kw):
            yield df.astype(object).reset_index(drop=True)
    return Source(path, fmt, cols, chunks(),
                  value_labels={k: dict(v) for k, v in meta.variable_value_labels.items()},
                  user_missing={k: [(float(r["lo"]), float(r["hi"])) for r in v]
                                for k, v in (getattr(meta, "missing_ranges", None) or {}).items()})


def _parquet(path: Path, chunksize: int) -> Source:
    import pyarrow.parquet as pq
    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid and others
        raise IngestError(f"{path}: not a readable parquet file ({exc}).") from None
    cols = list(pf.schema_arrow.names)

    def chunks() -> Iterator[pd.DataFrame]:
        for batch in pf.iter_batches(batch_size=chunksize):
            df = batch.to_pandas()
            yield df.astype(object).where(df.notna(), None).reset_index(drop=True)
    return Source(path, "parquet", cols, chunks())


def open_source(path: Path, fmt: str, *, chunksize: int, sheet: str | None = None,
                encoding: str = "utf-8-sig") -> Source:
    if not path.exists():
        raise IngestError(f"{path}: file not found.")
    if fmt == "csv":
        return _csv(path, chunksize, 0, "csv", encoding)
    if fmt == "qualtrics":
        return _csv(path, chunksize, 2, "qualtrics", encoding)
    if fmt == "xlsx":
        return _xlsx(path, chunksize, sheet)
    if fmt in ("sav", "dta"):
        return _readstat(path, chunksize, fmt)
    if fmt == "parquet":
        return _parquet(path, chunksize)
    raise IngestError(f"{path}: format= must be one of {FORMATS}; got {fmt!r}.")


def is_blank(v: Any) -> bool:
    """True for None, NaN and whitespace-only strings."""
    if v is None:
        return True
    if isinstance(v, float) and np.isnan(v):
        return True
    if isinstance(v, str) and not v.strip():
        return True
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False
