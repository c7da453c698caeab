"""Serves Neutron's API (``neutron.wsgi.api:application``) on wsgiref, for
the tests: Neutron 29 has no ``neutron-server`` console script any more.

    python -m testenv.neutron_api --port PORT --config-file neutron.conf ...

Everything after ``--port PORT`` is Neutron's command line (it reads
``sys.argv`` as it imports the application). Threads per request, as the
agent and the tests call it at the same time.
"""

from __future__ import annotations

import socketserver
import sys
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Neutron logs every request itself."""


def main() -> None:
    if len(sys.argv) < 3 or sys.argv[1] != "--port":
        raise SystemExit("usage: python -m testenv.neutron_api --port PORT NEUTRON-ARGS...")
    port = int(sys.argv[2])
    sys.argv = ["neutron-api", *sys.argv[3:]]
    from neutron.wsgi import api  # type: ignore[import-untyped]

    server = make_server(
        "127.0.0.1",
        port,
        api.application,
        server_class=_ThreadingServer,
        handler_class=_QuietHandler,
    )
    server.serve_forever()


if __name__ == "__main__":
    main()
