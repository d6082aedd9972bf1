"""A throwaway nginx on 127.0.0.1 for the benchmarks.

nginx runs as a separate process, so its CPU time is not counted in the
client's.  It serves a small JSON reply at any path, static files from a
folder, and keeps connections alive for as long as a benchmark runs.
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIG = """\
worker_processes {workers};
daemon off;
pid {run}/nginx.pid;
error_log {run}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    client_body_temp_path {run}/body;
    sendfile on;
    server {{
        listen 127.0.0.1:{port};
        location /files/ {{
            alias {files}/;
        }}
        location / {{
            default_type application/json;
            return 200 '{{"batchcomplete":"","query":{{"userinfo":{{"id":1,"name":"PwbBot"}}}}}}';
        }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


class Nginx:

    """nginx serving /files/<name> from *files* and JSON elsewhere."""

    def __init__(self, run: Path, files: Path | None = None,
                 workers: int = 1) -> None:
        if shutil.which('nginx') is None:
            sys.exit('nginx is not installed: apt-get install nginx')
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
        config = run / 'nginx.conf'
        config.write_text(CONFIG.format(run=run, port=self.port,
                                        files=self.files, workers=workers))
        self.process = subprocess.Popen(
            ['nginx', '-p', str(run), '-c', str(config), '-e',
             str(run / 'error.log')],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(('127.0.0.1', self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.process.kill()
        sys.exit(f'nginx did not start; see {run / "error.log"}')

    @property
    def base(self) -> str:
        return f'http://127.0.0.1:{self.port}'

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
