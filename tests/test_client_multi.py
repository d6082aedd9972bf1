"""Tests of Client.request_many() against local servers."""
from __future__ import annotations

import json
import signal
import threading

import pytest

import _mwcomms


@pytest.fixture
def client():
    with _mwcomms.Client() as instance:
        yield instance


def test_many_order(client, http_server):
    requests = [('GET', http_server.url(f'/echo?n={n}')) for n in range(20)]
    results = client.request_many(requests)
    assert len(results) == 20
    for n, response in enumerate(results):
        assert isinstance(response, _mwcomms.Response)
        assert json.loads(response.body)['path'] == f'/echo?n={n}'


def test_many_item_forms(client, http_server):
    results = client.request_many([
        {'url': http_server.url('/echo?form=dict')},
        {'method': 'POST', 'url': http_server.url('/echo'),
         'headers': {'X-Test': 'yes'}, 'body': b'payload'},
        ('PUT', http_server.url('/echo'), [('X-Put', '1')], 'text'),
        ('POST', http_server.url('/form'), None,
         _mwcomms.Multipart(fields=[('a', '1')])),
    ])
    first, second, third, fourth = (json.loads(r.body) for r in results)
    assert first['method'] == 'GET'
    assert second['method'] == 'POST'
    assert second['body'] == 'payload'
    assert ['X-Test', 'yes'] in second['headers']
    assert third['method'] == 'PUT'
    assert third['body'] == 'text'
    assert fourth['parts'][0]['name'] == 'a'


def test_many_item_errors(client, http_server, closed_port):
    results = client.request_many([
        ('GET', http_server.url('/echo')),
        ('GET', f'http://127.0.0.1:{closed_port}/'),
        ('GET', 'ftp://127.0.0.1/'),
        ('FETCH', http_server.url('/echo')),
        {'url': http_server.url(), 'bogus': 1},
        ('GET',),
        'GET /',
        ('POST', http_server.url('/hash'), None, iter([b'x'])),
        ('GET', http_server.url('/status/500')),
    ])
    assert results[0].status == 200
    assert isinstance(results[1], _mwcomms.ConnectError)
    assert results[1].url == f'http://127.0.0.1:{closed_port}/'
    assert isinstance(results[2], _mwcomms.InvalidURL)
    assert isinstance(results[3], ValueError)
    assert isinstance(results[4], TypeError)
    assert 'bogus' in str(results[4])
    assert isinstance(results[5], TypeError)
    assert isinstance(results[6], TypeError)
    assert isinstance(results[7], TypeError)
    assert results[8].status == 500


def test_many_concurrency(client, http_server):
    http_server.max_in_flight = 0
    url = http_server.url('/concurrent?delay=0.05&n={}')
    results = client.request_many(
        [('GET', url.format(n)) for n in range(200)], max_concurrency=8)
    assert all(r.status == 200 for r in results)
    assert [r.body.decode() for r in results] == [
        f'/concurrent?delay=0.05&n={n}' for n in range(200)]
    assert http_server.max_in_flight > 1
    assert http_server.max_in_flight <= 8


def test_many_concurrency_one(client, http_server):
    http_server.max_in_flight = 0
    url = http_server.url('/concurrent?delay=0.02')
    results = client.request_many([('GET', url)] * 10, max_concurrency=1)
    assert all(r.status == 200 for r in results)
    assert http_server.max_in_flight == 1


def test_many_oauth_nonces(client, http_server):
    auth = _mwcomms.OAuth1('ck', 'cs', 'tk', 'ts')
    results = client.request_many(
        [{'url': http_server.url('/echo'), 'auth': auth}] * 5)
    nonces = set()
    for response in results:
        headers = dict(json.loads(response.body)['headers'])
        assert headers['Authorization'].startswith('OAuth ')
        nonce = [part for part in headers['Authorization'].split(', ')
                 if 'oauth_nonce' in part]
        nonces.update(nonce)
    assert len(nonces) == 5


def test_many_read_timeout(client, http_server):
    results = client.request_many([
        ('GET', http_server.url('/slow?seconds=3')),
        ('GET', http_server.url('/echo')),
    ], timeout=(5, 0.5))
    assert isinstance(results[0], _mwcomms.Timeout)
    assert results[0].phase == 'read'
    assert results[1].status == 200


def test_many_read_timeout_after_batch(client, http_server):
    # A batch without a read timeout turns libcurl's progress callback
    # off on its handles.  request() on such a handle needs it back.
    client.request_many([('GET', http_server.url('/echo'))] * 4,
                        max_concurrency=1)
    handles = client.stats['handles']
    with pytest.raises(_mwcomms.Timeout) as info:
        client.request('GET', http_server.url('/slow?seconds=3'),
                       timeout=(5, 0.5))
    assert info.value.phase == 'read'
    assert client.stats['handles'] == handles
    results = client.request_many(
        [('GET', http_server.url('/slow?seconds=3'))], timeout=(5, 0.5))
    assert isinstance(results[0], _mwcomms.Timeout)
    assert results[0].phase == 'read'


def test_many_methods_share_handle(client, http_server):
    # With max_concurrency=1 every item runs on the handle of the one
    # before, plain (GET, POST) and reset (DELETE, PUT) setups in turn.
    url = http_server.url('/echo')
    batch = [
        ('POST', url, None, b'first'),
        ('GET', url),
        ('DELETE', url),
        ('GET', http_server.url('/slow?seconds=3')),
        ('PUT', url, None, b'put body'),
        ('GET', url),
        ('POST', url),
    ]
    results = client.request_many(batch, max_concurrency=1,
                                  timeout=(5, 0.5))
    expected = {0: ('POST', 'first'), 1: ('GET', ''), 2: ('DELETE', ''),
                4: ('PUT', 'put body'), 5: ('GET', ''), 6: ('POST', '')}
    for index, (method, body) in expected.items():
        data = json.loads(results[index].body)
        assert data['method'] == method, index
        assert data['body'] == body, index
    assert isinstance(results[3], _mwcomms.Timeout)
    assert results[3].phase == 'read'


def test_many_body_buffers_reused(client, http_server):
    # Items in turn fill the body buffer of the item before, so each body
    # must have its own bytes only, whatever the size of the last one.
    sizes = [5000, 10, 0, 3000, 1, 60000, 7]
    batch = [('GET', http_server.url(f'/large?size={size}'))
             for size in sizes]
    batch.append(('GET', http_server.url('/gzip')))
    results = client.request_many(batch, max_concurrency=1)
    pattern = bytes(i % 251 for i in range(251))
    for size, response in zip(sizes, results):
        expected = pattern * (size // 251) + b'x' * (size % 251)
        assert response.body == expected, size
    assert results[-1].body == b'mwcomms compressed payload. ' * 200


def test_many_max_response_size(http_server):
    with _mwcomms.Client(max_response_size=1000) as client:
        results = client.request_many([
            ('GET', http_server.url('/large?size=5000')),
            ('GET', http_server.url('/large?size=500')),
        ])
    assert isinstance(results[0], _mwcomms.TransferError)
    assert len(results[1].body) == 500


def test_many_empty(client):
    assert client.request_many([]) == []


def test_many_invalid_arguments(client, http_server):
    with pytest.raises(ValueError, match='max_concurrency'):
        client.request_many([], max_concurrency=0)
    with pytest.raises(TypeError):
        client.request_many(5)


def test_many_closed_client(http_server):
    client = _mwcomms.Client()
    client.close()
    with pytest.raises(ValueError, match='closed'):
        client.request_many([('GET', http_server.url())])


def test_many_handles_returned(client, http_server):
    client.request_many([('GET', http_server.url())] * 20)
    stats = client.stats
    assert stats['idle'] == stats['handles']
    assert stats['requests'] == 20


def test_many_keyboard_interrupt(client, http_server):
    timer = threading.Timer(0.3, signal.raise_signal, (signal.SIGINT,))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            client.request_many(
                [('GET', http_server.url('/slow?seconds=4'))] * 3)
    finally:
        timer.cancel()
    stats = client.stats
    assert stats['idle'] == stats['handles']


def test_many_threads(client, http_server):
    errors = []

    def run():
        try:
            results = client.request_many(
                [('GET', http_server.url('/echo'))] * 10)
            assert all(r.status == 200 for r in results)
        except Exception as error:  # reported by the assert below
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
