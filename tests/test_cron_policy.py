"""Pure parts of the cron options: retries, streaks, settings from a crontab."""

from __future__ import annotations

from pathlib import Path

import pytest

from stepflow.cron import settings as cs
from stepflow.cron.retry import RetryPolicy, parse_codes, parse_policy, run_attempts
from stepflow.cron.streak import failure_streak, statuses_needed, streak_news
from stepflow.errors import UsageError


def test_retry_codes_and_ranges() -> None:
    assert parse_codes("1,2,75-78") == frozenset({1, 2, 75, 76, 77, 78})
    assert parse_codes(" 124 ") == frozenset({124})


@pytest.mark.parametrize("text", ["0", "1,,2", "a", "78-75", "1-300", "-1", "256"])
def test_retry_codes_rejected(text: str) -> None:
    with pytest.raises(UsageError, match=r"^--retry-on "):
        parse_codes(text)


@pytest.mark.parametrize(("policy", "attempt", "status", "expected"), [
    (RetryPolicy(2), 1, 1, True),
    (RetryPolicy(2), 2, 1, True),
    (RetryPolicy(2), 3, 1, False),  # the third attempt was the last
    (RetryPolicy(2), 1, 0, False),  # success
    (RetryPolicy(0), 1, 1, False),
    (RetryPolicy(3, on_codes=frozenset({75})), 1, 75, True),
    (RetryPolicy(3, on_codes=frozenset({75})), 1, 1, False),
    (RetryPolicy(3), 1, 124, True),  # a timed-out attempt is retried like any failure
])
def test_should_retry(policy: RetryPolicy, attempt: int, status: int, expected: bool) -> None:
    assert policy.should_retry(attempt, status) is expected


def test_an_interrupted_run_is_never_retried() -> None:
    assert RetryPolicy(5).should_retry(1, 130, interrupted=True) is False


def test_parse_policy() -> None:
    assert parse_policy("3", delay=30, codes="1,75") == RetryPolicy(3, 30.0, frozenset({1, 75}))
    assert parse_policy(0).attempts == 1
    with pytest.raises(UsageError, match=r"^--retry 'x' is not a whole number from 0 to 100$"):
        parse_policy("x")
    with pytest.raises(UsageError, match="--retry '101'"):
        parse_policy("101")


F, S, N = "failed", "completed", "cancelled"


@pytest.mark.parametrize(("statuses", "streak"), [
    ([], 0), ([S], 0), ([F], 1), ([F, F, S, F], 2), (["timed_out", F], 2), ([F, N, "skipped", F, S], 2),
    ([N, F], 1), (["abandoned"], 0),
])
def test_failure_streak(statuses: list[str], streak: int) -> None:
    assert failure_streak(statuses) == streak


@pytest.mark.parametrize(("statuses", "threshold", "streak", "fire_streak", "fire_recover"), [
    ([F, F, S], 3, 2, False, False),  # not yet
    ([F, F, F, S], 3, 3, True, False),  # reaches N: fires
    ([F, F, F, F, S], 3, 4, False, False),  # N+1: quiet, one alert per outage
    ([F, N, F, "skipped", F], 3, 3, True, False),  # neutral runs in between neither break nor count
    ([S, F, F, F], 3, 0, False, True),  # the first success after an alerted streak recovers
    ([S, F, F], 3, 0, False, False),  # the streak never reached N: nothing to recover from
    ([S, S, F, F, F], 3, 0, False, False),  # the second success is not news
    ([S, F], None, 0, False, True),  # without --on-streak, any failure then success recovers
    ([F], 1, 1, True, False),
    ([F], None, 1, False, False),
    ([N, F, F, F], 3, 3, False, False),  # the newest run does not count: fires nothing
    (["skipped", F, F, S], 2, 2, False, False),
])
def test_streak_news(statuses: list[str], threshold: int | None, streak: int, fire_streak: bool,
                     fire_recover: bool) -> None:
    news = streak_news(statuses, threshold=threshold)
    assert (news.streak, news.fire_streak, news.fire_recover) == (streak, fire_streak, fire_recover)


def test_an_alert_fires_once_over_a_long_outage() -> None:
    history: list[str] = []
    fired = []
    for status in [S, F, F, F, F, F, F, S, F, F, F]:
        history.insert(0, status)
        news = streak_news(history, threshold=3)
        fired.append("streak" if news.fire_streak else "recover" if news.fire_recover else "")
    assert fired == ["", "", "", "streak", "", "", "", "recover", "", "", "streak"]


def test_statuses_needed_reaches_past_the_threshold() -> None:
    assert statuses_needed(None) > 1 and statuses_needed(5) > 5


def test_cron_options_from_a_crontab_environment() -> None:
    env = {cs.ON_FAILURE: "mail -s failed ops", cs.PING_URL: "https://hc-ping.com/u", cs.RETRY: "2",
           cs.RETRY_DELAY: "30s", cs.RETRY_ON: "75", cs.ON_OVERLAP: "wait=10m", cs.ON_STREAK: "3 page-oncall",
           cs.PROM_TEXTFILE: "/var/lib/node_exporter", cs.HOOK_TIMEOUT: "1m", cs.LOCK: "nightly"}
    opts = cs.cron_options(env)
    assert opts.on_failure == "mail -s failed ops" and opts.ping_url == "https://hc-ping.com/u"
    assert opts.retry == RetryPolicy(2, 30.0, frozenset({75}))
    assert opts.overlap == cs.Overlap("wait", 600.0)
    assert opts.on_streak == (3, "page-oncall") and opts.hook_timeout == 60.0
    assert opts.prom_textfile == Path("/var/lib/node_exporter") and opts.lock == "nightly"


def test_a_flag_wins_over_its_variable() -> None:
    opts = cs.cron_options({cs.ON_FAILURE: "from-env", cs.RETRY: "2"}, on_failure="from-flag", retry="0")
    assert opts.on_failure == "from-flag" and opts.retry.count == 0


def test_defaults_do_nothing() -> None:
    opts = cs.cron_options({})
    assert opts == cs.CronOptions() and not opts.any_hook and opts.retry.attempts == 1 and not opts.wants_lock
    assert cs.cron_options({cs.LOCK: "x"}).wants_lock and cs.cron_options({}, overlap="skip").wants_lock


@pytest.mark.parametrize(("env", "message"), [
    ({cs.ON_OVERLAP: "later"}, r"^STEPFLOW_ON_OVERLAP 'later' is not skip"),
    ({cs.RETRY_DELAY: "soon"}, r"^STEPFLOW_RETRY_DELAY 'soon' is not a duration"),
    ({cs.ON_STREAK: "page-oncall"}, r"^STEPFLOW_ON_STREAK='page-oncall' is not a count"),
    ({cs.ON_STREAK: "0 page"}, r"^STEPFLOW_ON_STREAK="),
    ({cs.RETRY_ON: "0"}, r"^STEPFLOW_RETRY_ON '0'"),
    ({cs.RETRY: "many"}, r"^STEPFLOW_RETRY 'many' is not a whole number"),
])
def test_bad_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        cs.cron_options(env)


def test_flag_errors_name_the_flag() -> None:
    with pytest.raises(UsageError, match=r"^--on-overlap 'x'"):
        cs.cron_options({cs.ON_OVERLAP: "skip"}, overlap="x")
    with pytest.raises(UsageError, match=r"^--retry-delay 'y'"):
        cs.cron_options({}, retry_delay="y")


@pytest.mark.parametrize(("status", "streak", "recover", "expected"), [
    ("failed", False, False, ["on-failure", "on-finish"]),
    ("timed_out", True, False, ["on-failure", "on-streak", "on-finish"]),
    ("completed", False, True, ["on-success", "on-recover", "on-finish"]),
    ("cancelled", False, False, ["on-finish"]),
    ("skipped", False, False, []),
])
def test_which_hooks_run(status: str, streak: bool, recover: bool, expected: list[str]) -> None:
    opts = cs.CronOptions(on_failure="f", on_success="s", on_finish="e", on_streak=(3, "k"), on_recover="r")
    assert [w for w, _ in opts.hooks_for(status, fire_streak=streak, fire_recover=recover)] == expected


def test_attempts_of_real_commands_until_one_succeeds() -> None:
    import subprocess

    codes = iter([75, 76, 0, 1])
    pauses: list[float] = []
    told: list[tuple[int, float]] = []

    def attempt(n: int) -> tuple[int, bool]:
        return subprocess.run(["sh", "-c", f"exit {next(codes)}"], timeout=60).returncode, False

    done = run_attempts(RetryPolicy(5, 0.25, frozenset({75, 76})), attempt, sleep=pauses.append,
                        on_retry=lambda a, d: told.append((a.number, d)))
    assert [(a.number, a.exit_status) for a in done] == [(1, 75), (2, 76), (3, 0)]
    assert pauses == [0.25, 0.25] and told == [(1, 0.25), (2, 0.25)]
    assert done[0].as_dict()["attempt"] == 1 and done[0].seconds >= 0


@pytest.mark.parametrize(("policy", "codes", "attempts"), [
    (RetryPolicy(2), [1, 1, 1, 1], 3),  # count retries after the first: 3 attempts in all
    (RetryPolicy(2, on_codes=frozenset({75})), [1], 1),  # a status not listed ends it
    (RetryPolicy(0), [1], 1),
])
def test_attempts_stop_where_the_policy_says(policy: RetryPolicy, codes: list[int], attempts: int) -> None:
    it = iter(codes)
    assert len(run_attempts(policy, lambda n: (next(it), False), sleep=lambda s: None)) == attempts


def test_an_interrupted_attempt_ends_the_run() -> None:
    done = run_attempts(RetryPolicy(3), lambda n: (130, True), sleep=lambda s: None)
    assert len(done) == 1 and done[0].interrupted
