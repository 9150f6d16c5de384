"""`instrument dfi MODEL DATA` (dynamic fit index cut-offs) and `instrument power PLAN`
(field-test power planning): Monte Carlo studies on the local process pool or a Dask cluster."""
from __future__ import annotations

from pathlib import Path

import click

from instrument.cli._common import model_text, read_data, split_list, echo_result


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
@click.option("--into", "into", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Add the result to this results.json (key 'dfi') for `instrument report`.")
def dfi(model: str, data: str, ordered: str, reps: int, seed: int, scheduler: str,
        workers: int | None, json_out: str | None, into: str | None) -> None:
    """Dynamic fit index cut-offs (McNeish & Wolf) for MODEL fitted to DATA."""
    from instrument.montecarlo.dfi import dynamic_cutoffs
    from instrument.results import to_jsonable
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
    echo_result(res.summary().as_text(), res.to_dict(), json_out)
    if into:
        _merge_into(into, "dfi", to_jsonable(res.to_dict()))
        click.echo(f"Added to {into}")


def _merge_into(results_path: str, key: str, payload: dict) -> None:
    """Add ``payload`` under ``key`` of a results file's ``results`` (for `instrument report`)."""
    import json
    p = Path(results_path)
    try:
        doc = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise click.ClickException(f"{p}: expected a results JSON file written by `instrument "
                                   f"validate` ({e})") from e
    target = doc["results"] if isinstance(doc.get("results"), dict) else doc
    target[key] = payload
    p.write_text(json.dumps(doc, indent=1, sort_keys=True))


@click.command("power")
@click.argument("plan", required=False)
@click.option("--schools", default="100,200,400", show_default=True,
              help="Comma-separated numbers of schools.")
@click.option("--respondents", default="8,15,25", show_default=True,
              help="Comma-separated mean respondents per school.")
@click.option("--reps", default=500, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=1, show_default=True, type=click.IntRange(min=0))
@click.option("--form", default="teacher", show_default=True)
@click.option("--estimator", default=None, type=click.Choice(["ML", "MLR", "WLSMV"]),
              help="CFA estimator (default: the plan's analysis.estimator, else WLSMV).")
@click.option("--construct", default=None,
              help="School score of the gates and the linker (default: the bank's overall score).")
@click.option("--no-dif", is_flag=True, help="Skip the language DIF study (the slowest part).")
@click.option("--missing", default=None, type=click.Choice(["listwise", "pairwise", "fiml"]),
              help="Missing-data method (default: validate's, pairwise for WLSMV, fiml for ML/MLR).")
@click.option("--scheduler", default="processes", show_default=True,
              help="inprocess, processes, or a Dask scheduler address (tcp://host:8786).")
@click.option("--workers", default=None, type=click.IntRange(min=1))
@click.option("--study-dir", default=None, type=click.Path(file_okay=False),
              help="Stream replications to Parquet here; rerunning resumes the study.")
@click.option("--json", "json_out", default=None, type=click.Path(dir_okay=False))
@click.option("--into", "into", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Add the result to this results.json (key 'power') for `instrument report`.")
def power(plan: str | None, schools: str, respondents: str, reps: int, seed: int, form: str,
          estimator: str | None, construct: str | None, no_dif: bool, missing: str | None, scheduler: str, workers: int | None,
          study_dir: str | None, json_out: str | None, into: str | None) -> None:
    """Power of a field test per design (schools x respondents per school), simulated from
    PLAN (the shipped default when omitted)."""
    from instrument.montecarlo.power import power as run_power
    from instrument.plans import PlanError
    from instrument.results import to_jsonable

    try:
        s = [int(v) for v in split_list(schools)]
        r = [float(v) for v in split_list(respondents)]
    except ValueError as e:
        raise click.ClickException(f"--schools/--respondents: expected comma-separated numbers "
                                   f"({e})") from e
    try:
        res = run_power(plan, schools=s, respondents=r, reps=reps, seed=seed, form=form,
                        estimator=estimator, dif=not no_dif, construct=construct, missing=missing,
                        scheduler=_scheduler(scheduler),
                        workers=workers, path=study_dir)
    except (PlanError, ValueError) as e:
        raise click.ClickException(str(e)) from e
    echo_result(res.summary().as_text(), res.to_dict(), json_out)
    if into:
        _merge_into(into, "power", to_jsonable(res.to_dict()))
        click.echo(f"Added to {into}")
