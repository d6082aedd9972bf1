"""Tests of the proxy options against a local forward proxy."""
from __future__ import annotations

import json

import pytest

import _mwcomms

SECRET = 'pr0xy-secret'


@pytest.fixture
def client():
    with _mwcomms.Client() as instance:
        yield instance


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, forward_proxy):
    for name in ('http_proxy', 'HTTP_PROXY', 'https_proxy', 'HTTPS_PROXY',
                 'all_proxy', 'ALL_PROXY', 'no_proxy', 'NO_PROXY'):
        monkeypatch.delenv(name, raising=False)
    forward_proxy.clear()


def test_proxy_forwards_http(client, http_server, forward_proxy):
    url = http_server.url('/echo?via=proxy')
    response = client.request('GET', url, proxy=forward_proxy.url())
    assert json.loads(response.body)['path'] == '/echo?via=proxy'
    assert forward_proxy.seen() == [('GET', url, None)]


def test_proxy_connect_https(client, https_server, forward_proxy,
                             certificates):
    url = https_server.url('/echo')
    response = client.request('GET', url, proxy=forward_proxy.url(),
                              verify=certificates['ca'])
    assert response.status == 200
    method, target, _ = forward_proxy.seen()[0]
    assert method == 'CONNECT'
    assert target == f'127.0.0.1:{https_server.server_port}'


def test_proxy_stream_https(client, https_server, forward_proxy,
                            certificates):
    with client.stream('GET', https_server.url('/stream?size=5000'),
                       proxy=forward_proxy.url(),
                       verify=certificates['ca']) as r:
        assert r.status == 200
        assert r.get_header('content-length') == '5000'
        assert len(r.read()) == 5000
    assert forward_proxy.seen()[0][0] == 'CONNECT'


def test_proxy_credentials_sent(client, http_server, auth_proxy):
    proxy = auth_proxy.url(f'proxyuser:{SECRET}')
    response = client.request('GET', http_server.url(), proxy=proxy)
    assert response.status == 200
    assert auth_proxy.seen()[-1][2].startswith('Basic ')


def test_proxy_credentials_hidden(client, auth_proxy, closed_port):
    proxy = f'http://proxyuser:{SECRET}@127.0.0.1:{closed_port}'
    with pytest.raises(_mwcomms.ConnectError) as info:
        client.request('GET', 'http://127.0.0.1:9/', proxy=proxy)
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value.args)
    assert 'proxyuser' not in str(info.value)


def test_proxy_rejected_407(client, http_server, auth_proxy):
    proxy = auth_proxy.url('proxyuser:wrong-password')
    response = client.request('GET', http_server.url(), proxy=proxy)
    assert response.status == 407
    assert 'wrong-password' not in repr(response)


def test_proxy_invalid_url_hidden(client, http_server):
    with pytest.raises(ValueError) as info:
        client.request('GET', http_server.url(),
                       proxy=f'ftp://user:{SECRET}@127.0.0.1:1')
    assert 'scheme' in str(info.value)
    assert SECRET not in str(info.value)


@pytest.mark.parametrize('proxy, error', [
    (5, TypeError), (b'http://127.0.0.1:1', TypeError),
    ('http://127.0.0.1:1\x00', ValueError), ('127.0.0.1', ValueError),
])
def test_proxy_invalid(client, http_server, proxy, error):
    with pytest.raises(error):
        client.request('GET', http_server.url(), proxy=proxy)


def test_noproxy_invalid(client, http_server):
    with pytest.raises(TypeError, match='noproxy'):
        client.request('GET', http_server.url(), noproxy=1)


def test_env_proxy_used(client, http_server, forward_proxy, monkeypatch):
    monkeypatch.setenv('http_proxy', forward_proxy.url())
    client.request('GET', http_server.url('/echo?env=1'))
    assert [target for _, target, _ in forward_proxy.seen()] == [
        http_server.url('/echo?env=1')]


def test_env_no_proxy(client, http_server, forward_proxy, monkeypatch):
    monkeypatch.setenv('http_proxy', forward_proxy.url())
    monkeypatch.setenv('NO_PROXY', '127.0.0.1')
    response = client.request('GET', http_server.url())
    assert response.status == 200
    assert forward_proxy.seen() == []


def test_empty_proxy_ignores_env(client, http_server, forward_proxy,
                                 monkeypatch):
    monkeypatch.setenv('http_proxy', forward_proxy.url())
    response = client.request('GET', http_server.url(), proxy='')
    assert response.status == 200
    assert forward_proxy.seen() == []


def test_proxy_modes_alternate(client, http_server, forward_proxy,
                               monkeypatch):
    # One pooled handle keeps its options between plain requests, so
    # switching between the default rules, no proxy and a given proxy
    # must change the route every time.  Only GETs: the test proxy closes
    # each connection after one response, so a POST could meet a closed
    # connection, which the client rightly does not resend.
    monkeypatch.setenv('http_proxy', forward_proxy.url())
    modes = [None, '', '', None, forward_proxy.url(), '', None,
             forward_proxy.url(), None]
    for number, proxy in enumerate(modes):
        url = http_server.url(f'/echo?n={number}')
        before = len(forward_proxy.seen())
        response = client.request('GET', url, proxy=proxy)
        assert response.status == 200
        proxied = len(forward_proxy.seen()) - before
        assert proxied == (0 if proxy == '' else 1), (number, proxy)


def test_noproxy_bypasses(client, http_server, forward_proxy):
    response = client.request('GET', http_server.url(),
                              proxy=forward_proxy.url(), noproxy='127.0.0.1')
    assert response.status == 200
    assert forward_proxy.seen() == []


def test_noproxy_other_host(client, http_server, forward_proxy):
    client.request('GET', http_server.url(), proxy=forward_proxy.url(),
                   noproxy='example.invalid')
    assert len(forward_proxy.seen()) == 1


def test_request_many_proxy(client, http_server, forward_proxy):
    urls = [http_server.url(f'/echo?n={n}') for n in range(3)]
    results = client.request_many([('GET', url) for url in urls],
                                  proxy=forward_proxy.url())
    assert [r.status for r in results] == [200, 200, 200]
    assert sorted(t for _, t, _ in forward_proxy.seen()) == sorted(urls)
