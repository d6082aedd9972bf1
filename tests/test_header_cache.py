"""Header parsing across many replies, with the cache of recent lines.

The C client keeps the names and values of recent header lines as str
objects and reuses them for the next reply.  These tests send sequences
of replies whose lines repeat, change and evict each other, and compare
every parse with one done here in Python from the bytes that were sent.
"""
from __future__ import annotations

import random

import pytest

import _mwcomms
import servers
from pywikibot_ext._response import Headers, Response, make_headers

REPLIES = 120


def expected_pairs(lines: list[bytes]) -> list[tuple[str, str]]:
    """Parse header lines as the client documents it: Latin-1 text,
    spaces and tabs stripped around values, folded lines joined to the
    previous value with one space."""
    pairs = []
    for line in lines:
        if line[:1] in (b' ', b'\t'):
            extra = line.strip(b' \t')
            if pairs and extra:
                name, value = pairs[-1]
                pairs[-1] = (name, value + ' ' + extra.decode('latin-1'))
            continue
        name, _, value = line.partition(b':')
        pairs.append((name.decode('latin-1'),
                      value.strip(b' \t').decode('latin-1')))
    return pairs


def random_blocks(seed: int) -> list[list[bytes]]:
    """Header lines for REPLIES replies: a pool of names larger than the
    cache, names and values longer than what it keeps, repeated and
    changing values, Set-Cookie lines and folded lines."""
    rng = random.Random(seed)
    names = [b'X-Name-%d' % i for i in range(300)]
    names += [b'X-Long-' + b'n' * rng.randrange(40, 70) + b'-%d' % i
              for i in range(10)]
    names += [b'Server', b'Date', b'Content-Type', b'Connection',
              b'Set-Cookie', b'X-\xe9t\xe9', b'set-cookie', b'SERVER']
    blocks = []
    for _ in range(REPLIES):
        lines = []
        for name in rng.sample(names, rng.randrange(0, 40)):
            size = rng.choice((0, 1, 5, 95, 96, 97, 200))
            value = bytes(rng.choice(b'abcXYZ09 ;=\xa0\xff')
                          for _ in range(size)).strip(b' ')
            if rng.random() < 0.5:
                value = b'same-' + name
            lines.append(name + b': ' + value)
            if rng.random() < 0.05:
                lines.append(b'\t folded ' + name)
        blocks.append(lines)
    return blocks


def serve_blocks(blocks: list[list[bytes]]):
    """Return a handler that replies to GET /N with the header lines of
    blocks[N], on one kept-alive connection."""
    def handler(server, connection, index):
        for head in servers.request_heads(connection):
            number = int(head.split(b' ')[1].strip(b'/'))
            block = b''.join(line + b'\r\n' for line in blocks[number])
            connection.sendall(b'HTTP/1.1 200 OK\r\n' + block
                               + b'Content-Length: 2\r\n\r\nok')
    return handler


@pytest.mark.parametrize('seed', [1, 2, 3])
def test_sequence_matches_python_parse(raw_servers, seed):
    blocks = random_blocks(seed)
    server = raw_servers(serve_blocks(blocks))
    with _mwcomms.Client() as client:
        for number, lines in enumerate(blocks):
            result = client.request('GET', server.url(f'/{number}'),
                                    timeout=10)
            expected = expected_pairs(lines) + [('Content-Length', '2')]
            assert list(result.headers) == expected
            assert result.header_map() == make_headers(expected)._store
            response = Response(result, None)
            assert response.headers._store == make_headers(expected)._store
            assert isinstance(response.headers, Headers)
    assert server.connections == 1


def test_repeated_lines_share_objects(raw_servers):
    lines = [b'Server: nginx', b'Set-Cookie: session=s3cr3t; HttpOnly']
    server = raw_servers(serve_blocks([lines, lines]))
    with _mwcomms.Client() as client:
        first = client.request('GET', server.url('/0'), timeout=10)
        second = client.request('GET', server.url('/1'), timeout=10)
    assert first.headers[0] is second.headers[0]
    # A Set-Cookie value is parsed anew for each reply, so no session
    # outlives the responses that carried it.
    assert first.headers[1] == second.headers[1]
    assert first.headers[1] is not second.headers[1]


def test_requests_state_arguments(raw_servers):
    server = raw_servers(serve_blocks([[b'Server: nginx']]))
    with _mwcomms.Client() as client:
        result = client.request('GET', server.url('/0'), timeout=10)
    with pytest.raises(TypeError, match='takes 3 arguments'):
        result.requests_state(Headers, None)
    with pytest.raises(TypeError, match='headers_type must be a class'):
        result.requests_state(42, None, None)
    state = result.requests_state(Headers, None, None)
    assert state['status_code'] == 200
    assert state['_content'] == b'ok'
    assert state['history'] == []
    assert state['history'] is not result.requests_state(
        Headers, None, None)['history']
    assert state['headers']._store == result.header_map()


def test_requests_response(raw_servers):
    server = raw_servers(serve_blocks([[b'Content-Type: text/plain']]))
    with _mwcomms.Client() as client:
        result = client.request('GET', server.url('/0'), timeout=10)
    sent = ('GET', server.url('/0'), [], None)
    response = result.requests_response(Response, Headers, None, sent)
    assert type(response) is Response
    assert response.status_code == 200
    assert response.text == 'ok'
    assert response.headers['content-type'] == 'text/plain'
    assert response.request.url == server.url('/0')
    with pytest.raises(TypeError, match='takes 4 arguments'):
        result.requests_response(Response, Headers, None)
    with pytest.raises(TypeError, match='must be classes'):
        result.requests_response(Response, 'Headers', None, sent)
    with pytest.raises(TypeError, match='must be classes'):
        result.requests_response(None, Headers, None, sent)
