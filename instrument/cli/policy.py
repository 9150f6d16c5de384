"""`instrument rollup` and `instrument change`: policy-level views of school scores."""
from __future__ import annotations

import click

from instrument.cli._common import read_data as _read


@click.command()
@click.argument("scores", type=click.Path(exists=True, dir_okay=False))
@click.option("--outcomes", type=click.Path(exists=True, dir_okay=False),
              help="School table with district_id and weight columns.")
@click.option("--level", type=click.Choice(["district", "state"]), default="district",
              show_default=True)
@click.option("--weight", default=None, help="Column to weight schools by, e.g. enrollment.")
@click.option("--out", type=click.Path(dir_okay=False), help="Write the rollup as CSV.")
def rollup(scores: str, outcomes: str | None, level: str, weight: str | None, out: str | None) -> None:
    """Roll school SCORES (long school-scores CSV) up to districts or the state."""
    from instrument.policy import rollup as run_rollup

    table = run_rollup(_read(scores), _read(outcomes) if outcomes else None, level=level,
                       weight=weight)
    if out:
        from instrument.io.tables import write_table

        write_table(table, out)
        click.echo(f"Wrote {len(table)} rows to {out}")
    else:
        click.echo(table.to_string(index=False))


@click.command()
@click.argument("scores", type=click.Path(exists=True, dir_okay=False))
@click.option("--year-column", default="year", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), help="Write school changes as CSV.")
def change(scores: str, year_column: str, out: str | None) -> None:
    """Change in school SCORES (long CSV with a year column) between the first and last year."""
    from instrument.policy import change as run_change

    res = run_change(_read(scores), year=year_column)
    click.echo(res.summary().as_text())
    if out:
        from instrument.io.tables import write_table

        write_table(res.by_school, out)
        click.echo(f"Wrote {len(res.by_school)} rows to {out}")
