"""The requests-compatible layer, compared with requests itself.

Each case sends the same call through ``requests.Session`` and through
``pywikibot_ext._transport.Transport`` to a local server that records what
it received, and compares the two.
"""
from __future__ import annotations

import datetime
import http.cookiejar
import http.server
import json
import pickle
import threading
import urllib.parse

import pytest
import requests

import _mwcomms
from pywikibot_ext._transport import Transport

# Headers that legitimately differ between the two clients.
CLIENT_HEADERS = {'user-agent', 'accept-encoding', 'connection', 'accept'}
SECRETS = ('consumer-secret-value', 'access-secret-value')
CREDENTIALS = ('consumer-key', SECRETS[0], 'access-key', SECRETS[1])


class RecordingHandler(http.server.BaseHTTPRequestHandler):
    """Echo each request as JSON; /to?status=N&url=U redirects to U."""

    protocol_version = 'HTTP/1.1'
    disable_nagle_algorithm = True

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        length = int(self.headers.get('Content-Length') or 0)
        body = self.rfile.read(length) if length else b''
        parts = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(parts.query))
        if parts.path == '/to':
            self.send_response(int(query.get('status', '302')))
            self.send_header('Location', query.get('url', '/to'))
            self.send_header('Content-Length', '0')
            self.end_headers()
            return
        if parts.path == '/cookie':
            payload = b'cookie set'
            self.send_response(200)
            self.send_header('Set-Cookie', 'session=s3cr3t; Path=/')
            self.send_header('Set-Cookie', 'other=1; Path=/')
            self.send_header('Content-Length', str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        payload = json.dumps({
            'method': self.command,
            'path': self.path,
            'headers': {k.lower(): v for k, v in self.headers.items()},
            'body': body.decode('latin-1'),
        }).encode()
        status = int(query.get('code', '200'))
        self.send_response(status)
        self.send_header('Content-Type', 'application/json; charset=utf-8')
        self.send_header('X-Dup', 'one')
        self.send_header('X-Dup', 'two')
        self.send_header('Content-Length', str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def do_HEAD(self):
        self.send_response(200)
        self.send_header('Content-Length', '0')
        self.end_headers()


@pytest.fixture(scope='module')
def servers():
    """Two recording servers on different ports (two 'hosts')."""
    started = []
    for _ in range(2):
        server = http.server.ThreadingHTTPServer(('127.0.0.1', 0),
                                                 RecordingHandler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
    yield [f'http://127.0.0.1:{s.server_port}' for s in started]
    for server in started:
        server.shutdown()
        server.server_close()


@pytest.fixture
def transport():
    instance = Transport(cookie_jar=http.cookiejar.CookieJar())
    yield instance
    instance.close()


def seen(response) -> dict:
    """Return what the server received, without client-specific headers."""
    data = response.json()
    data['headers'] = {k: v for k, v in data['headers'].items()
                       if k not in CLIENT_HEADERS}
    return data


BODY_CASES = {
    'dict': dict(data={'a': '1', 'b': 'ü x'}),
    'pairs': dict(data=[('a', '1'), ('a', '2')]),
    'str': dict(data='x=1&y=%C3%BC',
                headers={'Content-Type':
                         'application/x-www-form-urlencoded'}),
    'bytes': dict(data=b'\x00\x01raw'),
    'json': dict(json={'k': ['v', 1]}),
    'files': dict(files={'file': ('a.txt', b'content', 'text/plain')},
                  data={'field': 'value'}),
    'params': dict(params={'q': 'a b', 'n': '1'}),
}


@pytest.mark.parametrize('case', sorted(BODY_CASES))
def test_body_matches_requests(servers, transport, case):
    kwargs = BODY_CASES[case]
    url = servers[0] + '/echo'
    expected = requests.post(url, timeout=10, **kwargs)
    actual = transport.request('POST', url, timeout=10, **kwargs)
    ours, theirs = seen(actual), seen(expected)
    if case == 'files':
        # The multipart boundary is random and libcurl's is longer than
        # requests', which changes Content-Length too; compare the rest.
        boundary_ours = ours['headers'].pop('content-type').split('=')[1]
        boundary_theirs = theirs['headers'].pop('content-type').split('=')[1]
        del ours['headers']['content-length']
        del theirs['headers']['content-length']
        ours['body'] = ours['body'].replace(boundary_ours, 'B')
        theirs['body'] = theirs['body'].replace(boundary_theirs, 'B')
    assert ours == theirs


@pytest.mark.parametrize(('status', 'method'), [
    (301, 'POST'), (302, 'POST'), (303, 'POST'), (307, 'POST'),
    (308, 'POST'), (302, 'HEAD'), (303, 'PUT'), (301, 'PUT'),
])
def test_redirect_matches_requests(servers, transport, status, method):
    target = servers[0] + '/echo'
    url = (f'{servers[0]}/to?status={status}&url='
           + urllib.parse.quote(target, safe=''))
    kwargs = dict(data={'a': '1'}, timeout=10)
    expected = requests.request(method, url, **kwargs)
    actual = transport.request(method, url, **kwargs)
    assert actual.status_code == expected.status_code
    assert actual.url == expected.url
    assert [r.status_code for r in actual.history] == \
        [r.status_code for r in expected.history]
    if method != 'HEAD':
        assert seen(actual) == seen(expected)


def test_redirect_to_other_host_drops_basic_auth(servers, transport):
    target = servers[1] + '/echo'
    url = f'{servers[0]}/to?url=' + urllib.parse.quote(target, safe='')
    response = transport.request('GET', url, auth=('user', 'pass'),
                                 timeout=10)
    assert response.url == target
    assert 'authorization' not in response.json()['headers']


def test_redirect_same_host_keeps_basic_auth(servers, transport):
    target = servers[0] + '/echo'
    url = f'{servers[0]}/to?url=' + urllib.parse.quote(target, safe='')
    response = transport.request('GET', url, auth=('user', 'pass'),
                                 timeout=10)
    assert response.json()['headers']['authorization'].startswith('Basic ')


def test_redirect_to_other_host_drops_oauth(servers, transport):
    target = servers[1] + '/echo'
    url = f'{servers[0]}/to?url=' + urllib.parse.quote(target, safe='')
    response = transport.request('GET', url, auth=CREDENTIALS, timeout=10)
    assert response.url == target
    assert 'authorization' not in response.json()['headers']


def test_redirect_same_host_signs_again(servers, transport):
    target = servers[0] + '/echo?x=1'
    url = f'{servers[0]}/to?status=307&url=' + urllib.parse.quote(
        target, safe='')
    response = transport.request('POST', url, auth=CREDENTIALS,
                                 data={'a': '1'}, timeout=10)
    header = response.json()['headers']['authorization']
    assert header.startswith('OAuth ')
    assert 'oauth_signature=' in header
    assert response.json()['path'] == '/echo?x=1'


def test_too_many_redirects(servers, transport):
    loop = servers[0] + '/to?url=/to%3Furl%3D/to'
    with pytest.raises(requests.exceptions.TooManyRedirects) as excinfo:
        transport.request('GET', loop, timeout=10)
    assert len(excinfo.value.response.history) == transport.max_redirects


def test_no_redirect_when_disabled(servers, transport):
    url = f'{servers[0]}/to?url=/echo'
    response = transport.request('GET', url, allow_redirects=False,
                                 timeout=10)
    assert response.status_code == 302
    assert response.is_redirect
    assert response.history == []


def test_cookies_stored_and_sent(servers, transport):
    transport.request('GET', servers[0] + '/cookie', timeout=10)
    names = sorted(cookie.name for cookie in transport.cookie_jar)
    assert names == ['other', 'session']
    echoed = transport.request('GET', servers[0] + '/echo', timeout=10)
    assert echoed.json()['headers']['cookie'] == 'session=s3cr3t; other=1'


def test_cookies_cleared_not_sent(servers, transport):
    transport.request('GET', servers[0] + '/cookie', timeout=10)
    # Clearing cookie by cookie leaves the jar's per-site dicts behind.
    for cookie in list(transport.cookie_jar):
        transport.cookie_jar.clear(cookie.domain, cookie.path, cookie.name)
    response = transport.request('GET', servers[0] + '/echo', timeout=10)
    assert len(transport.cookie_jar) == 0
    assert 'cookie' not in seen(response)['headers']


def test_explicit_cookie_header_wins(servers, transport):
    transport.request('GET', servers[0] + '/cookie', timeout=10)
    echoed = transport.request('GET', servers[0] + '/echo', timeout=10,
                               headers={'Cookie': 'mine=1'})
    assert echoed.json()['headers']['cookie'] == 'mine=1'


def test_cookies_argument_added(servers, transport):
    echoed = transport.request('GET', servers[0] + '/echo', timeout=10,
                               cookies={'extra': 'yes'})
    assert echoed.json()['headers']['cookie'] == 'extra=yes'


def test_response_is_requests_response(servers, transport):
    response = transport.request('GET', servers[0] + '/echo?code=404',
                                 timeout=10)
    assert isinstance(response, requests.Response)
    assert response.status_code == 404
    assert not response.ok
    assert response.reason == 'Not Found'
    assert response.headers['x-dup'] == 'one, two'
    assert response.headers['CONTENT-TYPE'].startswith('application/json')
    assert response.request.method == 'GET'
    assert response.request.url == servers[0] + '/echo?code=404'
    assert response.elapsed.total_seconds() > 0
    assert b''.join(response.iter_content(7)) == response.content
    with pytest.raises(requests.exceptions.HTTPError):
        response.raise_for_status()
    with response as same:
        assert same.json()['method'] == 'GET'


def test_response_pickles(servers, transport):
    transport.request('GET', servers[0] + '/cookie', timeout=10)
    response = transport.request('GET', servers[0] + '/echo', timeout=10)
    copy = pickle.loads(pickle.dumps(response))
    assert copy.content == response.content
    assert copy.headers == response.headers
    assert copy.status_code == 200
    assert copy.elapsed == response.elapsed


def test_response_cookies_lists_set_cookie(servers, transport):
    response = transport.request('GET', servers[0] + '/cookie', timeout=10)
    assert response.cookies.get('session') == 's3cr3t'


def test_refused_connection_maps_to_connection_error(transport):
    import socket
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    with pytest.raises(requests.exceptions.ConnectionError) as excinfo:
        transport.request('GET', f'http://127.0.0.1:{port}/', timeout=5)
    assert not isinstance(excinfo.value, requests.exceptions.Timeout)
    assert 'NewConnectionError' in str(excinfo.value)
    assert excinfo.value.request.url == f'http://127.0.0.1:{port}/'


def test_read_timeout_maps_to_read_timeout(http_server, transport):
    with pytest.raises(requests.exceptions.ReadTimeout):
        transport.request('GET', http_server.url('/slow?seconds=3'),
                          timeout=(5, 1))


def test_invalid_url_maps_to_invalid_url(transport):
    with pytest.raises(requests.exceptions.InvalidURL):
        transport.request('GET', 'http://[::1/', timeout=5)


def test_untrusted_certificate_maps_to_ssl_error(https_server, transport):
    with pytest.raises(requests.exceptions.SSLError) as excinfo:
        transport.request('GET', https_server.url('/echo'), timeout=5,
                          verify=True)
    assert 'certificate verify failed' in str(excinfo.value)


def test_password_in_url_not_in_error(transport):
    with pytest.raises(requests.exceptions.ConnectionError) as excinfo:
        transport.request('GET', 'http://user:hunter2@127.0.0.1:1/',
                          timeout=5)
    assert 'hunter2' not in str(excinfo.value)


def test_secrets_absent_from_objects(servers, transport):
    response = transport.request('GET', servers[0] + '/echo',
                                 auth=CREDENTIALS, timeout=10)
    signer = transport.oauth_for(CREDENTIALS)
    texts = [repr(response), repr(response.request.headers),
             repr(signer), str(signer), repr(response.headers)]
    for secret in SECRETS:
        for text in texts:
            assert secret not in text


def test_oauth_signer_cached_per_credentials(transport):
    first = transport.oauth_for(CREDENTIALS)
    assert transport.oauth_for(tuple(CREDENTIALS)) is first
    assert isinstance(first, _mwcomms.OAuth1)


# -- header types and requests auth objects ---------------------------------

def test_header_bytes_values_match(servers, transport):
    url = servers[0] + '/echo'
    headers = {'X-Raw': b'caf\xe9 \xff', b'X-Name': 'plain'}
    expected = requests.get(url, headers=headers, timeout=10)
    actual = transport.request('GET', url, headers=headers, timeout=10)
    assert seen(actual) == seen(expected)
    assert seen(actual)['headers']['x-raw'] == 'caf\xe9 \xff'


def test_header_case_last_wins(servers, transport):
    url = servers[0] + '/echo'
    headers = {'X-Twice': 'first', 'x-twice': 'second'}
    expected = requests.get(url, headers=headers, timeout=10)
    actual = transport.request('GET', url, headers=headers, timeout=10)
    assert seen(actual) == seen(expected)
    assert seen(actual)['headers']['x-twice'] == 'second'


def test_header_bad_type_rejected(servers, transport):
    url = servers[0] + '/echo'
    with pytest.raises(requests.exceptions.InvalidHeader):
        requests.get(url, headers={'X-Count': 5}, timeout=10)
    with pytest.raises(requests.exceptions.InvalidHeader) as caught:
        transport.request('GET', url, headers={'X-Count': 98765},
                          timeout=10)
    assert 'X-Count' in str(caught.value)
    assert 'int' in str(caught.value)
    assert '98765' not in str(caught.value)


def oauthlib_accepts(data: dict, url_base: str) -> bool:
    """Verify a recorded request's HMAC-SHA1 signature with oauthlib."""
    from oauthlib.common import Request
    from oauthlib.oauth1.rfc5849 import signature
    headers = {key.title(): value for key, value in data['headers'].items()}
    request = Request(url_base + data['path'], data['method'],
                      data['body'] or None, headers)
    sources = dict(uri_query=urllib.parse.urlsplit(request.uri).query,
                   body=request.body, headers=request.headers)
    request.params = signature.collect_parameters(**sources)
    every = signature.collect_parameters(exclude_oauth_signature=False,
                                         **sources)
    request.signature = dict(every)['oauth_signature']
    return signature.verify_hmac_sha1(request, SECRETS[0], SECRETS[1])


def test_requests_oauthlib_auth_signs(servers, transport):
    from requests_oauthlib import OAuth1
    url = servers[0] + '/echo'
    auth = OAuth1(*CREDENTIALS)
    response = transport.request('POST', url, data={'title': 'A b'},
                                 auth=auth, timeout=10)
    data = response.json()
    assert response.status_code == 200
    assert data['headers']['authorization'].startswith('OAuth ')
    assert data['headers']['content-type'] == \
        'application/x-www-form-urlencoded'
    assert data['body'] == 'title=A+b'
    assert oauthlib_accepts(data, servers[0])


def test_requests_oauthlib_query_signature(servers, transport):
    from requests_oauthlib import OAuth1
    url = servers[0] + '/echo?x=1'
    auth = OAuth1(*CREDENTIALS, signature_type='query')
    response = transport.request('GET', url, auth=auth, timeout=10)
    data = response.json()
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(data['path']).query)
    assert 'authorization' not in data['headers']
    assert query['x'] == ['1']
    assert query['oauth_consumer_key'] == [CREDENTIALS[0]]
    assert 'oauth_signature' in query
    assert oauthlib_accepts(data, servers[0])


def test_response_elapsed_settable(servers, transport):
    response = transport.request('GET', servers[0] + '/echo', timeout=10)
    assert isinstance(response.elapsed, datetime.timedelta)
    assert response.elapsed is response.elapsed
    response.elapsed = datetime.timedelta(seconds=3)
    assert response.elapsed.total_seconds() == 3
