"""stepflow: watch shell scripts run, and keep their history in SQLite."""

__version__ = "0.1.0"

__all__ = ["__version__"]
