"""The cron options as a crontab sets them: STEPFLOW_* names, their grammar, one value. Pure.

A flag wins over its variable. A crontab sets per-job values on the line itself
(`STEPFLOW_PING_URL=https://hc-ping.com/UUID stepflow run -- backup.sh`) or for every job
below a `NAME=value` line.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from stepflow.cron.lock import DEFAULT_KILL_GRACE, OnOverlap
from stepflow.cron.names import (  # noqa: F401 - the names are settings' public API too
    HOOK_TIMEOUT,
    LOCK,
    NAMES,
    ON_FAILURE,
    ON_FINISH,
    ON_OVERLAP,
    ON_RECOVER,
    ON_STREAK,
    ON_SUCCESS,
    PING_TIMEOUT,
    PING_URL,
    PROM_TEXTFILE,
    RETRY,
    RETRY_DELAY,
    RETRY_ON,
)
from stepflow.cron.retry import RetryPolicy, parse_policy
from stepflow.errors import UsageError
from stepflow.record import record
from stepflow.timeparse import parse_duration

FLAGS = {"overlap": "--on-overlap", "ping_url": "--ping"}  # CronOptions fields not named as their flag

DEFAULT_HOOK_TIMEOUT = 30.0
DEFAULT_PING_TIMEOUT = 10.0


@record(frozen=True)
class Overlap:
    """--on-overlap parsed: what to do, and its bound (wait) or grace (kill)."""

    mode: OnOverlap = "skip"
    wait_timeout: float | None = None  # wait: None waits as long as it takes (as flock(1))
    kill_grace: float = DEFAULT_KILL_GRACE


def parse_overlap(text: str, *, option: str = "--on-overlap") -> Overlap:
    """`skip`, `wait`, `wait=10m`, `kill`, `kill=30s`.

    Raises:
        UsageError: another word, or a bad duration.
    """
    word, sep, value = text.strip().lower().replace(":", "=", 1).partition("=")
    if word == "skip" and not sep:
        return Overlap("skip")
    if word == "wait":
        return Overlap("wait", parse_duration(value, option=option) if sep else None)
    if word == "kill":
        return Overlap("kill", kill_grace=parse_duration(value, option=option) if sep else DEFAULT_KILL_GRACE)
    raise UsageError(f"{option} {text!r} is not skip, wait, wait=BOUND, kill or kill=GRACE (e.g. wait=10m)")


def parse_streak(text: str, *, option: str = ON_STREAK) -> tuple[int, str]:
    """`3:mail -s down ops@example.com` (the flag's form) or `3 mail -s down ops@example.com`
    (as a crontab variable reads best) as (3, 'mail -s down ops@example.com').

    Raises:
        UsageError: no count from 1 up, or no command.
    """
    body = text.strip()
    digits = len(body) - len(body.lstrip("0123456789"))
    count, rest = body[:digits], body[digits:]
    command = rest[1:].strip() if rest[:1] == ":" or rest[:1].isspace() else ""
    if not count or int(count) < 1 or not command:
        raise UsageError(f"{option}={text!r} is not a count from 1 and a command (e.g. \"3:notify-ops\")")
    return int(count), command


@record(frozen=True)
class CronOptions:
    """Every cron option of one run, resolved from flags over the environment."""

    lock: str | None = None
    overlap: Overlap | None = None  # given: lock (by --lock NAME or the run's name); None: no lock
    retry: RetryPolicy = RetryPolicy()
    on_failure: str | None = None
    on_success: str | None = None
    on_finish: str | None = None
    on_streak: tuple[int, str] | None = None
    on_recover: str | None = None
    hook_timeout: float = DEFAULT_HOOK_TIMEOUT
    ping_url: str | None = None
    ping_timeout: float = DEFAULT_PING_TIMEOUT
    prom_textfile: Path | None = None

    @property
    def wants_lock(self) -> bool:
        """--lock or --on-overlap given: a run holds the lock (skip when only --lock is)."""
        return self.lock is not None or self.overlap is not None

    @property
    def any_hook(self) -> bool:
        return any((self.on_failure, self.on_success, self.on_finish, self.on_streak, self.on_recover))

    def hooks_for(self, status: str, *, fire_streak: bool, fire_recover: bool) -> list[tuple[str, str]]:
        """(which, command) to run after a run ended with `status`, in this order: the outcome's
        hook, --on-streak / --on-recover, then --on-finish. A skipped run runs none."""
        from stepflow.cron.streak import FAILURE, SUCCESS

        if status == "skipped":
            return []
        chosen: list[tuple[str, str | None]] = [
            ("on-failure", self.on_failure if status in FAILURE else None),
            ("on-success", self.on_success if status in SUCCESS else None),
            ("on-streak", self.on_streak[1] if self.on_streak and fire_streak else None),
            ("on-recover", self.on_recover if fire_recover else None),
            ("on-finish", self.on_finish),
        ]
        return [(which, cmd) for which, cmd in chosen if cmd]


def cron_options(env: Mapping[str, str], **flags: object) -> CronOptions:
    """Resolve the options: a flag given (not None) wins over its STEPFLOW_* variable.

    `flags` take CronOptions' field names with the flags' raw text (`overlap="wait=10m"`,
    `retry="3"`, `retry_delay="30s"`, `retry_on="1,75"`, `on_streak="3 CMD"`, ...).

    Raises:
        UsageError: a value that cannot be used; the message names the flag or the variable.
    """
    def pick(flag: str, var: str) -> tuple[str | None, str]:
        value = flags.get(flag)
        if value is not None:
            return str(value), FLAGS.get(flag, "--" + flag.replace("_", "-"))
        text = env.get(var, "").strip()
        return (text or None), var

    unknown = set(flags) - {"lock", "overlap", "retry", "retry_delay", "retry_on", "on_failure", "on_success",
                            "on_finish", "on_streak", "on_recover", "hook_timeout", "ping_url", "ping_timeout",
                            "prom_textfile"}
    if unknown:
        raise TypeError(f"unknown cron flags: {sorted(unknown)}")
    overlap_text, overlap_name = pick("overlap", ON_OVERLAP)
    retry_text, retry_name = pick("retry", RETRY)
    delay_text, delay_name = pick("retry_delay", RETRY_DELAY)
    codes_text, codes_name = pick("retry_on", RETRY_ON)
    streak_text, streak_name = pick("on_streak", ON_STREAK)
    hook_timeout, hook_timeout_name = pick("hook_timeout", HOOK_TIMEOUT)
    ping_timeout, ping_timeout_name = pick("ping_timeout", PING_TIMEOUT)
    prom, _ = pick("prom_textfile", PROM_TEXTFILE)
    return CronOptions(
        lock=pick("lock", LOCK)[0],
        overlap=parse_overlap(overlap_text, option=overlap_name) if overlap_text else None,
        retry=parse_policy(retry_text or "0",
                           delay=parse_duration(delay_text, option=delay_name) if delay_text else 0.0,
                           codes=codes_text, count_option=retry_name, codes_option=codes_name),
        on_failure=pick("on_failure", ON_FAILURE)[0],
        on_success=pick("on_success", ON_SUCCESS)[0],
        on_finish=pick("on_finish", ON_FINISH)[0],
        on_streak=parse_streak(streak_text, option=streak_name) if streak_text else None,
        on_recover=pick("on_recover", ON_RECOVER)[0],
        hook_timeout=parse_duration(hook_timeout, option=hook_timeout_name) if hook_timeout else DEFAULT_HOOK_TIMEOUT,
        ping_url=pick("ping_url", PING_URL)[0],
        ping_timeout=parse_duration(ping_timeout, option=ping_timeout_name) if ping_timeout else DEFAULT_PING_TIMEOUT,
        prom_textfile=Path(prom).expanduser() if prom else None,
    )
