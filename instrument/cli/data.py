"""`instrument simulate`, `instrument ingest`, `instrument scores`: parse arguments, call the API."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from instrument.cli._common import OUT_DIR, OUT_FILE, read_data


def _bank(path: str | None = None):
    """The item bank at ``path`` (a folder or its manifest), else the shipped bank (a seam the
    tests replace with a small bank); a bank with problems is a one-line error per problem."""
    from instrument.bank import BankError, load_bank
    try:
        return load_bank(path)
    except BankError as exc:
        _fail(exc)


def _check_form(bank, form: str) -> None:
    if form not in bank.forms:
        _fail(ValueError(f"--form: {form!r} is not a form of the bank {bank.name!r}; expected "
                         f"one of {list(bank.forms)}."))


def _fail(exc: Exception) -> None:
    click.echo(f"Error: {exc}", err=True)
    sys.exit(2)


@click.command()
@click.argument("plan", default="default")
@click.option("--out", "out_dir", required=True, type=OUT_DIR,
              help="Folder for teacher.csv, family.csv, outcomes.csv and truth.json (with a "
                   "'year' column when the plan has simulation.years).")
@click.option("--seed", type=int, default=None, help="Random seed (default: the plan's seed).")
def simulate(plan: str, out_dir: str, seed: int | None) -> None:
    """Simulate a field test from population-model PLAN (a YAML file, or 'default' / 'tiny' /
    'panel'); a plan with simulation.years writes a panel (all years, `year` column)."""
    from instrument.plans import PlanError
    from instrument.simulate import simulate as run
    if Path(plan).is_dir():
        _fail(ValueError(f"{plan}: is a folder; expected a population plan (a YAML file) or "
                         "one of the shipped plans 'default', 'tiny', 'panel'."))
    try:
        sim = run(plan, seed=seed, bank=_bank())
    except (PlanError, ValueError) as exc:
        _fail(exc)
    paths = sim.write(out_dir)
    click.echo(sim.summary().as_text())
    years = sim.meta.options.get("years")
    if years:  # a panel plan (simulation.years): every file holds all years in a `year` column
        click.echo(f"Panel: survey years {', '.join(str(y) for y in years)} stacked in a 'year' "
                   "column; truth.json holds per-year true scores, true change and variance "
                   "components.")
    for k, p in paths.items():
        click.echo(f"  {k:<9} {p}")


def _ingest(path: str, form: str, mapping: str | None, quarantine: str,
            exclude: tuple[str, ...], fmt: str | None, bank):
    """Ingest with the quarantine always written (to ``quarantine``) and the counts printed."""
    from instrument.io import IngestError, ingest
    _check_form(bank, form)
    try:
        res = ingest(path, bank=bank, form=form, mapping=mapping, quarantine_dir=quarantine,
                     exclude_flags=exclude, format=fmt)
    except (IngestError, ValueError) as exc:
        _fail(exc)
    click.echo(res.summary().as_text())
    click.echo(f"Quarantine ({res.quarantined} row(s), each with its file line and reason): "
               f"{res.quarantine_path}")
    return res


_FORM = click.option("--form", required=True,
                     help="The form the file holds: a form id of the bank (e.g. teacher).")
_BANK = click.option("--bank", "bank_path", type=click.Path(exists=True),
                     help="Item bank folder or manifest (default: the shipped bank).")
_MAPPING = click.option("--mapping", type=click.Path(exists=True, dir_okay=False),
                        help="YAML mapping of columns, labels and defaults.")
_QUAR = click.option("--quarantine", type=OUT_DIR,
                     help="Folder for <file>.quarantine.csv (default: the folder of --out, or "
                          "of the input file when there is no --out).")
_EXCL = click.option("--exclude-flag", "exclude", multiple=True,
                     type=click.Choice(["straightlining", "too_fast"]),
                     help="Quarantine rows with this flag instead of only flagging them.")
_FMT = click.option("--format", "fmt", default=None,
                    type=click.Choice(["csv", "qualtrics", "xlsx", "sav", "dta", "parquet"]),
                    help="Force a reader (default: by file suffix).")


def _quarantine_dir(quarantine: str | None, out: str | None, source: str) -> str:
    """--quarantine, else the folder of --out, else the folder of the input file."""
    if quarantine:
        return quarantine
    return str(Path(out if out else source).parent)


@click.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@_FORM
@_MAPPING
@_QUAR
@_EXCL
@_FMT
@_BANK
@click.option("--out", type=OUT_FILE,
              help="Write the accepted rows as CSV (ingest stage: keeps respondent_id).")
def ingest(path, form, mapping, quarantine, exclude, fmt, bank_path, out) -> None:
    """Read a fielded file, check every row against the bank and quarantine failing rows."""
    res = _ingest(path, form, mapping, _quarantine_dir(quarantine, out, path), exclude, fmt,
                  (_bank(bank_path) if bank_path else _bank()))
    if out:
        from instrument.io import safe_to_csv
        safe_to_csv(res.responses.data, out)
        click.echo(f"Accepted rows: {out}")


@click.command()
@click.argument("responses", type=click.Path(exists=True, dir_okay=False))
@_FORM
@click.option("--outcomes", type=click.Path(exists=True, dir_okay=False),
              help="School outcomes CSV (roster sizes give response rates).")
@click.option("--out", required=True, type=OUT_FILE,
              help="School scores CSV (one row per school x construct).")
@_MAPPING
@_QUAR
@_EXCL
@_FMT
@_BANK
def scores(responses, form, outcomes, out, mapping, quarantine, exclude, fmt, bank_path) -> None:
    """School scores (1-99 scale, bands, suppression) from a RESPONSES file of one form."""

    from instrument.io import safe_to_csv
    from instrument.scores import school_scores, scores_summary, suppression_list
    bank = (_bank(bank_path) if bank_path else _bank())
    res = _ingest(responses, form, mapping, _quarantine_dir(quarantine, out, responses), exclude,
                  fmt, bank)
    oc = None
    if outcomes:
        oc = read_data(outcomes)
    try:
        sc = school_scores(res.responses, bank=bank, outcomes=oc)
    except ValueError as exc:
        _fail(exc)
    safe_to_csv(sc, out)
    click.echo(scores_summary(sc).as_text())
    rows = f"Rows: read {res.read} = used {res.used} + quarantined {res.quarantined}"
    if (sc["construct"] == "overall").any():
        scored = int(sc.loc[sc["construct"] == "overall", "n"].sum())
        click.echo(f"{rows}; {scored} of the {res.used} used respondents have an overall score"
                   + ("." if scored == res.used else
                      f" ({res.used - scored} answered too few items of a construct to be "
                      "scored)."))
    else:       # the item bank defines no overall score: construct scores only
        click.echo(f"{rows}.")
    sup = suppression_list(sc)
    click.echo(f"{sup['school_id'].nunique()} school(s) with suppressed results "
               f"({len(sup)} rows); reasons are in the suppression_reason column of {Path(out)}.")
