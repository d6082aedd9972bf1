"""Local HTTP and HTTPS test servers for the client tests.

Every server listens on 127.0.0.1 with an ephemeral port, speaks
HTTP/1.1 with keep-alive and runs in a daemon thread of the test process.
"""
from __future__ import annotations

import base64
import email.parser
import email.policy
import gzip
import hashlib
import http.server
import json
import os
import select
import shutil
import socket
import socketserver
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


# Routes that read the request body themselves, piece by piece.
STREAMING_ROUTES = {'hash'}

# Pattern that /stream repeats; 1 MiB long, so a 1 GiB body is 1024 writes.
STREAM_BLOCK = bytes(range(256)) * 4096


def encode_body(encoding: str, data: bytes) -> bytes | None:
    """Compress data with the command line tool of encoding (br or zstd),
    or return None when the tool is not installed."""
    command = {'br': ['brotli', '-c'], 'zstd': ['zstd', '-c', '-q']}[encoding]
    if shutil.which(command[0]) is None:
        return None
    result = subprocess.run(command, input=data,
                            capture_output=True, check=True)
    return result.stdout


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
        route = parts.path.strip('/').split('/')[0].replace('-', '_')
        if route not in STREAMING_ROUTES:
            self.request_body = self.read_body()
        method = getattr(self, 'route_' + (route or 'echo'), None)
        if method is None:
            self.reply(404, b'no such route')
            return
        method()

    do_GET = do_HEAD = do_POST = do_PUT = handle_any
    do_DELETE = do_PATCH = do_OPTIONS = handle_any

    def read_body(self) -> bytes:
        # A chunked body left unread would make the close after the reply
        # reset the connection while the client still reads the reply.
        if 'chunked' in self.headers.get('Transfer-Encoding', '').lower():
            return b''.join(self.iter_body())
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

    def iter_body(self):
        """Yield the request body in pieces, chunked or by Content-Length."""
        if 'chunked' in self.headers.get('Transfer-Encoding', '').lower():
            while True:
                line = self.rfile.readline()
                if not line.strip():
                    return  # the client aborted the upload
                size = int(line.split(b';')[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b'\r\n', b'\n', b''):
                        pass
                    return
                remaining = size
                while remaining:
                    piece = self.rfile.read(min(remaining, 65536))
                    if not piece:
                        return
                    remaining -= len(piece)
                    yield piece
                self.rfile.readline()
        remaining = int(self.headers.get('Content-Length') or 0)
        while remaining:
            piece = self.rfile.read(min(remaining, 65536))
            if not piece:
                return
            remaining -= len(piece)
            yield piece

    def route_hash(self):
        """Return the SHA-256 and length of the body, read piece by piece."""
        digest = hashlib.sha256()
        length = 0
        for piece in self.iter_body():
            digest.update(piece)
            length += len(piece)
        data = {
            'sha256': digest.hexdigest(),
            'length': length,
            'transfer_encoding': self.headers.get('Transfer-Encoding'),
            'content_length': self.headers.get('Content-Length'),
        }
        self.reply(200, json.dumps(data).encode(),
                   [('Content-Type', 'application/json')])

    def route_form(self):
        """Parse a multipart/form-data body and describe its parts."""
        head = f'Content-Type: {self.headers.get("Content-Type")}\r\n\r\n'
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            head.encode('latin-1') + self.request_body)
        parts = []
        for part in message.iter_parts():
            payload = part.get_payload(decode=True) or b''
            parts.append({
                'name': part.get_param('name', header='content-disposition'),
                'filename': part.get_filename(),
                'content_type': part.get('Content-Type'),
                'sha256': hashlib.sha256(payload).hexdigest(),
                'length': len(payload),
            })
        data = {'content_type': self.headers.get('Content-Type'),
                'parts': parts}
        self.reply(200, json.dumps(data).encode(),
                   [('Content-Type', 'application/json')])

    def route_stream(self):
        """Send size bytes of STREAM_BLOCK, then stall for stall seconds
        before the rest when stall_after is given."""
        size = int(self.query.get('size', len(STREAM_BLOCK)))
        stall_after = int(self.query.get('stall_after', -1))
        stall = float(self.query.get('stall', '0'))
        chunked = self.query.get('chunked') == '1'

        self.send_response(200)
        self.send_header('Content-Type', 'application/octet-stream')
        if chunked:
            self.send_header('Transfer-Encoding', 'chunked')
        else:
            self.send_header('Content-Length', str(size))
        self.end_headers()

        sent = 0
        while sent < size:
            piece = STREAM_BLOCK[:min(len(STREAM_BLOCK), size - sent)]
            if 0 <= stall_after < sent + len(piece) and stall > 0:
                piece = piece[:max(stall_after - sent, 0)]
                if piece:
                    self.write_piece(piece, chunked)
                    sent += len(piece)
                self.wfile.flush()
                time.sleep(stall)
                stall = 0
                continue
            self.write_piece(piece, chunked)
            sent += len(piece)

        if chunked:
            self.wfile.write(b'0\r\nX-Trailer: end\r\n\r\n')
        self.wfile.flush()

    def write_piece(self, piece: bytes, chunked: bool):
        if chunked:
            self.wfile.write(b'%x\r\n' % len(piece) + piece + b'\r\n')
        else:
            self.wfile.write(piece)

    def route_concurrent(self):
        """Sleep delay seconds and record how many requests overlapped."""
        with self.server.lock:
            self.server.in_flight += 1
            self.server.max_in_flight = max(self.server.max_in_flight,
                                            self.server.in_flight)
        try:
            time.sleep(float(self.query.get('delay', '0.05')))
        finally:
            with self.server.lock:
                self.server.in_flight -= 1
        self.reply(200, self.path.encode())

    def route_encoded(self):
        """Send COMPRESSIBLE (or size zero bytes) in Content-Encoding
        encoding: br, zstd or gzip."""
        encoding = self.query['encoding']
        size = int(self.query.get('size', '0'))
        plain = bytes(size) if size else COMPRESSIBLE
        if encoding == 'gzip':
            body = gzip.compress(plain)
        else:
            body = encode_body(encoding, plain)
        if body is None:
            self.reply(501, b'encoder not installed')
            return
        self.reply(200, body, [('Content-Encoding', encoding)])


class Server(http.server.ThreadingHTTPServer):
    """Threaded HTTP server on 127.0.0.1; TLS when context is given."""

    daemon_threads = True

    def __init__(self, context: ssl.SSLContext | None = None):
        super().__init__(('127.0.0.1', 0), Handler)
        self.context = context
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
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


LOOPBACK_HOSTS = {'127.0.0.1', '::1', 'localhost'}


class ProxyHandler(socketserver.StreamRequestHandler):
    """One proxied request: CONNECT tunnels, or absolute-URI forwarding
    with the connection closed after the response."""

    def handle(self):
        line = self.rfile.readline(65537).decode('latin-1')
        if not line.strip():
            return
        method, target, version = line.split()
        headers = []
        while True:
            header = self.rfile.readline(65537)
            if header in (b'\r\n', b'\n', b''):
                break
            headers.append(header.decode('latin-1'))
        authorization = None
        for header in headers:
            name, _, value = header.partition(':')
            if name.strip().lower() == 'proxy-authorization':
                authorization = value.strip()
        self.server.record(method, target, authorization)
        if not self.server.authorized(authorization):
            self.wfile.write(b'HTTP/1.1 407 Proxy Authentication Required\r\n'
                             b'Proxy-Authenticate: Basic realm="test"\r\n'
                             b'Content-Length: 0\r\nConnection: close\r\n\r\n')
            return
        if method == 'CONNECT':
            host, _, port = target.rpartition(':')
            self.tunnel(host.strip('[]'), int(port))
        else:
            self.forward(method, target, version, headers)

    def open_upstream(self, host: str, port: int):
        if host not in LOOPBACK_HOSTS:
            self.wfile.write(b'HTTP/1.1 403 Forbidden\r\n'
                             b'Content-Length: 0\r\n\r\n')
            return None
        return socket.create_connection((host, port), timeout=30)

    def tunnel(self, host: str, port: int):
        upstream = self.open_upstream(host, port)
        if upstream is None:
            return
        with upstream:
            self.wfile.write(b'HTTP/1.1 200 Connection established\r\n\r\n')
            self.wfile.flush()
            self.pipe(self.connection, upstream)

    def forward(self, method, target, version, headers):
        parts = urlsplit(target)
        upstream = self.open_upstream(parts.hostname, parts.port or 80)
        if upstream is None:
            return
        path = parts.path or '/'
        if parts.query:
            path += '?' + parts.query
        lines = [f'{method} {path} {version}\r\n']
        length = 0
        for header in headers:
            name = header.partition(':')[0].strip().lower()
            if name.startswith('proxy-') or name == 'connection':
                continue
            if name == 'content-length':
                length = int(header.partition(':')[2])
            lines.append(header)
        lines.append('Connection: close\r\n\r\n')
        with upstream:
            upstream.sendall(''.join(lines).encode('latin-1'))
            if length:
                upstream.sendall(self.rfile.read(length))
            while True:
                data = upstream.recv(65536)
                if not data:
                    break
                self.wfile.write(data)
            self.wfile.flush()

    @staticmethod
    def pipe(first: socket.socket, second: socket.socket):
        sockets = [first, second]
        while True:
            readable, _, _ = select.select(sockets, [], [], 30)
            if not readable:
                return
            for sock in readable:
                data = sock.recv(65536)
                if not data:
                    return
                (second if sock is first else first).sendall(data)


class ForwardProxy(socketserver.ThreadingTCPServer):
    """HTTP forward proxy on 127.0.0.1 that only reaches loopback hosts.
    With credentials, it requires Proxy-Authorization: Basic."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, credentials: tuple[str, str] | None = None):
        super().__init__(('127.0.0.1', 0), ProxyHandler)
        self.credentials = credentials
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str, str | None]] = []
        self.thread = threading.Thread(target=self.serve_forever,
                                       daemon=True)

    def handle_error(self, request, client_address):
        # Tunnels end when either side closes, often mid-write.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)

    def record(self, method: str, target: str, authorization: str | None):
        with self.lock:
            self.requests.append((method, target, authorization))

    def authorized(self, authorization: str | None) -> bool:
        if self.credentials is None:
            return True
        token = base64.b64encode(':'.join(self.credentials).encode()).decode()
        return authorization == f'Basic {token}'

    def seen(self) -> list[tuple[str, str, str | None]]:
        with self.lock:
            return list(self.requests)

    def clear(self):
        with self.lock:
            self.requests.clear()

    def url(self, user_info: str = '') -> str:
        prefix = f'{user_info}@' if user_info else ''
        return f'http://{prefix}127.0.0.1:{self.server_address[1]}'

    def start(self) -> ForwardProxy:
        self.thread.start()
        return self

    def stop(self):
        self.shutdown()
        self.server_close()


NGINX_CONFIG = """
worker_processes 1;
{user}
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    log_format conn '$connection $server_protocol $request_uri $status';
    default_type application/octet-stream;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    server {{
        listen 127.0.0.1:{h2_port} ssl http2;
        access_log {root}/h2.log conn;
        root {root}/www;
        location = /text {{ return 200 "nginx h2 $connection"; }}
    }}
    server {{
        listen 127.0.0.1:{h1_port} ssl;
        access_log {root}/h1.log conn;
        root {root}/www;
        location = /text {{ return 200 "nginx h1 $connection"; }}
    }}
}}
"""


class Nginx:
    """nginx serving TLS on two ports of 127.0.0.1: h2_port offers
    HTTP/2 by ALPN, h1_port only HTTP/1.1."""

    def __init__(self, root: Path, certificates: dict[str, Path]):
        self.root = root
        self.h2_port = closed_port()
        self.h1_port = closed_port()
        (root / 'www').mkdir(parents=True, exist_ok=True)
        (root / 'www' / 'file.bin').write_bytes(STREAM_BLOCK)
        # Workers run as the user of the tests, so that they can use the
        # files under the temporary directory.
        user = 'user root root;' if os.geteuid() == 0 else ''
        (root / 'nginx.conf').write_text(NGINX_CONFIG.format(
            user=user, root=root, cert=certificates['cert'],
            key=certificates['key'], h2_port=self.h2_port,
            h1_port=self.h1_port))
        self.process = None

    def start(self) -> Nginx:
        self.process = subprocess.Popen(
            ['nginx', '-p', str(self.root), '-c', str(self.root / 'nginx.conf'),
             '-e', str(self.root / 'error.log'), '-g', 'daemon off;'],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        for port in (self.h2_port, self.h1_port):
            while True:
                try:
                    socket.create_connection(('127.0.0.1', port), 1).close()
                    break
                except OSError:
                    if (time.monotonic() > deadline
                            or self.process.poll() is not None):
                        self.stop()
                        log = (self.root / 'error.log').read_text()
                        raise RuntimeError(f'nginx did not start: {log}')
                    time.sleep(0.05)
        return self

    def url(self, path: str, http2: bool = True) -> str:
        port = self.h2_port if http2 else self.h1_port
        return f'https://127.0.0.1:{port}{path}'

    def access_log(self, http2: bool = True) -> list[list[str]]:
        """Return the logged requests as [connection, protocol, uri,
        status] lists.  nginx writes each line when a request ends."""
        path = self.root / ('h2.log' if http2 else 'h1.log')
        if not path.exists():
            return []
        return [line.split() for line in path.read_text().splitlines()]

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def request_heads(connection):
    """Yield the head of each request that arrives on a kept-alive
    connection, until the client closes it.  Request bodies are not
    read, so this serves requests without one."""
    data = b''
    while True:
        while b'\r\n\r\n' not in data:
            piece = connection.recv(65536)
            if not piece:
                return
            data += piece
        head, _, data = data.partition(b'\r\n\r\n')
        yield head


class RawServer:
    """TCP server on 127.0.0.1 whose handler writes raw bytes, for
    responses that no HTTP library would produce.

    handler(server, connection, index) runs in a thread per accepted
    connection; index counts connections from 0.  Each connection is
    closed when its handler returns.  requests collects what handlers
    record, under lock.
    """

    def __init__(self, handler):
        self.handler = handler
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.requests = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, path: str = '/') -> str:
        return f'http://127.0.0.1:{self.port}{path}'

    def record(self, item):
        with self.lock:
            self.requests.append(item)

    def _accept(self):
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                index = self.connections
                self.connections += 1
            threading.Thread(target=self._serve, args=(connection, index),
                             daemon=True).start()

    def _serve(self, connection, index):
        connection.settimeout(BLOCK_LIMIT_S)
        try:
            self.handler(self, connection, index)
        except OSError:
            pass
        finally:
            connection.close()

    def stop(self):
        self.sock.close()


def read_raw_request(connection, pending: bytes = b''):
    """Read one request with a Content-Length body (or none) from a
    socket.  Return (head, body, pending), where pending is what follows
    the body, or (None, None, pending) when the peer closed first."""
    while b'\r\n\r\n' not in pending:
        data = connection.recv(65536)
        if not data:
            return None, None, pending
        pending += data
    head, rest = pending.split(b'\r\n\r\n', 1)
    length = 0
    for line in head.split(b'\r\n')[1:]:
        name, _, value = line.partition(b':')
        if name.strip().lower() == b'content-length':
            length = int(value)
    while len(rest) < length:
        data = connection.recv(65536)
        if not data:
            break
        rest += data
    return head, rest[:length], rest[length:]


def raw_reply(connection, body: bytes = b'ok', extra: bytes = b''):
    """Send a 200 response with body and the header lines in extra."""
    connection.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n'
                       % (len(body), extra) + body)
