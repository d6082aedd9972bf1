"""Tests of large response bodies: the direct-to-bytes path.

A body whose Content-Length is at least 64 KiB is written straight into
the bytes object of Response.body.  Smaller ones, bodies without a length
and bodies that outgrow their Content-Length (a decoded gzip body) go
through a byte buffer.  The server here sends exactly the bytes that a
test requests, including a Content-Length that the body does not reach.
"""
from __future__ import annotations

import functools
import gc
import gzip
import http.server
import os
import random
import sys
import threading
import tracemalloc
from urllib.parse import parse_qs, urlsplit

import pytest

import _mwcomms

KIB = 1024
DIRECT_MIN = 64 * KIB  # DIRECT_BODY_MIN_BYTES in client_request.c


@functools.lru_cache(maxsize=32)
def pattern(size: int, seed: int = 0) -> bytes:
    """Return size pseudo-random bytes, the same for the same seed."""
    return random.Random(seed).randbytes(size)


@functools.lru_cache(maxsize=8)
def gzip_body(decoded_size: int) -> bytes:
    """Return a body of decoded_size bytes whose gzip encoding is longer
    than DIRECT_MIN: 80 KiB of random bytes, then zeros."""
    random_part = pattern(DIRECT_MIN + 16 * KIB, seed=99)
    assert decoded_size > len(random_part)
    return random_part + b'\0' * (decoded_size - len(random_part))


class Handler(http.server.BaseHTTPRequestHandler):
    """Routes: /body?size=N[&seed=S], /gzip?size=N,
    /short?size=N&sent=M (announces N bytes, sends M, closes)."""

    protocol_version = 'HTTP/1.1'
    disable_nagle_algorithm = True
    timeout = 30

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        parts = urlsplit(self.path)
        query = {k: int(v[-1]) for k, v in parse_qs(parts.query).items()}
        route = parts.path.strip('/')
        if route == 'body':
            self.send_body(pattern(query['size'], query.get('seed', 0)))
        elif route == 'gzip':
            encoded = gzip.compress(gzip_body(query['size']))
            self.send_body(encoded, [('Content-Encoding', 'gzip')])
        elif route == 'short':
            data = pattern(query['sent'])
            self.send_response(200)
            self.send_header('Content-Length', str(query['size']))
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
            self.close_connection = True
        else:
            self.send_body(b'no such route', status=404)

    def send_body(self, data: bytes, headers=(), status: int = 200):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class Server(http.server.ThreadingHTTPServer):

    daemon_threads = True

    def handle_error(self, request, client_address):
        # The client closes the connection when a body exceeds
        # max_response_size: expected, so not printed.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@pytest.fixture(scope='module')
def server():
    instance = Server(('127.0.0.1', 0), Handler)
    thread = threading.Thread(target=instance.serve_forever, daemon=True)
    thread.start()
    yield f'http://127.0.0.1:{instance.server_address[1]}'
    instance.shutdown()
    instance.server_close()


@pytest.fixture
def client():
    with _mwcomms.Client(cookies=False) as instance:
        yield instance


SIZES = [0, 1, DIRECT_MIN - 1, DIRECT_MIN, DIRECT_MIN + 1, 1024 * KIB,
         3 * 1024 * KIB + 7]


@pytest.mark.parametrize('size', SIZES)
def test_body_exact(client, server, size):
    response = client.request('GET', f'{server}/body?size={size}&seed=3')
    assert response.status == 200
    assert len(response.body) == size
    assert response.body == pattern(size, 3)


def test_body_type(client, server):
    body = client.request('GET', f'{server}/body?size={DIRECT_MIN}').body
    assert type(body) is bytes


def test_body_unaffected_by_next(client, server):
    first = client.request('GET', f'{server}/body?size={DIRECT_MIN}&seed=1')
    second = client.request('GET', f'{server}/body?size={DIRECT_MIN}&seed=2')
    assert first.body == pattern(DIRECT_MIN, 1)
    assert second.body == pattern(DIRECT_MIN, 2)


@pytest.mark.parametrize('size', [DIRECT_MIN * 3, 2 * 1024 * KIB])
def test_gzip_longer_than_length(client, server, size):
    response = client.request('GET', f'{server}/gzip?size={size}')
    expected = gzip_body(size)
    assert int(response.get_header('Content-Length')) >= DIRECT_MIN
    assert int(response.get_header('Content-Length')) < size
    assert len(response.body) == size
    assert response.body == expected


def test_gzip_raw_when_not_accepted(client, server):
    size = DIRECT_MIN * 3
    response = client.request('GET', f'{server}/gzip?size={size}',
                              accept_encoding=False)
    assert gzip.decompress(response.body) == gzip_body(size)


@pytest.mark.parametrize('size,sent', [
    (DIRECT_MIN * 2, DIRECT_MIN + 100),
    (DIRECT_MIN * 2, 10),
    (DIRECT_MIN - 1, 100),
    (1024 * KIB, 1024 * KIB - 1),
])
def test_truncated_body(client, server, size, sent):
    with pytest.raises(_mwcomms.TransferError) as info:
        client.request('GET', f'{server}/short?size={size}&sent={sent}')
    assert 'response ended early' in str(info.value)


def test_truncated_then_reuse(client, server):
    size = DIRECT_MIN * 2
    with pytest.raises(_mwcomms.TransferError):
        client.request('GET', f'{server}/short?size={size}&sent=5000')
    response = client.request('GET', f'{server}/body?size={size}&seed=4')
    assert response.body == pattern(size, 4)


@pytest.mark.parametrize('cap,size', [
    (DIRECT_MIN, DIRECT_MIN + 1),
    (DIRECT_MIN * 2, 1024 * KIB),
    (10, DIRECT_MIN),
])
def test_max_size_exceeded(server, cap, size):
    with _mwcomms.Client(cookies=False, max_response_size=cap) as client:
        with pytest.raises(_mwcomms.TransferError) as info:
            client.request('GET', f'{server}/body?size={size}')
    assert 'max_response_size' in str(info.value)


def test_max_size_equal(server):
    size = DIRECT_MIN * 2
    with _mwcomms.Client(cookies=False, max_response_size=size) as client:
        response = client.request('GET', f'{server}/body?size={size}')
    assert response.body == pattern(size)


def test_max_size_decoded_gzip(server):
    size = DIRECT_MIN * 4
    with _mwcomms.Client(cookies=False,
                         max_response_size=DIRECT_MIN * 3) as client:
        with pytest.raises(_mwcomms.TransferError) as info:
            client.request('GET', f'{server}/gzip?size={size}')
    assert 'max_response_size' in str(info.value)


def test_many_bodies(client, server):
    sizes = [DIRECT_MIN - 1, DIRECT_MIN, 1024 * KIB, 10, 200 * KIB]
    results = client.request_many(
        [('GET', f'{server}/body?size={size}&seed={n}')
         for n, size in enumerate(sizes)], max_concurrency=3)
    assert len(results) == len(sizes)
    for n, (size, response) in enumerate(zip(sizes, results)):
        assert isinstance(response, _mwcomms.Response), response
        assert response.body == pattern(size, n)


def test_many_gzip_and_errors(server):
    big = DIRECT_MIN * 3
    with _mwcomms.Client(cookies=False,
                         max_response_size=DIRECT_MIN * 2) as client:
        results = client.request_many([
            ('GET', f'{server}/gzip?size={DIRECT_MIN * 2 - 1000}'),
            ('GET', f'{server}/short?size={DIRECT_MIN * 2}&sent=1000'),
            ('GET', f'{server}/body?size={big}'),
            ('GET', f'{server}/body?size={DIRECT_MIN}&seed=5'),
        ])
    assert results[0].body == gzip_body(DIRECT_MIN * 2 - 1000)
    assert isinstance(results[1], _mwcomms.TransferError)
    assert 'response ended early' in str(results[1])
    assert isinstance(results[2], _mwcomms.TransferError)
    assert 'max_response_size' in str(results[2])
    assert results[3].body == pattern(DIRECT_MIN, 5)


def test_many_batches_reuse(client, server):
    batch = [('GET', f'{server}/body?size={DIRECT_MIN}&seed={n}')
             for n in range(6)]
    for _ in range(3):
        results = client.request_many(batch, max_concurrency=4)
        for n, response in enumerate(results):
            assert response.body == pattern(DIRECT_MIN, n)


def test_body_refcount(client, server):
    body = client.request('GET', f'{server}/body?size={DIRECT_MIN}').body
    # One reference from the name, one from the argument of getrefcount:
    # the Response that made it is gone.
    assert sys.getrefcount(body) == 2


def traced_growth(call, rounds: int) -> int:
    """Return how many bytes the traced Python heap grew over rounds calls
    after a warm-up."""
    for _ in range(5):
        call()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(rounds):
            call()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return after - before


@pytest.mark.parametrize('route', [
    f'body?size={512 * KIB}', f'gzip?size={DIRECT_MIN * 3}',
    f'body?size={DIRECT_MIN - 1}'])
def test_request_no_leak(client, server, route):
    url = f'{server}/{route}'
    growth = traced_growth(lambda: client.request('GET', url).body, 60)
    # A leaked body would grow the heap by 60 times its size, so this
    # allows only small caches.
    assert growth < 64 * KIB


def test_truncated_no_leak(client, server):
    url = f'{server}/short?size={DIRECT_MIN * 4}&sent={DIRECT_MIN * 2}'

    def call():
        with pytest.raises(_mwcomms.TransferError):
            client.request('GET', url)
    growth = traced_growth(call, 40)
    assert growth < 64 * KIB


def test_many_no_leak(client, server):
    batch = [('GET', f'{server}/body?size={256 * KIB}&seed={n}')
             for n in range(4)]
    batch.append(('GET', f'{server}/short?size={DIRECT_MIN * 2}&sent=99'))
    growth = traced_growth(lambda: client.request_many(batch), 15)
    assert growth < 64 * KIB


# -- request_many keeps its connections between batches ------------------

def test_many_keeps_connections(client, server):
    batch = [('GET', f'{server}/body?size=100&seed={n}') for n in range(8)]
    client.request_many(batch, max_concurrency=4)
    first = client.stats['connects']
    results = client.request_many(batch, max_concurrency=4)
    # How many connections the first batch opens depends on timing,
    # because a transfer that ends early frees its connection for the
    # next.  The second batch may add some, but never beyond the
    # concurrency in all.  Without reuse the two batches would open 16.
    assert first <= 4
    assert client.stats['connects'] <= 4
    for n, response in enumerate(results):
        assert response.body == pattern(100, n)


def test_many_two_threads(server):
    outcomes = {}

    def run(key):
        batch = [('GET', f'{server}/body?size={DIRECT_MIN}&seed={key + n}')
                 for n in range(6)]
        outcomes[key] = [client.request_many(batch, max_concurrency=3)
                         for _ in range(4)]

    with _mwcomms.Client(cookies=False) as client:
        threads = [threading.Thread(target=run, args=(key,))
                   for key in (0, 100)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        stats = client.stats
    assert sorted(outcomes) == [0, 100]
    for key, rounds in outcomes.items():
        for results in rounds:
            for n, response in enumerate(results):
                assert response.body == pattern(DIRECT_MIN, key + n)
    assert stats['idle'] == stats['handles']


def test_many_after_close(server):
    client = _mwcomms.Client(cookies=False)
    client.request_many([('GET', f'{server}/body?size=10')])
    client.close()
    with pytest.raises(ValueError):
        client.request_many([('GET', f'{server}/body?size=10')])
    assert client.stats['handles'] == 0


def test_many_fork_child(client, server):
    client.request_many([('GET', f'{server}/body?size=10')])
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            results = client.request_many(
                [('GET', f'{server}/body?size={DIRECT_MIN}&seed=8')] * 2)
            if all(r.body == pattern(DIRECT_MIN, 8) for r in results):
                code = 0
        finally:
            os.write(write_end, bytes([code]))
            os._exit(code)
    os.close(write_end)
    _, status = os.waitpid(pid, 0)
    reply = os.read(read_end, 1)
    os.close(read_end)
    assert reply == b'\0'
    assert os.waitstatus_to_exitcode(status) == 0
    results = client.request_many([('GET', f'{server}/body?size=10')])
    assert results[0].body == pattern(10)
