"""Errors that ``recon_backend`` raises for bad input (shown to the user without a traceback)."""


class ReconError(Exception):
    """A user-facing reconstruction error: names the file, the field and what was expected."""
