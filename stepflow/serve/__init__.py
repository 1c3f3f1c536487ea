"""`stepflow serve`: a read-only HTTP view of the store (JSON API, live events, metrics, dashboard).

Every read of the store goes through stepflow.serve.data, so the server follows the history
library wherever it moves. Starlette and uvicorn come with the `stepflow[serve]` extra and are
imported only here, never by `stepflow run`.
"""

from __future__ import annotations

INSTALL_HINT = "stepflow serve needs its extra: pip install 'stepflow[serve]'"
