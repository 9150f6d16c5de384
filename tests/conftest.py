"""Shared fixtures: a small fake item bank satisfying the narrow seam used by simulate, ingest and
scores (``bank.items``, ``bank.scales``, ``bank.items_for``, ``bank.recode_reverse``,
``bank.overall_constructs``), so these tests
run before the real bank lands and can later be run against it too.

Set ``INSTRUMENT_TEST_BANK=real`` to run the same tests with the shipped bank
(``instrument.bank.load_bank()``) in place of the toy bank."""
from __future__ import annotations

from dataclasses import dataclass

import os

import pandas as pd
import pytest


@dataclass(frozen=True)
class ToyScale:
    id: str
    codes: tuple
    labels_en: tuple
    labels_es: tuple
    missing_codes: tuple = (-99, -98)
    missing_labels: tuple = ("Prefer not to say", "Does not apply")
    kind: str = "agreement"


AGREE4 = ToyScale("agree4", (1, 2, 3, 4),
                  ("Strongly disagree", "Disagree", "Agree", "Strongly agree"),
                  ("Muy en desacuerdo", "En desacuerdo", "De acuerdo", "Muy de acuerdo"))
FREQ5 = ToyScale("freq5", (1, 2, 3, 4, 5), ("Never", "Rarely", "Sometimes", "Often", "Always"),
                 ("Nunca", "Casi nunca", "A veces", "A menudo", "Siempre"), kind="frequency")

CONSTRUCTS = {"mindsets": ("mind", "agree4"), "communication": ("comm", "freq5"),
              "language_culture": ("lang", "agree4")}


class ToyBank:
    """2 forms x 3 constructs x 4 items; item 4 of mindsets is reverse-keyed on each form."""

    forms = ("teacher", "family")

    def __init__(self):
        rows = []
        for form, p in (("teacher", "t"), ("family", "f")):
            for construct, (short, scale) in CONSTRUCTS.items():
                for k in range(1, 5):
                    rows.append({"item_id": f"{p}_{short}_{k}", "construct": construct,
                                 "form": form, "scale": scale,
                                 "reverse": construct == "mindsets" and k == 4})
        self.items = pd.DataFrame(rows)
        self.scales = {"agree4": AGREE4, "freq5": FREQ5}

    def items_for(self, form, construct=None):
        it = self.items[self.items["form"] == form]
        if construct is not None:
            it = it[it["construct"] == construct]
        return it["item_id"].tolist()

    def overall_constructs(self, form):
        """Like the shipped bank: an overall score of every construct on every form."""
        return list(CONSTRUCTS) if form in self.forms else []

    def recode_reverse(self, df, form=None):
        out = df.copy()
        it = self.items if form is None else self.items[self.items["form"] == form]
        for row in it[it["reverse"]].itertuples():
            if row.item_id in out.columns:
                codes = self.scales[row.scale].codes
                out[row.item_id] = (min(codes) + max(codes)) - out[row.item_id]
        return out


@pytest.fixture(scope="session")
def toy_bank():
    if os.environ.get("INSTRUMENT_TEST_BANK") == "real":
        from instrument.bank import load_bank
        return load_bank()
    return ToyBank()
