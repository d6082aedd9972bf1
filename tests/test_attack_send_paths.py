"""Attacks on the C short path of Transport.request and what it relies
on: Client.requests_send, the Cookie header cache, the environment
checks kept until os.environ changes, and the options that request_many
keeps on its easy handles.

Short-path cases are sent once through Transport._send_usual and once
through the general path (headers given as a CaseInsensitiveDict), and
both must send and return the same.  Cookie cases compare the header
sent with http.cookiejar's own add_cookie_header on a twin jar that
receives the same changes.
"""
from __future__ import annotations

import email.message
import gc
import http.cookiejar
import http.server
import json
import os
import sys
import threading
import time
import urllib.request
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from requests.structures import CaseInsensitiveDict

import _mwcomms
from cookie_helpers import make_cookie
from pywikibot_ext import _cookies
from pywikibot_ext._cookies import jar_cookie_header
from pywikibot_ext._proxy import _proxy_environment_set
from pywikibot_ext._response import Headers, Response
from pywikibot_ext._transport import Transport, _ca_bundle


@pytest.fixture
def pwb_jar(pwb):
    """pywikibot's own cookie jar class.  pywikibot may only be imported
    through the pwb fixture, which writes its configuration first."""
    from pywikibot.comms.http import PywikibotCookieJar
    return PywikibotCookieJar


SECRET = 'S3cretCookieValue'


def echoed(response) -> tuple[dict, dict]:
    """Return the echo route's record and its headers by lower-case
    name."""
    data = json.loads(response.content)
    return data, {name.lower(): value for name, value in data['headers']}


@pytest.fixture
def transport():
    instance = Transport()
    yield instance
    instance.close()


@pytest.fixture
def client():
    with _mwcomms.Client(cookies=False) as instance:
        yield instance


@pytest.fixture(autouse=True)
def empty_cookie_cache():
    _cookies._headers.clear()
    yield
    _cookies._headers.clear()


# -- Client.requests_send ---------------------------------------------


def send_both(transport, url, method, headers, data):
    """Send a request through the short path and the general path and
    return, for each, what the caller and the server saw."""
    outcomes = []
    for general in (False, True):
        kwargs = {'data': data}
        if general:
            kwargs['headers'] = (CaseInsensitiveDict(headers)
                                 if headers is not None else None)
        else:
            kwargs['headers'] = headers
        try:
            response = transport.request(method, url, **kwargs)
        except (ValueError, UnicodeError, requests.RequestException) as exc:
            outcomes.append(('raised', type(exc).__name__))
            continue
        request = response.request
        data_sent, _ = (echoed(response) if response.content
                        else ({'method': None, 'body': None,
                               'headers': []}, {}))
        outcomes.append((
            request.method, type(request.method), dict(request.headers),
            request.body, data_sent['method'], data_sent['body'],
            [pair for pair in data_sent['headers']
             if pair[0].lower() != 'host'],
        ))
    return outcomes


@pytest.mark.parametrize('method, headers, data', [
    ('get', {}, None),
    ('GET', {'X-A': '1', 'x-a': '2', 'X-A ': '3'}, None),
    ('GET', {'X-\u00e9': '1'}, None),
    ('GET', {'X-A': '\u00e9t\u00e9'}, None),
    ('GET', {'X-A': '\u20ac'}, None),
    # 'K' (KELVIN SIGN) lowers to 'k': 'Coo\u212aie'.lower() == 'cookie'.
    ('GET', {'Coo\u212aie': 'z=1'}, None),
    ('GET', {'Content-\u212aength': '0'}, None),
    ('POST', {'X-A': 'v'}, 'a\ud800b'),
    ('HEAD', {'X-A': 'v'}, 'a\ud800b'),
    ('HEAD', None, 'body'),
    ('GET', {'X-Big': 'v' * 20000}, None),
    ('GET', {'X-A': 'a\r\nInjected: 1'}, None),
    ('GET', {'': 'v'}, None),
    ('GET', {'X-A': ''}, None),
    ('POST', {'Content-Type': ''}, 'x'),
    ('\u0131nfo', None, None),
    ('PATCH', None, ''),
    ('DELETE', None, b''),
])
def test_short_path_matches_general(transport, http_server, method,
                                    headers, data):
    short, general = send_both(transport, http_server.url('/echo'), method,
                               headers, data)
    assert short == general


class UpperPost(str):

    def upper(self):
        return 'POST'


@pytest.mark.parametrize('method', [
    UpperPost('GET'), UpperPost('get'), type('Plain', (str,), {})('GET'),
])
def test_method_subclass_sends_nothing(client, raw_servers, method):
    # The general path calls the subclass's upper(); the short path
    # leaves such a method to it.
    server = raw_servers(lambda server, connection, index: None)
    result = client.requests_send(method, server.url('/'), None, None, 5,
                                  True, None, None, Response, Headers)
    assert result is None
    assert server.connections == 0


def test_store_survives_finalizer(client, http_server):
    """A garbage collection inside requests_send whose finalizer clears
    the headers dict must not free the name and value in use."""
    headers = {}
    ran = []

    class Clearer:
        def __del__(self):
            ran.append(phase[0])
            headers.clear()
            # Allocations that may take the memory just freed.
            ran.append([''.join(['Z', str(i)]) * 3 for i in range(50)])

    phase = ['before']
    name = ''.join(['X-', 'Held'])
    value = ''.join(['value-', 'held'])
    headers[name] = value
    headers[''.join(['X-', 'Second'])] = ''.join(['second'])
    expected_name = 'X-Held'
    expected_value = 'value-held'
    del name, value
    url = http_server.url('/echo')
    old_threshold = gc.get_threshold()
    gc.collect()
    # The dict free list serves the store, so the first collection starts
    # at the 2-tuple of the first header, once that free list is empty.
    spare_dicts = [{} for _ in range(8)]
    del spare_dicts
    tuples = [(i, i) for i in range(5000)]
    victim = Clearer()
    victim.cycle = [victim]
    del victim
    try:
        gc.set_threshold(1)
        phase[0] = 'call'
        result = client.requests_send('GET', url, headers, None, 10, True,
                                      None, None, Response, Headers)
        phase[0] = 'after'
    finally:
        gc.set_threshold(*old_threshold)
    del tuples
    gc.collect()
    assert ran and ran[0] == 'call', 'no collection ran inside the call'
    response, _, store = result
    assert store == {'x-held': (expected_name, expected_value)}
    _, sent = echoed(response)
    assert sent['x-held'] == expected_value
    assert 'x-second' not in sent


def test_send_keeps_refcounts(client, http_server, closed_port):
    method = ''.join(['po', 'st'])
    url = ''.join([http_server.url('/echo'), '?refs'])
    bad_url = f'http://127.0.0.1:{closed_port}/'
    name = ''.join(['X-', 'Name'])
    value = ''.join(['va', 'lue'])
    headers = {name: value}
    body = ''.join(['b\u00f6', 'dy'])
    lone = ''.join(['a', '\ud800'])
    cookie = ''.join(['c=', '1'])
    signer = _mwcomms.OAuth1('ck', 'cs', 'tk', 'ts')
    watched = [method, url, bad_url, name, value, headers, body, lone,
               cookie, signer, Response, Headers]

    def run():
        for target in (url, bad_url):
            for data in (body, lone, None, b'raw'):
                for auth in (signer, None):
                    try:
                        sent = client.requests_send(
                            method, target, headers, data, 10, True, auth,
                            cookie, Response, Headers)
                    except _mwcomms.Error:
                        continue
                    if sent is not None:
                        assert sent[0].request.headers['Cookie'] == cookie
        with pytest.raises(ValueError):
            client.requests_send(method, url, {name: 'a\nb'}, body, 10,
                                 True, None, cookie, Response, Headers)
        with pytest.raises(TypeError):
            client.requests_send(method, url, headers, body, 10, True,
                                 None, 3, Response, Headers)
        assert client.requests_send(method, url, {name: value,
                                                  'Cookie': cookie},
                                    body, 10, True, None, None, Response,
                                    Headers) is None

    run()
    gc.collect()
    before = [sys.getrefcount(item) for item in watched]
    for _ in range(5):
        run()
    gc.collect()
    after = [sys.getrefcount(item) for item in watched]
    assert after == before


def mid_transfer_close(server, connection, index):
    connection.recv(65536)
    connection.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n'
                       b'partial')


def test_error_request_matches_general(raw_servers):
    server = raw_servers(mid_transfer_close)
    url = server.url('/w/api.php')
    jar = http.cookiejar.CookieJar()
    jar.set_cookie(make_cookie('session', SECRET, domain='127.0.0.1'))
    transport = Transport(cookie_jar=jar)
    headers = {'X-Api': 'v', 'authorization': 'Bearer ' + SECRET}
    seen = []
    try:
        for general in (False, True):
            sent_headers = (CaseInsensitiveDict(headers) if general
                            else headers)
            with pytest.raises(requests.ConnectionError) as caught:
                transport.request('post', url, data='p=\u00e9',
                                  headers=sent_headers)
            request = caught.value.request
            seen.append((str(caught.value), request.method, request.url,
                         list(request.headers.items()), request.body))
    finally:
        transport.close()
    short, general = seen
    assert short == general
    assert short[1] == 'POST'
    assert short[3] == [('X-Api', 'v'),
                        ('authorization', 'Bearer ' + SECRET),
                        ('Cookie', 'session=' + SECRET)]
    assert short[4] == 'p=\u00e9'
    assert SECRET not in short[0]


def slow_close(server, connection, index):
    server.record(connection.recv(65536))
    time.sleep(0.5)


def test_error_request_headers_as_sent(raw_servers):
    # Another thread adds a header while the transfer runs: the
    # exception's request must show the headers that were sent.
    server = raw_servers(slow_close)
    headers = {'X-Early': '1'}
    timer = threading.Timer(0.2, headers.__setitem__, ('X-Late', 'late'))
    transport = Transport()
    try:
        timer.start()
        with pytest.raises(requests.ConnectionError) as caught:
            transport.request('GET', server.url('/'), headers=headers)
    finally:
        timer.join()
        transport.close()
    assert 'X-Late' in headers
    assert b'X-Late' not in server.requests[0]
    assert dict(caught.value.request.headers) == {'X-Early': '1'}


# -- Cookie header cache ----------------------------------------------

URL = 'https://wiki.test/w/api.php'


def stock_header(jar, url=URL):
    request = urllib.request.Request(url)
    jar.add_cookie_header(request)
    return request.unredirected_hdrs.get('Cookie')


@pytest.mark.realwiki
def test_jar_instance_override_seen(pwb_jar):
    jar = pwb_jar()
    jar.set_cookie(make_cookie('session', 'abc'))
    assert jar_cookie_header(jar, URL)[1] == 'session=abc'

    def own_header(request):
        request.add_unredirected_header('Cookie', 'own=1')

    with mock.patch.object(jar, 'add_cookie_header',
                           side_effect=own_header) as patched:
        assert jar_cookie_header(jar, URL)[1] == 'own=1'
        assert jar_cookie_header(jar, URL)[1] == 'own=1'
        assert patched.call_count == 2
    assert jar_cookie_header(jar, URL)[1] == 'session=abc'


@pytest.mark.realwiki
def test_policy_instance_override_called(pwb_jar):
    jar = pwb_jar()
    jar.set_cookie(make_cookie('session', 'abc'))
    assert jar_cookie_header(jar, URL)[1] == 'session=abc'
    answers = iter([False, True, False])
    jar._policy.return_ok = lambda cookie, request: next(answers)
    assert jar_cookie_header(jar, URL)[1] is None
    assert jar_cookie_header(jar, URL)[1] == 'session=abc'
    assert jar_cookie_header(jar, URL)[1] is None
    del jar._policy.return_ok
    assert jar_cookie_header(jar, URL)[1] == 'session=abc'


class FakeReply:

    """A reply whose Set-Cookie headers http.cookiejar reads."""

    def __init__(self, pairs):
        self.message = email.message.Message()
        for name, value in pairs:
            self.message[name] = value

    def info(self):
        return self.message


@pytest.mark.parametrize('url', [
    'http://wiki.test/w/api.php', 'https://wiki.test/w/api.php',
    'http://wiki.test:8080/w/api.php', 'https://b.wiki.test/wiki/X',
    'http://other.test/', 'http://127.0.0.1:8080/w/',
])
@pytest.mark.realwiki
def test_cookie_policy_changes(pwb_jar, url):
    jar = pwb_jar()
    twin = pwb_jar()
    cookies = [
        make_cookie('plain', '1'),
        make_cookie('dom', '2', domain='.wiki.test'),
        make_cookie('deep', '3', path='/w'),
        make_cookie('sec', '4', secure=True),
        make_cookie('port', '5', version=1, port='8080'),
        make_cookie('v1', '6', version=1, domain='.wiki.test'),
        make_cookie('ip', '7', domain='127.0.0.1'),
    ]
    changes = [
        ('set_blocked_domains', (['.wiki.test'],)),
        ('set_blocked_domains', ([],)),
        ('set_allowed_domains', (['b.wiki.test'],)),
        ('set_allowed_domains', (None,)),
        ('secure_protocols', ('https', 'http')),
        ('secure_protocols', ('https',)),
        ('rfc2965', True),
        ('strict_ns_domain',
         http.cookiejar.DefaultCookiePolicy.DomainStrict),
        ('strict_ns_domain', 0),
        ('rfc2965', False),
    ]
    for cookie in cookies:
        jar.set_cookie(cookie)
        twin.set_cookie(cookie)
    assert jar_cookie_header(jar, url)[1] == stock_header(twin, url)
    for attribute, argument in changes:
        for policy in (jar._policy, twin._policy):
            if attribute.startswith('set_'):
                getattr(policy, attribute)(*argument)
            else:
                setattr(policy, attribute, argument)
        assert jar_cookie_header(jar, url)[1] == stock_header(twin, url), \
            attribute


@pytest.mark.realwiki
def test_session_and_expired_cleared(pwb_jar, monkeypatch):
    clock = [2_000_000_000.5]
    monkeypatch.setattr(time, 'time', lambda: clock[0])
    jar = pwb_jar()
    twin = pwb_jar()
    for cookie in (make_cookie('session', 's'),
                   make_cookie('soon', '1', expires=2_000_000_002),
                   make_cookie('later', '2', expires=2_000_000_100)):
        jar.set_cookie(cookie)
        twin.set_cookie(cookie)
    assert jar_cookie_header(jar, URL)[1] == stock_header(twin, URL)
    for step in (0.25, 0.25, 0.5, 0.5, 0.5, 1.0):
        clock[0] += step
        assert jar_cookie_header(jar, URL)[1] == stock_header(twin, URL)
    jar.clear_session_cookies()
    twin.clear_session_cookies()
    assert jar_cookie_header(jar, URL)[1] == stock_header(twin, URL) \
        == 'later=2'
    clock[0] = 2_000_000_100.0
    jar.clear_expired_cookies()
    twin.clear_expired_cookies()
    assert jar_cookie_header(jar, URL)[1] == stock_header(twin, URL) is None


@pytest.mark.realwiki
def test_save_load_round_trip(pwb_jar, tmp_path):
    # PywikibotCookieJar.load takes an account name and reads from
    # pywikibot's data directory, so the file is read with the method of
    # LWPCookieJar that it wraps.
    path = str(tmp_path / 'pywikibot.lwp')
    jar = pwb_jar(path)
    twin = http.cookiejar.LWPCookieJar(path)
    expires = int(time.time()) + 3600
    for each in (jar, twin):
        each.set_cookie(make_cookie('kept', '1', expires=expires))
    assert jar_cookie_header(jar, URL)[1] == 'kept=1'
    jar.save()
    for each in (jar, twin):
        each.set_cookie(make_cookie('unsaved', '2'))
    assert jar_cookie_header(jar, URL)[1] == stock_header(twin, URL)
    for each in (jar, twin):
        each.clear()
    assert jar_cookie_header(jar, URL)[1] is None
    for each in (jar, twin):
        http.cookiejar.LWPCookieJar.load(each, path)
    assert jar_cookie_header(jar, URL)[1] == stock_header(twin, URL)
    for each in (jar, twin):
        each.set_cookie(make_cookie('unsaved', '3'))
    assert jar_cookie_header(jar, URL)[1] == stock_header(twin, URL)
    # revert() replaces the jar's cookie dict with the file's cookies.
    twin.revert()
    jar._cookies = twin._cookies
    assert jar_cookie_header(jar, URL)[1] == stock_header(twin, URL) \
        == 'kept=1'


@pytest.mark.realwiki
def test_extract_from_replies(pwb_jar):
    jar = pwb_jar()
    twin = pwb_jar()
    replies = [
        ('https://wiki.test/w/api.php', [('Set-Cookie', 'a=1; Path=/')]),
        ('https://wiki.test/w/api.php',
         [('Set-Cookie', 'b=2; Path=/w; Secure')]),
        ('http://wiki.test:8080/', [
            ('Set-Cookie2', 'c=3; Version=1; Port="8080"')]),
        ('https://wiki.test/', [('Set-Cookie', 'a=; Max-Age=0; Path=/')]),
        ('https://x.wiki.test/', [
            ('Set-Cookie', 'd=4; Domain=.wiki.test; Path=/')]),
        ('https://wiki.test/', [
            ('Set-Cookie',
             'b=; Path=/w; Expires=Thu, 01 Jan 1970 00:00:00 GMT')]),
    ]
    urls = ['https://wiki.test/w/api.php', 'http://wiki.test/w/api.php',
            'http://wiki.test:8080/w/', 'https://y.wiki.test/']
    for url, headers in replies:
        for each in (jar, twin):
            each.extract_cookies(FakeReply(headers),
                                 urllib.request.Request(url))
        for target in urls:
            assert (jar_cookie_header(jar, target)[1]
                    == stock_header(twin, target)), (url, target)


@pytest.mark.realwiki
def test_cookie_threads_race(pwb_jar):
    jar = pwb_jar()
    twin = pwb_jar()
    stop = threading.Event()

    def writer():
        count = 0
        while not stop.is_set() and count < 2000:
            cookie = make_cookie(f'n{count % 5}', str(count),
                                 path=('/', '/w')[count % 2])
            jar.set_cookie(cookie)
            count += 1

    worker = threading.Thread(target=writer)
    worker.start()
    try:
        for _ in range(2000):
            jar_cookie_header(jar, URL)
    finally:
        stop.set()
        worker.join()
    for cookie in jar:
        twin.set_cookie(cookie)
    assert jar_cookie_header(jar, URL)[1] == stock_header(twin, URL)


class CookieHandler(http.server.BaseHTTPRequestHandler):

    """Echo the Cookie header; each ``set`` query value becomes a
    Set-Cookie header of the reply."""

    protocol_version = 'HTTP/1.1'

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        query = parse_qs(urlsplit(self.path).query)
        payload = json.dumps({'cookie': self.headers.get('Cookie')}).encode()
        self.send_response(200)
        for value in query.get('set', ()):
            self.send_header('Set-Cookie', value)
        self.send_header('Content-Length', str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def cookie_server():
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0),
                                             CookieHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.realwiki
def test_transport_cookies_follow_replies(pwb_jar, cookie_server,
                                          monkeypatch):
    clock = [2_000_000_000.5]
    monkeypatch.setattr(time, 'time', lambda: clock[0])
    base = f'http://127.0.0.1:{cookie_server.server_address[1]}'
    jar = pwb_jar()
    twin = pwb_jar()
    transport = Transport(cookie_jar=jar)
    steps = [
        ('/w/api.php', ['a=1; Path=/'], 0),
        ('/w/api.php', ['b=2; Path=/w; Max-Age=3'], 0),
        ('/w/api.php', [], 1),
        ('/other', [], 0),
        ('/w/api.php', ['a=changed; Path=/'], 0),
        ('/w/api.php', [], 2.5),
        ('/w/api.php', ['s=1; Path=/; Secure'], 0),
        ('/w/api.php', ['a=; Path=/; Max-Age=0'], 0),
        ('/w/api.php', [], 0),
        ('/w/index.php', ['c=3; Path=/w; Max-Age=1'], 0),
        ('/w/api.php', [], 1),
        ('/w/api.php', [], 0),
    ]
    try:
        for path, set_cookies, wait in steps:
            clock[0] += wait
            query = '&'.join('set=' + urllib.request.quote(value)
                             for value in set_cookies)
            url = base + path + ('?' + query if query else '')
            expected = stock_header(twin, url)
            response = transport.request('GET', url)
            assert json.loads(response.content)['cookie'] == expected, url
            reply = FakeReply([('Set-Cookie', value)
                               for value in set_cookies])
            twin.extract_cookies(reply, urllib.request.Request(url))
    finally:
        transport.close()


# -- environment checks -----------------------------------------------

PROXY_NAMES = ('http_proxy', 'https_proxy', 'all_proxy', 'HTTP_PROXY',
               'HTTPS_PROXY', 'ALL_PROXY', 'no_proxy', 'NO_PROXY')


def environment_truth():
    proxies = bool(urllib.request.getproxies_environment())
    bundle = (os.environ.get('REQUESTS_CA_BUNDLE')
              or os.environ.get('CURL_CA_BUNDLE'))
    return proxies, bundle


@pytest.fixture
def clean_environment():
    with mock.patch.dict(os.environ):
        for name in PROXY_NAMES + ('REQUESTS_CA_BUNDLE', 'CURL_CA_BUNDLE'):
            os.environ.pop(name, None)
        yield


def test_environment_changes_seen(clean_environment):
    changes = [
        lambda: os.environ.__setitem__('http_proxy', 'http://127.0.0.1:1'),
        lambda: os.environ.__setitem__('http_proxy', 'http://127.0.0.1:1'),
        lambda: os.environ.__delitem__('http_proxy'),
        lambda: os.environ.__setitem__('REQUESTS_CA_BUNDLE', '/tmp/a.pem'),
        lambda: os.environ.__setitem__('REQUESTS_CA_BUNDLE', '/tmp/b.pem'),
        lambda: os.environ.update({'HTTPS_PROXY': 'http://127.0.0.1:2',
                                   'CURL_CA_BUNDLE': '/tmp/c.pem'}),
        lambda: os.environ.pop('HTTPS_PROXY'),
        lambda: os.environ.setdefault('ALL_PROXY', 'http://127.0.0.1:3'),
        lambda: os.environ.__setitem__('REQUESTS_CA_BUNDLE', ''),
        lambda: os.environ.__ior__({'all_proxy': 'http://127.0.0.1:4'}),
        os.environ.clear,
    ]
    assert (_proxy_environment_set(), _ca_bundle()) == environment_truth()
    for number, change in enumerate(changes):
        change()
        assert (_proxy_environment_set(), _ca_bundle()) \
            == environment_truth(), number


def test_environment_patch_dict(clean_environment):
    assert _proxy_environment_set() is False
    with mock.patch.dict(os.environ, {'https_proxy': 'http://127.0.0.1:5',
                                      'CURL_CA_BUNDLE': '/tmp/d.pem'}):
        assert _proxy_environment_set() is True
        assert _ca_bundle() == '/tmp/d.pem'
        with mock.patch.dict(os.environ, clear=True):
            assert _proxy_environment_set() is False
            assert _ca_bundle() is None
        assert _proxy_environment_set() is True
    assert _proxy_environment_set() is False
    assert _ca_bundle() is None


def test_environment_thread_changes(clean_environment):
    stop = threading.Event()

    def flip():
        count = 0
        while not stop.is_set() and count < 3000:
            os.environ['http_proxy'] = 'http://127.0.0.1:6'
            os.environ['REQUESTS_CA_BUNDLE'] = f'/tmp/{count}.pem'
            del os.environ['http_proxy']
            count += 1

    worker = threading.Thread(target=flip)
    worker.start()
    try:
        for _ in range(3000):
            _proxy_environment_set()
            _ca_bundle()
    finally:
        stop.set()
        worker.join()
    assert (_proxy_environment_set(), _ca_bundle()) == environment_truth()


# -- request_many kept options ----------------------------------------


def test_batch_items_keep_own_options(http_server, closed_port):
    url = http_server.url('/echo')
    bad_url = f'http://127.0.0.1:{closed_port}/x'
    auth = _mwcomms.OAuth1('ck', 'cs', 'tk', 'ts')
    items = []
    for n in range(3):
        items += [
            ('GET', f'{url}?g{n}'),
            ('GET', bad_url),
            ('POST', f'{url}?p{n}', {'X-P': str(n)}, f'body{n}'),
            {'url': f'{url}?a{n}', 'auth': auth},
            ('GET', http_server.url('/close')),
            ('GET', f'{url}?g{n}'),
            ('PUT', url, None, b'put'),
            ('HEAD', url),
            ('GET', f'{url}?g{n}', {'X-G': 'y'}),
            ('POST', f'{url}?e{n}'),
            ('GET', http_server.url('/status/500')),
        ]
    with _mwcomms.Client() as client:
        for concurrency in (1, 2, 3):
            results = client.request_many(items, max_concurrency=concurrency)
            assert len(results) == len(items)
            for item, result in zip(items, results):
                if isinstance(item, dict):
                    item = ('GET', item['url'], None, None, item['auth'])
                method, target, headers, body, auth_used = (
                    list(item) + [None] * 3)[:5]
                if target == bad_url:
                    assert isinstance(result, _mwcomms.ConnectError), item
                    continue
                if target.endswith('/close'):
                    assert isinstance(result, _mwcomms.Error), item
                    continue
                assert isinstance(result, _mwcomms.Response), (item, result)
                if target.endswith('/500'):
                    assert result.status == 500
                    continue
                if method == 'HEAD':
                    assert result.body == b''
                    continue
                data = json.loads(result.body)
                names = {name.lower() for name, _ in data['headers']}
                expected_body = (body.decode() if isinstance(body, bytes)
                                 else body or '')
                assert data['method'] == method, item
                assert data['path'] == target[len(url) - len('/echo'):], \
                    item
                assert data['body'] == expected_body, item
                assert ('x-p' in names) == ('X-P' in (headers or {})), item
                assert ('x-g' in names) == ('X-G' in (headers or {})), item
                assert ('authorization' in names) == (auth_used
                                                      is not None), item


def check_later_requests(client, http_server, https_server, certificates,
                         forward_proxy):
    response = client.request('GET', http_server.url('/echo?single'))
    data = json.loads(response.body)
    names = {name.lower() for name, _ in data['headers']}
    assert data['path'] == '/echo?single'
    assert 'authorization' not in names
    assert 'x-p' not in names
    assert 'accept-encoding' in names
    with pytest.raises(_mwcomms.SSLError):
        client.request('GET', https_server.url('/echo'))
    response = client.request('GET', https_server.url('/echo'),
                              verify=str(certificates['ca']))
    assert response.status == 200
    with pytest.raises(_mwcomms.SSLError):
        client.request('GET', https_server.url('/echo'))
    seen = len(forward_proxy.seen())
    client.request('GET', http_server.url('/echo?direct'))
    assert len(forward_proxy.seen()) == seen
    with client.stream('GET', http_server.url('/echo?stream')) as stream:
        streamed = json.loads(stream.read())
    assert streamed['path'] == '/echo?stream'
    assert 'x-p' not in {name.lower() for name, _ in streamed['headers']}


@pytest.mark.parametrize('batch', ['verify_off', 'ca_bundle', 'proxy',
                                   'no_encoding', 'headers', 'timeout'])
def test_batch_options_not_kept(batch, http_server, https_server,
                                certificates, forward_proxy):
    url = http_server.url('/echo')
    auth = _mwcomms.OAuth1('ck', 'cs', 'tk', 'ts')
    with _mwcomms.Client() as client:
        if batch == 'verify_off':
            client.request_many([('GET', https_server.url('/echo'))] * 4,
                                verify=False, max_concurrency=2)
        elif batch == 'ca_bundle':
            client.request_many([('GET', https_server.url('/echo'))] * 4,
                                verify=str(certificates['ca']),
                                max_concurrency=2)
        elif batch == 'proxy':
            before = len(forward_proxy.seen())
            client.request_many([('GET', url)] * 4,
                                proxy=forward_proxy.url(),
                                max_concurrency=2)
            assert len(forward_proxy.seen()) == before + 4
        elif batch == 'no_encoding':
            results = client.request_many([('GET', url)] * 4,
                                          accept_encoding=False,
                                          max_concurrency=2)
            for result in results:
                names = {name.lower() for name, _ in
                         json.loads(result.body)['headers']}
                assert 'accept-encoding' not in names
        elif batch == 'headers':
            client.request_many([('GET', url, {'X-P': '1'}),
                                 {'url': url, 'auth': auth}] * 3,
                                max_concurrency=3)
        else:
            results = client.request_many(
                [('GET', http_server.url('/slow?seconds=0.5'))] * 2,
                timeout=0.1, max_concurrency=2)
            assert all(isinstance(r, _mwcomms.Timeout) for r in results)
            response = client.request('GET',
                                      http_server.url('/slow?seconds=0.3'))
            assert response.status == 200
        check_later_requests(client, http_server, https_server,
                             certificates, forward_proxy)
