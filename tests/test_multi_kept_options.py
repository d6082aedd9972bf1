"""request_many items on easy handles that earlier items of the batch
set up: options that differ from the last item's must not carry over.

With max_concurrency=1, item n reuses the handle of item n - 1 or
n - 2, so each sequence below repeats every kind of item twice in a row
to cover both."""
from __future__ import annotations

import json

import pytest

import _mwcomms


@pytest.fixture
def client():
    with _mwcomms.Client() as instance:
        yield instance


def echoed(response) -> dict:
    assert isinstance(response, _mwcomms.Response), response
    assert response.status == 200
    return json.loads(response.body)


def header_names(data: dict) -> set[str]:
    return {name.lower() for name, _ in data['headers']}


def test_kept_handle_url_changes(client, http_server):
    paths = ['/echo?a', '/echo?a', '/echo?b', '/echo?b', '/echo?a']
    # Equal URLs as distinct str objects, and the same object again.
    urls = [''.join([http_server.url('/'), path.lstrip('/')])
            for path in paths]
    results = client.request_many([('GET', url) for url in urls],
                                  max_concurrency=1)
    assert [echoed(r)['path'] for r in results] == paths
    assert [r.url for r in results] == urls


def test_kept_handle_normalized_url(client, http_server):
    # libcurl rewrites this URL (lower-case scheme) during the transfer,
    # and the next item on the handle sets no new CURLOPT_URL.
    base = http_server.url('/echo?upper')
    url = 'HTTP' + base[len('http'):]
    results = client.request_many([('GET', url)] * 5, max_concurrency=1)
    for response in results:
        assert echoed(response)['path'] == '/echo?upper'
        assert response.url.lower() == base.lower()


def test_kept_handle_methods(client, http_server):
    url = http_server.url('/echo')
    items = [('GET', url), ('GET', url),
             ('POST', url, None, b'first body'),
             ('POST', url, None, b'first body'),
             ('GET', url), ('GET', url),
             ('POST', url), ('POST', url),
             ('GET', url), ('GET', url),
             ('GET', url, None, b'get body'),
             ('GET', url, None, b'get body'),
             ('GET', url), ('GET', url)]
    results = client.request_many(items, max_concurrency=1)
    for item, response in zip(items, results):
        data = echoed(response)
        body = item[3].decode() if len(item) > 3 else ''
        assert data['method'] == item[0], item
        assert data['body'] == body, item


def test_kept_handle_headers(client, http_server):
    url = http_server.url('/echo')
    auth = _mwcomms.OAuth1('ck', 'cs', 'tk', 'ts')
    items = [
        {'url': url}, {'url': url},
        {'url': url, 'headers': {'X-Test': 'yes'}},
        {'url': url, 'headers': {'X-Test': 'yes'}},
        {'url': url}, {'url': url},
        {'url': url, 'auth': auth}, {'url': url, 'auth': auth},
        {'url': url}, {'url': url},
    ]
    results = client.request_many(items, max_concurrency=1)
    for item, response in zip(items, results):
        names = header_names(echoed(response))
        assert ('x-test' in names) == ('headers' in item), item
        assert ('authorization' in names) == ('auth' in item), item


def test_kept_handle_response_headers(client, http_server):
    # The first two responses have a header block over 1 KiB, so the
    # header buffer that the next items reuse has grown.
    long_value = 'v' * 2000
    long_url = http_server.url(f'/set-cookie?value={long_value}')
    short_url = http_server.url('/set-cookie?value=short')
    echo_url = http_server.url('/echo')
    urls = [long_url, long_url, echo_url, echo_url, short_url, short_url]
    results = client.request_many([('GET', url) for url in urls],
                                  max_concurrency=1)
    for url, response in zip(urls, results):
        assert response.status == 200
        assert response.reason == 'OK'
        cookies = response.get_all('Set-Cookie')
        if url == echo_url:
            assert cookies == []
        elif url == long_url:
            assert cookies == [f'session={long_value}; Path=/']
        else:
            assert cookies == ['session=short; Path=/']


def test_plain_http_batch_connections(http_server):
    # Plain http is HTTP/1.1 only, so each of the 8 transfers needs its
    # own connection.
    url = http_server.url('/concurrent?delay=0.2&n={}')
    with _mwcomms.Client() as client:
        results = client.request_many(
            [('GET', url.format(n)) for n in range(8)], max_concurrency=8)
    assert all(r.status == 200 for r in results)
    assert sum(r.new_connections for r in results) == 8


def test_kept_handle_then_request(client, http_server):
    # The handles of a batch go back to the pool: a later request() with
    # other options gets a handle without the batch's URL or headers.
    url = http_server.url('/echo?batch')
    auth = _mwcomms.OAuth1('ck', 'cs', 'tk', 'ts')
    client.request_many([{'url': url, 'auth': auth}] * 4,
                        max_concurrency=2)
    response = client.request('GET', http_server.url('/echo?single'))
    data = echoed(response)
    assert data['path'] == '/echo?single'
    assert 'authorization' not in header_names(data)
