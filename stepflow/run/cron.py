"""The cron options around one `stepflow run` (issue 15), in the order a run needs them.

    cron = options_from(values, os.environ)   # None: no cron flag or setting (nothing imported)
    result, warnings = execute_cron(options, cron, settings, view)

1. the lock (stepflow.cron.lock) before anything is spawned; a run that does not get it is
   recorded `skipped` with its holder in error_message and metadata["lock_holder"], and
   exits LockBusy.exit_status (0: a skip is no failure; see stepflow.cron.lock);
2. the start ping, in the background;
3. the run itself (stepflow.run.execute), its attempts with --retry (stepflow.run.attempts),
   the command's process group recorded in the lock for the next run's `--on-overlap kill`;
4. once the run is stored: the lock freed, the textfile, the finish ping, the hooks
   (stepflow.cron.finish.CronRun), which get the run as `stepflow show --json` prints it.
   What goes wrong there comes back as warnings, stored on the run and told by the CLI; it
   never changes the exit status, which stays the command's.

Never prints; never imports typer.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping

from stepflow.cron.names import NAMES
from stepflow.record import replace
from stepflow.run.options import RunOptions, RunResult, default_name
from stepflow.state import RunState

TYPE_CHECKING = False  # typing costs ~4 ms at start-up (see stepflow.typenames)

if TYPE_CHECKING:
    from typing import Any

    from stepflow.config import Settings
    from stepflow.cron.settings import CronOptions
    from stepflow.views.base import View

# The cron flags of stepflow.cli.run_flags.RUN_FLAGS, by dest (= cron_options' keyword).
FLAG_DESTS = ("lock", "overlap", "retry", "retry_delay", "retry_on", "on_failure", "on_success", "on_finish",
              "on_streak", "on_recover", "hook_timeout", "ping_url", "prom_textfile")


def options_from(values: Mapping[str, Any], env: Mapping[str, str]) -> CronOptions | None:
    """The cron options of a run from its flags over the STEPFLOW_* settings; None when none is set.

    Raises:
        UsageError: a value that cannot be used (the message names the flag or the variable).
    """
    flags = {dest: values.get(dest) for dest in FLAG_DESTS}
    if all(v is None for v in flags.values()) and not any(env.get(name, "").strip() for name in NAMES):
        return None
    from stepflow.cron.settings import cron_options

    return cron_options(env, **flags)


def execute_cron(options: RunOptions, cron: CronOptions, settings: Settings, view: View, *,
                 hook_stdout: int | None = None) -> tuple[RunResult, list[str]]:
    """Run `options` with the cron options `cron`; (the result, warnings to tell the user).

    `hook_stdout` is where hooks print (None: stepflow's stdout; -o json passes stderr's fd).

    Raises:
        LockError: the lock file cannot be opened (nothing was run).
    """
    from stepflow.cron.finish import CronRun
    from stepflow.cron.lock import LockBusy
    from stepflow.run.execute import execute
    from stepflow.run.recorder import new_id

    env = dict(os.environ if options.env is None else options.env)
    run_id = new_id()
    name = options.name or default_name(options.argv)
    options = replace(options, run_id=run_id, retry=cron.retry if cron.retry.count else None)
    job = CronRun(cron, run_id=run_id, run_name=name, lock_dir=settings.storage / "locks")
    try:
        job.start()
    except LockBusy as busy:
        result = record_skipped(options, settings, busy, env=env)
        after = _after(job, settings, result, env, hook_stdout) if _reports(cron) else []
        return result, [*result.state.warnings, *after]
    try:
        result = execute(options, settings, view, on_spawn=job.command_started)
    finally:
        job.release()  # before the textfile, pings and hooks: the next run need not wait for them
    return result, _after(job, settings, result, env, hook_stdout) if _reports(cron) else []


def _reports(cron: CronOptions) -> bool:
    """Whether anything runs after the run (a ping, a hook, the textfile): only then is it read back."""
    return bool(cron.ping_url or cron.any_hook or cron.prom_textfile is not None)


def record_skipped(options: RunOptions, settings: Settings, busy: Any, *, env: Mapping[str, str]) -> RunResult:
    """Store a run that was not run because the lock was held: status `skipped`, the holder in
    error_message and metadata; its exit status is `busy.exit_status`. Never raises for the store
    (a store that fails leaves a warning in the result's state)."""
    from stepflow.fmt import iso, shell_join, valid_text
    from stepflow.run.secrets import Masker, matching
    from stepflow.store import open_store
    from stepflow.store.base import NewRun, Run

    assert options.run_id is not None
    masker = Masker([*options.masks, *matching(env, settings.mask_env).values()])
    now = time.time()
    state = RunState(id=options.run_id, name=masker.mask_text(valid_text(options.name or default_name(options.argv))),
                     command=masker.mask_text(valid_text(shell_join(options.argv))), started=now, status="skipped",
                     ended=now)
    state.errors.append(str(busy))
    holder = busy.holder.as_dict() if busy.holder is not None else None
    run = Run(
        id=state.id, name=state.name, command=state.command, status="skipped", created_at=iso(now), created_ts=now,
        started_at=iso(now), completed_at=iso(now), error_message=str(busy),
        working_directory=valid_text(os.path.abspath(options.cwd or os.getcwd())),
        tags=[masker.mask_text(valid_text(t)) for t in options.tags], user_name=_user(env),
        host=os.uname().nodename, pid=os.getpid(), metadata={"lock": busy.name, "lock_holder": holder},
        warnings=[],
    )
    try:
        store = open_store(settings, appending=True)
        try:
            store.write([NewRun(run)])
        finally:
            store.close()
    except Exception as exc:  # the skip still stands: the lock says the job is running
        state.warn(f"the skipped run could not be recorded: {exc}")
    return RunResult(state.id, busy.exit_status, state)


def _after(job: Any, settings: Settings, result: RunResult, env: Mapping[str, str],
           hook_stdout: int | None) -> list[str]:
    """CronRun.finish over the stored run; its warnings stored on the run too. Never raises."""
    from stepflow.store import open_store
    from stepflow.store.base import RunChange

    store: Any = None
    stored: list[str] = []
    try:
        store = open_store(settings)
        found = store.get_run(result.run_id)
        if found is None:
            raise LookupError("not in the store")
        from stepflow.history.detail import run_detail

        run = run_detail(found, store.steps(found.id), store.artifacts(found.id))
        stored = list(run["warnings"])
    except Exception as exc:
        warnings = [f"run {result.run_id[:8]} cannot be read back for the cron options: {exc}"]
        run = _from_state(result)
    else:
        warnings = []
    # A hook is no cron job: the cron settings stay out of its environment, so a hook that runs
    # `stepflow run` itself does not retry, lock, ping or run hooks of its own (no hook loops).
    hook_env = {k: v for k, v in env.items() if k not in NAMES}
    warnings += job.finish(run, store=store, env=hook_env, stdout=hook_stdout)
    if store is not None:
        try:
            if warnings and run.get("status") is not None:
                store.write([RunChange(result.run_id, warnings=[*stored, *warnings])])
        except Exception as exc:
            warnings.append(f"the warnings above could not be stored on the run: {exc}")
        finally:
            store.close()
    return warnings


def _from_state(result: RunResult) -> dict[str, Any]:
    """The run as the hooks and pings see it, from memory, when the store cannot give it back."""
    s = result.state
    return {"id": s.id, "name": s.name, "command": s.command, "status": s.status, "exit_code": s.exit_code,
            "duration_s": None if s.ended is None else round(s.ended - s.started, 6),
            "error_message": "; ".join(s.errors) or None, "warnings": list(s.warnings), "metadata": dict(s.metadata),
            "line_count": s.lines, "steps": [{"name": st.name, "status": st.status} for st in s.steps]}


def _user(env: Mapping[str, str]) -> str | None:
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        if env.get(name):
            return env[name]
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return None
