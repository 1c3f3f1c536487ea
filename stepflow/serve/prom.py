"""`/metrics`: job facts in the Prometheus text exposition format (version 0.0.4). Pure."""

from __future__ import annotations

from collections.abc import Iterable

from stepflow.serve.data import JobFacts
from stepflow.store.base import RUN_STATUSES

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def label(value: str) -> str:
    """A label value as the format wants it: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return repr(float(value)) if value != int(value) else str(int(value))


def render(jobs: Iterable[JobFacts], *, by_status: dict[str, int]) -> str:
    jobs = list(jobs)
    out: list[str] = []

    def family(name: str, kind: str, help_text: str, samples: Iterable[tuple[str, float]]) -> None:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} {kind}")
        out.extend(f"{name}{labels} {_number(value)}" for labels, value in samples)

    family("stepflow_job_last_status", "gauge",
           "1 for the status of the latest run of each job name, 0 for the others.",
           ((f'{{job="{label(j.name)}",status="{s}"}}', 1 if j.last_status == s else 0)
            for j in jobs for s in sorted({*RUN_STATUSES, j.last_status})))
    family("stepflow_job_last_success", "gauge", "1 when the latest run of the job completed, else 0.",
           ((f'{{job="{label(j.name)}"}}', 1 if j.last_status == "completed" else 0) for j in jobs))
    family("stepflow_job_last_duration_seconds", "gauge", "Duration of the latest finished run of the job.",
           ((f'{{job="{label(j.name)}"}}', round(j.last_duration, 6)) for j in jobs if j.last_duration is not None))
    family("stepflow_job_last_success_timestamp_seconds", "gauge",
           "When the latest completed run of the job ended (Unix time).",
           ((f'{{job="{label(j.name)}"}}', round(j.last_success_ts, 3)) for j in jobs
            if j.last_success_ts is not None))
    family("stepflow_job_consecutive_failures", "gauge",
           "Failed, timed out, cancelled or abandoned runs of the job since its latest completed run.",
           ((f'{{job="{label(j.name)}"}}', j.consecutive_failures) for j in jobs))
    family("stepflow_job_runs_total", "counter", "Runs of the job in the store, by status.",
           ((f'{{job="{label(j.name)}",status="{label(s)}"}}', n) for j in jobs
            for s, n in sorted(j.runs_by_status.items())))
    family("stepflow_runs", "gauge", "Runs in the store, by status.",
           ((f'{{status="{label(s)}"}}', n) for s, n in sorted(by_status.items())))
    return "\n".join(out) + "\n"
