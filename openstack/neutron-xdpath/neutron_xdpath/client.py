"""Everything the agent sends to xdpathd: its REST API, owner routes only.

- ``GET /v1/owners``: every owner (the agent's are `mapping.ours`);
- ``PUT /v1/owners/{owner}``: make the owner's limits exactly the document,
  atomically (the same document again changes nothing);
- ``DELETE /v1/owners/{owner}``: remove everything the owner made;
- ``GET /v1/ratelimits?owner=``: an owner's limits with their drops.

Over HTTP or HTTPS on TCP with the bearer token of xdpathd's
``--token-file``, or over its Unix socket (``unix:/run/xdpath/xdpathd.sock``).
"""

from __future__ import annotations

import http.client
import json
import socket
import urllib.parse
from dataclasses import dataclass
from typing import Any


class XdpathdError(Exception):
    """xdpathd could not be reached, or refused a call."""

    def __init__(self, endpoint: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{endpoint}: {message}")
        self.endpoint = endpoint
        self.message = message
        self.status = status

    @property
    def unreachable(self) -> bool:
        return self.status is None


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


@dataclass(frozen=True)
class Xdpathd:
    """One xdpathd."""

    endpoint: str
    token: str | None = None
    timeout: float = 5.0

    def _connection(self) -> http.client.HTTPConnection:
        if self.endpoint.startswith("unix:"):
            return _UnixConnection(self.endpoint.removeprefix("unix:"), self.timeout)
        url = urllib.parse.urlsplit(self.endpoint)
        host = url.hostname or "localhost"
        if url.scheme == "https":
            return http.client.HTTPSConnection(host, url.port or 443, timeout=self.timeout)
        return http.client.HTTPConnection(host, url.port or 80, timeout=self.timeout)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """One request; its JSON answer, or `XdpathdError`."""
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        connection = self._connection()
        try:
            connection.request(method, path, body=data, headers=headers)
            reply = connection.getresponse()
            text = reply.read().decode(errors="replace")
        except (OSError, http.client.HTTPException) as error:
            raise XdpathdError(self.endpoint, f"{method} {path}: {error}") from error
        finally:
            connection.close()
        try:
            answer = json.loads(text) if text else None
        except json.JSONDecodeError:
            answer = text
        if reply.status >= 300:
            message = answer.get("message", text) if isinstance(answer, dict) else text
            raise XdpathdError(
                self.endpoint, f"{method} {path}: {reply.status} {message}", reply.status
            )
        return answer

    def owners(self) -> list[str]:
        rows = self.call("GET", "/v1/owners")
        return [str(row["owner"]) for row in rows or []]

    def put_owner(self, owner: str, document: dict[str, Any]) -> bool:
        """True when something changed."""
        answer = self.call("PUT", f"/v1/owners/{urllib.parse.quote(owner)}", document)
        return bool(isinstance(answer, dict) and answer.get("changed", True))

    def delete_owner(self, owner: str) -> None:
        self.call("DELETE", f"/v1/owners/{urllib.parse.quote(owner)}")

    def limits(self, owner: str) -> list[dict[str, Any]]:
        rows = self.call("GET", f"/v1/ratelimits?owner={urllib.parse.quote(owner)}")
        return list(rows or [])
