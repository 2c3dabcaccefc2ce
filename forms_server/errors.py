"""The root of every error this package raises on purpose.

Each module has its own kind (settings, store, outbox, delivery, tokens, the handbook build), all
below `FormsServerError`, so the command line tool and the server each catch one type. Every
message says what happened and what to do, and never holds anything a member typed.
"""

from __future__ import annotations


class FormsServerError(Exception):
    """Something the host can act on; the message says what to do."""
