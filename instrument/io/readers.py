"""Chunked readers of fielded files. Each yields raw object-dtype DataFrames of data rows.

Every reader returns a `Source`: the header (column names as in the file), an iterator of chunks
(DataFrames with those columns, values as read: str, int, float, None/NaN), value labels per column
(SPSS/Stata only) and the number of header rows. Nothing is evaluated: spreadsheet formulas are not
computed (the cached value is read; a formula without one is reported by its cell), YAML is never
read here, nothing is unpickled.
"""
from __future__ import annotations

import csv
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
    delimiter: str | None = None


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
    except (OSError, UnicodeDecodeError, LookupError, csv.Error):
        return False
    return rows[2] is not None and any('"ImportId"' in (v or "") for v in rows[2])


#: Field delimiters a CSV may use; the one that splits the header into the most fields is used.
DELIMITERS = (",", ";", "\t", "|")


def _delimiter(path: Path, header_line: str) -> str:
    """The header line's delimiter: tab for .tsv, else the candidate giving the most fields."""
    if path.suffix.lower() == ".tsv":
        return "\t"
    counts = {d: len(next(csv.reader([header_line], delimiter=d), [])) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: (counts[d], d == ","))
    return best if counts[best] > 1 else ","


def _csv(path: Path, chunksize: int, skip_data_rows: int, fmt: str,
         encoding: str = "utf-8-sig") -> Source:
    """A CSV read record by record with the `csv` module, so that every data row keeps its file
    line (blank lines skipped, quoted line breaks counted) and a row whose number of fields
    differs from the header's is reported rather than padded or shifted (``attrs["ragged"]``:
    position in the chunk -> number of fields; the row's values are left blank)."""
    try:
        with open(path, newline="", encoding=encoding) as fh:
            header_line = ""
            for header_line in fh:
                if header_line.strip():
                    break
    except LookupError:
        raise IngestError(f"{path}: unknown encoding {encoding!r}; expected a Python codec name "
                          "such as utf-8 or latin-1.") from None
    except UnicodeDecodeError as exc:
        raise IngestError(f"{path}: not {encoding} text ({exc.reason} at byte {exc.start}); "
                          "expected a UTF-8 CSV or the file's encoding in the mapping "
                          "('encoding: latin-1').") from None
    if not header_line.strip():
        raise IngestError(f"{path}: the file is empty; expected a header row.")
    sep = _delimiter(path, header_line)

    def records(fh) -> Iterator[tuple[list[str], int]]:
        """(record, its last line) of every record, the header's first."""
        rd = csv.reader(fh, delimiter=sep)
        for rec in rd:
            yield rec, rd.line_num

    header: list[str] = []
    header_at = 0
    with open(path, newline="", encoding=encoding) as fh:
        try:
            for header, header_at in records(fh):
                if any(h.strip() for h in header):
                    break
        except (csv.Error, UnicodeDecodeError) as exc:
            raise IngestError(f"{path}: unreadable header ({exc}).") from None
    cols = [h.strip() for h in header]
    seen: dict[str, int] = {}
    for j, c in enumerate(cols, start=1):
        if c in seen:
            raise IngestError(f"{path}: line {header_at}: column {c!r} appears twice in the "
                              f"header (columns {seen[c]} and {j}); expected each column name "
                              "once.")
        seen[c] = j
    W = len(cols)

    def chunks() -> Iterator[pd.DataFrame]:
        to_skip = skip_data_rows
        buf: list[list[str]] = []
        lines: list[int] = []
        ragged: dict[int, int] = {}
        prev = 0
        blank = [""] * W

        def flush() -> pd.DataFrame:
            df = pd.DataFrame(buf, columns=cols, dtype=str)
            df.attrs["lines"] = np.array(lines, dtype=np.int64)
            df.attrs["ragged"] = dict(ragged)
            return df
        line = 0
        try:
            with open(path, newline="", encoding=encoding) as fh:
                for rec, line in records(fh):
                    start, prev = prev + 1, line
                    if line <= header_at or not rec:  # the header, or a blank line
                        continue
                    if to_skip:
                        to_skip -= 1
                        continue
                    if len(rec) != W:
                        ragged[len(buf)] = len(rec)
                        rec = blank
                    buf.append(rec)
                    lines.append(start)
                    if len(buf) >= chunksize:
                        yield flush()
                        buf, lines, ragged = [], [], {}
                if buf:
                    yield flush()
        except csv.Error as exc:
            raise IngestError(f"{path}: line {line + 1}: malformed CSV ({exc}); expected "
                              f"{W} {sep!r}-separated fields per row as in the header.") from None
        except UnicodeDecodeError as exc:
            raise IngestError(f"{path}: not {encoding} text ({exc.reason}); expected a UTF-8 CSV "
                              "or the file's encoding in the mapping ('encoding: latin-1')."
                              ) from None
    return Source(path, fmt, cols, chunks(), delimiter=sep)


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
    if sheet is None and len(wb_v.sheetnames) > 1:
        raise IngestError(f"{path}: the workbook has {len(wb_v.sheetnames)} sheets "
                          f"{wb_v.sheetnames}; expected the sheet to read named in the mapping "
                          f"(sheet: {wb_v.sheetnames[0]!r}, say).")
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
