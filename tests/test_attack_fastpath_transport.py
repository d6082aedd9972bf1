"""The usual-case shortcuts of the pywikibot transport, compared with
requests: body and auth types, URL forms, and environment variables
that change between requests."""
from __future__ import annotations

import collections
import http.server
import json
import socket
import threading
from urllib.parse import urlsplit

import pytest
import requests

import servers

from pywikibot_ext._environ import getenv, stored_value_reader
from pywikibot_ext._transport import Transport, _netloc

CLIENT_HEADERS = {'user-agent', 'accept-encoding', 'connection', 'accept'}
PROXY_NAMES = ('http_proxy', 'HTTP_PROXY', 'https_proxy', 'HTTPS_PROXY',
               'all_proxy', 'ALL_PROXY', 'no_proxy', 'NO_PROXY')


class EchoHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        length = int(self.headers.get('Content-Length') or 0)
        body = self.rfile.read(length) if length else b''
        payload = json.dumps({
            'method': self.command,
            'path': self.path,
            'headers': {k.lower(): v for k, v in self.headers.items()
                        if k.lower() not in CLIENT_HEADERS},
            'body': body.decode('latin-1'),
        }).encode()
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_POST = do_PUT = do_GET


class V6Server(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6


def start(server_class, address):
    server = server_class(address, EchoHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope='module')
def echo():
    server = start(http.server.ThreadingHTTPServer, ('127.0.0.1', 0))
    yield f'127.0.0.1:{server.server_port}'
    server.shutdown()
    server.server_close()


@pytest.fixture(scope='module')
def echo6():
    try:
        server = start(V6Server, ('::1', 0))
    except OSError:
        pytest.skip('no IPv6 loopback')
    yield f'[::1]:{server.server_address[1]}'
    server.shutdown()
    server.server_close()


@pytest.fixture
def transport(monkeypatch):
    for name in PROXY_NAMES:
        monkeypatch.delenv(name, raising=False)
    instance = Transport()
    yield instance
    instance.close()


def compare(transport, method, url, **kwargs):
    ours = transport.request(method, url, timeout=10, **kwargs).json()
    with requests.Session() as session:
        stock = session.request(method, url, timeout=10, **kwargs).json()
    return ours, stock


class Text(str):
    pass


class Data(bytes):
    pass


BODIES = {
    'str': 'a=1&b=%C3%BC',
    'str-subclass': Text('x=1'),
    'empty-str': '',
    'bytes': b'\x00\xffraw',
    'bytes-subclass': Data(b'sub'),
    'empty-bytes': b'',
    'bytearray': bytearray(b'array body'),
}


@pytest.mark.parametrize('case', sorted(BODIES))
def test_body_types_like_requests(echo, transport, case):
    ours, stock = compare(transport, 'POST', f'http://{echo}/b',
                          data=BODIES[case])
    assert ours['body'] == stock['body']
    assert ours['headers'].get('content-type') == stock['headers'].get(
        'content-type')
    assert ours['headers'].get('content-length') == stock['headers'].get(
        'content-length')


OAuthTokens = collections.namedtuple('OAuthTokens', 'ck cs ak as_')
BasicPair = collections.namedtuple('BasicPair', 'user password')


def test_auth_tuple_subclasses(echo, transport):
    url = f'http://{echo}/auth'
    tokens = ('ckey', 'csecret', 'akey', 'asecret')
    plain = transport.request('GET', url, auth=tokens, timeout=10).json()
    named = transport.request('GET', url, auth=OAuthTokens(*tokens),
                              timeout=10).json()
    assert plain['headers']['authorization'].startswith('OAuth ')
    assert named['headers']['authorization'].startswith('OAuth ')
    assert 'csecret' not in named['headers']['authorization']
    ours, stock = compare(transport, 'GET', url,
                          auth=BasicPair('user', 'p\u00e4ss'))
    assert ours['headers']['authorization'] == stock['headers'][
        'authorization']
    ours, stock = compare(transport, 'GET', url, auth=('user', 'pw'))
    assert ours['headers']['authorization'] == stock['headers'][
        'authorization']


def test_oauth_list_auth_rejected(echo, transport):
    with pytest.raises(TypeError):
        transport.request('GET', f'http://{echo}/', timeout=10,
                          auth=['ckey', 'csecret', 'akey', 'asecret'])


# Not '/a/../b': the client sends the path as given, because the OAuth
# signature covers it, while urllib3 removes dot segments.
@pytest.mark.parametrize('suffix', ['?x=1', '#frag', '/p?x=1#f', ''])
def test_url_after_host_like_requests(echo, transport, suffix):
    ours, stock = compare(transport, 'GET', f'http://{echo}{suffix}')
    assert ours['path'] == stock['path']
    tokens = ('ckey', 'csecret', 'akey', 'asecret')
    signed = transport.request('GET', f'http://{echo}{suffix}', timeout=10,
                               auth=tokens).json()
    assert signed['path'] == stock['path']
    assert signed['headers']['authorization'].startswith('OAuth ')


def test_url_userinfo_like_requests(echo, transport):
    url = f'http://user:pw@{echo}/u'
    ours, stock = compare(transport, 'GET', url)
    assert ours['headers'].get('authorization') == stock['headers'].get(
        'authorization')
    assert ours['headers']['host'] == stock['headers']['host']


def test_ipv6_literal_like_requests(echo6, transport):
    url = f'http://{echo6}/v6?q=1'
    ours, stock = compare(transport, 'GET', url)
    assert ours['path'] == stock['path']
    assert ours['headers']['host'] == stock['headers']['host']
    signed = transport.request('GET', url, timeout=10,
                               auth=('ck', 'cs', 'ak', 'as')).json()
    assert signed['headers']['authorization'].startswith('OAuth ')


@pytest.mark.parametrize('url', [
    'http://user:pw@127.0.0.1:8080/w',
    'http://user@127.0.0.1/w',
    'http://u:p%40x@127.0.0.1:1/',
    'http://[::1]:8080/w/api.php',
    'http://[::1]',
    'https://127.0.0.1:443?x=1',
    'https://127.0.0.1#f',
    'HTTP://Example.ORG:80/x',
    'http://127.0.0.1:8080;params/x',
    'http://127.0.0.1:8080%2Fx/y',
    'http://127.0.0.1:8080@evil/x',
    'http://a@b@127.0.0.1/',
    'http://u:p/x@127.0.0.1/',
    'http://127.0.0.1:8080',
    'http://',
    'http:///path',
])
def test_netloc_like_urlsplit(url):
    assert _netloc(url) == urlsplit(url).netloc


def test_getenv_set_delete_set(monkeypatch):
    name = 'MWCOMMS_ATTACK_ENV'
    monkeypatch.setenv(name, 'first')
    assert getenv(name) == 'first'
    monkeypatch.delenv(name)
    assert getenv(name) is None
    monkeypatch.setenv(name, 'first')
    assert getenv(name) == 'first'
    monkeypatch.setenv(name, 'second')
    assert getenv(name) == 'second'
    monkeypatch.setenv(name, '')
    assert getenv(name) == ''
    get, key = stored_value_reader(name)
    stored = get(key)
    monkeypatch.setenv(name, 'third')
    assert get(key) is not stored
    assert getenv(name) == 'third'
    monkeypatch.delenv(name)
    assert get(key) is None
    assert getenv(name) is None


def fetch_outcome(call) -> str:
    try:
        call()
    except requests.exceptions.SSLError:
        return 'ssl-error'
    except (requests.exceptions.ConnectionError, OSError):
        return 'error'
    return 'ok'


def test_ca_bundle_env_changes(https_server, certificates, transport,
                               monkeypatch, tmp_path):
    url = https_server.url('/echo')
    ca = str(certificates['ca'])
    # The CA of another set of certificates.  Not the server's own
    # certificate: libcurl accepts it as a trust anchor, Python's ssl
    # module does not.
    other = servers.make_certificates(tmp_path)['ca']
    states = [
        {'REQUESTS_CA_BUNDLE': ca},
        {'REQUESTS_CA_BUNDLE': str(other)},
        {},
        {'CURL_CA_BUNDLE': ca},
        {'REQUESTS_CA_BUNDLE': '', 'CURL_CA_BUNDLE': ca},
        {'REQUESTS_CA_BUNDLE': str(other), 'CURL_CA_BUNDLE': ca},
        {'REQUESTS_CA_BUNDLE': ca},
        {},
    ]
    for state in states:
        for name in ('REQUESTS_CA_BUNDLE', 'CURL_CA_BUNDLE'):
            if name in state:
                monkeypatch.setenv(name, state[name])
            else:
                monkeypatch.delenv(name, raising=False)
        ours = fetch_outcome(lambda: transport.request('GET', url,
                                                       timeout=10))
        with requests.Session() as session:
            stock = fetch_outcome(lambda: session.get(url, timeout=10))
        assert ours == stock, state
        assert ours in ('ok', 'ssl-error'), state


NO_PROXY_CASES = [None, '', '127.0.0.1', '*', 'localhost', 'example.org',
                  '127.0.0.1:1', '.0.0.1', '127.0.0.0/8', ' 127.0.0.1 ,x']


@pytest.mark.parametrize('upper', [False, True])
@pytest.mark.parametrize('proxy_set', [False, True])
def test_proxy_env_like_requests(echo, transport, forward_proxy,
                                 monkeypatch, upper, proxy_set):
    url = f'http://{echo}/proxy'
    for no_proxy in NO_PROXY_CASES:
        for name in PROXY_NAMES:
            monkeypatch.delenv(name, raising=False)
        if proxy_set:
            monkeypatch.setenv('HTTP_PROXY' if upper else 'http_proxy',
                               forward_proxy.url())
        if no_proxy is not None:
            monkeypatch.setenv('NO_PROXY' if upper else 'no_proxy',
                               no_proxy)
        forward_proxy.clear()
        transport.request('GET', url, timeout=10)
        ours = len(forward_proxy.seen())
        forward_proxy.clear()
        with requests.Session() as session:
            session.get(url, timeout=10)
        stock = len(forward_proxy.seen())
        assert ours == stock, no_proxy


@pytest.mark.parametrize('no_proxy', ['127.0.0.1', '*', 'example.org'])
def test_explicit_proxies_with_env_no_proxy(echo, transport, forward_proxy,
                                            monkeypatch, no_proxy):
    url = f'http://{echo}/proxy'
    monkeypatch.setenv('no_proxy', no_proxy)
    proxies = {'http': forward_proxy.url()}
    forward_proxy.clear()
    transport.request('GET', url, timeout=10, proxies=proxies)
    ours = len(forward_proxy.seen())
    forward_proxy.clear()
    with requests.Session() as session:
        session.get(url, timeout=10, proxies=proxies)
    stock = len(forward_proxy.seen())
    assert ours == stock
    forward_proxy.clear()
    transport.request('GET', url, timeout=10,
                      proxies={**proxies, 'no_proxy': '127.0.0.1'})
    ours = len(forward_proxy.seen())
    forward_proxy.clear()
    with requests.Session() as session:
        session.get(url, timeout=10,
                    proxies={**proxies, 'no_proxy': '127.0.0.1'})
    assert ours == len(forward_proxy.seen())
