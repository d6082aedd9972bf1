"""Client behaviour against broken servers and unsafe arguments.

The servers here are servers.RawServer instances on 127.0.0.1 that write
raw bytes: a request read in full and never answered, malformed status
lines, conflicting Content-Length headers, trailers, and so on.
"""
from __future__ import annotations

import gzip
import io
import os
import time
import types
import urllib.parse

import pytest

import _mwcomms
from servers import raw_reply, read_raw_request

FORM = {'Content-Type': 'application/x-www-form-urlencoded'}


@pytest.fixture
def client():
    with _mwcomms.Client() as instance:
        yield instance


def request_line(head: bytes) -> bytes:
    return head.split(b'\r\n')[0]


# -- a request that may have reached the server is not sent again -------

def answer_once_then_drop(server, connection, index):
    """Answer the first request of connection 0.  Read every other
    request in full and close the connection without answering, as a
    server that crashes or times the connection out right then does."""
    pending = b''
    answered = False
    while True:
        head, body, pending = read_raw_request(connection, pending)
        if head is None:
            return
        server.record((index, request_line(head), body))
        if answered or index > 0:
            return
        raw_reply(connection)
        answered = True


def recorded_lines(server, method: bytes) -> list:
    time.sleep(0.2)  # the handler records before it closes
    with server.lock:
        return [item for item in server.requests
                if item[1].startswith(method)]


BODIES = {
    'bytes': lambda: b'action=edit&text=x',
    'str': lambda: 'action=edit&text=x',
    'empty': lambda: None,
    'multipart': lambda: _mwcomms.Multipart(fields={'action': 'edit'}),
    'stream': lambda: io.BytesIO(b'action=edit&text=x'),
}


@pytest.mark.parametrize('kind', sorted(BODIES))
def test_post_not_resent(client, raw_servers, kind):
    server = raw_servers(answer_once_then_drop)
    assert client.request('GET', server.url('/warm')).status == 200
    headers = FORM if kind != 'multipart' else None
    if kind == 'stream':
        # The raw server reads Content-Length bodies only, not chunked.
        headers = {**FORM, 'Content-Length': '18'}
    with pytest.raises(_mwcomms.TransferError) as info:
        client.request('POST', server.url('/edit'), headers,
                       BODIES[kind](), timeout=5)
    assert info.value.request_sent is True
    if kind != 'stream':
        # A streamed body runs on a multi handle of its own, which opens
        # a new connection, so libcurl has no reused connection to retry.
        assert 'not sent again' in str(info.value)
    assert len(recorded_lines(server, b'POST')) == 1


@pytest.mark.parametrize('method', ['PUT', 'DELETE', 'PATCH'])
def test_other_methods_not_resent(client, raw_servers, method):
    server = raw_servers(answer_once_then_drop)
    client.request('GET', server.url('/warm'))
    with pytest.raises(_mwcomms.TransferError):
        client.request(method, server.url('/edit'), timeout=5)
    assert len(recorded_lines(server, method.encode())) == 1


def test_stream_post_not_resent(client, raw_servers):
    server = raw_servers(answer_once_then_drop)
    client.request('GET', server.url('/warm'))
    with pytest.raises(_mwcomms.TransferError):
        client.stream('POST', server.url('/edit'), FORM, b'a=1', timeout=5)
    assert len(recorded_lines(server, b'POST')) == 1


def test_request_many_post_not_resent(client, raw_servers):
    server = raw_servers(answer_once_then_drop)
    results = client.request_many(
        [('GET', server.url('/warm')),
         ('POST', server.url('/edit'), FORM, b'a=1')],
        max_concurrency=1, timeout=5)
    assert results[0].status == 200
    assert isinstance(results[1], _mwcomms.TransferError)
    assert results[1].request_sent is True
    assert len(recorded_lines(server, b'POST')) == 1


def answer_except_second_on_first(server, connection, index):
    """Like answer_once_then_drop, but later connections are answered."""
    pending = b''
    count = 0
    while True:
        head, body, pending = read_raw_request(connection, pending)
        if head is None:
            return
        server.record((index, request_line(head), body))
        count += 1
        if index == 0 and count == 2:
            return
        raw_reply(connection, b'answer %d' % index)


def test_get_resent_on_new_connection(client, raw_servers):
    server = raw_servers(answer_except_second_on_first)
    client.request('GET', server.url('/warm'))
    response = client.request('GET', server.url('/read'), timeout=5)
    assert response.status == 200
    assert response.body == b'answer 1'
    assert len(recorded_lines(server, b'GET /read')) == 2


def test_post_keeps_connection_alive(client, http_server):
    first = client.request('POST', http_server.url('/echo'), FORM, b'a=1')
    second = client.request('POST', http_server.url('/echo'), FORM, b'a=2')
    assert first.status == 200
    assert second.status == 200
    assert second.new_connections == 0
    assert second.local_port == first.local_port


# -- framing headers are libcurl's --------------------------------------

def answer_all(server, connection, index):
    pending = b''
    while True:
        head, body, pending = read_raw_request(connection, pending)
        if head is None:
            return
        server.record((index, head, body, pending))
        raw_reply(connection)


FRAMING_BODIES = {
    'none': lambda: None,
    'bytes': lambda: b'a=1GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n',
    'str': lambda: 'a=1',
    'multipart': lambda: _mwcomms.Multipart(fields={'a': '1'}),
}


@pytest.mark.parametrize('kind', sorted(FRAMING_BODIES))
@pytest.mark.parametrize('name', ['Content-Length', 'content-length',
                                  'Transfer-Encoding'])
def test_framing_header_rejected(client, raw_servers, kind, name):
    server = raw_servers(answer_all)
    value = '3' if name.lower() == 'content-length' else 'chunked'
    with pytest.raises(ValueError) as info:
        client.request('POST', server.url('/api'), {name: value},
                       FRAMING_BODIES[kind]())
    assert repr(name) in str(info.value)
    time.sleep(0.1)
    assert server.connections == 0


def test_transfer_encoding_stream_rejected(client, http_server):
    with pytest.raises(ValueError, match='Transfer-Encoding'):
        client.request('POST', http_server.url('/hash'),
                       {'Transfer-Encoding': 'chunked'}, io.BytesIO(b'x'))


def test_stream_longer_than_length(client, raw_servers):
    server = raw_servers(answer_all)
    chunks = [b'abcdef', b'GET /smuggled HTTP/1.1\r\n\r\n']
    with pytest.raises(ValueError, match='longer than its size of 3'):
        client.request('POST', server.url('/api'), {'Content-Length': '3'},
                       iter(chunks), timeout=5)
    time.sleep(0.2)
    lines = [request_line(item[1]) for item in server.requests]
    assert b'GET /smuggled HTTP/1.1' not in lines


def test_stream_shorter_than_length(client, raw_servers):
    server = raw_servers(answer_all)
    with pytest.raises(ValueError, match='shorter than its size of 5'):
        client.request('POST', server.url('/api'), {'Content-Length': '5'},
                       iter([b'ab']), timeout=5)


def test_stream_length_sent_once(client, raw_servers):
    server = raw_servers(answer_all)
    response = client.request('POST', server.url('/api'),
                              {'Content-Length': '3'}, iter([b'a', b'bc']))
    assert response.status == 200
    head = server.requests[0][1].lower()
    assert head.count(b'content-length:') == 1
    assert b'content-length: 3' in head
    assert server.requests[0][2] == b'abc'


def test_stream_length_given_twice(client, http_server):
    with pytest.raises(ValueError, match='more than once'):
        client.request('POST', http_server.url('/hash'),
                       [('Content-Length', '1'), ('Content-Length', '1')],
                       io.BytesIO(b'x'))


def test_host_header_sent(client, raw_servers):
    server = raw_servers(answer_all)
    client.request('GET', server.url('/'), {'Host': 'wiki.example'})
    head = server.requests[0][1]
    assert b'\r\nHost: wiki.example' in head


# -- fork() ---------------------------------------------------------------

def answer_with_path(server, connection, index):
    pending = b''
    while True:
        head, body, pending = read_raw_request(connection, pending)
        if head is None:
            return
        path = head.split(b' ')[1]
        server.record((index, path))
        raw_reply(connection, path)


def run_in_child(function) -> bytes:
    """Run function() in a forked child and return the bytes it returns,
    or b'error: ...' when it raises."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            try:
                result = function()
            except BaseException as exc:  # report anything to the parent
                result = f'error: {type(exc).__name__}: {exc}'.encode()
            os.write(write_end, result)
        finally:
            os._exit(0)
    os.close(write_end)
    chunks = []
    while True:
        data = os.read(read_end, 65536)
        if not data:
            break
        chunks.append(data)
    os.close(read_end)
    os.waitpid(pid, 0)
    return b''.join(chunks)


def test_fork_child_new_connection(client, raw_servers):
    server = raw_servers(answer_with_path)
    client.request('GET', server.url('/before'))

    def child():
        response = client.request('GET', server.url('/child'), timeout=5)
        return response.body + b' %d' % response.new_connections

    assert run_in_child(child) == b'/child 1'
    parent = client.request('GET', server.url('/parent'), timeout=5)
    assert parent.body == b'/parent'
    assert parent.new_connections == 0
    time.sleep(0.1)
    connection_of = {path: index for index, path in server.requests}
    assert connection_of[b'/child'] != connection_of[b'/before']
    assert connection_of[b'/parent'] == connection_of[b'/before']


def test_fork_child_stats_reset(client, raw_servers):
    server = raw_servers(answer_with_path)
    client.request('GET', server.url('/before'))

    def child():
        stats = client.stats
        return b'%d %d' % (stats['handles'], stats['idle'])

    assert client.stats['idle'] == 1
    assert run_in_child(child) == b'0 0'


def test_fork_child_close(client, raw_servers):
    server = raw_servers(answer_with_path)
    client.request('GET', server.url('/before'))

    def child():
        client.close()
        return b'closed' if client.closed else b'open'

    assert run_in_child(child) == b'closed'
    assert client.request('GET', server.url('/after')).new_connections == 0


def test_fork_stream_rejected(client, http_server):
    stream = client.stream('GET', http_server.url('/stream?size=3000000'))

    def child():
        stream.read(10)
        return b'read'

    result = run_in_child(child)
    assert result.startswith(b'error: ValueError')
    assert b'fork()' in result
    assert len(stream.read()) == 3000000
    stream.close()


# -- OAuth signatures cover the path that is sent ------------------------

def verify_oauth(server, connection, index):
    from oauthlib.oauth1.rfc5849 import signature, utils

    pending = b''
    while True:
        head, body, pending = read_raw_request(connection, pending)
        if head is None:
            return
        lines = head.decode('latin-1').split('\r\n')
        method, target, _ = lines[0].split(' ')
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(':')
            headers[name.lower()] = value.strip()
        uri = 'http://' + headers['host'] + target
        authorization = headers['authorization']
        params = dict(utils.parse_authorization_header(authorization))
        collected = signature.collect_parameters(
            uri_query=urllib.parse.urlparse(uri).query, body=body.decode(),
            headers={'Authorization': authorization},
            exclude_oauth_signature=True)
        base = signature.signature_base_string(
            method, signature.base_string_uri(uri),
            signature.normalize_parameters(collected))
        secrets = types.SimpleNamespace(client_secret='cs',
                                        resource_owner_secret='ts')
        expected = signature.sign_hmac_sha1_with_client(base, secrets)
        valid = expected == utils.unescape(params['oauth_signature'])
        server.record(target)
        raw_reply(connection, b'valid' if valid else b'invalid')


@pytest.mark.parametrize('path', ['/w/./api.php?a=b', '/w/x/../api.php',
                                  '/w/api.php?action=query'])
def test_oauth_dot_segments(client, raw_servers, path):
    server = raw_servers(verify_oauth)
    oauth = _mwcomms.OAuth1('ck', 'cs', 'tk', 'ts')
    response = client.request('POST', server.url(path), FORM,
                              'action=edit&text=a+b', auth=oauth)
    assert server.requests[-1] == path
    assert response.body == b'valid'


# -- malformed responses -----------------------------------------------

def reply_with(data: bytes):
    def handler(server, connection, index):
        read_raw_request(connection)
        connection.sendall(data)
    return handler


@pytest.mark.parametrize('reply', [
    b'HTTP/1.1 abc\r\n\r\n',
    b'\x00\x01garbage\r\n\r\n',
    b'hello world',
], ids=['bad-version', 'binary', 'http09'])
def test_malformed_status_line(client, raw_servers, reply):
    server = raw_servers(reply_with(reply))
    with pytest.raises(_mwcomms.Error) as info:
        client.request('GET', server.url('/w/api.php'), timeout=5)
    assert type(info.value) is _mwcomms.TransferError
    assert info.value.request_sent is True


def test_unsupported_scheme_invalid_url(client):
    with pytest.raises(_mwcomms.InvalidURL):
        client.request('GET', 'ftp://127.0.0.1/')


# -- trailers and interim responses --------------------------------------

TRAILER_REPLY = (b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n'
                 b'X-Head: 1\r\n\r\n3\r\nabc\r\n0\r\nX-Trailer: t\r\n'
                 b'Set-Cookie: evil=1; Path=/\r\n\r\n')


def test_trailers_not_headers(client, raw_servers):
    server = raw_servers(reply_with(TRAILER_REPLY))
    response = client.request('GET', server.url('/'), timeout=5)
    names = [name for name, _ in response.headers]
    assert response.body == b'abc'
    assert names == ['Transfer-Encoding', 'X-Head']
    assert response.get_header('Set-Cookie') is None


def test_trailers_not_in_stream(client, raw_servers):
    server = raw_servers(reply_with(TRAILER_REPLY))
    with client.stream('GET', server.url('/'), timeout=5) as stream:
        body = stream.read()
    assert body == b'abc'
    assert stream.get_header('X-Trailer') is None
    assert stream.get_header('Set-Cookie') is None


def test_trailer_cookie_not_stored(raw_servers):
    def handler(server, connection, index):
        pending = b''
        while True:
            head, body, pending = read_raw_request(connection, pending)
            if head is None:
                return
            server.record(head)
            connection.sendall(TRAILER_REPLY)

    server = raw_servers(handler)
    with _mwcomms.Client(cookies=True) as client:
        client.request('GET', server.url('/first'), timeout=5)
        client.request('GET', server.url('/second'), timeout=5)
    assert b'evil=1' not in server.requests[1]


def test_interim_headers_dropped(client, raw_servers):
    server = raw_servers(reply_with(
        b'HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\n'
        b'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Final: 1\r\n\r\nok'))
    response = client.request('GET', server.url('/'), timeout=5)
    assert response.status == 200
    assert response.get_header('X-Interim') is None
    assert response.get_header('X-Final') == '1'
    assert response.body == b'ok'


# -- response lengths ---------------------------------------------------

@pytest.mark.parametrize('reply, message', [
    (b'HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n'
     b'abc', 'Content-Length header is not a decimal number'),
    (b'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\n'
     b'abcde', 'Content-Length headers conflict'),
    (b'HTTP/1.1 200 OK\r\nContent-Length: 3, 5\r\n\r\nabcde',
     'Content-Length headers conflict'),
    (b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc',
     'response ended early'),
], ids=['too-large', 'duplicate', 'list', 'truncated'])
def test_broken_length(client, raw_servers, reply, message):
    server = raw_servers(reply_with(reply))
    with pytest.raises(_mwcomms.TransferError, match=message):
        client.request('GET', server.url('/'), timeout=5)


def test_equal_lengths_accepted(client, raw_servers):
    server = raw_servers(reply_with(
        b'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3, 3\r\n'
        b'\r\nabc'))
    response = client.request('GET', server.url('/'), timeout=5)
    assert response.body == b'abc'


def test_broken_length_in_stream(client, raw_servers):
    server = raw_servers(reply_with(
        b'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\n'
        b'abcde'))
    with pytest.raises(_mwcomms.TransferError, match='conflict'):
        client.stream('GET', server.url('/'), timeout=5)


# -- secrets stay out of encoding errors --------------------------------

def check_hidden(error: BaseException, secret: str):
    assert type(error) is ValueError
    assert secret not in str(error)
    assert secret not in repr(error.args)
    assert error.__context__ is None
    assert error.__cause__ is None


def test_header_encoding_error_hidden(client, http_server):
    with pytest.raises(ValueError) as info:
        client.request('GET', http_server.url('/'),
                       {'Cookie': 'session=S3CR3T\udc80'})
    check_hidden(info.value, 'S3CR3T')
    assert "'Cookie'" in str(info.value)
    assert 'position 14' in str(info.value)


def test_body_encoding_error_hidden(client, http_server):
    with pytest.raises(ValueError) as info:
        client.request('POST', http_server.url('/'), FORM,
                       'lgpassword=hunter2\ud800')
    check_hidden(info.value, 'hunter2')
    assert 'body' in str(info.value)
    assert 'position 18' in str(info.value)


def test_stream_chunk_encoding_error_hidden(client, http_server):
    with pytest.raises(ValueError) as info:
        client.request('POST', http_server.url('/hash'), None,
                       iter(['lgpassword=hunter2\ud800']))
    check_hidden(info.value, 'hunter2')


def test_multipart_encoding_error_hidden(client, http_server):
    with pytest.raises(ValueError) as info:
        _mwcomms.Multipart(fields={'lgpassword': 'hunter2\ud800'})
    check_hidden(info.value, 'hunter2')
    assert 'Multipart field value' in str(info.value)


# -- methods ------------------------------------------------------------

@pytest.mark.parametrize('method', ['POST\0', 'GET\0DELETE',
                                    'DELETE\0\r\nX: y', 'GET\udc80'])
def test_method_with_nul_rejected(client, http_server, method):
    with pytest.raises(ValueError, match='unsupported HTTP method'):
        client.request(method, http_server.url('/'))


# -- limits get clear messages ------------------------------------------

def test_request_header_over_limit(client, http_server):
    with pytest.raises(ValueError, match='1048576 bytes'):
        client.request('GET', http_server.url('/'),
                       {'X-Big': 'y' * (1024 * 1024)})


def test_response_header_line_over_limit(client, raw_servers):
    server = raw_servers(reply_with(
        b'HTTP/1.1 200 OK\r\nX-A: ' + b'y' * 200000
        + b'\r\nContent-Length: 0\r\n\r\n'))
    with pytest.raises(_mwcomms.TransferError, match='102400 bytes'):
        client.request('GET', server.url('/'), timeout=5)


def test_folded_first_header_message(client, raw_servers):
    server = raw_servers(reply_with(
        b'HTTP/1.1 200 OK\r\n X-Lead: 1\r\nContent-Length: 0\r\n\r\n'))
    with pytest.raises(_mwcomms.TransferError, match='space or tab'):
        client.request('GET', server.url('/'), timeout=5)


# -- max_response_size counts decoded bytes -----------------------------

def gzip_reply(decoded_size: int) -> bytes:
    body = gzip.compress(b'\0' * decoded_size, 9)
    return (b'HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n'
            b'Content-Length: %d\r\n\r\n' % len(body) + body)


def test_gzip_bomb_capped(raw_servers):
    server = raw_servers(reply_with(gzip_reply(64 << 20)))
    with _mwcomms.Client(max_response_size=1 << 20) as client:
        with pytest.raises(_mwcomms.TransferError) as info:
            client.request('GET', server.url('/'), timeout=5)
    assert 'max_response_size of 1048576 bytes' in str(info.value)
    assert info.value.__context__ is None


def test_gzip_under_cap_decoded(raw_servers):
    server = raw_servers(reply_with(gzip_reply(1 << 19)))
    with _mwcomms.Client(max_response_size=1 << 20) as client:
        response = client.request('GET', server.url('/'), timeout=5)
    assert response.body == b'\0' * (1 << 19)


def test_gzip_cap_without_decoding(raw_servers):
    reply = gzip_reply(64 << 20)
    server = raw_servers(reply_with(reply))
    with _mwcomms.Client(max_response_size=1 << 20) as client:
        response = client.request('GET', server.url('/'), timeout=5,
                                  accept_encoding=False)
    assert response.body == reply.split(b'\r\n\r\n', 1)[1]
