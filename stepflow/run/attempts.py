"""`--retry N`: the command run again within ONE run: one store row, one log, one view.

Each attempt is one `Supervisor.run` (so `--timeout` covers each attempt on its own, as
stepflow.cron.retry says: at most (N + 1) x timeout + N x delay in all). Its output lines follow
the last attempt's in the run's log, its steps follow the last attempt's steps. After an attempt
that fails and is followed by another:
- its open steps end failed ("attempt 1 of 4 failed: ..."), its errors are the attempt's;
- the run's metadata["attempts"] gets one entry per attempt (stepflow.cron.retry.Attempt:
  attempt, exit_code, started_ts, duration_s, interrupted), written as each attempt ends, so
  `show` lists them while the run is still going; and a warning on the run says what follows;
- the pause (--retry-delay) ends early on SIGINT/SIGTERM/SIGHUP: the run ends `cancelled`
  with 128+N (130 for Ctrl-C), as it would while the command ran.
The last attempt's outcome is the run's (its status, its exit status).
"""

from __future__ import annotations

import signal
import time
from typing import TYPE_CHECKING

from stepflow.errors import ExitStatus
from stepflow.events import MetaSet
from stepflow.run.supervisor import FORWARDED, Outcome, Supervisor

if TYPE_CHECKING:
    from stepflow.cron.retry import RetryPolicy
    from stepflow.run.execute import OutputFork
    from stepflow.run.recorder import Recorder

PAUSE_TICK = 0.25  # the pause sleeps this long at most between looks at the signals caught


def run_attempts(policy: RetryPolicy, supervisor: Supervisor, fork: OutputFork, recorder: Recorder) -> Outcome:
    """Run the command up to `policy.attempts` times; the Outcome of the last attempt.

    Raises what `supervisor.run` raises (a command not found is not tried again).
    """
    from stepflow.cron.retry import Attempt

    state = recorder.state
    done: list[dict[str, object]] = []
    number = 1
    while True:
        started = time.time()
        outcome = supervisor.run(fork)
        fork.close()  # the attempt's last line without a newline is its own, not the next one's
        failed = outcome.exit_status != 0 or state.status == "failed"
        status = outcome.exit_status or (ExitStatus.ERROR if failed else ExitStatus.OK)
        entry = Attempt(number, status, started, time.time() - started, outcome.interrupted is not None).as_dict()
        done.append(entry)
        state.metadata["attempts"] = list(done)
        recorder.emit(MetaSet(state, None, "attempts", str(len(done)), "metadata"))
        if not policy.should_retry(number, status, interrupted=outcome.interrupted is not None):
            return outcome
        how = _how(outcome, status)
        errors = recorder.end_attempt(f"attempt {number} of {policy.attempts} {how}")
        if errors:
            entry["error"] = "; ".join(errors)
            state.metadata["attempts"] = list(done)
            recorder.emit(MetaSet(state, None, "attempts", str(len(done)), "metadata"))
        wait = f" in {policy.delay_s:g} s" if policy.delay_s else ""
        recorder.warn(f"attempt {number} of {policy.attempts} {how}; trying again{wait}")
        caught = pause(policy.delay_s)
        if caught is not None:
            code = ExitStatus.CTRL_C if caught == signal.SIGINT else ExitStatus.SIGNAL_BASE + caught
            return Outcome(returncode=-caught, exit_status=code, interrupted=caught,
                           cpu_seconds=outcome.cpu_seconds)
        number += 1


def pause(seconds: float) -> int | None:
    """Sleep `seconds`, or less when SIGINT/SIGTERM/SIGHUP comes: the signal, else None."""
    caught: list[int] = []
    previous = {sig: signal.signal(sig, lambda s, _f: caught.append(s)) for sig in FORWARDED}
    try:
        deadline = time.monotonic() + seconds
        while not caught:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(left, PAUSE_TICK))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return caught[0] if caught else None


def _how(outcome: Outcome, status: int) -> str:
    if outcome.timed_out:
        return "timed out"
    if outcome.returncode < 0:
        return f"was killed by signal {-outcome.returncode}"
    if outcome.exit_status == 0:
        return "failed (a stop_on_error step)"
    return f"failed (exit {status})"
