"""A MariaDB server of the tests' own: its data directory and socket in a
directory the caller gives, no TCP port, stopped and forgotten with it."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from testenv.process import Service, check_output

# Small and fast: the tests' databases are tiny, and on tmpfs nothing is
# flushed anyway.
_SERVER_OPTIONS = [
    "--innodb-buffer-pool-size=32M",
    "--innodb-log-file-size=8M",
    "--skip-name-resolve",
    "--character-set-server=utf8mb4",
]


def _binary(*names: str) -> str:
    for name in names:
        for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
            if candidate and Path(candidate).exists():
                return candidate
    raise FileNotFoundError(f"none of {names} found: run openstack/setup.sh (mariadb-server)")


class MariaDB:
    """``mariadbd`` on ``<base>/data`` listening only on ``<base>/mysql.sock``.

    mariadbd refuses to run as root unless told ``--user=root``; it is given
    ``--no-defaults`` so that nothing in /etc/mysql applies, and
    ``--skip-networking`` so that it opens no port.
    """

    def __init__(self, base: Path) -> None:
        self.base = base
        self.datadir = base / "data"
        self.socket = base / "mysql.sock"
        self.log = base / "mariadb.log"
        self._service: Service | None = None

    def start(self, timeout: float = 30.0) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        check_output(
            [
                _binary("mariadb-install-db", "mysql_install_db"),
                "--no-defaults",
                f"--datadir={self.datadir}",
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                *_SERVER_OPTIONS,
            ],
            what="mariadb-install-db",
        )
        self._service = Service.start(
            "mariadb",
            [
                _binary("mariadbd", "mysqld"),
                "--no-defaults",
                f"--datadir={self.datadir}",
                f"--socket={self.socket}",
                f"--pid-file={self.base / 'mariadb.pid'}",
                f"--log-error={self.log}",
                "--skip-networking",
                "--user=root",
                *_SERVER_OPTIONS,
            ],
            log=self.base / "mariadb.out",
        )
        deadline = time.monotonic() + timeout
        while True:
            self._service.check_running(self.log)
            probe = subprocess.run(
                [*self._client(), "-e", "SELECT 1"], capture_output=True, text=True, check=False
            )
            if probe.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"MariaDB did not answer in {timeout} s: {probe.stderr}")
            time.sleep(0.1)

    def _client(self) -> list[str]:
        return [
            _binary("mariadb", "mysql"),
            "--no-defaults",
            f"--socket={self.socket}",
            "--user=root",
        ]

    def create_database(self, name: str) -> str:
        """A new, empty database; its SQLAlchemy URL (PyMySQL, over the socket)."""
        if not name.replace("_", "").isalnum():
            raise ValueError(f"bad database name {name!r}")
        check_output(
            [*self._client(), "-e", f"DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name}"],
            what="mariadb",
        )
        return f"mysql+pymysql://root@localhost/{name}?unix_socket={self.socket}&charset=utf8mb4"

    def stop(self) -> None:
        if self._service is not None:
            self._service.stop()
            self._service = None
