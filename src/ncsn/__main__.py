"""``python -m ncsn`` runs the ``ncsn`` command."""

import sys

from ncsn.cli import main

sys.exit(main())
