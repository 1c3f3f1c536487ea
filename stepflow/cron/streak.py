"""Which statuses count as a success or a failure, failure streaks, and when alerts fire. Pure.

A run `completed` is a success; `failed` and `timed_out` are failures. Every other status
(`cancelled`: someone or `--on-overlap kill` stopped it; `abandoned`: stepflow itself died;
`skipped`: the lock was held; `running`, `pending`) says nothing about the job's health, so it
neither extends nor breaks a streak and is left out of success rates.

`--on-streak N CMD` fires once per streak: on the run that makes the streak exactly N long,
not again at N+1, N+2... (one alert per outage, as healthchecks users ask in #525/#587).
`--on-recover CMD` fires on the first success after a streak that reached the alert
threshold: N when --on-streak is given, else 1 (any failure, then a success).
"""

from __future__ import annotations

from collections.abc import Sequence

from stepflow.record import record

SUCCESS = frozenset({"completed"})
FAILURE = frozenset({"failed", "timed_out"})


def counts(status: str | None) -> bool:
    """Whether a run with this status says anything about the job's health."""
    return status in SUCCESS or status in FAILURE


def failure_streak(statuses: Sequence[str | None]) -> int:
    """Consecutive failures at the newest end of `statuses` (newest first); neutral ones skipped."""
    streak = 0
    for status in statuses:
        if status in FAILURE:
            streak += 1
        elif status in SUCCESS:
            break
    return streak


@record(frozen=True)
class StreakNews:
    """What the newest run means for alerts: its streak, and which hooks fire now."""

    streak: int  # failures in a row, the newest run included (0 after a success)
    previous: int  # the streak before the newest run that counts
    fire_streak: bool
    fire_recover: bool


def streak_news(statuses: Sequence[str | None], *, threshold: int | None = None) -> StreakNews:
    """Alerts for the newest run; `statuses` are the job's runs newest first, this run first.

    `threshold` is --on-streak's N (None: no --on-streak). A newest run that does not count
    (skipped, cancelled...) fires nothing.
    """
    counted = [s for s in statuses if counts(s)]
    if not statuses or not counts(statuses[0]):
        return StreakNews(failure_streak(counted), failure_streak(counted), False, False)
    streak = failure_streak(counted)
    previous = failure_streak(counted[1:])
    recover_at = threshold if threshold is not None else 1
    return StreakNews(
        streak=streak,
        previous=previous,
        fire_streak=threshold is not None and streak == threshold,
        fire_recover=streak == 0 and previous >= recover_at,
    )


def statuses_needed(threshold: int | None) -> int:
    """How many recent runs to read so that `streak_news` sees enough (neutral runs between)."""
    return max(threshold or 1, 1) * 4 + 20
