"""Who did it: the operating-system user behind a coordinator action (recorded in its event)."""

from __future__ import annotations

import getpass


def os_user() -> str:
    """The login name of the user running this process (``"unknown"`` when it cannot be told)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError, ImportError):
        return "unknown"
