"""Response bodies sized from Content-Length, against servers that lie.

The client sizes the body buffer (below 64 KiB) or the bytes object of a
body (64 KiB to 64 MiB) from the Content-Length of the response.  The
servers here are RawServer instances on 127.0.0.1 that announce one
length and send another, so that a wrong length can never make the
client read past the body or reserve what the header claims.
"""
from __future__ import annotations

import gzip
import tracemalloc

import pytest

import _mwcomms
from servers import COMPRESSIBLE, read_raw_request

MIB = 1024 * 1024


@pytest.fixture
def client():
    with _mwcomms.Client() as instance:
        yield instance


def replying(head: bytes, body: bytes, close: bool = True):
    """Return a handler that replies to each request with head and body."""
    def handler(server, connection, index):
        pending = b''
        while True:
            request, _, pending = read_raw_request(connection, pending)
            if request is None:
                return
            connection.sendall(head + b'\r\n' + body)
            if close:
                return
    return handler


def traced_peak(call):
    """Run call and return (its result or exception, peak traced bytes)."""
    tracemalloc.start()
    try:
        try:
            outcome = call()
        except _mwcomms.Error as error:
            outcome = error
        return outcome, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize('size', [0, 1, 1500, 16384, 16385, 65535, 65536,
                                  200_000])
def test_exact_length_bodies(client, raw_servers, size):
    body = bytes(range(256)) * (size // 256) + b'x' * (size % 256)
    server = raw_servers(replying(
        b'HTTP/1.1 200 OK\r\nContent-Length: %d\r\n' % size, body,
        close=False))
    for _ in range(2):
        response = client.request('GET', server.url())
        assert response.status == 200
        assert response.body == body


@pytest.mark.parametrize('announced', [100, 100_000])
def test_short_body_is_error(client, raw_servers, announced):
    # The server closes after fewer bytes than announced.
    server = raw_servers(replying(
        b'HTTP/1.1 200 OK\r\nContent-Length: %d\r\n' % announced,
        b'y' * 50))
    with pytest.raises(_mwcomms.TransferError):
        client.request('GET', server.url())


@pytest.mark.parametrize('announced', [5, 70_000])
def test_long_body_cut_at_length(client, raw_servers, announced):
    # Bytes after the announced length are not part of the body.
    body = b'z' * announced
    server = raw_servers(replying(
        b'HTTP/1.1 200 OK\r\nContent-Length: %d\r\n' % announced,
        body + b'EXTRA' * 100))
    response = client.request('GET', server.url())
    assert response.body == body


@pytest.mark.parametrize('announced', [64 * MIB + 1, 1024 * MIB,
                                       2 ** 40])
def test_lying_length_no_reserve(client, raw_servers, announced):
    # A huge Content-Length with a short body: an error, and no
    # allocation of the announced size.
    server = raw_servers(replying(
        b'HTTP/1.1 200 OK\r\nContent-Length: %d\r\n' % announced,
        b'q' * 100_000))
    outcome, peak = traced_peak(lambda: client.request('GET', server.url()))
    assert isinstance(outcome, _mwcomms.TransferError)
    assert peak < 8 * MIB


def test_head_with_length(client, raw_servers):
    # HEAD announces the length of a GET body and sends none.
    server = raw_servers(replying(
        b'HTTP/1.1 200 OK\r\nContent-Length: %d\r\n' % (1024 * MIB), b'',
        close=False))
    outcome, peak = traced_peak(lambda: client.request('HEAD', server.url()))
    assert outcome.status == 200
    assert outcome.body == b''
    assert peak < 8 * MIB


def test_gzip_body_longer_than_length(client, raw_servers):
    # Content-Length counts the compressed bytes; the decoded body is
    # longer and grows past the buffer sized from it.
    compressed = gzip.compress(COMPRESSIBLE)
    assert len(compressed) < len(COMPRESSIBLE)
    server = raw_servers(replying(
        b'HTTP/1.1 200 OK\r\nContent-Length: %d\r\n'
        b'Content-Encoding: gzip\r\n' % len(compressed), compressed,
        close=False))
    response = client.request('GET', server.url())
    assert response.body == COMPRESSIBLE


def test_large_body_direct(client, raw_servers):
    # 3 MiB with a Content-Length: filled in place, same bytes.
    body = bytes(range(256)) * (3 * MIB // 256)
    server = raw_servers(replying(
        b'HTTP/1.1 200 OK\r\nContent-Length: %d\r\n' % len(body), body,
        close=False))
    response = client.request('GET', server.url())
    assert len(response.body) == len(body)
    assert response.body == body
