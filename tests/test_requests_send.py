"""_mwcomms.Client.requests_send: the short path of the Transport in C."""
import json

import pytest

import _mwcomms
from pywikibot_ext._response import Headers, Response

FORM = 'application/x-www-form-urlencoded'


@pytest.fixture
def client():
    with _mwcomms.Client(cookies=False) as client:
        yield client


def send(client, method, url, headers=None, body=None, cookie=None,
         auth=None):
    return client.requests_send(method, url, headers, body, 10, True, auth,
                                cookie, Response, Headers)


def echoed(response):
    data = json.loads(response.content)
    return data, {name.lower(): value for name, value in data['headers']}


def test_post_sent(client, http_server):
    url = http_server.url('/echo')
    headers = {'Content-Type': FORM, 'user-agent': 'bot/1.0'}
    response, method, store = send(client, 'post', url, headers,
                                   'text=\u00e9t\u00e9', cookie='a=1')
    data, sent = echoed(response)
    assert method == 'POST'
    assert data['method'] == 'POST'
    assert data['body'] == 'text=\u00e9t\u00e9'.encode().decode('latin-1')
    assert sent['content-type'] == FORM
    assert sent['user-agent'] == 'bot/1.0'
    assert sent['cookie'] == 'a=1'
    assert store == {'content-type': ('Content-Type', FORM),
                     'user-agent': ('user-agent', 'bot/1.0')}


def test_response_fields(client, http_server):
    url = http_server.url('/echo')
    response, _, _ = send(client, 'GET', url, {'X-A': '1'}, cookie='c=2')
    assert type(response) is Response
    assert response.status_code == 200
    assert response.url == url
    assert response.headers['content-type'] == 'application/json'
    assert response.request.method == 'GET'
    assert response.request.headers['X-A'] == '1'
    assert response.request.headers['Cookie'] == 'c=2'


def test_head_sends_no_body(client, http_server):
    url = http_server.url('/echo')
    response, method, _ = send(client, 'HEAD', url, None, 'ignored')
    assert method == 'HEAD'
    assert response.status_code == 200
    assert response.content == b''
    assert response.request.body == 'ignored'


def test_bytes_body(client, http_server):
    response, _, _ = send(client, 'PUT', http_server.url('/echo'), {},
                          b'\x00\xff')
    data, sent = echoed(response)
    assert data['body'] == '\x00\xff'
    assert sent['content-length'] == '2'


def test_last_spelling_wins(client, http_server):
    headers = {'X-Name': 'first', 'x-name': 'second'}
    response, _, store = send(client, 'GET', http_server.url('/echo'),
                              headers)
    _, sent = echoed(response)
    assert store == {'x-name': ('x-name', 'second')}
    assert sent['x-name'] == 'second'


@pytest.mark.parametrize('headers, body', [
    ({'Content-Length': '3'}, 'abc'),
    ({'transfer-encoding': 'chunked'}, 'abc'),
    ({'COOKIE': 'a=1'}, None),
    ({'X-A': b'bytes'}, None),
    ({b'X-A': 'value'}, None),
    ({'X-A': None}, None),
    (None, '\udcff'),
    (None, bytearray(b'abc')),
    (None, 42),
], ids=['length', 'chunked', 'cookie', 'bytes-value', 'bytes-name',
        'none-value', 'surrogate', 'bytearray', 'int'])
def test_unusual_input(client, http_server, headers, body):
    assert send(client, 'POST', http_server.url('/echo'), headers,
                body) is None
    assert client.stats['requests'] == 0


def test_unusual_mapping(client, http_server):
    headers = Headers({'X-A': '1'})
    assert send(client, 'GET', http_server.url('/echo'), headers) is None


def test_unusual_url(client, http_server):
    url = http_server.url('/echo').encode()
    assert send(client, 'GET', url) is None


@pytest.mark.parametrize('args, message', [
    ((), 'takes 10 arguments'),
    ((b'GET', 'http://127.0.0.1/', None, None, None, True, None, None,
      Response, Headers), 'method must be a str'),
    (('GET', 'http://127.0.0.1/', None, None, None, True, None, b'a=1',
      Response, Headers), 'cookie must be None or a str'),
])
def test_bad_arguments(client, args, message):
    with pytest.raises(TypeError, match=message):
        client.requests_send(*args)


@pytest.mark.parametrize('classes', [(object(), Headers), (Response, 'x')])
def test_bad_class(client, http_server, classes):
    with pytest.raises(TypeError, match='must be classes'):
        client.requests_send('GET', http_server.url('/echo'), None, None,
                             10, True, None, None, *classes)
    assert client.stats['requests'] == 0


def test_transfer_error(client, closed_port):
    with pytest.raises(_mwcomms.ConnectError):
        send(client, 'GET', f'http://127.0.0.1:{closed_port}/')


def test_closed_client(http_server):
    client = _mwcomms.Client()
    client.close()
    with pytest.raises(ValueError, match='closed'):
        send(client, 'GET', http_server.url('/echo'))


def test_oauth_signed(client, http_server):
    signer = _mwcomms.OAuth1('ck', 'cs', 'ak', 'as')
    response, _, _ = send(client, 'POST', http_server.url('/echo'),
                          {'Content-Type': FORM}, 'a=1', auth=signer)
    _, sent = echoed(response)
    assert sent['authorization'].startswith('OAuth ')
    assert 'oauth_consumer_key="ck"' in sent['authorization']
