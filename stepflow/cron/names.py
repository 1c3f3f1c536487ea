"""The STEPFLOW_* names of the cron settings, apart from their grammar (stepflow.cron.settings),
so `stepflow run` can tell whether any is set without importing the cron parts. Pure."""

LOCK = "STEPFLOW_LOCK"  # --lock NAME
ON_OVERLAP = "STEPFLOW_ON_OVERLAP"  # --on-overlap skip|wait[=BOUND]|kill[=GRACE]
RETRY = "STEPFLOW_RETRY"  # --retry N
RETRY_DELAY = "STEPFLOW_RETRY_DELAY"  # --retry-delay S
RETRY_ON = "STEPFLOW_RETRY_ON"  # --retry-on CODES
ON_FAILURE = "STEPFLOW_ON_FAILURE"  # --on-failure CMD
ON_SUCCESS = "STEPFLOW_ON_SUCCESS"  # --on-success CMD
ON_FINISH = "STEPFLOW_ON_FINISH"  # --on-finish CMD
ON_STREAK = "STEPFLOW_ON_STREAK"  # --on-streak N:CMD, or "N CMD"
ON_RECOVER = "STEPFLOW_ON_RECOVER"  # --on-recover CMD
HOOK_TIMEOUT = "STEPFLOW_HOOK_TIMEOUT"  # --hook-timeout S (default 30 s per hook)
PING_URL = "STEPFLOW_PING_URL"  # --ping URL
PING_TIMEOUT = "STEPFLOW_PING_TIMEOUT"  # total bound of one ping with its retries (default 10 s)
PROM_TEXTFILE = "STEPFLOW_PROM_TEXTFILE"  # --prom-textfile DIR

NAMES = (LOCK, ON_OVERLAP, RETRY, RETRY_DELAY, RETRY_ON, ON_FAILURE, ON_SUCCESS, ON_FINISH, ON_STREAK,
         ON_RECOVER, HOOK_TIMEOUT, PING_URL, PING_TIMEOUT, PROM_TEXTFILE)
