"""Tests of _mwcomms.Client and Response against local servers."""
from __future__ import annotations

import gc
import gzip
import json
import os
import signal
import sys
import threading
import tracemalloc
from pathlib import Path

import pytest

import _mwcomms
import servers

SECRET = 'hunter2-secret-value'


@pytest.fixture
def client():
    with _mwcomms.Client() as instance:
        yield instance


def echo(response) -> dict:
    assert response.status == 200
    return json.loads(response.body)


def sent_headers(response) -> dict:
    """Return the request headers that /echo received, by lower-case name."""
    return {name.lower(): value for name, value in echo(response)['headers']}


# -- module ---------------------------------------------------------------

def test_features_asynchdns():
    # With CURLOPT_NOSIGNAL, DNS timeouts need the threaded resolver.
    features = _mwcomms.curl_features()
    assert isinstance(features, set)
    assert 'asynchdns' in features
    assert 'ssl' in features


def test_curl_version_string():
    assert _mwcomms.curl_version().startswith('libcurl/')


def test_response_not_constructible():
    with pytest.raises(TypeError):
        _mwcomms.Response()


# -- basic requests -----------------------------------------------------

def test_get_echo(client, http_server):
    response = client.request('GET', http_server.url('/echo?a=1'))
    data = echo(response)
    assert data['method'] == 'GET'
    assert data['path'] == '/echo?a=1'
    assert response.reason == 'OK'
    assert response.http_version == '1.1'
    assert response.url == http_server.url('/echo?a=1')
    assert response.primary_ip == '127.0.0.1'
    assert response.local_port == data['client_port']
    assert response.elapsed >= 0.0
    assert response.get_header('content-type') == 'application/json'
    assert isinstance(response.headers, tuple)
    assert all(isinstance(pair, tuple) and len(pair) == 2
               for pair in response.headers)


@pytest.mark.parametrize('method',
                         ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'])
def test_method_sent(client, http_server, method):
    data = echo(client.request(method, http_server.url()))
    assert data['method'] == method


def test_head_no_body(client, http_server):
    response = client.request('HEAD', http_server.url())
    assert response.status == 200
    assert response.body == b''
    assert int(response.get_header('Content-Length')) > 0


@pytest.mark.parametrize('method', ['get', 'TRACE', 'CONNECT', 'Post', ''])
def test_method_invalid(client, http_server, method):
    with pytest.raises(ValueError) as info:
        client.request(method, http_server.url())
    assert repr(method) in str(info.value)


def test_method_wrong_type(client, http_server):
    with pytest.raises(TypeError, match='method must be str'):
        client.request(b'GET', http_server.url())


# -- bodies --------------------------------------------------------------

@pytest.mark.parametrize('body, expected', [
    (b'raw bytes', 'raw bytes'),
    (bytearray(b'array'), 'array'),
    (memoryview(b'view of bytes')[8:], 'bytes'),
    ('caf\u00e9', 'caf\u00c3\u00a9'),  # UTF-8 bytes, shown as Latin-1
    (b'', ''),
])
def test_body_types(client, http_server, body, expected):
    response = client.request('POST', http_server.url(), body=body)
    data = echo(response)
    headers = sent_headers(response)
    assert data['body'] == expected
    assert headers['content-length'] == str(len(expected))


def test_body_wrong_type(client, http_server):
    with pytest.raises(TypeError, match='body must be'):
        client.request('POST', http_server.url(), body=12)


def test_head_body_rejected(client, http_server):
    with pytest.raises(ValueError, match='HEAD'):
        client.request('HEAD', http_server.url(), body=b'x')


def test_put_without_body(client, http_server):
    headers = sent_headers(client.request('PUT', http_server.url()))
    assert headers['content-length'] == '0'


def test_body_refcount_flat(client, http_server):
    body = b'payload that must not leak a reference'
    before = sys.getrefcount(body)
    for _ in range(50):
        client.request('POST', http_server.url(), body=body)
    assert sys.getrefcount(body) == before


def test_large_upload(client, http_server):
    body = b'u' * (3 * 1024 * 1024)
    response = client.request('POST', http_server.url('/upload'), body=body)
    assert response.body == str(len(body)).encode()


# -- headers ---------------------------------------------------------------

def test_no_automatic_content_type(client, http_server):
    headers = sent_headers(client.request('POST', http_server.url(),
                                          body=b'a=1'))
    assert 'content-type' not in headers


def test_content_type_kept(client, http_server):
    response = client.request('POST', http_server.url(),
                              {'Content-Type': 'text/plain; charset=utf-8'},
                              b'a=1')
    assert sent_headers(response)['content-type'] == \
        'text/plain; charset=utf-8'


def test_no_expect_header(client, http_server):
    # libcurl 7.88 adds Expect: 100-continue to POST bodies over 1 MiB.
    body = b'e' * (2 * 1024 * 1024)
    response = client.request('POST', http_server.url(), body=body)
    headers = sent_headers(response)
    assert 'expect' not in headers
    assert len(echo(response)['body']) == len(body)


def test_expect_sent_when_given(client, http_server):
    response = client.request('POST', http_server.url(),
                              {'Expect': '100-continue'}, b'body')
    headers = sent_headers(response)
    assert headers['expect'] == '100-continue'
    assert echo(response)['body'] == 'body'


@pytest.mark.parametrize('headers', [
    {'X-One': '1', 'X-Two': '2'},
    [('X-One', '1'), ('X-Two', '2')],
    (('X-One', '1'), ['X-Two', '2']),
    iter([('X-One', '1'), ('X-Two', '2')]),
])
def test_header_forms(client, http_server, headers):
    sent = sent_headers(client.request('GET', http_server.url(), headers))
    assert sent['x-one'] == '1'
    assert sent['x-two'] == '2'


def test_header_mapping_items(client, http_server):
    class Mapping:
        def items(self):
            return [('X-Mapped', 'yes')]

    sent = sent_headers(client.request('GET', http_server.url(), Mapping()))
    assert sent['x-mapped'] == 'yes'


def test_header_empty_value(client, http_server):
    response = client.request('GET', http_server.url(), {'X-Empty': ''})
    names = [name for name, _ in echo(response)['headers']]
    assert 'X-Empty' in names
    assert sent_headers(response)['x-empty'] == ''


def test_header_latin1_value(client, http_server):
    response = client.request('GET', http_server.url(), {'X-Name': 'Jos\u00e9'})
    assert sent_headers(response)['x-name'] == 'Jos\u00e9'


@pytest.mark.parametrize('name', ['', 'Bad Name', 'a:b', 'caf\u00e9',
                                  'X\nY', 'X\x00', '(paren)'])
def test_header_name_invalid(client, http_server, name):
    with pytest.raises(ValueError) as info:
        client.request('GET', http_server.url(), {name: SECRET})
    assert repr(name) in str(info.value)
    assert SECRET not in str(info.value)


@pytest.mark.parametrize('suffix', ['\r\nX-Injected: 1', '\n', '\r', '\x00'])
def test_header_value_invalid(client, http_server, suffix):
    with pytest.raises(ValueError) as info:
        client.request('GET', http_server.url(),
                       [('Cookie', SECRET + suffix)])
    assert "'Cookie'" in str(info.value)
    assert SECRET not in str(info.value)


@pytest.mark.parametrize('headers, expected', [
    (42, 'headers must be'),
    ('ab', 'headers must be'),
    ([('X-A',)], 'pair'),
    (['ab'], 'pair'),
    ([('X-A', 'v', 'w')], 'pair'),
    ([(1, 'v')], 'header names must be str'),
    ({'X-A': SECRET.encode()}, "value of header 'X-A' must be str"),
])
def test_header_wrong_type(client, http_server, headers, expected):
    with pytest.raises(TypeError) as info:
        client.request('GET', http_server.url(), headers)
    assert expected in str(info.value)
    assert SECRET not in str(info.value)


# -- URLs -------------------------------------------------------------------

@pytest.mark.parametrize('url', [
    'ftp://127.0.0.1/file',
    'file:///etc/passwd',
    'http://',
    'no scheme at all',
    '127.0.0.1/echo',
    'http://user:' + SECRET + '@[bad-host/',
    'https://user:' + SECRET + '@/path',
    'http://127.0.0.1/\x00',
    '',
])
def test_url_invalid(client, url):
    with pytest.raises(_mwcomms.InvalidURL) as info:
        client.request('GET', url)
    error = info.value
    assert isinstance(error, ValueError)
    assert SECRET not in str(error)
    assert SECRET not in error.url
    assert error.curl_code == 0
    assert error.request_sent is False


def test_url_wrong_type(client):
    with pytest.raises(TypeError, match='url must be str'):
        client.request('GET', b'http://127.0.0.1/')


def test_url_credentials_redacted(client, closed_port):
    url = f'http://user:{SECRET}@127.0.0.1:{closed_port}/x'
    with pytest.raises(_mwcomms.ConnectError) as info:
        client.request('GET', url)
    assert SECRET not in str(info.value)
    assert info.value.url == f'http://127.0.0.1:{closed_port}/x'


# -- timeouts and errors -------------------------------------------------------

@pytest.mark.parametrize('timeout', [0, -1, float('nan'), float('inf'),
                                     (0, 1), (1, -2), (1,), (1, 2, 3)])
def test_timeout_invalid_value(client, http_server, timeout):
    with pytest.raises(ValueError, match='timeout'):
        client.request('GET', http_server.url(), timeout=timeout)


@pytest.mark.parametrize('timeout', ['1', True, [1, 2], (1, '2')])
def test_timeout_wrong_type(client, http_server, timeout):
    with pytest.raises(TypeError, match='timeout'):
        client.request('GET', http_server.url(), timeout=timeout)


@pytest.mark.parametrize('timeout', [None, 5, 2.5, (None, 5), (5, None)])
def test_timeout_accepted(client, http_server, timeout):
    response = client.request('GET', http_server.url(), timeout=timeout)
    assert response.status == 200


def test_read_timeout(client, http_server):
    with pytest.raises(_mwcomms.Timeout) as info:
        client.request('GET', http_server.url('/slow?seconds=4'),
                       timeout=(5, 1))
    error = info.value
    assert error.phase == 'read'
    assert error.request_sent is True
    assert isinstance(error.curl_code, int)
    assert 'read timed out' in str(error)


def test_read_timeout_reused(client, http_server):
    first = client.request('GET', http_server.url())
    assert first.status == 200
    with pytest.raises(_mwcomms.Timeout) as info:
        client.request('GET', http_server.url('/slow?seconds=4'), timeout=1)
    assert info.value.phase == 'read'


def test_trickle_not_idle(client, http_server):
    # 15 bytes 0.2 s apart take 3 s in total but are never idle for 1 s.
    response = client.request(
        'GET', http_server.url('/trickle?count=15&interval=0.2'), timeout=1)
    assert response.status == 200
    assert response.body == b'.' * 15


def test_connect_refused(client, closed_port):
    with pytest.raises(_mwcomms.ConnectError) as info:
        client.request('GET', f'http://127.0.0.1:{closed_port}/', timeout=5)
    error = info.value
    assert error.curl_code == 7  # CURLE_COULDNT_CONNECT
    assert error.request_sent is False
    assert str(closed_port) in str(error)


def test_server_closes(client, http_server):
    with pytest.raises(_mwcomms.TransferError) as info:
        client.request('POST', http_server.url('/close'), body=b'x')
    error = info.value
    assert error.curl_code == 52  # CURLE_GOT_NOTHING
    assert error.request_sent is True


def test_errors_share_base(client, closed_port):
    with pytest.raises(_mwcomms.Error):
        client.request('GET', f'http://127.0.0.1:{closed_port}/')


# -- responses ------------------------------------------------------------------

def test_redirect_not_followed(client, http_server):
    response = client.request('GET', http_server.url('/redirect'))
    assert response.status == 302
    assert response.get_header('Location') == '/echo'
    assert response.body == b'moved'
    assert response.url == http_server.url('/redirect')


@pytest.mark.parametrize('code, reason', [(404, 'Not Found'),
                                          (418, 'Teapot'),
                                          (503, 'Service Unavailable')])
def test_status_codes(client, http_server, code, reason):
    suffix = '?reason=Teapot' if code == 418 else ''
    response = client.request('GET', http_server.url(f'/status/{code}'
                                                     + suffix))
    assert response.status == code
    assert response.reason == reason
    assert response.body == b'status body'


def test_interim_response_dropped(client, http_server):
    response = client.request('GET', http_server.url('/interim'))
    assert response.status == 200
    assert response.get_header('X-Final') == 'yes'
    assert response.get_header('Link') is None
    assert response.body == b'final'


def test_header_lookup(client, http_server):
    response = client.request('GET', http_server.url('/raw-status'))
    assert response.reason == ''
    assert response.get_header('x-dup') == 'one, two'
    assert response.get_all('X-DUP') == ['one', 'two']
    assert response.get_header('X-Folded') == 'first second'
    assert response.get_header('X-Missing') is None
    assert response.get_header('X-Missing', 'fallback') == 'fallback'
    assert response.get_all('X-Missing') == []
    assert ('X-Dup', 'one') in response.headers
    assert ('x-dup', 'two') in response.headers


def test_response_read_only(client, http_server):
    response = client.request('GET', http_server.url())
    with pytest.raises(AttributeError):
        response.status = 201


@pytest.mark.parametrize('route', ['/gzip', '/deflate'])
def test_compressed_decoded(client, http_server, route):
    response = client.request('GET', http_server.url(route))
    assert response.body == servers.COMPRESSIBLE


def test_accept_encoding_sent(client, http_server):
    headers = sent_headers(client.request('GET', http_server.url()))
    assert 'gzip' in headers['accept-encoding']
    assert 'deflate' in headers['accept-encoding']


def test_accept_encoding_off(client, http_server):
    headers = sent_headers(client.request('GET', http_server.url(),
                                          accept_encoding=False))
    response = client.request('GET', http_server.url('/gzip'),
                              accept_encoding=False)
    assert 'accept-encoding' not in headers
    assert response.body[:2] == b'\x1f\x8b'  # gzip magic number
    assert gzip.decompress(response.body) == servers.COMPRESSIBLE


def test_large_body(client, http_server):
    size = 5 * 1024 * 1024
    response = client.request('GET', http_server.url(f'/large?size={size}'))
    expected = bytes(i % 251 for i in range(251)) * (size // 251) \
        + b'x' * (size % 251)
    assert len(response.body) == size
    assert response.body == expected


# -- max_response_size --------------------------------------------------------------

def test_max_response_size(http_server):
    with _mwcomms.Client(max_response_size=1000) as client:
        exact = client.request('GET', http_server.url('/large?size=1000'))
        with pytest.raises(_mwcomms.TransferError) as info:
            client.request('GET', http_server.url('/large?size=5000'))
        after = client.request('GET', http_server.url())
    assert len(exact.body) == 1000
    assert 'max_response_size of 1000 bytes' in str(info.value)
    assert info.value.curl_code == 23  # CURLE_WRITE_ERROR
    assert after.status == 200


@pytest.mark.parametrize('value, error', [(-1, ValueError),
                                          ('10', TypeError),
                                          (1.5, TypeError)])
def test_max_response_size_invalid(value, error):
    with pytest.raises(error, match='max_response_size'):
        _mwcomms.Client(max_response_size=value)


def test_client_positional_rejected():
    with pytest.raises(TypeError):
        _mwcomms.Client(True)


# -- cookies -------------------------------------------------------------------------

def test_cookies_sent_back(http_server):
    with _mwcomms.Client(cookies=True) as client:
        client.request('GET', http_server.url('/set-cookie?name=a&value=1'))
        headers = sent_headers(client.request('GET', http_server.url()))
    assert headers['cookie'] == 'a=1'


def test_cookies_shared_by_handles(http_server):
    # Two handles exist while both threads are inside request(), and
    # the cookie store lives in the share handle.
    with _mwcomms.Client(cookies=True) as client:
        client.request('GET', http_server.url('/set-cookie?name=b&value=2'))
        key = 'cookie-hold'
        holder = threading.Thread(
            target=client.request,
            args=('GET', http_server.url(f'/block?key={key}')))
        holder.start()
        assert http_server.wait_state(key, 'started')
        headers = sent_headers(client.request('GET', http_server.url()))
        http_server.release(key)
        holder.join()
        stats = client.stats
    assert headers['cookie'] == 'b=2'
    assert stats['handles'] == 2


def test_cookies_off(http_server):
    with _mwcomms.Client(cookies=False) as client:
        client.request('GET', http_server.url('/set-cookie?name=a&value=1'))
        headers = sent_headers(client.request('GET', http_server.url()))
    assert 'cookie' not in headers


# -- connection reuse, pool and threads ----------------------------------------------

def test_keep_alive_reuse(client, http_server):
    first = client.request('GET', http_server.url())
    second = client.request('GET', http_server.url())
    assert first.new_connections == 1
    assert second.new_connections == 0
    assert second.local_port == first.local_port


def test_stats_counts(client, http_server):
    for _ in range(3):
        client.request('GET', http_server.url())
    stats = client.stats
    assert stats['requests'] == 3
    assert stats['connects'] == 1
    assert stats['handles'] == 1
    assert stats['idle'] == 1


def test_no_idle_handles(http_server):
    with _mwcomms.Client(max_idle_handles=0) as client:
        first = client.request('GET', http_server.url())
        second = client.request('GET', http_server.url())
        stats = client.stats
    assert first.new_connections == 1
    assert second.new_connections == 1
    assert stats['handles'] == 0
    assert stats['idle'] == 0


def test_max_idle_negative():
    with pytest.raises(ValueError, match='max_idle_handles'):
        _mwcomms.Client(max_idle_handles=-1)


def test_threads_share_client(client, http_server):
    thread_count = 8
    per_thread = 50
    failures = []

    def work(number):
        try:
            for index in range(per_thread):
                path = f'/echo?thread={number}&index={index}'
                response = client.request('GET', http_server.url(path))
                if json.loads(response.body)['path'] != path:
                    failures.append((number, index))
        except Exception as error:  # reported below
            failures.append(repr(error))

    threads = [threading.Thread(target=work, args=(number,))
               for number in range(thread_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats = client.stats
    assert failures == []
    assert stats['requests'] == thread_count * per_thread
    assert stats['handles'] <= thread_count
    assert stats['idle'] == stats['handles']


def test_close_during_requests(http_server):
    client = _mwcomms.Client()
    keys = [f'close-{number}' for number in range(3)]
    results = {}

    def work(key):
        try:
            response = client.request('GET', http_server.url(f'/block?key={key}'))
            results[key] = response.body
        except Exception as error:  # reported below
            results[key] = repr(error)

    client.request('GET', http_server.url())  # leaves one idle handle
    threads = [threading.Thread(target=work, args=(key,)) for key in keys]
    for thread in threads:
        thread.start()
    for key in keys:
        assert http_server.wait_state(key, 'started')
    client.close()
    with pytest.raises(ValueError, match='Client is closed'):
        client.request('GET', http_server.url())
    stats_while_running = client.stats
    for key in keys:
        http_server.release(key)
    for thread in threads:
        thread.join()
    assert stats_while_running['idle'] == 0
    assert stats_while_running['handles'] == 3
    assert results == {key: b'released' for key in keys}
    assert client.stats['handles'] == 0
    client.close()


def test_close_racing_requests(http_server):
    client = _mwcomms.Client(max_idle_handles=2)
    outcomes = []

    def work():
        for _ in range(300):
            try:
                client.request('GET', http_server.url())
            except ValueError as error:
                outcomes.append(str(error))
                return
        outcomes.append('finished')

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    while client.stats['requests'] < 40 and any(t.is_alive()
                                                  for t in threads):
        threading.Event().wait(0.005)
    client.close()
    for thread in threads:
        thread.join()
    assert len(outcomes) == 4
    assert set(outcomes) <= {'Client is closed', 'finished'}
    assert client.stats['handles'] == 0
    assert client.stats['idle'] == 0


def test_close_idempotent(http_server):
    client = _mwcomms.Client()
    client.request('GET', http_server.url())
    client.close()
    client.close()
    assert client.closed is True
    assert client.stats['handles'] == 0
    with pytest.raises(ValueError, match='Client is closed'):
        client.request('GET', http_server.url())


def test_context_manager_closes(http_server):
    with _mwcomms.Client() as client:
        assert client.closed is False
    assert client.closed is True


def test_keyboard_interrupt(client, http_server):
    key = 'interrupt'

    def interrupt():
        if http_server.wait_state(key, 'started'):
            os.kill(os.getpid(), signal.SIGINT)

    sender = threading.Thread(target=interrupt)
    sender.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            client.request('GET', http_server.url(f'/block?key={key}'))
        # The transfer was aborted, not waited for.
        answered = http_server.has_state(key, 'answered')
    finally:
        http_server.release(key)
        sender.join()
    assert answered is False
    assert client.request('GET', http_server.url()).status == 200


# -- TLS -----------------------------------------------------------------------------

def test_verify_matrix(https_server, certificates):
    url = https_server.url()
    with _mwcomms.Client() as client:
        unverified = client.request('GET', url, verify=False)
        # The CA is not in the system store: verification must fail even
        # though an unverified connection to this host is idle in the pool.
        with pytest.raises(_mwcomms.SSLError) as info:
            client.request('GET', url)
        verified = client.request('GET', url, verify=str(certificates['ca']))
        reused = client.request('GET', url, verify=str(certificates['ca']))
    assert unverified.status == 200
    assert info.value.curl_code == 60  # CURLE_PEER_FAILED_VERIFICATION
    assert info.value.request_sent is False
    assert verified.status == 200
    assert reused.new_connections == 0


def test_verify_alternating(https_server, certificates, tmp_path):
    # A pooled handle keeps its options between plain requests, the CA
    # bundle included, so every change of bundle must take effect.
    other = servers.make_certificates(tmp_path / 'other')
    copies = []
    for number in range(6):
        copy = tmp_path / f'ca-copy-{number}.pem'
        copy.write_bytes(Path(certificates['ca']).read_bytes())
        copies.append(str(copy))
    ca = str(certificates['ca'])
    steps = [(ca, None), (True, 60), (ca, None), (str(other['ca']), 60),
             (ca, None), (str(tmp_path / 'missing.pem'), 77), (ca, None),
             (False, None), (True, 60), *[(copy, None) for copy in copies],
             (True, 60), (ca, None)]
    url = https_server.url()
    with _mwcomms.Client() as client:
        for number, (verify, code) in enumerate(steps):
            for method, body in (('GET', None), ('POST', b'x=1')):
                if code is None:
                    response = client.request(method, url, body=body,
                                              verify=verify)
                    assert response.status == 200, (number, method)
                else:
                    with pytest.raises(_mwcomms.SSLError) as info:
                        client.request(method, url, body=body,
                                       verify=verify)
                    assert info.value.curl_code == code, (number, method)


def test_verify_pathlike(https_server, certificates):
    with _mwcomms.Client() as client:
        response = client.request('GET', https_server.url(),
                                  verify=Path(certificates['ca']))
    assert response.status == 200


def test_verify_missing_ca_file(https_server, tmp_path):
    with _mwcomms.Client() as client:
        with pytest.raises(_mwcomms.SSLError) as info:
            client.request('GET', https_server.url(),
                           verify=str(tmp_path / 'missing.pem'))
    assert info.value.curl_code == 77  # CURLE_SSL_CACERT_BADFILE


@pytest.mark.parametrize('verify, error', [(1, TypeError),
                                           (None, TypeError),
                                           ('', ValueError)])
def test_verify_invalid(client, http_server, verify, error):
    with pytest.raises(error, match='verify'):
        client.request('GET', http_server.url(), verify=verify)


# -- auth ----------------------------------------------------------------------------

def make_oauth():
    return _mwcomms.OAuth1('consumer-key', SECRET, 'token-key',
                           'token-' + SECRET)


def test_auth_wrong_type(client, http_server):
    with pytest.raises(TypeError, match='OAuth1'):
        client.request('GET', http_server.url(), auth='token')


def test_auth_header_added(client, http_server):
    auth = make_oauth()
    first = sent_headers(client.request('GET', http_server.url(), auth=auth))
    second = sent_headers(client.request('GET', http_server.url(), auth=auth))
    assert first['authorization'].startswith('OAuth ')
    assert 'oauth_consumer_key="consumer-key"' in first['authorization']
    assert SECRET not in first['authorization']
    assert first['authorization'] != second['authorization']


def test_auth_with_authorization(client, http_server):
    with pytest.raises(ValueError, match='Authorization') as info:
        client.request('GET', http_server.url(),
                       {'Authorization': 'Bearer ' + SECRET},
                       auth=make_oauth())
    assert SECRET not in str(info.value)


# -- memory ----------------------------------------------------------------------------

def count_responses() -> int:
    return sum(isinstance(obj, _mwcomms.Response) for obj in gc.get_objects())


def test_response_freed(client, http_server):
    response = client.request('GET', http_server.url())
    del response
    gc.collect()
    assert count_responses() == 0


def test_response_headers_immutable(client, http_server):
    response = client.request('GET', http_server.url())
    assert isinstance(response.headers, tuple)
    with pytest.raises(AttributeError):
        response.headers.append(('Content-Length', 5))


def test_memory_flat(http_server):
    """2000 requests must not grow traced memory (PyMem_Raw included)."""
    url = http_server.url('/echo')
    with _mwcomms.Client() as client:
        for _ in range(200):
            client.request('POST', url, {'X-A': 'b'}, b'body')
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for _ in range(2000):
                client.request('POST', url, {'X-A': 'b'}, b'body')
            gc.collect()
            after = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
    # A leak of 50 bytes per request would add 100 000 bytes.
    assert after - before < 100_000


def test_header_map_matches_python(client, http_server):
    from pywikibot_ext._response import make_headers
    response = client.request('GET', http_server.url('/echo'))
    assert response.header_map() == make_headers(response.headers)._store



def serve_once(head: bytes) -> tuple[str, threading.Thread]:
    """Serve one request on a new port: reply with head and no body."""
    import socket
    listener = socket.socket()
    listener.bind(('127.0.0.1', 0))
    listener.listen(1)
    listener.settimeout(10)

    def answer():
        with listener:
            connection, _ = listener.accept()
            with connection:
                connection.settimeout(10)
                connection.recv(65536)
                connection.sendall(head)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    return f'http://127.0.0.1:{listener.getsockname()[1]}/', thread


def test_header_map_joins_repeats(client):
    url, thread = serve_once(
        b'HTTP/1.1 200 OK\r\nX-Dup: one\r\nContent-Type: text/plain\r\n'
        b'x-DUP: two\r\nX-\xc4rger: caf\xe9\r\nX-Dup: three\r\n'
        b'Content-Length: 0\r\nConnection: close\r\n\r\n')
    response = client.request('GET', url)
    thread.join(10)
    mapping = response.header_map()
    assert mapping['x-dup'] == ('X-Dup', 'one, two, three')
    assert mapping['content-type'] == ('Content-Type', 'text/plain')
    assert mapping['x-\xe4rger'] == ('X-\xc4rger', 'caf\xe9')
    assert sorted(mapping) == sorted(
        {name.lower() for name, _ in response.headers})
