"""Regression tests for defects found by a second review of the client.

Each section covers one defect: passwords of malformed proxy URLs in
messages, state-changing requests in the parallel helpers, the per-host
bound when the limit changes, the clock-skew resend, Client.close()
during request_many, RawStream.read(0), multipart files replaced after
the Multipart was made, and a progress callback that raises.  Every
server is local (127.0.0.1).
"""
from __future__ import annotations

import http.server
import io
import json
import os
import threading
import time
import uuid
import traceback

import pytest

import _mwcomms
from servers import RawServer, raw_reply, read_raw_request

SECRET = 's3cretPW'


def full_text(exc: BaseException) -> str:
    """Return the message, repr and formatted traceback of exc."""
    return ''.join([str(exc), repr(exc)]
                   + traceback.format_exception(exc))


# -- proxy passwords in messages ---------------------------------------

# Proxy URLs that libcurl or urllib3 cannot parse, or parse without
# finding the user info, each with SECRET in its user info.  Every host
# in them is 127.0.0.1 or ::1, so that nothing is looked up in DNS.
MALFORMED_PROXIES = [
    'user:///{s}@127.0.0.1:{p}',
    'user:{s}@127.0.0.1:{p}',
    '//user:{s}@127.0.0.1:{p}',
    '\\\\user:{s}@127.0.0.1:{p}',
    'http:/user:{s}@127.0.0.1:{p}',
    'http:user:{s}@127.0.0.1:{p}',
    'http://user:{s} x@127.0.0.1:{p}',
    'http://user:{s}@127.0.0.1:{p}:2',
    'http://user:{s}@[::1',
    'http://us@er:{s}@127.0.0.1:{p}',
    'http://user:{s}@127.0.0.1:99999',
    'ftp://user:{s}@127.0.0.1:{p}',
    'http://user:{s}\x7f@127.0.0.1:{p}',
    'http://u:{s}@:{p}',
    'user:{s}@',
    '@user:{s}',
    'http://[user:{s}@127.0.0.1:{p}]',
    'http://user:{s}#x@127.0.0.1:{p}',
    'http://user:{s}?x@127.0.0.1:{p}',
    'socks5://user:{s}@127.0.0.1:{p}:2',
    'user://{s}@127.0.0.1:{p}',
]


@pytest.mark.parametrize('form', MALFORMED_PROXIES)
def test_client_proxy_hides_password(form, closed_port):
    proxy = form.format(s=SECRET, p=closed_port)
    with _mwcomms.Client() as client:
        with pytest.raises((ValueError, _mwcomms.Error)) as caught:
            client.request('GET', f'http://127.0.0.1:{closed_port}/',
                           proxy=proxy, timeout=5)
    assert SECRET not in full_text(caught.value)
    assert SECRET not in str(getattr(caught.value, 'url', ''))


def test_client_invalid_proxy_message(closed_port):
    proxy = f'user:///{SECRET}@127.0.0.1:{closed_port}'
    with _mwcomms.Client() as client:
        with pytest.raises(ValueError) as caught:
            client.request('GET', f'http://127.0.0.1:{closed_port}/',
                           proxy=proxy)
    assert 'invalid proxy URL' in str(caught.value)
    assert 'not shown' in str(caught.value)


@pytest.mark.parametrize('form', MALFORMED_PROXIES)
def test_transport_env_proxy_hides_password(form, closed_port,
                                            monkeypatch):
    from pywikibot_ext._transport import Transport

    for name in ('no_proxy', 'NO_PROXY', 'all_proxy', 'ALL_PROXY',
                 'HTTP_PROXY'):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv('http_proxy', form.format(s=SECRET, p=closed_port))
    transport = Transport()
    try:
        with pytest.raises(Exception) as caught:
            transport.request('GET', f'http://127.0.0.1:{closed_port}/',
                              timeout=5)
    finally:
        transport.close()
    assert SECRET not in full_text(caught.value)


# Request URLs whose user info the C redaction must drop, with the text
# that must remain.
REQUEST_URLS = [
    ('//user:{s}@127.0.0.1:1/x', '//127.0.0.1:1/x'),
    ('user:///{s}@127.0.0.1:1/', 'user:///127.0.0.1:1/'),
    ('user:{s}@127.0.0.1:1', '127.0.0.1:1'),
    ('ftp://user:{s}@127.0.0.1:1/a@b', 'ftp://127.0.0.1:1/a@b'),
    ('gopher://a@b:{s}@127.0.0.1/?q@x', 'gopher://127.0.0.1/?q@x'),
]


@pytest.mark.parametrize('form, shown', REQUEST_URLS)
def test_invalid_url_message_redacted(form, shown):
    url = form.format(s=SECRET)
    with _mwcomms.Client() as client:
        with pytest.raises(_mwcomms.InvalidURL) as caught:
            client.request('GET', url)
    assert SECRET not in full_text(caught.value)
    assert caught.value.url == shown


@pytest.mark.parametrize('form, shown', REQUEST_URLS + [
    ('http://127.0.0.1/p@th', 'http://127.0.0.1/p@th'),
    ('\\\\u:{s}@127.0.0.1', '\\\\127.0.0.1'),
])
def test_python_redact_matches_rule(form, shown):
    from pywikibot_ext._transport import _redact_url

    assert _redact_url(form.format(s=SECRET)) == shown


# -- parallel reads: only read-only actions, one bound per host --------

class FakeSite:
    """A site with a host name and, optionally, pywikibot's paraminfo."""

    def __init__(self, host='wiki.invalid', posted=()):
        self.host = host
        if posted:
            self._paraminfo = FakeParamInfo(posted)

    def hostname(self):
        return self.host


class FakeParamInfo:
    """paraminfo whose modules in posted carry ``mustbeposted``."""

    def __init__(self, posted):
        self.posted = set(posted)
        self.fetched = []

    def fetch(self, modules):
        self.fetched.append(set(modules))

    def __getitem__(self, module):
        info = {'name': module}
        if module in self.posted:
            info['mustbeposted'] = ''
        return info


class FakeRequest:
    """An api.Request stand-in that counts concurrent submit() calls."""

    def __init__(self, action, params=None, write=False, tracker=None):
        self.action = action
        self.params = dict(params or {}, action=action)
        self.write = write
        self.tracker = tracker
        self.submitted = False

    def submit(self):
        self.submitted = True
        if self.tracker is not None:
            return self.tracker.run(self)
        return self.action


class Tracker:
    """Count running submit() calls; each waits until release()."""

    def __init__(self):
        self.condition = threading.Condition()
        self.active = 0
        self.peak = 0
        self.released = False

    def run(self, request):
        with self.condition:
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.condition.notify_all()
            self.condition.wait_for(lambda: self.released, timeout=20)
            self.active -= 1
        return request.params.get('n')

    def wait_active(self, count, timeout):
        with self.condition:
            return self.condition.wait_for(
                lambda: self.active >= count, timeout=timeout)

    def release(self):
        with self.condition:
            self.released = True
            self.condition.notify_all()


@pytest.fixture
def concurrency(monkeypatch):
    import pywikibot_ext

    monkeypatch.setattr(pywikibot_ext.options, 'max_read_concurrency', 4)
    return pywikibot_ext.options


@pytest.mark.parametrize('action', [
    'changecontentmodel', 'stashedit', 'echomarkread', 'logout',
    'visualeditoredit', 'discussiontoolsedit', 'edit', 'purge', None])
def test_parallel_rejects_unknown_action(action, concurrency):
    from pywikibot_ext.parallel import submit_reads

    requests = [FakeRequest(action) for _ in range(3)]
    with pytest.raises(ValueError):
        submit_reads(FakeSite(), requests)
    assert not any(request.submitted for request in requests)


def test_parallel_rejects_token(concurrency):
    from pywikibot_ext.parallel import submit_reads

    read = FakeRequest('query', {'meta': ['siteinfo']})
    tokened = FakeRequest('query', {'list': ['watchlist'],
                                    'token': ['+\\']})
    with pytest.raises(ValueError) as caught:
        submit_reads(FakeSite(), [read, tokened])
    assert 'token' in str(caught.value)
    assert not read.submitted
    assert not tokened.submitted


def test_parallel_rejects_write_flag(concurrency):
    from pywikibot_ext.parallel import submit_reads

    flagged = FakeRequest('query', write=True)
    with pytest.raises(ValueError):
        submit_reads(FakeSite(), [flagged])
    assert not flagged.submitted


def test_parallel_rejects_mustbeposted(concurrency):
    from pywikibot_ext.parallel import submit_reads

    site = FakeSite(posted={'postedlist'})
    plain = FakeRequest('query', {'list': ['allpages']})
    posted = FakeRequest('query', {'list': ['allpages', 'postedlist']})
    with pytest.raises(ValueError) as caught:
        submit_reads(site, [plain, posted])
    assert 'postedlist' in str(caught.value)
    assert {'allpages', 'postedlist'} in site._paraminfo.fetched
    assert not plain.submitted


def test_parallel_accepts_reads(concurrency):
    from pywikibot_ext.parallel import READ_ACTIONS, submit_reads

    site = FakeSite(posted={'postedlist'})
    actions = ['query', 'parse', 'expandtemplates', 'compare']
    requests = [FakeRequest(action, {'prop': ['info']})
                for action in actions]
    assert set(actions) <= READ_ACTIONS
    assert submit_reads(site, requests) == actions


def test_host_bound_follows_limit(concurrency):
    from pywikibot_ext.parallel import host_slots, submit_reads

    site = FakeSite(host='bound-test.invalid')
    tracker = Tracker()
    first = [FakeRequest('query', {'n': n}, tracker=tracker)
             for n in range(6)]
    second = [FakeRequest('query', {'n': n}, tracker=tracker)
              for n in range(6, 12)]
    results = {}
    concurrency.max_read_concurrency = 2
    runner = threading.Thread(
        target=lambda: results.update(first=submit_reads(site, first)))
    runner.start()
    other = None
    try:
        assert tracker.wait_active(2, timeout=20)
        concurrency.max_read_concurrency = 3
        other = threading.Thread(
            target=lambda: results.update(second=submit_reads(site,
                                                               second)))
        other.start()
        # A per-limit bound would admit 3 more requests, 5 in all.
        tracker.wait_active(4, timeout=1)
        assert tracker.peak == 3
    finally:
        tracker.release()
        runner.join(30)
        if other is not None:
            other.join(30)
    assert results['first'] == list(range(6))
    assert results['second'] == list(range(6, 12))
    assert host_slots(site.hostname()).active == 0


# -- clock-skew resend: exact replies only, bounded, rewindable ----------

API_INFO = 'The authorization headers in your request are not valid: '
INDEX_MESSAGE = 'An error occurred in the OAuth protocol: '


def expired_reason(server_time: int) -> str:
    return f'Expired timestamp, yours {server_time - 1000}, ours {server_time}'


def api_reply(server_time: int) -> tuple[list, bytes]:
    body = json.dumps({'error': {
        'code': 'mwoauth-invalid-authorization',
        'info': API_INFO + expired_reason(server_time),
        '*': 'See the API help.'}}).encode()
    return ([('Content-Type', 'application/json'),
             ('MediaWiki-API-Error', 'mwoauth-invalid-authorization')], body)


def index_reply(server_time: int) -> tuple[list, bytes]:
    body = json.dumps({'error': 'mwoauth-oauth-exception',
                       'message': INDEX_MESSAGE
                       + expired_reason(server_time)}).encode()
    return [('Content-Type', 'application/json')], body


class ReplyHandler(http.server.BaseHTTPRequestHandler):
    """Record each request body and send the reply set for its path."""

    protocol_version = 'HTTP/1.1'

    def log_message(self, format, *args):
        pass

    def read_body(self) -> bytes:
        if 'chunked' in self.headers.get('Transfer-Encoding', '').lower():
            data = bytearray()
            while True:
                size = int(self.rfile.readline().split(b';')[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b'\r\n', b'\n', b''):
                        pass
                    return bytes(data)
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get('Content-Length') or 0)
        return self.rfile.read(length) if length else b''

    def handle_any(self):
        body = self.read_body()
        path = self.path.split('?')[0]
        with self.server.lock:
            self.server.bodies.append((path, body))
        status, headers, reply = self.server.replies.get(
            path, (200, [], b'ok'))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header('Content-Length', str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_GET = do_POST = handle_any


class ReplyServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(('127.0.0.1', 0), ReplyHandler)
        self.lock = threading.Lock()
        self.bodies = []
        self.replies = {}

    def url(self, path: str) -> str:
        return f'http://127.0.0.1:{self.server_address[1]}{path}'

    def count(self, path: str) -> int:
        with self.lock:
            return sum(1 for seen, _ in self.bodies if seen == path)


@pytest.fixture(scope='module')
def reply_server_instance():
    server = ReplyServer()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def reply_server(reply_server_instance):
    with reply_server_instance.lock:
        reply_server_instance.bodies.clear()
        reply_server_instance.replies.clear()
    return reply_server_instance


@pytest.fixture
def skew_transport(monkeypatch):
    import pywikibot_ext
    from pywikibot_ext._transport import Transport

    monkeypatch.setattr(pywikibot_ext.options, 'correct_clock_skew', True)
    transport = Transport()
    yield transport
    transport.close()


CREDENTIALS = ('consumer', 'consumer-secret', 'token', 'token-secret')


FORM_TYPE = 'application/x-www-form-urlencoded'
# A signed form body must be bytes, so streamed bodies use another type.
BINARY_TYPE = 'application/octet-stream'


def send_signed(transport, server, path, data=b'action=edit&text=x',
                content_type=FORM_TYPE):
    signer = transport.oauth_for(CREDENTIALS,
                                 f'127.0.0.1:{server.server_address[1]}')
    signer.clock_offset = 0
    response = transport.request(
        'POST', server.url(path), data=data, auth=signer,
        headers={'Content-Type': content_type})
    return signer, response


@pytest.mark.parametrize('make_reply', [api_reply, index_reply])
def test_skew_exact_reply_resent(make_reply, reply_server, skew_transport):
    server_time = int(time.time()) + 1000
    headers, body = make_reply(server_time)
    reply_server.replies['/w'] = (200, headers, body)
    signer, response = send_signed(skew_transport, reply_server, '/w')
    assert reply_server.count('/w') == 2
    assert 990 <= signer.clock_offset <= 1010
    assert [seen for _, seen in reply_server.bodies] == [
        b'action=edit&text=x', b'action=edit&text=x']
    assert response.status_code == 200


def api_header():
    return [('MediaWiki-API-Error', 'mwoauth-invalid-authorization')]


def lookalike_replies(server_time):
    """Return (name, headers, body) replies that must not be resent."""
    reason = expired_reason(server_time)
    api_headers, api_body = api_reply(server_time)
    _, index_body = index_reply(server_time)
    page = ('<html><body><p>mwoauth-oauth-exception '
            'mwoauth-invalid-authorization ' + API_INFO + reason
            + '</p><pre>' + index_body.decode() + '</pre></body></html>')
    return [
        ('api body without header', [], api_body),
        ('header with html page', api_header(), page.encode()),
        ('header with other code', [
            ('MediaWiki-API-Error', 'mwoauth-invalid-authorization-x')],
         api_body),
        ('header with plain text', api_header(),
         (API_INFO + reason).encode()),
        ('api info with more text', api_headers, json.dumps({'error': {
            'code': 'mwoauth-invalid-authorization',
            'info': API_INFO + reason + ' and more'}}).encode()),
        ('api info without prefix', api_headers, json.dumps({'error': {
            'code': 'mwoauth-invalid-authorization',
            'info': reason}}).encode()),
        ('api body other code', api_headers, json.dumps({'error': {
            'code': 'badtoken', 'info': API_INFO + reason}}).encode()),
        ('html page', [('Content-Type', 'text/html')], page.encode()),
        ('page text quoting index json', [('Content-Type', 'text/plain')],
         b'Example: ' + index_body),
        ('json page with extra key', [('Content-Type', 'application/json')],
         json.dumps({'error': 'mwoauth-oauth-exception',
                     'message': INDEX_MESSAGE + reason,
                     'title': 'Some page'}).encode()),
        ('index message without prefix', [],
         json.dumps({'error': 'mwoauth-oauth-exception',
                     'message': reason}).encode()),
        ('index json inside list', [],
         b'[' + index_body + b']'),
        ('non-integer timestamp', [],
         json.dumps({'error': 'mwoauth-oauth-exception',
                     'message': INDEX_MESSAGE + 'Expired timestamp, yours '
                     'x, ours 12'}).encode()),
    ]


@pytest.mark.parametrize('name', [name for name, _, _
                                  in lookalike_replies(0)])
def test_skew_lookalike_not_resent(name, reply_server, skew_transport):
    replies = {case: (headers, body) for case, headers, body
               in lookalike_replies(int(time.time()) + 1000)}
    headers, body = replies[name]
    reply_server.replies['/w'] = (200, headers, body)
    signer, response = send_signed(skew_transport, reply_server, '/w')
    assert reply_server.count('/w') == 1
    assert signer.clock_offset == 0
    assert response.content == body


def test_skew_offset_bound(reply_server, skew_transport):
    from pywikibot_ext._oauth_text import MAX_CLOCK_CORRECTION_S

    server_time = int(time.time()) + MAX_CLOCK_CORRECTION_S + 3600
    headers, body = api_reply(server_time)
    reply_server.replies['/w'] = (200, headers, body)
    signer, response = send_signed(skew_transport, reply_server, '/w')
    assert reply_server.count('/w') == 1
    assert signer.clock_offset == 0
    assert response.headers['MediaWiki-API-Error'] == \
        'mwoauth-invalid-authorization'


def test_skew_within_bound_resent(reply_server, skew_transport):
    from pywikibot_ext._oauth_text import MAX_CLOCK_CORRECTION_S

    server_time = int(time.time()) + MAX_CLOCK_CORRECTION_S - 3600
    headers, body = api_reply(server_time)
    reply_server.replies['/w'] = (200, headers, body)
    signer, _ = send_signed(skew_transport, reply_server, '/w')
    assert reply_server.count('/w') == 2
    assert signer.clock_offset > MAX_CLOCK_CORRECTION_S - 3700


def test_skew_generator_not_resent(reply_server, skew_transport):
    headers, body = api_reply(int(time.time()) + 1000)
    reply_server.replies['/w'] = (200, headers, body)

    def generate():
        yield b'action=edit&text=hello'

    signer, response = send_signed(skew_transport, reply_server, '/w',
                                   data=generate(),
                                   content_type=BINARY_TYPE)
    assert reply_server.count('/w') == 1
    assert reply_server.bodies == [('/w', b'action=edit&text=hello')]
    assert signer.clock_offset == 0
    assert response.content == body


def test_skew_file_body_resent(reply_server, skew_transport):
    headers, body = api_reply(int(time.time()) + 1000)
    reply_server.replies['/w'] = (200, headers, body)
    data = io.BytesIO(b'action=edit&text=file')
    send_signed(skew_transport, reply_server, '/w', data=data,
                content_type=BINARY_TYPE)
    assert [seen for _, seen in reply_server.bodies] == [
        b'action=edit&text=file', b'action=edit&text=file']


def test_redirect_307_generator_raises(reply_server, skew_transport):
    from requests.exceptions import UnrewindableBodyError

    reply_server.replies['/moved'] = (307, [('Location', '/target')], b'')

    def generate():
        yield b'payload'

    with pytest.raises(UnrewindableBodyError):
        skew_transport.request('POST', reply_server.url('/moved'),
                               data=generate())
    assert reply_server.count('/moved') == 1
    assert reply_server.count('/target') == 0


def test_rewind_body_generator_raises():
    from requests.exceptions import UnrewindableBodyError

    from pywikibot_ext._transport import _rewind_body

    with pytest.raises(UnrewindableBodyError):
        _rewind_body(iter([b'x']), None)
    _rewind_body(b'bytes', None)
    stream = io.BytesIO(b'abc')
    stream.read()
    _rewind_body(stream, 1)
    assert stream.read() == b'bc'


# -- Client.close() during request_many ---------------------------------

def test_close_during_batch_keeps_started(http_server):
    keys = [f'close-batch-{uuid.uuid4().hex}-{n}' for n in range(6)]
    client = _mwcomms.Client()
    results = {}

    def run():
        try:
            results['items'] = client.request_many(
                [('POST', http_server.url(f'/block?key={key}'), None,
                  b'edit') for key in keys], max_concurrency=2)
        except Exception as exc:  # the defect: the whole batch raised
            results['error'] = exc

    runner = threading.Thread(target=run)
    runner.start()
    try:
        # Items 0 and 1 are on the multi handle now.  Item 1 may wait for
        # item 0's connection (CURLOPT_PIPEWAIT), but it has started.
        assert http_server.wait_state(keys[0], 'started')
        client.close()
    finally:
        for key in keys:
            http_server.release(key)
        runner.join(30)
    assert 'error' not in results
    items = results['items']
    assert [item.status for item in items[:2]] == [200, 200]
    assert [item.body for item in items[:2]] == [b'released', b'released']
    for item in items[2:]:
        assert isinstance(item, ValueError)
        assert str(item) == 'Client is closed'
    for key in keys[2:]:
        assert not http_server.has_state(key, 'started')


def test_closed_client_batch_raises(http_server):
    client = _mwcomms.Client()
    client.close()
    with pytest.raises(ValueError):
        client.request_many([('GET', http_server.url('/echo'))])


# -- RawStream.read(0) ---------------------------------------------------

def test_raw_read_zero_keeps_stream(http_server):
    from pywikibot_ext._transport import Transport

    transport = Transport()
    try:
        response = transport.request(
            'GET', http_server.url('/large?size=100000'), stream=True)
        assert response.raw.read(0) == b''
        assert not response.raw.closed
        head = response.raw.read(10)
        assert response.raw.read(0) == b''
        rest = response.raw.read()
    finally:
        transport.close()
    assert len(head) == 10
    assert len(head + rest) == 100000
    assert response.raw.closed


# -- Multipart file paths replaced after the Multipart was made ----------

@pytest.fixture
def counting_server():
    """A RawServer that replies 200 and counts the connections made."""
    def handler(server, connection, index):
        head, body, _ = read_raw_request(connection)
        if head is not None:
            server.record((head, body))
            # The handler closes the connection, so the reply announces it.
            raw_reply(connection, extra=b'Connection: close\r\n')

    server = RawServer(handler)
    yield server
    server.stop()


def make_file_multipart(path):
    path.write_bytes(b'v' * 100)
    return _mwcomms.Multipart(files=[('f', None, None, str(path))])


def test_multipart_file_removed_raises(tmp_path, counting_server):
    path = tmp_path / 'gone.bin'
    multipart = make_file_multipart(path)
    path.unlink()
    with _mwcomms.Client() as client:
        with pytest.raises(FileNotFoundError) as caught:
            client.request('POST', counting_server.url('/'), body=multipart)
    assert caught.value.filename == str(path)
    assert counting_server.connections == 0


def test_multipart_path_now_directory(tmp_path, counting_server):
    path = tmp_path / 'swap.bin'
    multipart = make_file_multipart(path)
    path.unlink()
    path.mkdir()
    with _mwcomms.Client() as client:
        with pytest.raises(ValueError) as caught:
            client.request('POST', counting_server.url('/'), body=multipart)
    assert str(path) in str(caught.value)
    assert 'not a regular file' in str(caught.value)
    assert counting_server.connections == 0


def test_multipart_path_now_fifo(tmp_path, counting_server):
    path = tmp_path / 'fifo.bin'
    multipart = make_file_multipart(path)
    path.unlink()
    os.mkfifo(path)
    unblocked = threading.Event()

    def open_writer():
        # Ends a blocked open() of the FIFO, so the test always returns.
        if not unblocked.wait(10):
            with open(path, 'wb') as writer:
                writer.write(b'late')

    writer = threading.Thread(target=open_writer, daemon=True)
    writer.start()
    try:
        with _mwcomms.Client() as client:
            with pytest.raises(ValueError) as caught:
                client.request('POST', counting_server.url('/'),
                               body=multipart, timeout=5)
    finally:
        unblocked.set()
        writer.join(15)
    assert str(path) in str(caught.value)
    assert counting_server.connections == 0


def test_multipart_file_read_at_send(tmp_path, counting_server):
    path = tmp_path / 'later.bin'
    multipart = make_file_multipart(path)
    path.write_bytes(b'new content')
    with _mwcomms.Client() as client:
        response = client.request('POST', counting_server.url('/'),
                                  body=multipart)
    assert response.status == 200
    _, body = counting_server.requests[0]
    assert b'\r\n\r\nnew content\r\n--' in body


def open_descriptors(path) -> int:
    """Return how many of this process's descriptors are open on path."""
    count = 0
    for name in os.listdir('/proc/self/fd'):
        try:
            target = os.readlink(f'/proc/self/fd/{name}')
        except OSError:
            continue  # closed meanwhile, or the listing's own descriptor
        if target == str(path):
            count += 1
    return count


def test_multipart_file_closed_after(tmp_path, counting_server):
    path = tmp_path / 'fd.bin'
    multipart = make_file_multipart(path)
    with _mwcomms.Client() as client:
        for _ in range(5):
            client.request('POST', counting_server.url('/'), body=multipart)
        results = client.request_many(
            [('POST', counting_server.url('/'), None, multipart)] * 3)
        stream = client.stream('POST', counting_server.url('/'),
                               body=multipart)
        stream.read()
        stream.close()
    assert [result.status for result in results] == [200, 200, 200]
    assert open_descriptors(path) == 0


@pytest.mark.parametrize('stored, filename, expected', [
    ('a.png', None, 'image/png'),
    ('a.PNG', 'x.zzz', 'image/png'),
    ('a.bin', 'x.txt', 'text/plain'),
    ('a.png', 'x', 'image/png'),
    ('a.svg', 'x.gif', 'image/gif'),
    ('noext', None, 'application/octet-stream'),
    ('a.bin', None, 'application/octet-stream'),
    ('a.html', None, 'text/html'),
])
def test_multipart_file_content_type(stored, filename, expected, tmp_path,
                                     http_server):
    path = tmp_path / stored
    path.write_bytes(b'data')
    multipart = _mwcomms.Multipart(files=[('f', filename, None, str(path))])
    with _mwcomms.Client() as client:
        response = client.request('POST', http_server.url('/form'),
                                  body=multipart)
    part = json.loads(response.body)['parts'][0]
    assert part['content_type'] == expected
    assert part['filename'] == (filename or stored)
    assert part['length'] == 4


# -- a progress callback that raises keeps the bytes of its read ---------

def large_body(size: int) -> bytes:
    """The body of the test server's /large route."""
    return bytes(i % 251 for i in range(251)) * (size // 251) \
        + b'x' * (size % 251)


class FailingProgress:
    """Record progress calls and raise on the calls numbered in fail_on."""

    def __init__(self, fail_on):
        self.fail_on = set(fail_on)
        self.calls = []

    def __call__(self, done, total):
        self.calls.append(done)
        if len(self.calls) in self.fail_on:
            raise RuntimeError('progress failed')


@pytest.mark.parametrize('first_size', [500, 200000, -1])
def test_progress_raise_keeps_bytes(first_size, http_server):
    size = 300000
    progress = FailingProgress(fail_on={1})
    with _mwcomms.Client() as client:
        stream = client.stream('GET', http_server.url(f'/large?size={size}'),
                               progress=progress)
        with pytest.raises(RuntimeError):
            stream.read(first_size)
        assert stream.bytes_read == 0
        assert not stream.closed
        data = stream.read()
    assert data == large_body(size)
    assert stream.bytes_read == size
    # The failed read reported its bytes; the next read reports them again.
    first_length = size if first_size < 0 else first_size
    assert progress.calls == [first_length, size]


def test_progress_raise_mid_body(http_server):
    size = 300000
    progress = FailingProgress(fail_on={2})
    with _mwcomms.Client() as client:
        stream = client.stream('GET', http_server.url(f'/large?size={size}'),
                               progress=progress)
        head = stream.read(1000)
        with pytest.raises(RuntimeError):
            stream.read(150000)
        assert stream.bytes_read == 1000
        rest = b''.join(stream.iter_chunks(65536))
    assert head + rest == large_body(size)
    assert stream.bytes_read == size
