"""`instrument dfi MODEL DATA` (dynamic fit index cut-offs) and `instrument power PLAN`
(field-test power planning): Monte Carlo studies on the local process pool or a Dask cluster."""
from __future__ import annotations

from pathlib import Path

import click

from instrument.cli._common import model_text, read_data, split_list


def _scheduler(text: str | None):
    if text in (None, "", "inprocess"):
        return None
    return text


@click.command("dfi")
@click.argument("model")
@click.argument("data", type=click.Path(exists=True, dir_okay=False))
@click.option("--ordered", default="", help="'all' or comma-separated ordinal items: WLSMV fit "
              "and categorical DFI (McNeish, 2023).")
@click.option("--reps", default=500, show_default=True, type=click.IntRange(min=10),
              help="Replications per population.")
@click.option("--seed", default=1, show_default=True, type=click.IntRange(min=0))
@click.option("--scheduler", default="processes", show_default=True,
              help="inprocess, processes, or a Dask scheduler address (tcp://host:8786).")
@click.option("--workers", default=None, type=click.IntRange(min=1),
              help="Local processes (default: all cores).")
@click.option("--json", "json_out", default=None, type=click.Path(dir_okay=False),
              help="Write the result as JSON to this file.")
def dfi(model: str, data: str, ordered: str, reps: int, seed: int, scheduler: str,
        workers: int | None, json_out: str | None) -> None:
    """Dynamic fit index cut-offs (McNeish & Wolf) for MODEL fitted to DATA."""
    from instrument.montecarlo.dfi import dynamic_cutoffs
    from instrument.results import dumps
    from instrument.sem.cfa import cfa
    from instrument.sem.syntax import ModelSyntaxError

    df = read_data(data)
    ordv = True if ordered.strip().lower() == "all" else (list(split_list(ordered)) or None)
    try:
        fit = cfa(model_text(model), df, ordered=ordv) if ordv else cfa(model_text(model), df)
        res = dynamic_cutoffs(fit, reps=reps, seed=seed, scheduler=_scheduler(scheduler),
                              workers=workers)
    except (ModelSyntaxError, ValueError, NotImplementedError) as e:
        raise click.ClickException(str(e)) from e
    click.echo(res.summary().as_text())
    if json_out:
        Path(json_out).write_text(dumps(res.to_dict(), indent=1))
        click.echo(f"Result written to {json_out}")
