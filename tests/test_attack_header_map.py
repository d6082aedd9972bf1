"""Compare Response.header_map() with make_headers on raw responses."""
from __future__ import annotations

import sys

import pytest

import _mwcomms
from pywikibot_ext._response import make_headers

LATIN1_NAMES = bytes(range(0xc0, 0x100)).replace(b'\xd7', b'')


def reply_with(head_lines: list[bytes]):
    """Return a handler that replies to each request with a response whose
    header lines are head_lines."""
    header_block = b''.join(line + b'\r\n' for line in head_lines)
    block = (b'HTTP/1.1 200 OK\r\n' + header_block
             + b'Content-Length: 2\r\n\r\nok')

    def handler(server, connection, index):
        data = b''
        while b'\r\n\r\n' not in data:
            piece = connection.recv(65536)
            if not piece:
                return
            data += piece
        connection.sendall(block)

    return handler


CASES = {
    'latin1 names': [b'X-' + bytes([c]) + b': v' for c in LATIN1_NAMES],
    'latin1 values': [b'X-Val: ' + bytes(range(0xa0, 0x100))],
    'empty values': [b'X-Empty:', b'X-Empty: ', b'x-empty:', b'X-Other:'],
    'mixed case repeats': [b'X-Dup: %d' % i if i % 2 else b'x-DUP: %d' % i
                           for i in range(300)],
    'capital sharp s': [b'X-\xdf: a', b'X-\xdf: b', b'x-\xdf: c'],
    'upper and lower latin1': [b'X-\xc0: upper', b'X-\xe0: lower'],
    'large block': [b'X-Big-%d: %s' % (i, b'v' * 900) for i in range(80)],
    'tabs and spaces': [b'X-Tab:\tvalue\t', b'X-Space:   value   '],
}


@pytest.mark.parametrize('case', sorted(CASES))
def test_header_map_raw(raw_servers, case):
    server = raw_servers(reply_with(CASES[case]))
    with _mwcomms.Client() as client:
        response = client.request('GET', server.url(), timeout=10)
    expected = make_headers(response.headers)._store
    mapping = response.header_map()
    assert mapping == expected
    assert list(mapping) == list(expected)
    for key, (name, _) in mapping.items():
        assert type(key) is str
        assert type(name) is str
        assert key == name.lower()


def test_header_map_fresh_dicts(raw_servers):
    server = raw_servers(reply_with([b'X-A: 1', b'X-A: 2']))
    with _mwcomms.Client() as client:
        response = client.request('GET', server.url(), timeout=10)
    first = response.header_map()
    first['x-a'] = ('X-A', 'changed')
    second = response.header_map()
    assert second['x-a'] == ('X-A', '1, 2')
    assert first is not second


def test_header_map_refcounts(raw_servers):
    server = raw_servers(reply_with([b'X-A: 1', b'x-a: 2', b'X-B: 3']))
    with _mwcomms.Client() as client:
        response = client.request('GET', server.url(), timeout=10)
    pairs = response.headers
    before = [sys.getrefcount(item) for pair in pairs for item in pair]
    for _ in range(1000):
        response.header_map()
    after = [sys.getrefcount(item) for pair in pairs for item in pair]
    assert after == before
