"""``stream=True`` through the transport: lazy bodies in bounded memory."""
from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading

import pytest
import requests
from requests import exceptions as rexc

import pywikibot_ext
from pywikibot_ext._response import StreamedResponse
from pywikibot_ext._transport import Transport
from servers import STREAM_BLOCK

MIB = 1024 * 1024
BIG_SIZE = 200 * MIB
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def transport():
    instance = Transport()
    yield instance
    instance.close()


def expected_stream(size: int) -> bytes:
    whole, rest = divmod(size, len(STREAM_BLOCK))
    return STREAM_BLOCK * whole + STREAM_BLOCK[:rest]


def test_stream_iter_content(transport, http_server):
    size = 3 * MIB + 17
    url = http_server.url(f'/stream?size={size}')
    with transport.request('GET', url, stream=True) as response:
        assert isinstance(response, StreamedResponse)
        assert isinstance(response, requests.Response)
        pieces = list(response.iter_content(100 * 1024))
    assert max(len(piece) for piece in pieces) <= 100 * 1024
    assert b''.join(pieces) == expected_stream(size)


def test_stream_matches_requests(transport, http_server):
    url = http_server.url('/stream?size=300000&chunked=1')
    ours = transport.request('GET', url, stream=True)
    theirs = requests.get(url, stream=True, timeout=10)
    assert ours.status_code == theirs.status_code
    assert ours.headers['content-type'] == theirs.headers['content-type']
    assert b''.join(ours.iter_content(None)) == b''.join(
        theirs.iter_content(None))
    theirs.close()


def test_stream_body_not_read_early(transport, http_server):
    url = http_server.url(f'/stream?size={2 * MIB}')
    response = transport.request('GET', url, stream=True)
    assert response._content is False
    assert response.raw.bytes_read == 0
    assert response.content == expected_stream(2 * MIB)
    assert response.raw.closed
    response.close()


def test_stream_raw_read(transport, http_server):
    url = http_server.url('/stream?size=1000')
    response = transport.request('GET', url, stream=True)
    first = response.raw.read(10)
    rest = response.raw.read()
    assert first == expected_stream(1000)[:10]
    assert first + rest == expected_stream(1000)
    assert response.raw.read(5) == b''
    response.close()


def test_stream_text_decoding(transport, http_server):
    response = transport.request('GET', http_server.url('/echo'),
                                 stream=True)
    assert response.json()['method'] == 'GET'


def test_stream_close_early(transport, http_server):
    url = http_server.url(f'/stream?size={64 * MIB}')
    with transport.request('GET', url, stream=True) as response:
        chunk = next(response.iter_content(1024))
    assert len(chunk) <= 1024
    assert response.raw.closed
    # The aborted transfer leaves the client usable.
    again = transport.request('GET', http_server.url('/echo'))
    assert again.status_code == 200


def test_stream_consumed_twice(transport, http_server):
    response = transport.request('GET', http_server.url('/stream?size=10'),
                                 stream=True)
    list(response.iter_content(4))
    with pytest.raises(rexc.StreamConsumedError):
        list(response.iter_content(4))


def test_stream_progress_argument(transport, http_server):
    size = 2 * MIB
    calls = []
    url = http_server.url(f'/stream?size={size}')
    with transport.request('GET', url, stream=True,
                           progress=lambda done, total: calls.append(
                               (done, total))) as response:
        for _ in response.iter_content(65536):
            pass
    assert calls
    assert calls[-1] == (size, size)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


def test_stream_progress_option(transport, http_server, monkeypatch):
    calls = []
    monkeypatch.setattr(pywikibot_ext.options, 'download_progress',
                        lambda done, total: calls.append(done))
    url = http_server.url('/stream?size=5000')
    with transport.request('GET', url, stream=True) as response:
        data = response.content
    assert len(data) == 5000
    assert calls[-1] == 5000


def test_stream_progress_not_without_stream(transport, http_server,
                                            monkeypatch):
    calls = []
    monkeypatch.setattr(pywikibot_ext.options, 'download_progress',
                        lambda done, total: calls.append(done))
    transport.request('GET', http_server.url('/stream?size=5000'))
    assert calls == []


def test_stream_follows_redirect(transport, http_server):
    response = transport.request('GET', http_server.url('/redirect'),
                                 stream=True)
    assert response.status_code == 200
    assert len(response.history) == 1
    assert response.history[0].status_code == 302
    assert response.history[0].raw.closed
    assert response.json()['path'] == '/echo'


def test_stream_sets_cookies(http_server):
    import http.cookiejar
    jar = http.cookiejar.CookieJar()
    transport = Transport(cookie_jar=jar)
    url = http_server.url('/set-cookie?name=streamed&value=1')
    with transport.request('GET', url, stream=True) as response:
        response.content  # noqa: B018
    transport.close()
    assert [cookie.name for cookie in jar] == ['streamed']


class TruncatingHandler(threading.Thread):
    """Announce 1000 body bytes, send 10, then close the connection."""

    def __init__(self):
        super().__init__(daemon=True)
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]

    def run(self):
        connection, _ = self.sock.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n'
                               b'\r\n0123456789')
        self.sock.close()


def test_stream_truncated_body(transport):
    server = TruncatingHandler()
    server.start()
    response = transport.request('GET', f'http://127.0.0.1:{server.port}/',
                                 stream=True, timeout=10)
    with pytest.raises(rexc.ChunkedEncodingError):
        response.content  # noqa: B018
    server.join(10)


def test_stream_truncated_like_requests():
    server = TruncatingHandler()
    server.start()
    response = requests.get(f'http://127.0.0.1:{server.port}/', stream=True,
                            timeout=10)
    with pytest.raises(rexc.ChunkedEncodingError):
        response.content  # noqa: B018
    server.join(10)


# -- memory -----------------------------------------------------------------

MEMORY_SCRIPT = r'''
import hashlib, json, resource, sys
sys.path.insert(0, sys.argv[1])
from pywikibot_ext._transport import Transport

transport = Transport()
# Warm up: imports, TLS and the first response are not what is measured.
transport.request('GET', sys.argv[2] + '?warm', verify=sys.argv[3]).content
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
digest = hashlib.sha1()
size = 0
with transport.request('GET', sys.argv[2], stream=True,
                       verify=sys.argv[3]) as response:
    for chunk in response.iter_content(100 * 1024):
        digest.update(chunk)
        size += len(chunk)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({'size': size, 'sha1': digest.hexdigest(),
                  'growth_kib': after - before}))
'''


def test_stream_memory_bounded(nginx, certificates, tmp_path):
    """A 200 MiB body read with iter_content() adds little to peak RSS."""
    path = nginx.root / 'www' / 'sparse.bin'
    with open(path, 'wb') as handle:
        handle.truncate(BIG_SIZE)
    url = nginx.url('/sparse.bin', http2=False)
    result = subprocess.run(
        [sys.executable, '-c', MEMORY_SCRIPT, ROOT, url,
         str(certificates['ca'])],
        capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads(result.stdout)
    zeros = hashlib.sha1()
    block = bytes(MIB)
    for _ in range(BIG_SIZE // MIB):
        zeros.update(block)
    assert data['size'] == BIG_SIZE
    assert data['sha1'] == zeros.hexdigest()
    # 1 MiB of libcurl buffer plus Python's chunk objects; a body read
    # into memory would add 200 MiB.
    assert data['growth_kib'] < 32 * 1024
