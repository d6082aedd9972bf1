"""Local HTTP and HTTPS test servers for the client tests.

Every server listens on 127.0.0.1 with an ephemeral port, speaks
HTTP/1.1 with keep-alive and runs in a daemon thread of the test process.
"""
from __future__ import annotations

import gzip
import http.server
import json
import socket
import ssl
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

COMPRESSIBLE = b'mwcomms compressed payload. ' * 200

# Upper bound for /block in seconds, so that a request that a test does
# not release cannot keep a server thread forever.
BLOCK_LIMIT_S = 20


class Handler(http.server.BaseHTTPRequestHandler):
    """Dispatch /<route>/... to the method route_<route>."""

    protocol_version = 'HTTP/1.1'
    disable_nagle_algorithm = True
    timeout = 30  # seconds an idle keep-alive connection is kept open

    def log_message(self, format, *args):
        pass

    def handle_any(self):
        parts = urlsplit(self.path)
        self.query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        self.request_body = self.read_body()
        route = parts.path.strip('/').split('/')[0].replace('-', '_')
        method = getattr(self, 'route_' + (route or 'echo'), None)
        if method is None:
            self.reply(404, b'no such route')
            return
        method()

    do_GET = do_HEAD = do_POST = do_PUT = handle_any
    do_DELETE = do_PATCH = do_OPTIONS = handle_any

    def read_body(self) -> bytes:
        length = int(self.headers.get('Content-Length') or 0)
        return self.rfile.read(length) if length else b''

    def reply(self, status: int, body: bytes = b'', headers=(),
              reason: str | None = None):
        self.send_response(status, reason)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        if self.command != 'HEAD':
            self.wfile.write(body)

    # -- routes --------------------------------------------------------

    def route_echo(self):
        data = {
            'method': self.command,
            'path': self.path,
            'headers': [[n, v] for n, v in self.headers.items()],
            'body': self.request_body.decode('latin-1'),
            'client_port': self.client_address[1],
        }
        self.reply(200, json.dumps(data).encode(),
                   [('Content-Type', 'application/json')])

    def route_set_cookie(self):
        name = self.query.get('name', 'session')
        value = self.query.get('value', 'abc')
        self.reply(200, b'cookie set',
                   [('Set-Cookie', f'{name}={value}; Path=/')])

    def route_gzip(self):
        self.reply(200, gzip.compress(COMPRESSIBLE),
                   [('Content-Encoding', 'gzip')])

    def route_deflate(self):
        self.reply(200, zlib.compress(COMPRESSIBLE),
                   [('Content-Encoding', 'deflate')])

    def route_redirect(self):
        self.reply(302, b'moved', [('Location', '/echo')])

    def route_status(self):
        code = int(self.path.split('?')[0].rstrip('/').split('/')[-1])
        self.reply(code, b'status body', reason=self.query.get('reason'))

    def route_large(self):
        size = int(self.query.get('size', 5 * 1024 * 1024))
        self.reply(200, bytes(i % 251 for i in range(251)) * (size // 251)
                   + b'x' * (size % 251))

    def route_slow(self):
        time.sleep(float(self.query.get('seconds', '3')))
        self.reply(200, b'slow done')

    def route_trickle(self):
        count = int(self.query.get('count', '15'))
        interval = float(self.query.get('interval', '0.2'))
        self.send_response(200)
        self.send_header('Content-Length', str(count))
        self.end_headers()
        for _ in range(count):
            self.wfile.write(b'.')
            self.wfile.flush()
            time.sleep(interval)

    def route_block(self):
        """Send the response once the test calls server.release(key)."""
        key = self.query['key']
        event = self.server.event(key)
        self.server.mark(key, 'started')
        released = event.wait(BLOCK_LIMIT_S)
        self.reply(200, b'released' if released else b'gave up')
        self.server.mark(key, 'answered')

    def route_close(self):
        """Close the connection without sending a response."""
        self.close_connection = True

    def route_interim(self):
        self.wfile.write(b'HTTP/1.1 103 Early Hints\r\n'
                         b'Link: </style.css>; rel=preload\r\n\r\n')
        self.reply(200, b'final', [('X-Final', 'yes')])

    def route_raw_status(self):
        """A status line without a reason phrase and folded headers."""
        body = b'raw'
        self.wfile.write(b'HTTP/1.1 200 \r\n'
                         b'X-Dup: one\r\n'
                         b'x-dup: two\r\n'
                         b'X-Folded: first\r\n'
                         b'  second\r\n'
                         b'Content-Length: 3\r\n\r\n' + body)

    def route_upload(self):
        self.reply(200, str(len(self.request_body)).encode())


class Server(http.server.ThreadingHTTPServer):
    """Threaded HTTP server on 127.0.0.1; TLS when context is given."""

    daemon_threads = True

    def __init__(self, context: ssl.SSLContext | None = None):
        super().__init__(('127.0.0.1', 0), Handler)
        self.context = context
        self.lock = threading.Lock()
        self.events: dict[str, threading.Event] = {}
        self.states: dict[str, set[str]] = {}
        self.thread = threading.Thread(target=self.serve_forever,
                                       daemon=True)

    def finish_request(self, request, client_address):
        # The TLS handshake runs in the connection's thread, so a client
        # that rejects the certificate cannot block the accept loop.
        if self.context is None:
            super().finish_request(request, client_address)
            return
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            tls.close()

    def handle_error(self, request, client_address):
        # Clients that time out or abort close the connection on purpose,
        # so a write to it fails; other errors keep the default report.
        if not isinstance(sys.exc_info()[1], (ConnectionError, ssl.SSLError)):
            super().handle_error(request, client_address)

    def url(self, path: str = '/echo') -> str:
        scheme = 'https' if self.context is not None else 'http'
        return f'{scheme}://127.0.0.1:{self.server_port}{path}'

    def event(self, key: str) -> threading.Event:
        with self.lock:
            return self.events.setdefault(key, threading.Event())

    def release(self, key: str):
        self.event(key).set()

    def mark(self, key: str, state: str):
        with self.lock:
            self.states.setdefault(key, set()).add(state)

    def has_state(self, key: str, state: str) -> bool:
        with self.lock:
            return state in self.states.get(key, set())

    def wait_state(self, key: str, state: str, limit: float = 10.0) -> bool:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.has_state(key, state):
                return True
            time.sleep(0.01)
        return False

    def start(self) -> Server:
        self.thread.start()
        return self

    def stop(self):
        with self.lock:
            for event in self.events.values():
                event.set()
        self.shutdown()
        self.server_close()


def make_certificates(directory: Path) -> dict[str, Path]:
    """Create a test CA and a server certificate for 127.0.0.1 with the
    openssl command line tool; return the paths of ca, cert and key."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {name: directory / file for name, file in (
        ('ca', 'ca.pem'), ('ca_key', 'ca.key'), ('cert', 'server.pem'),
        ('key', 'server.key'), ('csr', 'server.csr'), ('ext', 'server.ext'))}
    curve = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1']

    def run(*args):
        subprocess.run(['openssl', *args], check=True, capture_output=True)

    run('req', '-x509', *curve, '-nodes', '-days', '2',
        '-keyout', str(paths['ca_key']), '-out', str(paths['ca']),
        '-subj', '/CN=mwcomms test CA',
        '-addext', 'basicConstraints=critical,CA:TRUE',
        '-addext', 'keyUsage=critical,keyCertSign,cRLSign')
    run('req', *curve, '-nodes', '-keyout', str(paths['key']),
        '-out', str(paths['csr']), '-subj', '/CN=127.0.0.1')
    paths['ext'].write_text(
        'subjectAltName=IP:127.0.0.1,DNS:localhost\n'
        'basicConstraints=CA:FALSE\n'
        'keyUsage=digitalSignature\n'
        'extendedKeyUsage=serverAuth\n')
    run('x509', '-req', '-in', str(paths['csr']), '-CA', str(paths['ca']),
        '-CAkey', str(paths['ca_key']), '-CAcreateserial', '-days', '2',
        '-out', str(paths['cert']), '-extfile', str(paths['ext']))
    return paths


def tls_context(paths: dict[str, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(paths['cert'], paths['key'])
    return context


def closed_port() -> int:
    """Return a port on 127.0.0.1 that nothing listens on (it was just
    bound and closed, so it is very likely still free)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]
