"""Handles that request_many kept within a batch, then handed back to the
pool, used by request() and stream() with other options."""
from __future__ import annotations

import json

import pytest

import _mwcomms
from servers import COMPRESSIBLE


@pytest.fixture
def client():
    # One idle handle, so that request() gets the handle a batch used.
    with _mwcomms.Client(max_idle_handles=1) as instance:
        yield instance


def plain_batch(http_server, count=4):
    url = http_server.url('/echo')
    return [('GET', url), ('POST', url, None, b'batch body')] * (count // 2)


def test_read_timeout_after_batches(client, http_server):
    for batch_timeout in (None, (5, 5)):
        client.request_many(plain_batch(http_server), max_concurrency=1,
                            timeout=batch_timeout)
        with pytest.raises(_mwcomms.Timeout) as info:
            client.request('GET', http_server.url('/slow?seconds=3'),
                           timeout=(5, 0.5))
        assert info.value.phase == 'read'


def test_stream_progress_after_batch(client, http_server):
    client.request_many(plain_batch(http_server), max_concurrency=1)
    calls = []
    with client.stream('GET', http_server.url('/stream?size=300000'),
                       progress=lambda done, total: calls.append(
                           (done, total))) as stream:
        data = stream.read()
    assert len(data) == 300000
    assert calls[-1] == (300000, 300000)


def test_stream_read_timeout_after_batch(client, http_server):
    client.request_many(plain_batch(http_server), max_concurrency=1)
    url = http_server.url('/stream?size=200000&stall_after=1000&stall=3')
    with client.stream('GET', url, timeout=(5, 0.5)) as stream:
        with pytest.raises(_mwcomms.Timeout):
            stream.read()


def test_methods_after_batch(client, http_server):
    client.request_many(plain_batch(http_server, 6), max_concurrency=1)
    url = http_server.url('/echo')
    cases = [('GET', None, ''), ('HEAD', None, None), ('DELETE', None, ''),
             ('PUT', b'put', 'put'), ('GET', None, ''),
             ('POST', 'text', 'text'), ('PATCH', b'', ''), ('GET', None, '')]
    for method, body, expected in cases:
        response = client.request(method, url, body=body, timeout=10)
        assert response.status == 200, method
        if expected is None:
            assert response.body == b''
            continue
        data = json.loads(response.body)
        assert data['method'] == method
        assert data['body'] == expected


def test_batch_post_then_get_sends_no_body(client, http_server):
    url = http_server.url('/echo')
    client.request_many([('POST', url, None, b'x' * 5000)] * 3,
                        max_concurrency=1)
    data = json.loads(client.request('GET', url, timeout=10).body)
    assert data['method'] == 'GET'
    assert data['body'] == ''
    names = {name.lower() for name, _ in data['headers']}
    assert 'content-length' not in names
    assert 'content-type' not in names


def test_batch_headers_not_carried(client, http_server):
    url = http_server.url('/echo')
    client.request_many([('GET', url, {'X-Batch': 'yes'})] * 3,
                        max_concurrency=1)
    data = json.loads(client.request('GET', url, timeout=10).body)
    assert 'X-Batch' not in dict(data['headers'])
    results = client.request_many([('GET', url), ('GET', url, {'X-B': '1'}),
                                   ('GET', url)], max_concurrency=1)
    seen = [dict(json.loads(r.body)['headers']) for r in results]
    assert 'X-B' not in seen[0]
    assert seen[1]['X-B'] == '1'
    assert 'X-B' not in seen[2]


def test_accept_encoding_after_batch(client, http_server):
    url = http_server.url('/gzip')
    for batch_encoding in (True, False):
        results = client.request_many([('GET', url)] * 2, max_concurrency=1,
                                      accept_encoding=batch_encoding)
        if batch_encoding:
            assert results[0].body == COMPRESSIBLE
        else:
            assert results[0].body != COMPRESSIBLE
        decoded = client.request('GET', url, accept_encoding=True)
        assert decoded.body == COMPRESSIBLE
        raw = client.request('GET', url, accept_encoding=False)
        assert raw.body != COMPRESSIBLE
        assert raw.body[:2] == b'\x1f\x8b'


def test_proxy_not_carried(client, http_server, forward_proxy):
    url = http_server.url('/echo?proxy-check')
    forward_proxy.clear()
    results = client.request_many([('GET', url)] * 3, max_concurrency=1,
                                  proxy=forward_proxy.url())
    assert all(r.status == 200 for r in results)
    assert len(forward_proxy.seen()) == 3
    forward_proxy.clear()
    assert client.request('GET', url, proxy='').status == 200
    assert client.request('GET', url).status == 200
    assert forward_proxy.seen() == []
    assert client.request('GET', url, proxy=forward_proxy.url()).status == 200
    assert len(forward_proxy.seen()) == 1
    forward_proxy.clear()
    results = client.request_many([('GET', url)] * 2, max_concurrency=1,
                                  proxy='')
    assert all(r.status == 200 for r in results)
    assert forward_proxy.seen() == []


def test_verify_not_carried(client, https_server, certificates):
    url = https_server.url('/echo')
    results = client.request_many([('GET', url)] * 2, max_concurrency=1,
                                  verify=False)
    assert all(r.status == 200 for r in results)
    with pytest.raises(_mwcomms.SSLError):
        client.request('GET', url, timeout=10)
    ca = str(certificates['ca'])
    assert client.request('GET', url, verify=ca).status == 200
    with pytest.raises(_mwcomms.SSLError):
        client.request('GET', url, timeout=10)
    results = client.request_many([('GET', url)] * 2, max_concurrency=1,
                                  verify=ca)
    assert all(r.status == 200 for r in results)
    results = client.request_many([('GET', url)], max_concurrency=1)
    assert isinstance(results[0], _mwcomms.SSLError)


def test_mixed_timeouts_in_batches(client, http_server):
    slow = http_server.url('/slow?seconds=2')
    fast = http_server.url('/echo')
    batch = [('GET', fast), ('GET', slow), ('GET', fast)]
    results = client.request_many(batch, max_concurrency=1,
                                  timeout=(5, 0.5))
    assert results[0].status == 200
    assert isinstance(results[1], _mwcomms.Timeout)
    assert results[2].status == 200
    results = client.request_many(batch, max_concurrency=1)
    assert [r.status for r in results] == [200, 200, 200]
    with pytest.raises(_mwcomms.Timeout):
        client.request('GET', slow, timeout=(5, 0.5))


def test_body_sizes_after_batch(client, http_server):
    sizes = [70000, 3, 65536, 0, 65535, 200000, 1]
    batch = [('GET', http_server.url(f'/large?size={size}'))
             for size in sizes]
    results = client.request_many(batch, max_concurrency=2)
    pattern = bytes(i % 251 for i in range(251))
    for size, response in zip(sizes, results):
        assert response.body == pattern * (size // 251) + b'x' * (
            size % 251), size
    for size in reversed(sizes):
        body = client.request('GET', http_server.url(f'/large?size={size}')
                              ).body
        assert len(body) == size
