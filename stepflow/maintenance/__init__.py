"""Store upkeep: migrate --to-wal, backup, checkpoint, rollback, stats/check/optimize, health, prune.

Library code only: functions return results (most with `lines()` for people and `to_dict()`
for JSON) or raise a StepflowError; the commands in stepflow/cli/upkeep.py print them.
Modules are imported one by one by the command that needs them, so nothing heavy loads here.
"""
