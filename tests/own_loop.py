"""Async tests in an event loop of their own, on a thread of their own.

Playwright's sync API (the browser tests) keeps an event loop running on the main thread for the
whole session, and pytest-asyncio cannot start another one there. A thread has no loop yet.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec

P = ParamSpec("P")


def in_own_loop(test: Callable[P, Coroutine[Any, Any, None]]) -> Callable[P, None]:
    @functools.wraps(test)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        failures: list[BaseException] = []

        def target() -> None:
            try:
                asyncio.run(test(*args, **kwargs))
            except BaseException as failure:  # noqa: BLE001 - handed back to the test thread
                failures.append(failure)

        thread = threading.Thread(target=target)
        thread.start()
        thread.join()
        if failures:
            raise failures[0]

    return run
