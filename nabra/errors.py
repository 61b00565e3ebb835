"""User errors: mistakes the user can fix (a bad option, a missing or damaged file). The CLI prints
their message, naming the file, line or key, and exits 2 without a traceback. A module of its own so
that any stage can raise them without importing the CLI."""
from __future__ import annotations


class UserError(Exception):
    """An error the user can fix; printed without a traceback."""
