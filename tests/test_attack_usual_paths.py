"""The short path of Transport.request against its general path.

Transport.request sends the usual call (no params, files, json, cookies,
hooks, proxies, stream or cert) through Transport._send_usual.  Passing
``cookies={}`` forces the general path without changing the request, so
each case here is sent both ways and everything that the server receives
and the caller gets must be the same.
"""
from __future__ import annotations

import collections
import copy
import http.server
import json
import random
import re
import socket
import threading
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import requests
from requests.structures import CaseInsensitiveDict

from pywikibot_ext import _transport
from pywikibot_ext._transport import Transport

OAUTH_VARIABLE = re.compile(r'oauth_(nonce|timestamp|signature)="[^"]*"')
CASES = 160


def masked_header(name: str, value: str) -> str:
    """Return *value* with the per-request OAuth fields replaced."""
    if name.lower() == 'authorization' and value.startswith('OAuth '):
        return OAUTH_VARIABLE.sub(r'oauth_\1=X', value)
    return value


class RecordingHandler(http.server.BaseHTTPRequestHandler):
    """Record each request and echo it back. The query sets the reply.

    ``status`` sets the status, ``to`` the Location header, and each
    ``setcookie`` adds a Set-Cookie header.
    """

    protocol_version = 'HTTP/1.1'

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        length = int(self.headers.get('Content-Length') or 0)
        body = self.rfile.read(length) if length else b''
        record = {
            'method': self.command,
            'path': self.path,
            'headers': [(name, masked_header(name, value))
                        for name, value in self.headers.items()
                        if name.lower() != 'host'],
            'body': body.decode('latin-1'),
        }
        self.server.records.append(record)
        query = parse_qs(urlsplit(self.path).query)
        try:
            status = int(query.get('status', ['200'])[0])
        except ValueError:
            status = 200
        payload = json.dumps(record).encode()
        self.send_response(status)
        if 'to' in query:
            self.send_header('Location', query['to'][0])
        for cookie in query.get('setcookie', ()):
            self.send_header('Set-Cookie', cookie)
        self.send_header('Content-Type', 'application/json; charset=utf-8')
        self.send_header('Content-Length', str(len(payload)))
        self.end_headers()
        if self.command != 'HEAD':
            self.wfile.write(payload)

    do_POST = do_PUT = do_DELETE = do_OPTIONS = do_HEAD = do_PATCH = do_GET


class RecordingServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address):
        super().__init__(address, RecordingHandler)
        self.records = []


class RecordingServer6(RecordingServer):
    address_family = socket.AF_INET6


def start_server(server_class, address):
    server = server_class(address)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope='module')
def recorders():
    started = [start_server(RecordingServer, ('127.0.0.1', 0)),
               start_server(RecordingServer, ('127.0.0.1', 0))]
    hosts = [f'127.0.0.1:{started[0].server_port}',
             f'127.0.0.1:{started[1].server_port}',
             f'localhost:{started[0].server_port}']
    try:
        started.append(start_server(RecordingServer6, ('::1', 0)))
        hosts.append(f'[::1]:{started[2].server_address[1]}')
    except OSError:
        pass
    yield started, hosts
    for server in started:
        server.shutdown()
        server.server_close()


@pytest.fixture
def short_path_calls(monkeypatch):
    """Count the calls of _send_usual that sent the request."""
    counts = collections.Counter()
    original = Transport._send_usual

    def counting(self, *args):
        result = original(self, *args)
        counts['sent' if result is not None else 'declined'] += 1
        return result

    monkeypatch.setattr(Transport, '_send_usual', counting)
    return counts


def response_state(response):
    request = response.request
    return {
        'status': response.status_code,
        'reason': response.reason,
        'headers': sorted((name.lower(), value)
                          for name, value in response.headers.items()
                          if name.lower() != 'date'),
        'content': response.content,
        'text': response.text,
        'encoding': response.encoding,
        'url': response.url,
        'ok': response.ok,
        'history': [(hop.status_code, hop.url, hop.request.method,
                     sorted(hop.request.headers.items()), hop.request.body)
                    for hop in response.history],
        'request': (request.method, request.url,
                    sorted(request.headers.items()), request.body),
        'cookies': sorted(response.cookies.items()),
    }


def send_and_record(transport, servers, arguments):
    """Return (outcome, what each server received, the jar's cookies)."""
    for server in servers:
        server.records.clear()
    try:
        outcome = ('response', response_state(transport.request(**arguments)))
    except Exception as exc:  # compared, not swallowed
        outcome = ('exception', type(exc).__name__, str(exc))
    received = [[(record['method'], record['path'], sorted(record['headers']),
                  record['body']) for record in server.records]
                for server in servers]
    cookies = sorted((cookie.domain, cookie.path, cookie.name, cookie.value)
                     for cookie in transport.cookie_jar)
    return outcome, received, cookies


def masked(value) -> str:
    return OAUTH_VARIABLE.sub(r'oauth_\1=X', repr(value).replace('\\"', '"'))


class TupleSubclass(tuple):
    pass


PATHS = ['/echo', '/a%20b', '/w/index.php?title=Sp%C3%A9cial:X&action=raw',
         '/p;x=1/q', "/~u/!$&'()*+,;=:@", '/\u00e9', '/a b', '/x|y',
         '/q?x={1}', '/x#frag', '/x?y=1#f']
BODIES = [None, '', b'', 'abc', 'h\u00e9llo \u2603', b'\xff\x00bin',
          '\ud800', 'a=1&b=2', b'x' * 3000]
METHODS = ['GET', 'POST', 'HEAD', 'PUT', 'DELETE', 'OPTIONS', 'get',
           'Post', 'hEaD', 'patch']
STR_HEADERS = [('X-A', '1'), ('x-a', '2'), ('Accept', 'text/plain'),
               ('Content-Type', 'text/x-y'), ('User-Agent', 'UA/1'),
               ('X-Empty', ''), ('Authorization', 'Bearer abc'),
               ('Accept-Encoding', 'identity'), ('X-Space', ' a  b '),
               ('X-Latin', 'caf\u00e9')]
ODD_HEADERS = [('X-None', None), (b'X-Bytes', b'v\xe9'),
               ('X-B', b'bytesval'), (b'X-C', 'strval'),
               ('Cookie', 'manual=1'), ('Content-Length', '5')]
SET_COOKIES = ['sid=1', 'sid=2; Path=/', 'k=v; Max-Age=0',
               'dom=1; Domain=localhost']


def random_headers(rng):
    kind = rng.randrange(7)
    if kind == 0:
        return None
    if kind == 1:
        return {}
    if kind in (2, 3):
        return dict(rng.sample(STR_HEADERS, rng.randrange(len(STR_HEADERS))))
    items = rng.sample(STR_HEADERS + ODD_HEADERS,
                       rng.randrange(len(STR_HEADERS) + len(ODD_HEADERS)))
    if kind == 4:
        return CaseInsensitiveDict(items)
    if kind == 5:
        return collections.OrderedDict(items)
    return dict(items)


def random_auth(rng):
    kind = rng.randrange(7)
    if kind < 3:
        return None
    if kind == 3:
        return ('ck', 'cs', 'ak', 'as')
    if kind == 4:
        return ('user', 'p\u00e4ssw')
    if kind == 5:
        return TupleSubclass(('ck', 'cs', 'ak', 'as'))
    from requests_oauthlib import OAuth1
    return OAuth1('ck', 'cs', 'ak', 'as')


def random_url(rng, hosts):
    host = rng.choice(hosts)
    path = rng.choice(PATHS)
    if '#' in path:
        return f'http://{host}{path}'
    query = []
    if rng.random() < 0.5:
        other = rng.choice(hosts)
        target = rng.choice([
            f'http://{other}/echo?z=1', '/echo2', 'rel?a=b', f'//{other}/pr',
            f'http://{other}/echo?status={rng.choice([301, 307])}&to=/last'])
        query.append(f'status={rng.choice([301, 302, 303, 307, 308])}'
                     f'&to={quote(target, safe="")}')
    if rng.random() < 0.3:
        query.append('setcookie=' + quote(rng.choice(SET_COOKIES), safe=''))
    if rng.random() < 0.1:
        query.append(f'status={rng.choice([200, 404, 500])}')
    url = f'http://{host}{path}'
    if query:
        url += ('&' if '?' in path else '?') + '&'.join(query)
    if rng.random() < 0.1:
        url = url.replace('http://', 'http://us%40er:p%3Ass@', 1)
    return url


def new_transport():
    transport = Transport(requests.cookies.RequestsCookieJar())
    transport.trust_env = False
    return transport


@pytest.mark.parametrize('seed', [11, 12])
def test_random_requests_equivalent(recorders, short_path_calls, seed):
    servers, hosts = recorders
    rng = random.Random(seed)
    short, general = new_transport(), new_transport()
    for index in range(CASES):
        headers = random_headers(rng)
        arguments = {
            'method': rng.choice(METHODS),
            'url': random_url(rng, hosts),
            'data': rng.choice(BODIES),
            'auth': random_auth(rng),
            'allow_redirects': rng.random() < 0.7,
            'timeout': 10,
        }
        first = send_and_record(
            short, servers, dict(arguments, headers=copy.copy(headers)))
        second = send_and_record(
            general, servers,
            dict(arguments, headers=copy.copy(headers), cookies={}))
        assert masked(first) == masked(second), (index, arguments, headers)
    # Without these the comparison would not exercise the short path.
    assert short_path_calls['sent'] > CASES // 10
    assert short_path_calls['declined'] > CASES // 10


def test_redirect_chain_cookies(recorders, short_path_calls):
    servers, hosts = recorders
    last = f'http://{hosts[1]}/end?setcookie=c%3D3'
    middle = (f'http://{hosts[0]}/mid?status=307&to={quote(last, safe="")}'
              '&setcookie=b%3D2%3B%20Path%3D%2F')
    first = (f'http://{hosts[0]}/start?status=302'
             f'&to={quote(middle, safe="")}&setcookie=a%3D1%3B%20Path%3D%2F')
    results = []
    for extra in ({}, {'cookies': {}}):
        transport = new_transport()
        response = transport.request('POST', first, data='x=1',
                                     auth=('ck', 'cs', 'ak', 'as'),
                                     headers={'X-Trace': 't'},
                                     timeout=10, **extra)
        send_state = response_state(response)
        results.append(send_state)
        assert [hop.status_code for hop in response.history] == [302, 307]
        assert send_state['request'][0] == 'GET'
        sent = dict(response.request.headers)
        # The last hop changes port: the OAuth header does not follow
        # it, but cookies ignore ports, as in requests.
        assert 'Authorization' not in sent
        assert sent.get('Cookie') == 'a=1; b=2'
        names = sorted(cookie.name for cookie in transport.cookie_jar)
        assert names == ['a', 'b', 'c']
    assert masked(results[0]) == masked(results[1])
    assert short_path_calls['sent'] == 1


def test_cookie_from_jar_sent_back(recorders, short_path_calls):
    servers, hosts = recorders
    transport = new_transport()
    transport.request('GET', f'http://{hosts[0]}/set?setcookie=s%3D1',
                      timeout=10)
    servers[0].records.clear()
    transport.request('GET', f'http://{hosts[0]}/again', timeout=10)
    received = dict(servers[0].records[-1]['headers'])
    assert received.get('Cookie') == 's=1'
    assert short_path_calls['sent'] == 2


def test_cross_host_redirect_drops_oauth(recorders, short_path_calls):
    servers, hosts = recorders
    target = f'http://{hosts[1]}/other'
    for server in servers:
        server.records.clear()
    new_transport().request(
        'GET', f'http://{hosts[0]}/r?status=301&to={quote(target, safe="")}',
        auth=('ck', 'cs', 'ak', 'as'), timeout=10)
    first = dict(servers[0].records[-1]['headers'])
    second = dict(servers[1].records[-1]['headers'])
    assert first['Authorization'].startswith('OAuth ')
    assert 'Authorization' not in second
    assert short_path_calls['sent'] == 1


def test_short_path_cache_cleared(recorders, monkeypatch):
    """Filling the URL caches past their size clears them, and the URLs
    sent after that are still sent as given."""
    servers, hosts = recorders
    transport = new_transport()
    monkeypatch.setattr(_transport, '_safe_urls', {})
    monkeypatch.setattr(_transport, '_netlocs', {})
    for index in range(520):
        _transport._safe_urls[f'http://{hosts[0]}/fill{index}'] = True
        _transport._netlocs[f'http://{hosts[0]}/fill{index}'] = 'x'
    servers[0].records.clear()
    url = f'http://{hosts[0]}/after?n=1'
    response = transport.request('GET', url, auth=('ck', 'cs', 'ak', 'as'),
                                 timeout=10)
    assert response.url == url
    assert servers[0].records[-1]['path'] == '/after?n=1'
    assert len(_transport._safe_urls) < 520
    assert _transport._netlocs[url] == hosts[0]
