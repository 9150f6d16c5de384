"""`instrument reliability DATA --scale ...` and `instrument icc DATA --value ... --cluster ...`."""
from __future__ import annotations

from pathlib import Path

import click

from instrument.cli._common import OUT_FILE, read_data as _read


def _parse_scales(specs: tuple[str, ...]) -> dict[str, list[str]]:
    scales: dict[str, list[str]] = {}
    for s in specs:
        name, sep, items = s.partition("=")
        its = [i.strip() for i in items.split(",") if i.strip()]
        if not sep or not name.strip() or len(its) < 2:
            raise click.BadParameter(f"{s!r}: expected NAME=ITEM1,ITEM2[,...] with at least two "
                                     "items.", param_hint="--scale")
        scales[name.strip()] = its
    return scales


@click.command()
@click.argument("data", type=click.Path(exists=True, dir_okay=False))
@click.option("--scale", "scales", multiple=True, required=True,
              help="NAME=ITEM1,ITEM2,... (repeat for several scales).")
@click.option("--reverse", "reverse", multiple=True,
              help="Reverse-keyed item(s); repeat or give a comma-separated list.")
@click.option("--score-range", default=None,
              help="MIN,MAX of the response scale for reverse keying (default: observed range).")
@click.option("--use", type=click.Choice(["pairwise", "listwise"]), default="pairwise",
              show_default=True, help="Missing-data handling (psych's default is pairwise).")
@click.option("--json", "json_out", type=OUT_FILE, default=None,
              help="Also write the results table as JSON to this file.")
def reliability(data: str, scales: tuple[str, ...], reverse: tuple[str, ...],
                score_range: str | None, use: str, json_out: str | None) -> None:
    """Cronbach's alpha per scale (raw, standardized, Feldt and Duhachek CIs)."""
    from instrument.reliability import reliability as run
    from instrument.results import Table, dumps

    df = _read(data)
    rev = [r.strip() for spec in reverse for r in spec.split(",") if r.strip()]
    rng = None
    if score_range:
        try:
            lo, hi = (float(v) for v in score_range.split(","))
        except ValueError:
            raise click.BadParameter(f"{score_range!r}: expected MIN,MAX, e.g. 1,4.",
                                     param_hint="--score-range") from None
        rng = (lo, hi)
    try:
        table = run(df, _parse_scales(scales), reverse=rev, score_range=rng, use=use)
    except (KeyError, ValueError, TypeError) as e:
        raise click.ClickException(f"{data}: {e}") from None
    click.echo(Table("Reliability (Cronbach's alpha)", table,
                     notes=("CI: Feldt (1965); duhachek: Duhachek & Iacobucci (2004).",)).as_text())
    if json_out:
        Path(json_out).write_text(dumps(table))
        click.echo(f"Written to {json_out}")


@click.command()
@click.argument("data", type=click.Path(exists=True, dir_okay=False))
@click.option("--value", "values", multiple=True, required=True,
              help="Variable(s) whose school-level aggregation is assessed (repeatable).")
@click.option("--cluster", required=True, help="Cluster (school) identifier column.")
@click.option("--json", "json_out", type=OUT_FILE, default=None,
              help="Also write the results as JSON to this file.")
def icc(data: str, values: tuple[str, ...], cluster: str, json_out: str | None) -> None:
    """ICC(1) (REML, ML, ANOVA), ICC(2) and reliability of school means."""
    from instrument.multilevel import icc as run
    from instrument.results import dumps

    df = _read(data)
    results = []
    for v in values:
        try:
            r = run(df, v, cluster)
        except (KeyError, ValueError, TypeError) as e:
            raise click.ClickException(f"{data}: {e}") from None
        results.append(r)
        click.echo(r.summary().as_text())
        click.echo("")
    if json_out:
        Path(json_out).write_text(dumps({r.value: r for r in results}))
        click.echo(f"Written to {json_out}")
