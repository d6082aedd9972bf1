"""Signed GET requests through pywikibot, and signing across redirects.

The GET tests run pywikibot against the local wiki's OAuth front, which
verifies every signature: a read that comes back without an OAuth error
was signed the way the server checks it.  The redirect tests use two
small servers started here.
"""
from __future__ import annotations

import http.server
import json
import threading
import urllib.parse
import uuid

import pytest


CREDENTIALS = ('redirect-consumer', 'redirect-consumer-secret',
               'redirect-token', 'redirect-token-secret')


def _transport():
    from pywikibot_ext import _pywikibot
    return _pywikibot.transport()


class RecordingClient:
    """Delegate to an _mwcomms.Client and record (method, url) of each call."""

    def __init__(self, client):
        self.client = client
        self.calls = []

    def request(self, method, url, *args, **kwargs):
        self.calls.append((method, url))
        return self.client.request(method, url, *args, **kwargs)

    def requests_send(self, method, url, *args):
        # The transport's short path; None means nothing was sent.
        sent = self.client.requests_send(method, url, *args)
        if sent is not None:
            self.calls.append((sent[1], url))
        return sent

    def __getattr__(self, name):
        return getattr(self.client, name)

    def api_calls(self):
        return [(method, url) for method, url in self.calls
                if '/api.php' in url]


@pytest.fixture
def recorded(pwb, front, monkeypatch):
    """The front's site, with GET allowed over http and calls recorded."""
    from pywikibot import config

    import pywikibot_ext

    site = pwb.Site('en', 'oauthwiki')
    site.login()
    # The local wiki speaks http; pywikibot sends GET only over https
    # unless this is set.
    monkeypatch.setattr(config, 'enable_GET_without_SSL', True)
    monkeypatch.setattr(config, 'maximum_GET_length', 4000)
    monkeypatch.setattr(pywikibot_ext.options, 'signed_get', True)
    recorder = RecordingClient(_transport().client)
    monkeypatch.setattr(_transport(), 'client', recorder)
    return site, recorder


def _query(site, **parameters):
    from pywikibot.data import api
    return api.Request(site=site, parameters=dict(
        action='query', **parameters)).submit()


@pytest.mark.realwiki
@pytest.mark.parametrize('value', [
    'Main Page',
    'plus+sign and space',
    'Ünïcödé ☃ 😀',
    "reserved !*'();:@&=+$,/?#[]",
    'percent %41 %zz',
    'tilde~dash-under_dot.',
    'pipe|separated|titles',
])
def test_signed_get_query_values(recorded, value):
    site, recorder = recorded
    # amfilter takes any text, so the value reaches the wiki unchanged.
    reply = _query(site, meta='userinfo|allmessages', ammessages='mainpage',
                   amfilter=value)

    assert reply['query']['userinfo']['name'] == site.username()
    assert 'allmessages' in reply['query']
    method, url = recorder.api_calls()[-1]
    assert method == 'GET'
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert query['amfilter'] == [value]


@pytest.mark.realwiki
def test_signed_get_page_reads(pwb, recorded):
    site, recorder = recorded
    title = f'User:{site.username()}/signed get'
    page = pwb.Page(site, title)
    page.text = f'signed GET {uuid.uuid4()}'
    page.save(summary='signed GET test')
    recorder.calls.clear()

    text = pwb.Page(site, title).text
    titles = [p.title() for p in site.allpages(prefix='Signed', total=3)]
    revisions = list(pwb.Page(site, title).revisions(total=2))

    assert text.startswith('signed GET ')
    assert isinstance(titles, list)
    assert revisions[0].user == site.username()
    methods = {method for method, _ in recorder.api_calls()}
    assert methods == {'GET'}


@pytest.mark.realwiki
def test_signed_get_edit_posts(pwb, recorded):
    site, recorder = recorded
    title = f'User:{site.username()}/signed get edit'
    page = pwb.Page(site, title)
    page.text = f'posted {uuid.uuid4()}'
    recorder.calls.clear()

    page.save(summary='edit is a POST')

    assert 'POST' in {method for method, _ in recorder.api_calls()}
    latest = next(iter(pwb.Page(site, title).revisions(total=1)))
    assert latest.comment == 'edit is a POST'


@pytest.mark.realwiki
def test_signed_get_switched_off(recorded, monkeypatch):
    import pywikibot_ext

    site, recorder = recorded
    monkeypatch.setattr(pywikibot_ext.options, 'signed_get', False)

    _query(site, meta='userinfo')

    assert recorder.api_calls()[-1][0] == 'POST'


@pytest.mark.realwiki
def test_signed_get_needs_https_rule(recorded, monkeypatch):
    """pywikibot's https rule still applies: http without the flag POSTs."""
    from pywikibot import config

    site, recorder = recorded
    monkeypatch.setattr(config, 'enable_GET_without_SSL', False)

    _query(site, meta='userinfo')

    assert recorder.api_calls()[-1][0] == 'POST'


# -- redirects --------------------------------------------------------------

class RedirectHandler(http.server.BaseHTTPRequestHandler):
    """Record every request.  /to?status=S&url=U redirects to U."""

    protocol_version = 'HTTP/1.1'

    def log_message(self, format, *args):
        pass

    def handle_any(self):
        length = int(self.headers.get('Content-Length') or 0)
        body = self.rfile.read(length) if length else b''
        parts = urllib.parse.urlsplit(self.path)
        self.server.seen.append({
            'method': self.command, 'path': self.path,
            'authorization': self.headers.get('Authorization'),
            'content_type': self.headers.get('Content-Type'),
            'body': body.decode('latin-1')})
        if parts.path == '/to':
            query = dict(urllib.parse.parse_qsl(parts.query))
            self.send_response(int(query.get('status', '302')))
            self.send_header('Location', query['url'])
            self.send_header('Content-Length', '0')
            self.end_headers()
            return
        payload = json.dumps({'path': self.path}).encode()
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = handle_any


def _start_server():
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0),
                                             RedirectHandler)
    server.daemon_threads = True
    server.seen = []
    server.port = server.server_address[1]
    threading.Thread(target=server.serve_forever,
                     kwargs={'poll_interval': 0.1}, daemon=True).start()
    return server


@pytest.fixture
def servers():
    first, second = _start_server(), _start_server()
    yield first, second
    for server in (first, second):
        server.shutdown()
        server.server_close()


@pytest.fixture
def transport():
    from pywikibot_ext._transport import Transport

    instance = Transport()
    yield instance
    instance.close()


def _oauth_params(header):
    assert header.startswith('OAuth ')
    params = {}
    for item in header[len('OAuth '):].split(', '):
        name, _, value = item.partition('=')
        params[name] = urllib.parse.unquote(value.strip('"'))
    return params


def _redirect_url(server, target, status=302):
    return (f'http://127.0.0.1:{server.port}/to?'
            + urllib.parse.urlencode({'status': status, 'url': target}))


def test_redirect_other_port_unsigned(servers, transport):
    first, second = servers
    target = f'http://127.0.0.1:{second.port}/landing'

    response = transport.request('GET', _redirect_url(first, target),
                                 auth=CREDENTIALS)

    assert response.status_code == 200
    assert response.url == target
    assert first.seen[0]['authorization'].startswith('OAuth ')
    assert len(second.seen) == 1
    assert second.seen[0]['authorization'] is None


def test_redirect_other_host_unsigned(servers, transport):
    first, _ = servers
    target = f'http://localhost:{first.port}/landing'

    response = transport.request('GET', _redirect_url(first, target),
                                 auth=CREDENTIALS)

    assert response.status_code == 200
    assert len(first.seen) == 2
    assert first.seen[0]['authorization'].startswith('OAuth ')
    assert first.seen[1]['path'] == '/landing'
    assert first.seen[1]['authorization'] is None


def test_redirect_post_other_port(servers, transport):
    """A 307 keeps the POST and its body, but not the signature."""
    first, second = servers
    target = f'http://127.0.0.1:{second.port}/landing'

    transport.request('POST', _redirect_url(first, target, status=307),
                      data={'action': 'edit', 'text': 'x'},
                      auth=CREDENTIALS)

    assert first.seen[0]['authorization'].startswith('OAuth ')
    hop = second.seen[0]
    assert hop['method'] == 'POST'
    assert hop['body'] == 'action=edit&text=x'
    assert hop['authorization'] is None


def test_redirect_same_origin_resigned(servers, transport):
    """Each hop on the same origin is signed afresh for its own URL."""
    first, _ = servers
    landing = f'http://127.0.0.1:{first.port}/landing?a=1&b=two+words'

    transport.request('POST', _redirect_url(first, '/landing?a=1&b=two+words',
                                            status=307),
                      data={'action': 'edit', 'text': 'x y'},
                      auth=CREDENTIALS)

    assert len(first.seen) == 2
    one = _oauth_params(first.seen[0]['authorization'])
    two = _oauth_params(first.seen[1]['authorization'])
    assert one['oauth_nonce'] != two['oauth_nonce']
    assert one['oauth_signature'] != two['oauth_signature']

    signer = transport.oauth_for(CREDENTIALS, f'127.0.0.1:{first.port}')
    expected = signer.sign(
        'POST', landing,
        {'Content-Type': 'application/x-www-form-urlencoded'},
        first.seen[1]['body'], nonce=two['oauth_nonce'],
        timestamp=int(two['oauth_timestamp']))
    assert _oauth_params(expected)['oauth_signature'] == \
        two['oauth_signature']
