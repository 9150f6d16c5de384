"""`instrument items check|show|syntax|blueprint`: the item bank from the command line."""
from __future__ import annotations

import sys

import click

_BANK_OPT = click.option("--bank", "bank_path", default=None,
                         type=click.Path(exists=True),
                         help="A bank folder or its bank.yaml (default: the shipped bank).")


def _load(path: str | None):
    """Load a bank, or print its problems (file:line: what was expected) and exit 1."""
    from instrument.bank import BankError, load_bank

    try:
        return load_bank(path)
    except BankError as exc:
        for p in exc.problems:
            click.echo(str(p))
        click.echo(f"{len(exc.problems)} problem(s) in the item bank.", err=True)
        sys.exit(1)


def _call(fn, *args, **kw):
    """Call an API function; a ValueError for a bad option becomes a usage error."""
    try:
        return fn(*args, **kw)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


@click.group()
def items() -> None:
    """Check, show and use the item bank (items/)."""


@items.command()
@click.argument("path", required=False, type=click.Path())
def check(path: str | None) -> None:
    """Check the item bank at PATH (the shipped bank by default) against its schema.

    Prints one line per problem, `file:line: what was expected`, and exits 1 when there are any.
    """
    from instrument.bank import check_bank, load_bank

    problems = check_bank(path)
    if problems:
        for p in problems:
            click.echo(str(p))
        click.echo(f"{len(problems)} problem(s) in the item bank.", err=True)
        sys.exit(1)
    bank = load_bank(path)
    counts = ", ".join(f"{fm} {len(bank.items_for(fm))} items" for fm in bank.forms)
    click.echo(f"OK: {bank.path}")
    click.echo(f"  {len(bank.constructs)} constructs, {len(bank.forms)} forms ({counts}), "
               f"{len(bank.background)} background items, {len(bank.scales)} scales, "
               f"languages {', '.join(bank.languages)}")
    click.echo(bank.summary().as_text())


@items.command()
@click.option("--form", default=None, help="A form id of the bank (default: every form).")
@click.option("--lang", default="en", show_default=True, help="A language code of the bank.")
@click.option("--construct", default=None, help="Only this construct (e.g. communication).")
@_BANK_OPT
def show(form: str | None, lang: str, construct: str | None, bank_path: str | None) -> None:
    """Print a form as a readable table grouped by construct, in English or Spanish."""
    bank = _load(bank_path)
    click.echo(_call(bank.show, form=form, lang=lang, construct=construct), nl=False)


@items.command()
@click.option("--form", default="teacher", show_default=True, help="A form id of the bank.")
@click.option("--construct", "constructs", multiple=True,
              help="Only these constructs (repeat the option; default: all).")
@_BANK_OPT
def syntax(form: str, constructs: tuple[str, ...], bank_path: str | None) -> None:
    """Print lavaan model syntax for a form, one `construct =~ items` line per construct."""
    bank = _load(bank_path)
    click.echo(_call(bank.model_syntax, form=form, constructs=list(constructs) or None))


@items.command()
@click.option("--form", default=None, help="A form id of the bank (default: every form).")
@click.option("--markdown", is_flag=True, help="Print a Markdown table.")
@_BANK_OPT
def blueprint(form: str | None, markdown: bool, bank_path: str | None) -> None:
    """Print the blueprint: items per construct and Stage 2 finding, by form."""
    from instrument.results import Table

    bank = _load(bank_path)
    frame = _call(bank.blueprint, form=form)
    gaps = frame[frame[[c for c in frame.columns if c not in ("construct", "finding",
                                                               "total")]].eq(0).any(axis=1)]
    notes = [f"Findings with no item on a form: {len(gaps)}."]
    table = Table("Blueprint: items per construct and finding", frame, notes=notes)
    click.echo(table.as_markdown() if markdown else table.as_text())
