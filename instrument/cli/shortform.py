"""`instrument shortform`: choose k items per construct under the blueprint (MILP)."""
from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option("--form", default="teacher", show_default=True,
              help="A form id of the bank.")
@click.option("--bank", "bank_path", type=click.Path(exists=True), default=None,
              help="Item bank folder or manifest (default: the shipped bank).")
@click.option("--items-per-construct", "k", type=int, default=3, show_default=True)
@click.option("--data", "data", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Fielded responses of the form (ingested with the bank); default: simulated.")
@click.option("--plan", default="tiny", show_default=True,
              help="Population plan to simulate from when --data is not given.")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--export", "export", type=click.Path(dir_okay=False), default=None,
              help="Write the short form as an item-bank form declaration (YAML).")
@click.option("--export-bank", "export_bank", type=click.Path(file_okay=False), default=None,
              help="Write a copy of the item bank with the short form as a new form (a folder "
                   "that load_bank loads).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None,
              help="Write the full result as JSON.")
def shortform(form: str, bank_path: str | None, k: int, data: str | None, plan: str, seed: int,
              export: str | None, export_bank: str | None, json_out: str | None) -> None:
    """Short form: k items per construct with the most information at the band cut points."""
    import yaml

    import instrument as ins
    from instrument.irt.shortform import shortform as run
    from instrument.results import dumps

    try:
        bank = ins.load_bank(bank_path)
        if form not in bank.forms:
            raise ValueError(f"--form: {form!r} is not a form of the bank; expected one of "
                             f"{list(bank.forms)}.")
        if data:
            responses = ins.ingest(data, bank=bank, form=form).responses
        else:
            sim = ins.simulate(plan, seed=seed)
            responses = getattr(sim, form)
        res = run(responses, bank=bank, k=k)
    except (KeyError, ValueError) as e:
        raise click.ClickException(f"{data or plan}: {e}") from None
    click.echo(res.summary().as_text())
    click.echo("Items: " + ", ".join(res.selected))
    if export:
        Path(export).write_text(yaml.safe_dump(res.to_bank_form(), sort_keys=False))
        click.echo(f"Short form written to {export}")
    if export_bank:
        try:
            out = res.export_bank(export_bank, source=bank_path)
            ins.load_bank(out)
        except (ValueError, ins.BankError) as e:
            raise click.ClickException(f"{export_bank}: {e}") from None
        click.echo(f"Item bank with form {res.form}_short{res.k} written to {out}")
    if json_out:
        Path(json_out).write_text(dumps(res.to_dict()))
        click.echo(f"Written to {json_out}")
