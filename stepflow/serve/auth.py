"""Who may ask the server what: the API key rule and the loopback rule. Pure.

- Listening on loopback with no key: anyone on this machine may read (as they may read the
  store itself), but only with a loopback Host header, so a web page that rebinds its DNS
  name to 127.0.0.1 is refused.
- With STEPFLOW_API_KEY set (required for a non-loopback address unless --no-auth), every
  request needs the key: `Authorization: Bearer KEY`, `?token=KEY` (EventSource cannot send
  headers), or the cookie the dashboard sets after a `?token=` visit. Only `GET /api/health`
  answers without it, and then only healthy or not, so probes need no secret.
- POST (optimize) also refuses a request whose Origin is another site's.
Keys are compared with hmac.compare_digest, in constant time.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping

from stepflow.errors import UsageError
from stepflow.record import record

COOKIE = "stepflow_token"
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
OPEN_PATHS = frozenset({"/api/health"})


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost."""
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_bind(host: str, *, key: str | None, no_auth: bool) -> None:
    """Refuse to listen beyond loopback without a key, unless told --no-auth.

    Raises:
        UsageError: a non-loopback address with neither.
    """
    if not is_loopback(host) and not key and not no_auth:
        raise UsageError(f"--host {host} is reachable from other machines: set STEPFLOW_API_KEY"
                         " (clients send it as a Bearer token), or pass --no-auth to serve without one")


def host_name(header: str) -> str:
    """The host part of a Host or Origin value (`[::1]:8080` -> `::1`, `http://a:1` -> `a`)."""
    value = header.strip().lower().split("://", 1)[-1].split("/", 1)[0]
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


@record(frozen=True)
class Policy:
    key: str | None  # STEPFLOW_API_KEY; None or "" means no key
    loopback_only: bool  # bound to a loopback address: insist on a loopback Host header

    def presented(self, headers: Mapping[str, str], query: Mapping[str, str], cookies: Mapping[str, str]) -> str | None:
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            return auth[7:].strip()
        return query.get("token") or cookies.get(COOKIE)

    def key_ok(self, given: str | None) -> bool:
        if not self.key:
            return True
        return given is not None and hmac.compare_digest(given.encode("utf-8", "surrogateescape"),
                                                         self.key.encode("utf-8", "surrogateescape"))

    def decide(self, *, method: str, path: str, headers: Mapping[str, str], query: Mapping[str, str],
               cookies: Mapping[str, str]) -> tuple[int, str] | None:
        """None to let the request through, else (status, reason)."""
        if self.loopback_only and not self.key and not is_loopback(host_name(headers.get("host", ""))):
            return 403, "this server answers only to a loopback host name (localhost, 127.0.0.1)"
        if method not in ("GET", "HEAD"):
            origin = headers.get("origin")
            netloc = origin.strip().lower().split("://", 1)[-1].split("/", 1)[0] if origin else ""
            if origin and netloc != headers.get("host", "").strip().lower():  # another port is another site
                return 403, "cross-site request refused"
        if self.key_ok(self.presented(headers, query, cookies)):
            return None
        if path in OPEN_PATHS and method in ("GET", "HEAD"):
            return None  # the app answers only healthy or not (see `limited`)
        return 401, "an API key is required: send \"Authorization: Bearer KEY\" or ?token=KEY"

    def limited(self, headers: Mapping[str, str], query: Mapping[str, str], cookies: Mapping[str, str]) -> bool:
        """An open path asked without the key: give the bare answer only."""
        return bool(self.key) and not self.key_ok(self.presented(headers, query, cookies))
