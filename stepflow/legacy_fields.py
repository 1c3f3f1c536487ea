"""The StepFlow Monitor fields stepflow keeps, as `show --json` gives them. Pure.

Every legacy column is reachable: the run's `environment` and `current_step_index`, each
step's `id`, `exit_code`, `created_at`, each artifact's `id`, `file_name`, `artifact_type`,
`created_at`, `tags`, `is_public`, `retention_days`, `metadata`; a status stepflow shows
otherwise (`abandoned`, a step settled) under `legacy_status`. An artifact's recorded path
stays `file_path`; `path` is the file it names, resolved wherever the reader stands.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from stepflow.store import zone
from stepflow.store.base import Artifact, Run, Step

TYPE_CHECKING = False  # typing costs ~4 ms at start-up (see stepflow.typenames)
if TYPE_CHECKING:
    from typing import Any

MASKED = "***"
# environment values under such names are shown masked (the raw text stays in the database)
SECRET_NAMES = ("*TOKEN*", "*SECRET*", "*PASSWORD*", "*PASSWD*", "*API_KEY*", "*PRIVATE*", "*CREDENTIAL*")

def _iso(text: str | None) -> str | None:
    value = None
    if text:
        try:
            from datetime import datetime

            value = zone.aware(datetime.fromisoformat(text))
        except ValueError:
            return text
    return value.isoformat() if value is not None else text


def _environment(env: Any) -> dict[str, Any]:
    if isinstance(env, dict):
        shown = {k: (MASKED if isinstance(k, str) and any(fnmatchcase(k.upper(), p) for p in SECRET_NAMES) else v)
                 for k, v in env.items()}
        return {"environment": shown}
    if env is None:
        return {"environment": {}}
    return {"environment": {}, "environment_raw": str(env)}


def run_fields(run: Run) -> dict[str, Any]:
    out = {**_environment(run.environment), "current_step_index": run.current_step_index}
    if run.legacy_status is not None:
        out["legacy_status"] = run.legacy_status
    return out


def step_fields(step: Step) -> dict[str, Any]:
    out: dict[str, Any] = {"id": step.id, "exit_code": step.exit_code, "created_at": _iso(step.created_at)}
    if step.legacy_status is not None:
        out["legacy_status"] = step.legacy_status
    return out


def artifact_fields(artifact: Artifact) -> dict[str, Any]:
    tags = artifact.tags
    meta = artifact.metadata
    out: dict[str, Any] = {
        "id": artifact.id, "file_name": artifact.file_name, "artifact_type": artifact.artifact_type,
        "created_at": _iso(artifact.created_at),
        "tags": tags if isinstance(tags, list) else [],
        "is_public": None if artifact.is_public is None else bool(artifact.is_public),
        "retention_days": artifact.retention_days,
        "metadata": meta if isinstance(meta, dict) else {},
        "file_path": artifact.file_path,
    }
    if tags is not None and not isinstance(tags, list):
        out["tags_raw"] = str(tags)
    if meta is not None and not isinstance(meta, dict):
        out["metadata_raw"] = str(meta)
    folder = zone.storage()
    if folder is not None and artifact.file_path and not artifact.file_path.startswith("/"):
        found = zone.resolve_artifact(artifact.file_path, folder)
        if found is not None:
            out["path"] = str(found)
    return out
