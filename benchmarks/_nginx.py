"""A throwaway nginx on 127.0.0.1 for the benchmarks.

nginx runs as a separate process, so its CPU time is not counted in the
client's.  It serves:

- ``/files/NAME``: static files from a folder, without compression;
- ``/gz/NAME``: the same files, but NAME.gz (made beforehand) with
  ``Content-Encoding: gzip`` to clients that accept gzip (gzip_static);
- any other path, for any method: a fixed JSON reply (:data:`REPLY`).

Connections stay alive for as long as a benchmark runs.  With *cpu*, the
one worker process is pinned to that core (worker_cpu_affinity).  With
*access_log*, each request adds one line to ``access.log`` that
:func:`read_access_log` parses.
"""
from __future__ import annotations

import gzip
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


def _make_reply(size: int = 1500) -> str:
    """Build a JSON API reply of about *size* bytes.

    The text must not contain a single quote, a backslash or a dollar
    sign, because it is written into nginx.conf inside single quotes.
    """
    pages = {}
    number = 0
    reply = {'batchcomplete': '', 'query': {'pages': pages}}
    while len(json.dumps(reply, separators=(',', ':'))) < size - 120:
        number += 1
        pages[str(1000 + number)] = {
            'pageid': 1000 + number, 'ns': 0,
            'title': f'Benchmark page {number}',
            'touched': '2026-01-01T00:00:00Z', 'length': 100 * number,
            'lastrevid': 5000 + number}
    text = json.dumps(reply, separators=(',', ':'), ensure_ascii=False)
    return text[:-2] + ',"continue":{"gapcontinue":"' + 'x' * (
        size - len(text) - 29) + '"}}}'


#: The JSON reply, about 1.5 KB like a typical API reply.
REPLY = _make_reply()
REPLY_BYTES = REPLY.encode()
assert not set(REPLY) & set("'\\$"), 'REPLY must fit in a quoted string'

CONFIG = """\
worker_processes 1;
{affinity}
daemon off;
pid {run}/nginx.pid;
error_log {run}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    # One line per request.  $oauth is 1 when an OAuth Authorization
    # header was sent; the header itself is not logged.
    map $http_authorization $oauth {{
        "~^OAuth " 1;
        default 0;
    }}
    log_format bench '$connection $connection_requests $status '
                     '$body_bytes_sent $sent_http_content_encoding '
                     '$oauth $request_method';
    {access_log}
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    client_body_temp_path {run}/body;
    sendfile on;
    types {{ application/json json; }}
    server {{
        listen 127.0.0.1:{port};
        location /files/ {{
            alias {files}/;
        }}
        location /gz/ {{
            alias {files}/;
            gzip_static on;
        }}
        location / {{
            default_type application/json;
            return 200 '{reply}';
        }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def write_gzip(path: Path) -> Path:
    """Write path.gz next to path, as gzip_static expects."""
    target = path.with_name(path.name + '.gz')
    target.write_bytes(gzip.compress(path.read_bytes(), 9, mtime=0))
    return target


@dataclass
class LogLine:

    """One request in the access log."""

    connection: int
    connection_requests: int
    status: int
    body_bytes_sent: int
    content_encoding: str
    oauth: bool
    method: str


def read_access_log(path: Path, start: int = 0) -> tuple[list[LogLine], int]:
    """Parse the access log from byte *start*; return lines, end offset."""
    with open(path, 'rb') as handle:
        handle.seek(start)
        data = handle.read()
    end = start + data.rfind(b'\n') + 1
    lines = []
    for raw in data[:end - start].decode().splitlines():
        fields = raw.split()
        lines.append(LogLine(int(fields[0]), int(fields[1]), int(fields[2]),
                             int(fields[3]), fields[4], fields[5] == '1',
                             fields[6]))
    return lines, end


class Nginx:

    """nginx serving the paths described in this module's docstring."""

    def __init__(self, run: Path, files: Path | None = None,
                 workers: int = 1, cpu: int | None = None,
                 access_log: bool = False) -> None:
        if shutil.which('nginx') is None:
            sys.exit('nginx is not installed: apt-get install nginx')
        if workers != 1:
            raise ValueError('the benchmarks use one nginx worker')
        run.mkdir(parents=True, exist_ok=True)
        self.files = files or run / 'files'
        self.files.mkdir(parents=True, exist_ok=True)
        # nginx workers run as an unprivileged user when started by root:
        # let them reach the files in a private temporary folder.
        for folder in (self.files, *self.files.parents):
            if folder == Path(tempfile.gettempdir()):
                break
            folder.chmod(folder.stat().st_mode | 0o755)
        for path in self.files.iterdir():
            path.chmod(0o644)
        self.port = free_port()
        self.access_log = run / 'access.log' if access_log else None
        # worker_cpu_affinity takes a bit mask, lowest CPU rightmost.
        affinity = ('' if cpu is None
                    else f'worker_cpu_affinity {1 << cpu:b};')
        log_line = (f'access_log {self.access_log} bench;' if access_log
                    else 'access_log off;')
        config = run / 'nginx.conf'
        config.write_text(CONFIG.format(
            run=run, port=self.port, files=self.files, affinity=affinity,
            access_log=log_line, reply=REPLY))
        self.process = subprocess.Popen(
            ['nginx', '-p', str(run), '-c', str(config), '-e',
             str(run / 'error.log')],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(('127.0.0.1', self.port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            self.process.kill()
            sys.exit(f'nginx did not start; see {run / "error.log"}')

    @property
    def base(self) -> str:
        return f'http://127.0.0.1:{self.port}'

    def log_offset(self) -> int:
        """Return the size of the access log, where new lines will start."""
        return self.access_log.stat().st_size if self.access_log else 0

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
