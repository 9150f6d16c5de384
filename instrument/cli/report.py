"""`instrument report RESULTS --kind technical|brief|cards [--lang LANG|all] [--out DIR]
[--pdf/--no-pdf]`."""
from __future__ import annotations

import sys

import click

from instrument.cli._common import OUT_DIR


@click.command()
@click.argument("results", type=click.Path(exists=True, dir_okay=False))
@click.option("--kind", type=click.Choice(["technical", "brief", "cards", "all"]),
              default="technical", show_default=True, help="Which report to render.")
@click.option("--out", "out_dir", default="reports", show_default=True,
              type=OUT_DIR, help="Folder to write the report to.")
@click.option("--pdf/--no-pdf", "pdf", default=None,
              help="Also print a PDF with headless Chromium. Default: when Chromium is found; "
                   "--pdf fails if it is not.")
@click.option("--title", default=None, help="Document title (a default per kind).")
@click.option("--label", default=None, help="A label printed in the report header.")
@click.option("--lang", default="all", show_default=True,
              help="Language of the brief and the cards: one of the bank's languages that has a "
                   "report translation, or all of them (the technical report is in English).")
def report(results: str, kind: str, out_dir: str, pdf: bool | None, title: str | None,
           label: str | None, lang: str) -> None:
    """Render a report from a RESULTS file (results.json of `instrument validate`)."""
    from instrument.report import KINDS, PdfUnavailable, find_chromium, load_results, render
    from instrument.report.render import TRANSLATED_KINDS, check_language, report_languages

    try:
        data = load_results(results)
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    available = report_languages(data)[0]
    if lang != "all":
        try:
            check_language(data, lang)
        except ValueError as exc:
            raise click.ClickException(f"--lang {lang}: {str(exc).split(': ', 1)[1]}") from None
    want_pdf = pdf if pdf is not None else find_chromium() is not None
    if pdf is None and not want_pdf:
        click.echo("Note: no Chromium found, so no PDF (install with `apt-get install -y "
                   "chromium`); writing HTML only.", err=True)
    failed = False
    for k in (KINDS if kind == "all" else (kind,)):
        langs = [x for x in (available if lang == "all" else (lang,))
                 if x == "en" or k in TRANSLATED_KINDS]
        for x in langs:
            try:
                paths = render(data, k, out_dir, ("html", "pdf") if want_pdf else ("html",),
                               title=title, label=label, lang=x)
            except PdfUnavailable as exc:
                click.echo(f"{k} ({x}): HTML written, PDF failed: {exc}", err=True)
                failed = True
                continue
            for p in paths:
                click.echo(f"wrote {p}")
    if failed:
        sys.exit(1)
