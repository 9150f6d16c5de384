"""Reports rendered from results alone: technical report, policy brief, school score cards.

``render(results, kind="technical"|"brief"|"cards", out_dir, formats=("html", "pdf"))`` reads
the ``results`` dict of ``results.json`` through one adapter per section
(`instrument.report.adapters`, which documents every key read), and writes self-contained HTML
(tables and inline figures) and, through headless Chromium, PDF.
"""
from instrument.report.adapters import NOT_AVAILABLE, Section, read_all, scrub
from instrument.report.pdf import PdfUnavailable, find_chromium, html_to_pdf
from instrument.report.render import (BRIEF_SECTIONS, KINDS, TECHNICAL_SECTIONS, PrivacyError,
                                      load_results, render, render_all, render_html)

__all__ = ["render", "render_all", "render_html", "load_results", "read_all", "scrub", "Section",
           "NOT_AVAILABLE", "KINDS", "TECHNICAL_SECTIONS", "BRIEF_SECTIONS", "PdfUnavailable",
           "PrivacyError", "find_chromium", "html_to_pdf"]
