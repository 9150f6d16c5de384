"""`instrument rollup` and `instrument change`: policy-level views of school scores."""
from __future__ import annotations

import click

from instrument.cli._common import OUT_FILE, read_data as _read


@click.command()
@click.argument("scores", type=click.Path(exists=True, dir_okay=False))
@click.option("--outcomes", type=click.Path(exists=True, dir_okay=False),
              help="School table with district_id and weight columns.")
@click.option("--level", type=click.Choice(["district", "state"]), default="district",
              show_default=True)
@click.option("--weight", default=None, help="Column to weight schools by, e.g. enrollment.")
@click.option("--out", type=OUT_FILE, help="Write the rollup as CSV.")
def rollup(scores: str, outcomes: str | None, level: str, weight: str | None, out: str | None) -> None:
    """Roll school SCORES (long school-scores CSV) up to districts or the state."""
    from instrument.policy import rollup as run_rollup

    try:
        table = run_rollup(_read(scores), _read(outcomes) if outcomes else None, level=level,
                           weight=weight)
    except ValueError as exc:
        raise click.ClickException(f"{scores}: {exc}") from None
    if out:
        from instrument.io.tables import write_table

        write_table(table, out)
        click.echo(f"Wrote {len(table)} rows to {out}")
    else:
        click.echo(table.to_string(index=False))


@click.command()
@click.argument("scores", type=click.Path(exists=True, dir_okay=False))
@click.option("--year-column", default="year", show_default=True)
@click.option("--out", type=OUT_FILE, help="Write school changes as CSV.")
@click.option("--outcomes", type=click.Path(exists=True, dir_okay=False),
              help="School outcomes (with a year column, or the later year's): also regress the "
                   "outcome change on the score change (instrument.change_link).")
@click.option("--outcome", default="chronic_absence", show_default=True,
              type=click.Choice(["chronic_absence", "attendance", "ela_proficiency",
                                 "math_proficiency"]))
@click.option("--construct", default=None,
              help="Construct id or 'overall' [default: overall, when the item bank defines one].")
@click.option("--form", default="teacher", show_default=True,
              help="Form whose score is linked (a form of the bank, as in SCORES).")
def change(scores: str, year_column: str, out: str | None, outcomes: str | None, outcome: str,
           construct: str | None, form: str) -> None:
    """Change in school SCORES (long CSV with a year column) between the first and last year."""
    from instrument.policy import change as run_change

    table = _read(scores)
    if year_column not in table.columns:
        raise click.ClickException(f"{scores}: no column {year_column!r}; expected school scores "
                                   "of several years stacked with a year column (or name it with "
                                   "--year-column).")
    try:
        res = run_change(table, year=year_column)
    except ValueError as exc:
        raise click.ClickException(f"{scores}: {exc}") from None
    click.echo(res.summary().as_text())
    if outcomes:
        from instrument.policy import change_link

        if year_column != "year":
            table = table.rename(columns={year_column: "year"})
        try:
            lr = change_link(table, _read(outcomes), outcome=outcome, construct=construct,
                             form=form)
        except ValueError as exc:
            raise click.ClickException(f"{scores}: {exc}") from None
        click.echo(lr.summary().as_text())
    if out:
        from instrument.io.tables import write_table

        write_table(res.by_school, out)
        click.echo(f"Wrote {len(res.by_school)} rows to {out}")
