"""``python -m instrument`` runs the command-line interface."""
from instrument.cli import main

main()
