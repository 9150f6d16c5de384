"""`instrument twolevel MODEL DATA --cluster COL [--h1 em|exact] [--json OUT]`."""
from __future__ import annotations

import sys

import click

from instrument.cli._common import OUT_FILE, model_text, read_data, echo_result


@click.command("twolevel")
@click.argument("model")
@click.argument("data", type=click.Path(exists=True, dir_okay=False))
@click.option("--cluster", required=True, help="Cluster column (e.g. school_id).")
@click.option("--h1", type=click.Choice(["em", "exact"]), default="em", show_default=True,
              help="Saturated model: lavaan's EM (matches lavaan) or the exact maximum.")
@click.option("--json", "json_out", default=None, type=OUT_FILE,
              help="Write the fit and the between-level reliability as JSON to this file.")
def twolevel(model: str, data: str, cluster: str, h1: str, json_out: str | None) -> None:
    """Two-level CFA by exact ML (lavaan's level: 1 / level: 2 syntax) and the school-level
    reliability of each between factor. MODEL is a syntax file or string; DATA a CSV file."""
    from instrument.sem.syntax import ModelSyntaxError
    from instrument.sem.cfa import twolevel_cfa
    from instrument.sem.twolevel import twolevel_reliability

    text = model_text(model)
    df = read_data(data)
    try:
        fit = twolevel_cfa(text, df, cluster=cluster, h1=h1)
        rel = twolevel_reliability(fit)
    except (ModelSyntaxError, ValueError, TypeError, NotImplementedError) as e:
        raise click.ClickException(str(e)) from e
    click.echo(fit.summary().as_text())
    click.echo("")
    echo_result(rel.summary().as_text(),
                {"fit": fit.to_dict(), "reliability": rel.to_dict()}, json_out)
    if not fit.converged:
        sys.exit(1)
