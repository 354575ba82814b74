"""``python examples/demo.py [options]`` is ``ncsn demo [options]``: the demo lives in the package
(``src/ncsn/demo.py``, :func:`ncsn.demo.main`) so that an installed ``ncsn`` runs it too."""

import sys

from ncsn.cli import main

if __name__ == "__main__":
    sys.exit(main(["demo", *sys.argv[1:]]))
