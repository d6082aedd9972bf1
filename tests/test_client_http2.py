"""Tests of HTTP/2 negotiation and multiplexing against a local nginx."""
from __future__ import annotations

import time

import pytest

import _mwcomms
import servers

pytestmark = pytest.mark.skipif(
    'http2' not in _mwcomms.curl_features(),
    reason='libcurl is built without HTTP/2')


@pytest.fixture
def client():
    with _mwcomms.Client() as instance:
        yield instance


def test_h2_negotiated(client, nginx, certificates):
    response = client.request('GET', nginx.url('/text'),
                              verify=certificates['ca'])
    assert response.status == 200
    assert response.http_version == '2'
    assert response.reason == ''
    assert response.body.startswith(b'nginx h2 ')


def test_h1_without_alpn_h2(client, nginx, certificates):
    response = client.request('GET', nginx.url('/text', http2=False),
                              verify=certificates['ca'])
    assert response.http_version == '1.1'
    assert response.reason == 'OK'
    assert response.body.startswith(b'nginx h1 ')


def test_h2_stream(client, nginx, certificates):
    with client.stream('GET', nginx.url('/file.bin'),
                       verify=certificates['ca']) as r:
        assert r.http_version == '2'
        assert r.status == 200
        assert r.read() == servers.STREAM_BLOCK


def test_h2_many_one_connection(client, nginx, certificates):
    count = 12
    urls = [nginx.url(f'/text?n={n}') for n in range(count)]
    results = client.request_many([('GET', url) for url in urls],
                                  verify=certificates['ca'],
                                  max_concurrency=6)
    assert all(r.status == 200 for r in results)
    assert all(r.http_version == '2' for r in results)
    assert sum(r.new_connections for r in results) == 1
    connections = {r.body.split()[-1].decode() for r in results}
    assert len(connections) == 1
    # nginx logs a request after it sent the response, so the last entry
    # can lag behind the client; wait for it, a bounded time.
    deadline = time.monotonic() + 10
    while True:
        logged = [entry for entry in nginx.access_log()
                  if entry[2].startswith('/text?n=')]
        if len(logged) >= count or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(logged) == count
    assert {entry[0] for entry in logged} == connections
    assert {entry[1] for entry in logged} == {'HTTP/2.0'}


def test_h1_many_several_connections(client, nginx, certificates):
    urls = [nginx.url(f'/text?h1={n}', http2=False) for n in range(8)]
    results = client.request_many([('GET', url) for url in urls],
                                  verify=certificates['ca'],
                                  max_concurrency=4)
    assert all(r.http_version == '1.1' for r in results)
    assert sum(r.new_connections for r in results) >= 1
    assert sum(r.new_connections for r in results) <= 4
