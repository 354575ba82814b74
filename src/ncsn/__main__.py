"""``python -m ncsn`` runs the ``ncsn`` command."""

from ncsn.cli import run

run()
