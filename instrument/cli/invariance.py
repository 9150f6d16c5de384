"""`instrument invariance MODEL DATA --group COL [--steps ...] [--missing M] [--partial]
[--json OUT]`."""
from __future__ import annotations


import click

from instrument.cli._common import OUT_FILE, model_text, read_data, split_list, echo_result


@click.command("invariance")
@click.argument("model")
@click.argument("data", type=click.Path(exists=True, dir_okay=False))
@click.option("--group", required=True, help="Column defining the groups, e.g. language.")
@click.option("--steps", default="configural,metric,scalar,strict", show_default=True,
              help="Comma-separated rungs of the ladder.")
@click.option("--estimator", type=click.Choice(["ML", "MLR", "WLSMV"]), default="ML",
              show_default=True)
@click.option("--ordered", default="", help="Ordinal items (comma-separated or 'all'): WLSMV "
              "ladder configural, thresholds, metric, scalar, strict (Wu & Estabrook 2016).")
@click.option("--rule-set", type=click.Choice(["lrt_dmacs", "chen2007", "cheung_rensvold2002",
                                               "rutkowski_svetina2014", "lrt"]),
              default="lrt_dmacs", show_default=True,
              help="How steps are judged: scaled difference test and dMACS (lrt_dmacs), or "
                   "delta-fit cut-offs.")
@click.option("--missing", type=click.Choice(["listwise", "pairwise", "fiml"]), default=None,
              help="Missing answers: listwise (lavaan's default; a warning gives the count "
              "dropped), pairwise (WLSMV, as Mplus) or fiml (ML/MLR; lavaan missing='ml').")
@click.option("--partial/--no-partial", default=False,
              help="Locate non-invariant items by score tests and release them (lrt_dmacs).")
@click.option("--json", "json_out", default=None, type=OUT_FILE,
              help="Write the ladder (with every fit) as JSON.")
def invariance(model: str, data: str, group: str, steps: str, estimator: str, rule_set: str,
               partial: bool, json_out: str | None, ordered: str = "",
               missing: str | None = None) -> None:
    """Fit the measurement-invariance ladder of MODEL on DATA (a CSV) across --group."""
    from instrument.invariance import invariance as run
    from instrument.sem.syntax import ModelSyntaxError

    try:
        ordv = True if ordered.strip().lower() == "all" else (split_list(ordered) or None)
        opts = {"missing": missing} if missing else {}
        res = run(model_text(model), read_data(data), group=group, steps=split_list(steps),
                  estimator=estimator, rule_set=rule_set, ordered=ordv, **opts)
        if partial:
            res = res.partial()
    except (ModelSyntaxError, ValueError, NotImplementedError) as e:
        raise click.ClickException(str(e)) from e
    echo_result(res.summary().as_text(), res.to_dict(), json_out)
