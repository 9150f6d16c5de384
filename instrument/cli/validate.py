"""`instrument validate [PLAN] [--out DIR]`."""
from __future__ import annotations

import sys
import time

import click

from instrument.cli._common import OUT_DIR


@click.command()
@click.argument("plan", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out_dir", default="validation", show_default=True,
              type=OUT_DIR, help="Folder for results and reports.")
def validate(plan: str | None, out_dir: str) -> None:
    """Run an analysis plan end to end (the shipped default plan when PLAN is omitted).

    Exits 0 when every stage ran or stood aside for a stated reason (status n/a: the data lack
    what it needs, or the plan switched it off), 1 when a stage failed."""
    from instrument.pipeline import BACKGROUND_STAGES, _can_fork, validate as run_validate

    t0 = time.perf_counter()
    try:
        run = run_validate(plan, out_dir, progress=click.echo)
    except ValueError as e:  # an unreadable plan
        raise click.ClickException(str(e)) from e
    click.echo("")
    elapsed = time.perf_counter() - t0
    click.echo(f"  {'stage':<15} {'status':<8} {'seconds':>8}")
    for s in run.stages:
        extra = f"  {s.message}" if s.message else ""
        mark = "*" if (s.name in BACKGROUND_STAGES and s.status != "n/a" and _can_fork()) else " "
        click.echo(f"  {s.name:<15} {s.status:<8} {s.seconds:8.1f}{mark}{extra}")
    n_ok = sum(s.status in ("ok", "warning") for s in run.stages)
    n_na = sum(s.status == "n/a" for s in run.stages)
    click.echo(f"  {'total':<15} {f'{n_ok}/{len(run.stages)} ok':<8} {elapsed:8.1f}"
               + (f"  ({n_na} stood aside: n/a, with the reason)" if n_na else ""))
    click.echo("  (total: time elapsed; * ran in a separate process beside the other stages)")
    if run.warnings:
        click.echo(f"{len(run.warnings)} warning(s); the reports show each beside its table:",
                   err=True)
        for w in run.warnings:
            click.echo(f"  warning: {w}", err=True)
    click.echo(f"Results written to {run.out_dir / 'results.json'} (timings in "
               f"{run.out_dir / 'run_log.json'}); reports in "
               f"{run.out_dir / 'reports'}; lavaan and Mplus syntax in "
               f"{run.out_dir / 'syntax'}")
    rep = run.results.get("reports")
    if isinstance(rep, dict):
        made = [f for f in rep.get("files", []) if str(f).endswith(".pdf")]
        if rep.get("pdf"):
            click.echo(f"PDF reports made: {len(made)} ({', '.join(made)})")
        else:
            n_html = sum(str(f).endswith(".html") for f in rep.get("files", []))
            click.echo(f"PDF reports made: {len(made)} of {n_html}. {rep.get('note', '')}",
                       err=True)
    if not run.ok:
        click.echo("Some stages failed; see the errors/ folder.", err=True)
        sys.exit(1)
