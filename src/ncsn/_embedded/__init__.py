"""Package data shipped inside ``ncsn`` (read with :mod:`importlib.resources`; nothing downloads).

``digits.npz`` holds the UCI optical-recognition 8×8 handwritten digits; see ``digits_LICENSE.txt``.
"""
