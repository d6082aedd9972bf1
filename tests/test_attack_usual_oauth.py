"""OAuth timestamp rejections and resends on the short path of
Transport.request, against a local server that imitates MediaWiki's
api.php and index.php error replies."""
from __future__ import annotations

import collections
import http.server
import json
import re
import threading
import time

import pytest
import requests

from pywikibot_ext import options
from pywikibot_ext._oauth_text import (
    API_ERROR_CODE,
    API_INFO_PREFIX,
    INDEX_ERROR_CODE,
    INDEX_MESSAGE_PREFIX,
)
from pywikibot_ext._transport import Transport

CREDENTIALS = ('ck', 'cs', 'ak', 'as')
SKEW_S = 1000
TIMESTAMP = re.compile(r'oauth_timestamp="(\d+)"')


def api_rejection(server_time: int) -> tuple[bytes, list]:
    info = (f'{API_INFO_PREFIX}Expired timestamp, yours 1, '
            f'ours {server_time}')
    body = json.dumps({'error': {'code': API_ERROR_CODE, 'info': info,
                                 '*': 'See the API help.'}})
    return body.encode(), [('MediaWiki-API-Error', API_ERROR_CODE)]


def index_rejection(server_time: int) -> tuple[bytes, list]:
    message = (f'{INDEX_MESSAGE_PREFIX}Expired timestamp, yours 1, '
               f'ours {server_time}')
    body = json.dumps({'error': INDEX_ERROR_CODE, 'message': message})
    return body.encode(), []


def other_api_error(server_time: int) -> tuple[bytes, list]:
    info = f'{API_INFO_PREFIX}Invalid consumer'
    body = json.dumps({'error': {'code': API_ERROR_CODE, 'info': info}})
    return body.encode(), [('MediaWiki-API-Error', API_ERROR_CODE)]


def quoted_rejection(server_time: int) -> tuple[bytes, list]:
    # Page text that quotes index.php's error is not a rejection.
    body, _ = index_rejection(server_time)
    return b'<p>' + body + b'</p>', []


REPLIES = {
    'api': api_rejection,
    'index': index_rejection,
    'other': other_api_error,
    'quoted': quoted_rejection,
}


class WikiHandler(http.server.BaseHTTPRequestHandler):
    """Reply to ``/<kind>/<key>`` with the reply of *kind* for the first
    ``rejections`` requests of *key*, then with ``{"ok": true}``."""

    protocol_version = 'HTTP/1.1'

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        length = int(self.headers.get('Content-Length') or 0)
        body = self.rfile.read(length) if length else b''
        _, kind, key = self.path.split('?')[0].split('/')[:3]
        server = self.server
        with server.lock:
            server.seen[key].append(
                (self.command, self.headers.get('Authorization'), body))
            count = len(server.seen[key])
        if count <= server.rejections:
            payload, headers = REPLIES[kind](int(time.time()) + SKEW_S)
        else:
            payload, headers = b'{"ok": true}', []
        self.send_response(200)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header('Content-Type', 'application/json; charset=utf-8')
        self.send_header('Content-Length', str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_POST = do_PUT = do_GET


@pytest.fixture(scope='module')
def wiki():
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), WikiHandler)
    server.daemon_threads = True
    server.lock = threading.Lock()
    server.seen = collections.defaultdict(list)
    server.rejections = 1
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def transport():
    instance = Transport(requests.cookies.RequestsCookieJar())
    instance.trust_env = False
    yield instance
    instance.close()


@pytest.fixture
def short_path_sent(monkeypatch):
    sent = []
    original = Transport._send_usual

    def recording(self, *args):
        result = original(self, *args)
        sent.append(result is not None)
        return result

    monkeypatch.setattr(Transport, '_send_usual', recording)
    return sent


@pytest.fixture(autouse=True)
def clock_option(monkeypatch):
    monkeypatch.setattr(options, 'correct_clock_skew', True)


def url(wiki, kind, key):
    return f'http://127.0.0.1:{wiki.server_port}/{kind}/{key}'


@pytest.mark.parametrize('kind', ['api', 'index'])
@pytest.mark.parametrize('method', ['GET', 'POST'])
def test_rejection_resent_once(wiki, transport, short_path_sent, kind,
                               method):
    key = f'resend-{kind}-{method}'
    response = transport.request(method, url(wiki, kind, key),
                                 data='action=edit&text=x',
                                 auth=CREDENTIALS, timeout=10)
    seen = wiki.seen[key]
    assert response.json() == {'ok': True}
    assert short_path_sent == [True]
    assert len(seen) == 2
    assert seen[0][2] == seen[1][2] == b'action=edit&text=x'
    assert response.history == []
    first = int(TIMESTAMP.search(seen[0][1]).group(1))
    second = int(TIMESTAMP.search(seen[1][1]).group(1))
    # The resend carries the wiki's clock, SKEW_S ahead of this one.
    assert second - first >= SKEW_S - 60
    host = f'127.0.0.1:{wiki.server_port}'
    assert abs(transport.oauth_for(CREDENTIALS, host).clock_offset
               - SKEW_S) <= 60


@pytest.mark.parametrize('kind', ['api', 'index'])
def test_second_rejection_returned(wiki, transport, monkeypatch, kind):
    monkeypatch.setattr(wiki, 'rejections', 5)
    key = f'twice-{kind}'
    response = transport.request('POST', url(wiki, kind, key), data=b'x=1',
                                 auth=CREDENTIALS, timeout=10)
    assert len(wiki.seen[key]) == 2
    assert response.status_code == 200
    assert b'Expired timestamp' in response.content


@pytest.mark.parametrize('kind', ['other', 'quoted'])
@pytest.mark.parametrize('method', ['GET', 'POST'])
def test_other_replies_not_resent(wiki, transport, short_path_sent, kind,
                                  method):
    key = f'other-{kind}-{method}'
    response = transport.request(method, url(wiki, kind, key), data='x=1',
                                 auth=CREDENTIALS, timeout=10)
    assert short_path_sent == [True]
    assert len(wiki.seen[key]) == 1
    assert response.status_code == 200
    host = f'127.0.0.1:{wiki.server_port}'
    assert transport.oauth_for(CREDENTIALS, host).clock_offset == 0


@pytest.mark.parametrize('kind', ['api', 'index'])
def test_unsigned_rejection_not_resent(wiki, transport, short_path_sent,
                                       kind):
    key = f'unsigned-{kind}'
    transport.request('POST', url(wiki, kind, key), data='x=1', timeout=10)
    assert short_path_sent == [True]
    assert len(wiki.seen[key]) == 1


def test_option_off_not_resent(wiki, transport, monkeypatch):
    monkeypatch.setattr(options, 'correct_clock_skew', False)
    key = 'option-off'
    response = transport.request('POST', url(wiki, 'api', key), data='x=1',
                                 auth=CREDENTIALS, timeout=10)
    assert len(wiki.seen[key]) == 1
    assert response.headers['MediaWiki-API-Error'] == API_ERROR_CODE


def test_large_index_reply_not_resent(wiki, transport):
    # Above MAX_INDEX_ERROR_BYTES the index.php code is not searched for.
    key = 'large-' + 'k' * 1100
    transport.request('GET', url(wiki, 'quoted', key), auth=CREDENTIALS,
                      timeout=10)
    assert len(wiki.seen[key]) == 1


def test_post_sent_once_per_call(wiki, transport, short_path_sent):
    for index in range(20):
        transport.request('POST', url(wiki, 'other', f'once-{index}'),
                          data=f'n={index}', auth=CREDENTIALS, timeout=10)
    assert all(short_path_sent)
    for index in range(20):
        assert len(wiki.seen[f'once-{index}']) == 1


def test_threads_resend_once_each(wiki, transport):
    errors = []

    def worker(number):
        try:
            response = transport.request(
                'POST', url(wiki, 'api', f'thread-{number}'), data='x=1',
                auth=CREDENTIALS, timeout=10)
            if response.json() != {'ok': True}:
                errors.append(response.content)
        except Exception as exc:  # reported by the assert below
            errors.append(repr(exc))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    counts = [len(wiki.seen[f'thread-{n}']) for n in range(8)]
    # The server rejects the first request of each key whatever its
    # timestamp, so each call sends exactly twice.
    assert counts == [2] * 8
