"""Everything the driver and the agent send to xdpath: xdpathd's REST API.

One `Balancer` is one xdpathd, reached over HTTP or HTTPS on TCP with the
bearer token of its ``--token-file``; a `Fleet` is every balancer of
``[xdpath] balancer_endpoints``, each given the same document. Only the
owner routes are used:

- ``PUT /v1/owners/{owner}``: make the owner's VIPs, backends, health
  checks and per-VIP limits exactly the document, atomically on that host
  (the same document again changes nothing);
- ``GET /v1/owners/{owner}``: what is in force (the document, VIP counters
  with drops and active connections, backends with their health state);
- ``DELETE /v1/owners/{owner}``; ``GET /v1/owners``.

Nothing else in the package talks to a balancer.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from octavia_xdpath import mapping


class BalancerError(Exception):
    """A balancer that could not be reached or refused a call."""

    def __init__(
        self, endpoint: str, message: str, status: int | None = None, code: str | None = None
    ) -> None:
        super().__init__(f"{endpoint}: {message}")
        self.endpoint = endpoint
        self.status = status
        self.code = code
        self.message = message

    @property
    def unreachable(self) -> bool:
        """No answer at all (down, refused, timed out)."""
        return self.status is None

    @property
    def refused(self) -> bool:
        """The balancer judged the document and refused it (400, 409: a VIP
        another owner has, a table full; 422: not installable): it keeps
        what it had, and the same document would be refused again."""
        return self.status in (400, 409, 422)


@dataclass(frozen=True)
class Settings:
    """How to reach the balancers."""

    endpoints: tuple[str, ...]
    token: str | None = None
    timeout: float = 5.0
    ca_file: str | None = None
    insecure: bool = False


class Balancer:
    """One xdpathd."""

    def __init__(self, endpoint: str, settings: Settings) -> None:
        parsed = urllib.parse.urlsplit(endpoint)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"balancer endpoint {endpoint!r}: use http(s)://host:port")
        self.endpoint = endpoint.rstrip("/")
        self._settings = settings
        self._context: ssl.SSLContext | None = None
        if parsed.scheme == "https":
            context = ssl.create_default_context(cafile=settings.ca_file)
            if settings.insecure:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self._context = context

    def __repr__(self) -> str:
        return f"Balancer({self.endpoint!r})"

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.endpoint + path, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self._settings.token:
            request.add_header("Authorization", f"Bearer {self._settings.token}")
        try:
            with urllib.request.urlopen(
                request, timeout=self._settings.timeout, context=self._context
            ) as answer:
                raw = answer.read()
        except urllib.error.HTTPError as error:
            raw = error.read()
            code, message = _error_of(raw, error.reason)
            raise BalancerError(
                self.endpoint, f"{method} {path}: {error.code} {message}", error.code, code
            ) from None
        except (OSError, urllib.error.URLError) as error:
            reason = getattr(error, "reason", error)
            raise BalancerError(self.endpoint, f"{method} {path}: {reason}") from None
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            raise BalancerError(
                self.endpoint, f"{method} {path}: not JSON: {raw[:200]!r}"
            ) from None

    def put_owner(self, owner: str, document: Mapping[str, Any]) -> bool:
        """Makes ``owner``'s state exactly ``document``; whether anything changed."""
        answer = self._call("PUT", _owner_path(owner), document)
        return bool(answer.get("changed", True)) if isinstance(answer, dict) else True

    def delete_owner(self, owner: str) -> bool:
        """Removes everything ``owner`` has; whether there was anything."""
        answer = self._call("DELETE", _owner_path(owner))
        return bool(answer.get("changed", True)) if isinstance(answer, dict) else True

    def get_owner(self, owner: str) -> dict[str, Any] | None:
        """What is in force for ``owner``; None when it has nothing here."""
        try:
            answer = self._call("GET", _owner_path(owner))
        except BalancerError as error:
            if error.status == 404:
                return None
            raise
        return dict(answer) if isinstance(answer, dict) else None

    def owners(self) -> list[str]:
        """Every owner that has something on this balancer."""
        answer = self._call("GET", "/v1/owners")
        return [str(row["owner"]) for row in answer or () if isinstance(row, dict)]


def _owner_path(owner: str) -> str:
    return "/v1/owners/" + urllib.parse.quote(owner, safe="")


def _error_of(raw: bytes, reason: object) -> tuple[str | None, str]:
    """xdpathd's ``{"error": {"code", "message"}}``, else the HTTP reason."""
    try:
        error = json.loads(raw)["error"]
        return str(error["code"]), f"{error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        return None, str(reason)


class Fleet:
    """Every balancer; each call goes to all of them at once."""

    def __init__(self, settings: Settings) -> None:
        self.balancers = [Balancer(endpoint, settings) for endpoint in settings.endpoints]

    def _each(self, work: Callable[[Balancer], Any]) -> dict[str, Any]:
        """``work(balancer)`` on every balancer in parallel: its result or
        the `BalancerError`, by endpoint."""
        if not self.balancers:
            return {}

        def run(balancer: Balancer) -> Any:
            try:
                return work(balancer)
            except BalancerError as error:
                return error

        with ThreadPoolExecutor(max_workers=len(self.balancers)) as pool:
            results = list(pool.map(run, self.balancers))
        return {b.endpoint: r for b, r in zip(self.balancers, results, strict=True)}

    def apply(self, owner: str, document: Mapping[str, Any]) -> dict[str, BalancerError | bool]:
        """Puts the document on every balancer (deletes the owner when it is
        empty): whether it changed, or the error, by endpoint."""
        if mapping.empty(document):
            return self._each(lambda balancer: balancer.delete_owner(owner))
        return self._each(lambda balancer: balancer.put_owner(owner, document))

    def delete(self, owner: str) -> dict[str, BalancerError | bool]:
        return self._each(lambda balancer: balancer.delete_owner(owner))

    def view(self, owner: str) -> dict[str, BalancerError | dict[str, Any] | None]:
        return self._each(lambda balancer: balancer.get_owner(owner))

    def owners(self) -> dict[str, BalancerError | list[str]]:
        return self._each(lambda balancer: balancer.owners())


def failures(results: Mapping[str, Any]) -> list[BalancerError]:
    return [result for result in results.values() if isinstance(result, BalancerError)]


def summary(errors: Sequence[BalancerError]) -> str:
    return "; ".join(str(error) for error in errors)
