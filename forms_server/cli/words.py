"""How the command line speaks: one line at a time, on standard output."""

from __future__ import annotations

import sys


def say(line: str = "") -> None:
    sys.stdout.write(line + "\n")


def age_in_words(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.0f}d"
