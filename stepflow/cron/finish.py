"""The cron options of one run, in the order a run needs them: four calls to wire.

    cron = CronRun(options, run_id=state.id, run_name=state.name, lock_dir=settings.storage / "locks")
    cron.start()                      # before spawn: the lock (raises LockBusy: record `skipped`,
                                      # then cron.finish(that run), exit LockBusy.exit_status)
                                      # and the start ping, sent in the background
    cron.command_started(child.pid)   # after spawn: `kill` from the next run reaches the command
    ...                               # the attempts (options.retry), the run recorded as final
    warnings = cron.finish(run_dict, store=store, env=os.environ)  # the lock freed first, then
                                      # the textfile, the finish ping, the hooks; never raises

`finish` takes the run as `stepflow show --json` prints it (history.run_detail) and returns
warning strings for the run's warnings and stderr. Nothing here changes the exit status.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from stepflow.cron.hooks import HookResult, Output, run_hook
from stepflow.cron.lock import HeldLock, acquire
from stepflow.cron.ping import Pinger, finish_event
from stepflow.cron.settings import CronOptions, Overlap
from stepflow.cron.streak import StreakNews, statuses_needed, streak_news


class CronRun:
    """One run's lock, pings, textfile and hooks."""

    def __init__(self, options: CronOptions, *, run_id: str, run_name: str, lock_dir: Path) -> None:
        self.options = options
        self.run_id = run_id
        self.run_name = run_name
        self.lock_dir = lock_dir
        self.lock: HeldLock | None = None
        self.pinger = (Pinger(options.ping_url, run_id=run_id, timeout=options.ping_timeout)
                       if options.ping_url else None)
        self.hook_results: list[HookResult] = []
        self.news: StreakNews | None = None

    def start(self) -> None:
        """Take the lock when asked for (named --lock, else the run's name), then ping /start.

        Raises:
            LockBusy: the run is skipped (no start ping is sent).
            LockError: the lock file cannot be opened.
        """
        if self.options.wants_lock:
            o = self.options.overlap or Overlap()
            self.lock = acquire(self.lock_dir, self.options.lock or self.run_name, on_overlap=o.mode,
                                wait_timeout=o.wait_timeout, kill_grace=o.kill_grace, run_id=self.run_id)
        if self.pinger is not None:
            self.pinger.start()

    def command_started(self, pgid: int) -> None:
        if self.lock is not None:
            self.lock.set_command(pgid)

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()

    def finish(
        self,
        run: Mapping[str, Any],
        *,
        store: Any,
        env: Mapping[str, str],
        mask: Callable[[bytes], bytes] | None = None,
        stdout: Output = None,
        stderr: Output = None,
    ) -> list[str]:
        """After the run is recorded: free the lock, write the textfile, ping, run the hooks.

        `store` is the open store (for the streak, the log tail and the metrics); a store that
        fails makes warnings, not errors. Never raises but for KeyboardInterrupt.
        """
        self.release()
        o = self.options
        warnings: list[str] = []
        status = str(run.get("status") or "")
        hooks_wanted = o.any_hook and status != "skipped"
        tail = b""
        if hooks_wanted or self.pinger is not None:
            tail = self._tail(store, run, mask, warnings)
        if o.prom_textfile is not None:
            warnings += self._textfile(store, o.prom_textfile)
        if self.pinger is not None:
            warnings += self.pinger.finish(finish_event(status, run.get("exit_code")), body=tail)
        if not hooks_wanted:
            return warnings
        self.news = self._streak(store, run, warnings)
        text = tail.decode("utf-8", "replace")
        folder = run.get("working_directory")
        cwd = folder if isinstance(folder, str) and os.path.isdir(folder) else None  # gone: stepflow's own
        news = self.news
        for which, command in o.hooks_for(status, fire_streak=news.fire_streak, fire_recover=news.fire_recover):
            result = run_hook(command, run, env=env, timeout=o.hook_timeout, streak=self.news.streak, log_tail=text,
                              which=which, stdout=stdout, stderr=stderr, cwd=cwd)
            self.hook_results.append(result)
            if result.warning:
                warnings.append(result.warning)
        return warnings

    def _tail(self, store: Any, run: Mapping[str, Any], mask: Callable[[bytes], bytes] | None,
              warnings: list[str]) -> bytes:
        from stepflow.cron.tail import log_tail

        if run.get("status") == "skipped":
            return str(run.get("error_message") or "skipped").encode() + b"\n"
        try:
            return log_tail(store, str(run["id"]), int(run.get("line_count") or 0), mask=mask)
        except Exception as exc:  # the store failing must not stop pings and hooks
            warnings.append(f"cannot read the run's output for hooks and pings: {exc}")
            return b""

    def _streak(self, store: Any, run: Mapping[str, Any], warnings: list[str]) -> StreakNews:
        from stepflow.cron.query import recent_statuses

        threshold = self.options.on_streak[0] if self.options.on_streak else None
        earlier: list[str] = []
        try:
            rows = recent_statuses(store, str(run.get("name") or ""), limit=statuses_needed(threshold) + 1,
                                   with_ids=True)
            earlier = [status for run_id, status in rows if run_id != run.get("id")]
        except Exception as exc:
            warnings.append(f"cannot read the job's earlier runs for --on-streak/--on-recover: {exc}")
        return streak_news([str(run.get("status")), *earlier], threshold=threshold)

    def _textfile(self, store: Any, folder: Path) -> list[str]:
        from stepflow.cron import query
        from stepflow.cron.prom import update_textfile

        try:
            update_textfile(folder, lambda: query.metrics(store))
        except Exception as exc:  # a full disk or a store error: the run is done all the same
            return [f"--prom-textfile {folder}: not written: {getattr(exc, 'strerror', None) or exc}"]
        return []
