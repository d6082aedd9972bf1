"""The requests layer against requests itself, on header edge cases.

requests.Session.request drops a header whose value is None (its
merge_setting removes None values), which is how a caller removes a
header.  Transport.request takes the same arguments and must do the
same.
"""
import http.server
import json
import threading

import pytest
import requests

from pywikibot_ext._transport import Transport


class EchoHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        payload = json.dumps({k.lower(): v for k, v
                              in self.headers.items()}).encode()
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_POST = do_GET


@pytest.fixture(scope='module')
def echo_url():
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), EchoHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f'http://127.0.0.1:{server.server_port}/echo'
    server.shutdown()
    server.server_close()


@pytest.fixture
def transport():
    instance = Transport()
    yield instance
    instance.close()


def sent_headers(response):
    assert response.status_code == 200
    return response.json()


@pytest.mark.parametrize('headers', [
    {'X-None': None, 'X-Kept': 'a'},
    {'X-Twice': 'first', 'x-twice': None, 'X-Kept': 'a'},
    {b'X-Bytes': None, 'X-Kept': 'a'},
])
def test_none_header_dropped(echo_url, transport, headers):
    expected = sent_headers(requests.get(echo_url, headers=headers,
                                         timeout=10))
    actual = sent_headers(transport.request('GET', echo_url,
                                            headers=headers, timeout=10))
    assert actual['x-kept'] == expected['x-kept']
    for name in ('x-none', 'x-twice', 'x-bytes'):
        assert (name in actual) == (name in expected), name


def test_none_header_then_set(echo_url, transport):
    headers = {'x-again': None, 'X-Again': 'b'}
    expected = sent_headers(requests.get(echo_url, headers=headers,
                                         timeout=10))
    actual = sent_headers(transport.request('GET', echo_url,
                                            headers=headers, timeout=10))
    assert actual['x-again'] == expected['x-again']


def test_none_content_type_post(echo_url, transport):
    # requests drops the None before it encodes data, so the form
    # Content-Type is still sent.
    headers = {'Content-Type': None}
    actual = sent_headers(transport.request('POST', echo_url,
                                            data={'a': '1'},
                                            headers=headers, timeout=10))
    expected = sent_headers(requests.post(echo_url, data={'a': '1'},
                                          headers=headers, timeout=10))
    assert actual.get('content-type') == expected.get('content-type')
