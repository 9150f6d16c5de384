"""`instrument link SCORES OUTCOMES`: predictive validity of a school score for an outcome."""
from __future__ import annotations


import click

from instrument.cli._common import OUT_FILE, read_data as _read_table, echo_result


@click.command()
@click.argument("scores", type=click.Path(exists=True, dir_okay=False))
@click.argument("outcomes", type=click.Path(exists=True, dir_okay=False))
@click.option("--outcome", default="chronic_absence", show_default=True,
              type=click.Choice(["chronic_absence", "attendance", "ela_proficiency", "math_proficiency"]))
@click.option("--construct", default=None,
              help="Construct id or 'overall' [default: overall, when the item bank defines one].")
@click.option("--form", default="teacher", show_default=True,
              help="Form whose score is linked (a form of the bank, as in SCORES).")
@click.option("--se-type", default="CR2", show_default=True, type=click.Choice(["CR2", "CR1"]))
@click.option("--weights", default=None, help="Outcomes column used as WLS weights, e.g. enrollment.")
@click.option("--change", is_flag=True, help="Model the change from the prior year.")
@click.option("--rates-in", default="proportion", show_default=True,
              type=click.Choice(["proportion", "percent"]))
@click.option("--json", "json_out", default=None, type=OUT_FILE,
              help="Write the full result as JSON here.")
def link(scores: str, outcomes: str, outcome: str, construct: str | None, form: str,
         se_type: str, weights: str | None, change: bool, rates_in: str, json_out: str | None) -> None:
    """Regress a school OUTCOME on the school score (cluster-robust by district)."""
    from instrument.linker import link as run_link

    try:
        res = run_link(_read_table(scores), _read_table(outcomes), outcome=outcome,
                       construct=construct, form=form, se_type=se_type, weights=weights,
                       change=change, rates_in=rates_in)
    except ValueError as e:
        raise click.ClickException(str(e)) from e
    echo_result(res.summary().as_text(), res, json_out)
