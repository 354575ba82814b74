"""The version of the installed library (one place, read by ``ncsn.__version__`` and the model
folders it writes)."""

__version__ = "0.1.0"
