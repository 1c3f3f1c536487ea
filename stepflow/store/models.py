"""What the store holds, as plain data: now in stepflow.store.base, re-exported for old imports."""

from stepflow.store.base import (  # noqa: F401
    OPEN_STATUSES,
    RUN_STATUSES,
    STDERR,
    STDOUT,
    STREAM_NAMES,
    Artifact,
    LogBlock,
    LogLine,
    NewArtifact,
    NewRun,
    NewStep,
    Run,
    RunChange,
    Step,
    StepChange,
    Write,
)
