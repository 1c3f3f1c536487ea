"""When a failed attempt is tried again: `--retry N [--retry-delay S] [--retry-on CODES]`. Pure.

`--timeout` covers each attempt on its own (an attempt that times out exits 124 and is retried
like any other failure unless --retry-on leaves 124 out), so a run takes at most
(N + 1) x timeout + N x delay. A run stepflow itself was asked to stop (Ctrl-C, SIGTERM, a
`--on-overlap kill` from the next run) is never retried.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from stepflow.errors import UsageError
from stepflow.record import record

MAX_RETRIES = 100
MAX_CODE = 255


@record(frozen=True)
class RetryPolicy:
    """`count` more attempts after the first, `delay_s` apart, for exit statuses in `on_codes`
    (None: any non-zero status)."""

    count: int = 0
    delay_s: float = 0.0
    on_codes: frozenset[int] | None = None

    def should_retry(self, attempt: int, exit_status: int, *, interrupted: bool = False) -> bool:
        """Whether attempt number `attempt` (1 = the first), which ended with `exit_status`,
        is followed by another."""
        if interrupted or exit_status == 0 or attempt > self.count:
            return False
        return self.on_codes is None or exit_status in self.on_codes

    @property
    def attempts(self) -> int:
        """At most this many attempts in all."""
        return self.count + 1


@record(frozen=True)
class Attempt:
    """One attempt of a run, as `show` can list it (the run's metadata "attempts")."""

    number: int  # 1 = the first
    exit_status: int
    started: float  # epoch seconds
    seconds: float
    interrupted: bool = False

    def as_dict(self) -> dict[str, object]:
        return {"attempt": self.number, "exit_code": self.exit_status, "started_ts": round(self.started, 6),
                "duration_s": round(self.seconds, 6), "interrupted": self.interrupted}


def run_attempts(
    policy: RetryPolicy,
    attempt: Callable[[int], tuple[int, bool]],
    *,
    on_retry: Callable[[Attempt, float], None] = lambda _a, _delay: None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> list[Attempt]:
    """Call `attempt(n)` -> (exit status, interrupted) until it succeeds, is interrupted, or the
    policy says no more; `on_retry(last, delay)` before each pause. The last one is the run's.

    Raises whatever `attempt` or `sleep` raise (Ctrl-C in the pause ends the run there).
    """
    done: list[Attempt] = []
    number = 1
    while True:
        started = clock()
        status, interrupted = attempt(number)
        done.append(Attempt(number, status, started, clock() - started, interrupted))
        if not policy.should_retry(number, status, interrupted=interrupted):
            return done
        on_retry(done[-1], policy.delay_s)
        if policy.delay_s > 0:
            sleep(policy.delay_s)
        number += 1


def parse_codes(text: str, *, option: str = "--retry-on") -> frozenset[int]:
    """`1,2,75-78` as {1, 2, 75, 76, 77, 78}: exit statuses 1-255 (0 is success, never retried).

    Raises:
        UsageError: a part is not a status or a range of them; the message names it.
    """
    codes: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        low, sep, high = part.partition("-")
        try:
            first = int(low)
            last = int(high) if sep else first
        except ValueError:
            raise UsageError(f"{option} {text!r}: {part!r} is not an exit status or a range (e.g. 1,2,75-78)") from None
        if not 1 <= first <= last <= MAX_CODE:
            raise UsageError(f"{option} {text!r}: {part!r} is not within 1-{MAX_CODE} (low-high, low first)")
        codes.update(range(first, last + 1))
    return frozenset(codes)


def parse_policy(count: str | int, *, delay: float = 0.0, codes: str | None = None,
                 count_option: str = "--retry", codes_option: str = "--retry-on") -> RetryPolicy:
    """A RetryPolicy from the flags' values.

    Raises:
        UsageError: a count that is not 0-100, a negative delay, or bad codes.
    """
    try:
        n = int(count)
    except ValueError:
        n = -1
    if not 0 <= n <= MAX_RETRIES:
        raise UsageError(f"{count_option} {count!r} is not a whole number from 0 to {MAX_RETRIES}")
    if delay < 0:
        raise UsageError(f"--retry-delay {delay!r} is negative")
    return RetryPolicy(n, delay, parse_codes(codes, option=codes_option) if codes else None)
