#!/usr/bin/python3
"""xdpathd API figures: rule inserts per second over the Unix socket (one
keep-alive connection, one request at a time), and the daemon's memory
after it has served the rule list of a 1,000,000-prefix filter state.

Run as root by scripts/bench-api.sh, inside a network namespace of its own
(the daemon and the data path are that namespace's; nothing leaves it).
Usage: api.py XDPATHD XDPATH INTERFACE [INSERTS]
"""
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost")
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.unix_path)


def call(connection, method, path, body=None):
    headers = {"Content-Type": "application/json"} if body is not None else {}
    connection.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    response = connection.getresponse()
    data = response.read()
    return response.status, data


def rss_kib(pid, key):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def main():
    xdpathd, xdpath, interface = sys.argv[1:4]
    inserts = int(sys.argv[4]) if len(sys.argv) > 4 else 1000
    work = tempfile.mkdtemp(prefix="xdpathd-bench-")
    sock = os.path.join(work, "api.sock")
    daemon = subprocess.Popen([xdpathd, "--socket", sock], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        subprocess.run([xdpath, "attach", interface], check=True, stdout=subprocess.DEVNULL)
        connection = UnixConnection(sock)
        started = time.perf_counter()
        for index in range(inserts):
            body = {"src": f"10.{index // 250 % 250}.{index % 250}.0/24", "action": "drop"}
            status, data = call(connection, "POST", "/v1/rules", body)
            if status != 201:
                raise SystemExit(f"insert {index}: {status} {data!r}")
        elapsed = time.perf_counter() - started
        print(f"rule inserts: {inserts} in {elapsed:.2f} s = {inserts / elapsed:.0f}/s "
              f"({elapsed / inserts * 1000:.2f} ms each), one connection, one at a time")
        # apply of big configs, through the API (the same code as `xdpath apply -f`).
        for rules, per_rule in ((1_000, 100), (10_000, 10)):
            lines = [f'[[interface]]\nname = "{interface}"\n']
            for rule in range(rules):
                sources = ", ".join(
                    f'"{(rule * per_rule + n) // 65536 % 200 + 20}.{(rule * per_rule + n) // 256 % 256}.{(rule * per_rule + n) % 256}.0/24"'
                    for n in range(per_rule)
                )
                lines.append(f"[[filter.rule]]\nid = {rule + 1}\nsrc = [{sources}]\naction = \"drop\"\n")
            text = "\n".join(lines)
            connection.close()
            started = time.perf_counter()
            connection.request("POST", "/v1/config", body=text.encode(), headers={"Content-Type": "application/toml"})
            response = connection.getresponse()
            data = response.read()
            elapsed = time.perf_counter() - started
            if response.status != 200:
                raise SystemExit(f"apply: {response.status} {data[:300]!r}")
            print(f"apply of a config with {rules:,} rules x {per_rule} prefixes ({rules * per_rule:,} prefixes, "
                  f"{len(text) / 1e6:.1f} MB of TOML) through POST /v1/config: {elapsed:.2f} s")
            started = time.perf_counter()
            connection.request("POST", "/v1/config/plan", body=text.encode(), headers={"Content-Type": "application/toml"})
            response = connection.getresponse()
            data = response.read()
            print(f"  plan of the same file afterwards: {time.perf_counter() - started:.2f} s, "
                  f"empty: {json.loads(data).get('empty')}")
        baseline = rss_kib(daemon.pid, "VmRSS")
        # A million prefixes through the CLI (the same state the daemon serves).
        feed = os.path.join(work, "feed.txt")
        with open(feed, "w") as out:
            for index in range(1_000_000):
                out.write(f"{10 + index // 65536 % 200}.{index // 256 % 256}.{index % 256}.0/24\n")
        started = time.perf_counter()
        subprocess.run([xdpath, "filter", "load", feed], check=True, stdout=subprocess.DEVNULL)
        load = time.perf_counter() - started
        status, data = call(connection, "GET", "/v1/rules")
        if status != 200:
            raise SystemExit(f"list: {status}")
        status, data = call(connection, "GET", "/metrics")
        peak = rss_kib(daemon.pid, "VmHWM")
        now = rss_kib(daemon.pid, "VmRSS")
        print(f"daemon memory: {baseline / 1024:.1f} MiB before, peak {peak / 1024:.1f} MiB while serving "
              f"the rule list of 1,000,000 prefixes ({len(data)} bytes of metrics), {now / 1024:.1f} MiB after; "
              f"the filter load itself (CLI) took {load:.2f} s")
    finally:
        daemon.terminate()
        daemon.wait()
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
