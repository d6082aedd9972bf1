"""Options of one request must not reach the next one on a pooled handle.

A client with one pooled easy handle sends mixed sequences, and each
request is checked against what the server received.  A method, body,
header, encoding, TLS or timeout setting left over from the previous
request on that handle shows up as a wrong echo or a wrong outcome.
"""
import json
import time

import pytest

import _mwcomms

FORM_TYPE = 'application/x-www-form-urlencoded'


@pytest.fixture
def client():
    with _mwcomms.Client(cookies=False, max_idle_handles=1) as instance:
        yield instance


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in ('http_proxy', 'HTTP_PROXY', 'https_proxy', 'HTTPS_PROXY',
                 'all_proxy', 'ALL_PROXY', 'no_proxy', 'NO_PROXY'):
        monkeypatch.delenv(name, raising=False)


def echo(response):
    assert response.status == 200
    data = json.loads(response.body)
    data['headers'] = {name.lower(): value
                       for name, value in data['headers']}
    return data


def test_post_then_get(client, http_server):
    url = http_server.url('/echo')
    sent = echo(client.request('POST', url, {'X-Only-Post': '1',
                                             'Content-Type': FORM_TYPE},
                               'a=1&b=' + 'x' * 3000))
    assert sent['method'] == 'POST'
    assert sent['headers']['content-type'] == FORM_TYPE
    sent = echo(client.request('GET', url))
    assert sent['method'] == 'GET'
    assert sent['body'] == ''
    assert 'content-length' not in sent['headers']
    assert 'content-type' not in sent['headers']
    assert 'x-only-post' not in sent['headers']


def test_post_then_empty_post(client, http_server):
    url = http_server.url('/echo')
    echo(client.request('POST', url, None, b'first-body'))
    sent = echo(client.request('POST', url))
    assert sent['method'] == 'POST'
    assert sent['body'] == ''
    assert sent['headers']['content-length'] == '0'


def test_custom_methods_then_plain(client, http_server):
    url = http_server.url('/echo')
    plan = [('PUT', b'put-body'), ('GET', None), ('DELETE', None),
            ('POST', b'post-body'), ('PATCH', b'patch'), ('GET', None),
            ('OPTIONS', None), ('POST', None), ('GET', None)]
    for method, body in plan:
        sent = echo(client.request(method, url, None, body))
        assert sent['method'] == method
        assert sent['body'] == (body or b'').decode()


def test_head_then_get(client, http_server):
    url = http_server.url('/echo')
    head = client.request('HEAD', url)
    assert head.status == 200
    assert head.body == b''
    sent = echo(client.request('GET', url))
    assert sent['method'] == 'GET'
    sent = echo(client.request('POST', url, None, 'z=1'))
    assert sent['body'] == 'z=1'


def test_multipart_then_plain(client, http_server):
    url = http_server.url('/echo')
    body = _mwcomms.Multipart(fields={'a': '1'})
    sent = echo(client.request('POST', url, None, body))
    assert sent['headers']['content-type'].startswith('multipart/form-data')
    sent = echo(client.request('POST', url, None, 'b=2'))
    assert 'content-type' not in sent['headers']
    assert sent['body'] == 'b=2'
    sent = echo(client.request('GET', url))
    assert sent['body'] == ''


def test_stream_body_then_get(client, http_server):
    url = http_server.url('/echo')
    sent = echo(client.request('POST', url, {'Content-Length': '4'},
                               iter([b'ab', b'cd'])))
    assert sent['body'] == 'abcd'
    sent = echo(client.request('GET', url))
    assert sent['method'] == 'GET'
    assert 'content-length' not in sent['headers']
    assert sent['body'] == ''


def test_accept_encoding_toggles(client, http_server):
    url = http_server.url('/echo')
    for accept in [True, False, False, True, True, False, True]:
        for method, body in [('GET', None), ('POST', 'a=1')]:
            sent = echo(client.request(method, url, None, body,
                                       accept_encoding=accept))
            assert ('accept-encoding' in sent['headers']) == accept, (
                method, accept)


def test_gzip_after_identity(client, http_server):
    url = http_server.url('/gzip')
    raw = client.request('GET', url, accept_encoding=False)
    assert raw.get_header('content-encoding') == 'gzip'
    decoded = client.request('GET', url)
    assert decoded.body.startswith(b'mwcomms compressed payload.')


def test_verify_sequence(client, https_server, certificates):
    url = https_server.url('/echo')
    ca = str(certificates['ca'])
    plan = [(False, True), (True, False), (ca, True), (True, False),
            (ca, True), (False, True), (ca, True), (True, False)]
    for verify, works in plan:
        for method, body in [('GET', None), ('POST', 'a=1')]:
            if works:
                response = client.request(method, url, None, body,
                                          verify=verify)
                assert response.status == 200, (verify, method)
            else:
                with pytest.raises(_mwcomms.Error):
                    client.request(method, url, None, body, verify=verify)


def test_verify_false_stream_then_default(client, https_server):
    url = https_server.url('/stream?size=100')
    with client.stream('GET', url, verify=False) as stream:
        assert len(stream.read()) == 100
    with pytest.raises(_mwcomms.Error):
        client.request('GET', url)


def test_proxy_then_env_default(client, http_server, forward_proxy,
                                monkeypatch):
    # No proxy, then the default rules with http_proxy set: the second
    # must go through the proxy from the environment.
    forward_proxy.clear()
    url = http_server.url('/echo')
    echo(client.request('POST', url, None, 'a=1', proxy=''))
    assert forward_proxy.seen() == []
    monkeypatch.setenv('http_proxy', forward_proxy.url())
    echo(client.request('GET', url))
    assert len(forward_proxy.seen()) == 1
    echo(client.request('GET', url, proxy=''))
    assert len(forward_proxy.seen()) == 1
    echo(client.request('GET', url, noproxy='127.0.0.1'))
    assert len(forward_proxy.seen()) == 1
    echo(client.request('GET', url))
    assert len(forward_proxy.seen()) == 2


def test_read_timeout_not_kept(client, http_server):
    url = http_server.url('/slow?seconds=1.5')
    with pytest.raises(_mwcomms.Error):
        client.request('GET', url, timeout=(5, 0.3))
    start = time.monotonic()
    response = client.request('GET', url)
    assert response.status == 200
    assert time.monotonic() - start >= 1.0


def test_signed_then_many_then_plain(client, http_server):
    url = http_server.url('/echo')
    signer = _mwcomms.OAuth1('key', 'secret-SENTINEL', 'token',
                             'token-secret-SENTINEL')
    sent = echo(client.request('POST', url, {'Content-Type': FORM_TYPE},
                               'a=1', auth=signer))
    assert sent['headers']['authorization'].startswith('OAuth ')
    results = client.request_many([('GET', url, None, None, signer),
                                   ('GET', url)])
    assert 'authorization' in echo(results[0])['headers']
    assert 'authorization' not in echo(results[1])['headers']
    with client.stream('GET', url, auth=signer) as stream:
        data = json.loads(stream.read())
    assert any(name.lower() == 'authorization'
               for name, _ in data['headers'])
    sent = echo(client.request('GET', url))
    assert 'authorization' not in sent['headers']


def test_ca_bundles_cycle(client, https_server, certificates,
                          tmp_path_factory):
    # More bundle paths than the handle setups remember, half of them
    # from a CA that did not sign the server's certificate, and copies of
    # the good bundle under other names.
    import shutil

    import servers

    url = https_server.url('/echo')
    other = servers.make_certificates(tmp_path_factory.mktemp('other-ca'))
    good = [str(certificates['ca'])]
    directory = tmp_path_factory.mktemp('copies')
    for number in range(3):
        copy = directory / f'good{number}.pem'
        shutil.copy(certificates['ca'], copy)
        good.append(str(copy))
    bad = str(other['ca'])
    plan = [good[0], bad, good[1], bad, good[2], good[3], bad, good[0],
            True, good[3], False, bad, good[1]]
    for verify in plan:
        for method, body in [('GET', None), ('POST', 'a=1')]:
            if verify is False or verify in good:
                response = client.request(method, url, None, body,
                                          verify=verify)
                assert response.status == 200, (verify, method)
            else:
                with pytest.raises(_mwcomms.SSLError):
                    client.request(method, url, None, body, verify=verify)
