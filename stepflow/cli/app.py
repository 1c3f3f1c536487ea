"""The whole typer app: importing this module registers every command on `app`."""

from stepflow.cli import export, history, run, serve, stats, upkeep  # noqa: F401  (importing registers the commands)
from stepflow.cli.common import app

__all__ = ["app"]
