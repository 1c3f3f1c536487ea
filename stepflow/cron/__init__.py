"""What cron users ask for, as small parts the run wires in (issue 15).

Each module takes plain values (a finished run as the dict `stepflow show --json` prints, or
plain arguments) and returns values, or does its one I/O job within a bound:

  settings   the STEPFLOW_* names a crontab sets, the --on-overlap grammar      pure
  lock       the overlap lock: flock on <storage>/locks/<name>.lock             I/O
  retry      RetryPolicy and --retry-on CODES                                   pure
  streak     success/failure classes of statuses, streaks, when alerts fire     pure
  hooks      --on-failure/--on-success/--on-finish/--on-streak/--on-recover     I/O
  tail       the masked, bounded log tail hooks and pings send                  read-only
  ping       healthchecks.io-style pings over urllib                            I/O
  prom       node_exporter textfile metrics, written atomically                 I/O
  stats      success rate, p50/p95, streak, slower steps; a text renderer       pure
  query      the store reads stats, metrics and streaks need                    read-only
  finish     CronRun: all of the above in the order a run needs them (4 calls)  I/O

stepflow.run.cron wires them into `stepflow run`. Durations are read by stepflow.timeparse,
the one parser every option uses.
Nothing here imports typer or prints.
"""
