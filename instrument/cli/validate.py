"""`instrument validate [PLAN]`."""
from __future__ import annotations

import sys

import click


@click.command()
@click.argument("plan", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out_dir", default="validation", show_default=True,
              type=click.Path(file_okay=False), help="Folder for results and reports.")
def validate(plan: str | None, out_dir: str) -> None:
    """Run an analysis plan end to end (the shipped default plan when PLAN is omitted)."""
    from instrument.pipeline import validate as run_validate

    run = run_validate(plan, out_dir, progress=click.echo)
    click.echo("")
    for s in run.stages:
        click.echo(f"  {s.name:<20} {s.status}{': ' + s.message if s.message else ''}")
    click.echo(f"Results written to {run.out_dir / 'results.json'}")
    if not run.ok:
        sys.exit(1)
