"""Independent API requests at once (issue 15: the kit's 3N pods were created one round trip at a time).

Every request made here still carries its own timeout (`connect.call`), so the pool needs none of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

#: requests in flight at once; the client's urllib3 pool keeps 5 x CPUs connections per host
#: (`Configuration.connection_pool_maxsize`), so on 2 cores and up none waits for a connection
MAX_IN_FLIGHT = 8


def in_parallel(
    fn: Callable[..., Any], calls: Sequence[tuple[Any, ...]], workers: int = MAX_IN_FLIGHT
) -> list[BaseException | None]:
    """Call `fn(*args)` for every args tuple, up to `workers` at once; per call, in order, the exception
    it raised or None. Nothing is retried and nothing is cancelled: the caller decides what fails."""

    def one(args: tuple[Any, ...]) -> BaseException | None:
        try:
            fn(*args)
        except Exception as exc:
            return exc
        return None

    if len(calls) <= 1 or workers <= 1:
        return [one(args) for args in calls]
    with ThreadPoolExecutor(max_workers=min(workers, len(calls)), thread_name_prefix="kit") as pool:
        return list(pool.map(one, calls))
