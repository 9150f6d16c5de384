"""The item bank: YAML files under ``instrument/items`` checked against a schema on load.

``load_bank(path=None) -> Bank`` and ``check_bank(path) -> list[BankProblem]``; see
``instrument/items/bank.yaml`` for the layout of the files and `instrument.bank.schema` for
their fields.
"""
from instrument.bank.loader import BankError, check_bank, load_bank, shipped_bank_path
from instrument.bank.model import Bank, Scale
from instrument.bank.yamlio import BankProblem

__all__ = ["Bank", "BankError", "BankProblem", "Scale", "check_bank", "load_bank",
           "shipped_bank_path"]
