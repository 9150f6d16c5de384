"""Reading fielded data: `ingest` (csv, xlsx, sav, dta, parquet, Qualtrics exports) with
quarantine, and safe export of tables for spreadsheets."""
from instrument.io.ingest import IngestResult, ingest, load_mapping
from instrument.io.readers import IngestError
from instrument.io.safe import neutralize_cell, neutralize_frame, safe_to_csv

__all__ = ["IngestError", "IngestResult", "ingest", "load_mapping", "neutralize_cell",
           "neutralize_frame", "safe_to_csv"]
