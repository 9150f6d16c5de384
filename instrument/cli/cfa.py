"""`instrument cfa MODEL DATA [--estimator ML|MLR|WLSMV|ULSMV] [--ordered all|I1,I2]
[--missing listwise|pairwise|fiml] [--group COL] [--equal loadings,intercepts] [--std-lv]
[--parameterization delta|theta] [--id-cat Wu.Estabrook.2016] [--cluster COL]
[--information expected|observed] [--se standard|robust.huber.white|robust.cluster|none]
[--test standard|yuan.bentler.mplus] [--json OUT]`."""
from __future__ import annotations

import sys

import click

from instrument.cli._common import OUT_FILE, model_text, read_data, split_list, echo_result


@click.command("cfa")
@click.argument("model")
@click.argument("data", type=click.Path(exists=True, dir_okay=False))
@click.option("--group", default=None, help="Column defining groups (multiple-group CFA).")
@click.option("--equal", "equal", default="", help="Comma-separated group_equal types, "
              "e.g. loadings,intercepts.")
@click.option("--partial", "partial", default="", help="Comma-separated group_partial "
              "parameters, e.g. 'x3~1,x7~1'.")
@click.option("--std-lv", is_flag=True, help="Identify by standardized latent variables.")
@click.option("--meanstructure", is_flag=True, help="Model the means (always on with groups).")
@click.option("--likelihood", type=click.Choice(["normal", "wishart"]), default="normal",
              show_default=True)
@click.option("--information", type=click.Choice(["expected", "observed"]), default=None,
              help="Default: observed with robust SEs (MLR) and with fiml, else expected "
              "(lavaan's rule).")
@click.option("--se", default=None,
              type=click.Choice(["standard", "robust.huber.white", "robust.cluster", "none"]),
              help="Standard errors (lavaan se=); default: standard, or the estimator's own "
              "(MLR: robust.huber.white).")
@click.option("--test", default=None, type=click.Choice(["standard", "yuan.bentler.mplus"]),
              help="Model test (lavaan test=); default: standard, or the estimator's own "
              "(MLR: yuan.bentler.mplus).")
@click.option("--ordered", default="", help="Ordinal items: comma-separated names or 'all' "
              "(fits by WLSMV unless --estimator says otherwise).")
@click.option("--estimator", default=None,
              type=click.Choice(["ML", "MLR", "WLSMV", "ULSMV"]), help="Default: ML, or WLSMV "
              "with --ordered. MLR: robust (Huber-White) SEs and Yuan-Bentler scaled test.")
@click.option("--parameterization", type=click.Choice(["delta", "theta"]), default="delta",
              show_default=True, help="Ordinal items only.")
@click.option("--id-cat", "id_cat", type=click.Choice(["Wu.Estabrook.2016"]), default=None,
              help="Ordinal items with groups: Wu & Estabrook (2016) identification as semTools' "
              "measEq.syntax writes it (needs --std-lv); default: lavaan's.")
@click.option("--missing", type=click.Choice(["listwise", "pairwise", "fiml"]), default=None,
              help="Default listwise, lavaan's (a warning gives the count dropped); pairwise: "
              "polychorics from each pair's rows (--ordered, as Mplus); fiml: full-information "
              "ML (lavaan missing='ml').")
@click.option("--cluster", default=None, help="Column of cluster labels: cluster-robust SEs "
              "and test (needs --estimator MLR).")
@click.option("--json", "json_out", default=None, type=OUT_FILE,
              help="Write the full result as JSON to this file.")
def cfa(model: str, data: str, group: str | None, equal: str, partial: str, std_lv: bool,
        meanstructure: bool, likelihood: str, information: str | None, se: str | None,
        test: str | None, json_out: str | None, ordered: str, estimator: str | None,
        parameterization: str, id_cat: str | None, missing: str | None,
        cluster: str | None) -> None:
    """Fit a CFA by ML, MLR, WLSMV or ULSMV (lavaan 0.6-14 numbers). MODEL is a syntax file or a syntax string;
    DATA is a CSV file."""

    from instrument.sem.cfa import cfa as run_cfa
    from instrument.sem.syntax import ModelSyntaxError

    text = model_text(model)
    df = read_data(data)
    ge, gp = split_list(equal), split_list(partial)
    ordv = True if ordered.strip().lower() == "all" else (list(split_list(ordered)) or None)
    try:
        if id_cat is not None and ordv is None:
            raise ValueError("--id-cat identifies ordered indicators; give --ordered.")
        fit = run_cfa(text, df, group=group, group_equal=ge, group_partial=gp, std_lv=std_lv,
                      meanstructure=True if meanstructure else None, likelihood=likelihood,
                      information=information, se=se, test=test, ordered=ordv,
                      estimator=estimator, parameterization=parameterization, id_cat=id_cat,
                      missing=missing, cluster=cluster)
    except (ModelSyntaxError, ValueError, NotImplementedError) as e:
        raise click.ClickException(str(e)) from e
    echo_result(fit.summary().as_text(), fit.to_dict(), json_out)
    if not fit.converged:
        sys.exit(1)
