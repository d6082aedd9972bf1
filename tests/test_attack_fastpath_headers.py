"""Header parsing, its cache of recent lines and the C-built requests
Response, driven with unusual replies, threads and odd classes.

Every reply comes from a local raw server.  Each parse is compared with
one done here in Python from the bytes that were sent.
"""
from __future__ import annotations

import copy
import gc
import pickle
import random
import sys
import threading

import pytest
import requests

import _mwcomms
import servers
from pywikibot_ext._response import Headers, Response, make_headers
from test_header_cache import expected_pairs


def serve(make_head):
    """Return a handler that replies to GET /N with make_head(N), the status
    line and header lines, and a 2-byte body, on kept-alive connections."""
    def handler(server, connection, index):
        for head in servers.request_heads(connection):
            number = int(head.split(b' ')[1].strip(b'/'))
            connection.sendall(make_head(number)
                               + b'Content-Length: 2\r\n\r\nok')
    return handler


def lines_head(blocks, newline=b'\r\n', status=b'HTTP/1.1 200 OK'):
    def make_head(number):
        return b''.join(line + newline
                        for line in [status] + blocks[number])
    return make_head


ODD_BLOCKS = [
    [b':empty-name'],
    [b':'],
    [b'A:', b'\t', b' \tx '],
    [b'A: 1', b'A: 2', b'a: 3', b'A: 4'],
    [b'Name : spaced'],
    [b'X-\xe9t\xe9: caf\xe9 \xff\xa0'],
    [b'X-CR: one\rtwo'],
    [b'X-Fold: a', b' b', b'\tc', b'X-After: d'],
    [b'X-Fold: a', b'   '],
    [],
    [b'N' * 47 + b': v', b'N' * 48 + b': v', b'N' * 49 + b': v'],
    [b'V: ' + b'v' * 95, b'W: ' + b'w' * 96, b'X: ' + b'x' * 97],
    [b'Set-Cookie: a=1', b'set-cookie: b=2', b'SET-COOKIE: c=3'],
]


@pytest.mark.parametrize('newline', [b'\r\n', b'\n'])
def test_odd_blocks_parse(raw_servers, newline):
    # Each block is sent twice, so the second parse comes from the cache.
    blocks = ODD_BLOCKS + ODD_BLOCKS
    server = raw_servers(serve(lines_head(blocks, newline)))
    results_alive = []
    with _mwcomms.Client() as client:
        for number, lines in enumerate(blocks):
            result = client.request('GET', server.url(f'/{number}'),
                                    timeout=10)
            results_alive.append(result)
            expected = expected_pairs(lines) + [('Content-Length', '2')]
            assert list(result.headers) == expected, number
            assert result.header_map() == make_headers(expected)._store
            assert result.reason == 'OK'
    # Responses kept alive while later replies changed the cache.
    for number, result in enumerate(results_alive):
        expected = expected_pairs(blocks[number]) + [('Content-Length',
                                                      '2')]
        assert list(result.headers) == expected, number


@pytest.mark.parametrize('status, reason', [
    (b'HTTP/1.1 200', ''),
    (b'HTTP/1.1 200 ', ''),
    (b'HTTP/1.1 200  Spaced  Out ', 'Spaced  Out'),
    (b'HTTP/1.1 299 ' + b'R' * 31, 'R' * 31),
    (b'HTTP/1.1 299 ' + b'R' * 32, 'R' * 32),
    (b'HTTP/1.1 299 ' + b'R' * 33, 'R' * 33),
    (b'HTTP/1.1 200 \xe9tat', '\xe9tat'),
])
def test_reason_phrase_cache(raw_servers, status, reason):
    # Two different phrases in turn, then the same one twice.
    heads = [status + b'\r\n', b'HTTP/1.1 200 Other\r\n',
             status + b'\r\n', status + b'\r\n']
    server = raw_servers(serve(lambda number: heads[number]))
    with _mwcomms.Client() as client:
        results = [client.request('GET', server.url(f'/{number}'),
                                  timeout=10)
                   for number in range(len(heads))]
    assert results[0].reason == reason
    assert results[1].reason == 'Other'
    assert results[2].reason == reason
    assert results[3].reason == reason


def test_many_headers_block(raw_servers):
    lines = [b'X-%d: v%d' % (i, i % 7) for i in range(12000)]
    lines += [b'X-5: again', b' folded']
    server = raw_servers(serve(lines_head([lines, lines])))
    with _mwcomms.Client() as client:
        first = client.request('GET', server.url('/0'), timeout=30)
        second = client.request('GET', server.url('/1'), timeout=30)
    expected = expected_pairs(lines) + [('Content-Length', '2')]
    assert list(first.headers) == expected
    assert list(second.headers) == expected
    response = Response(second, None)
    assert response.headers['x-5'] == 'v5, again folded'
    assert len(response.headers) == 12001


def random_block(number: int) -> list[bytes]:
    rng = random.Random(number)
    lines = []
    for _ in range(rng.randrange(0, 25)):
        name = b'X-%d-' % rng.randrange(400) + b'n' * rng.choice(
            (0, 40, 42, 43, 44, 60))
        size = rng.choice((0, 1, 95, 96, 97, 300))
        value = bytes(rng.choice(b'abc\xe9\xff') for _ in range(size))
        lines.append(name + b': ' + value)
        if rng.random() < 0.1:
            lines.append(b' fold%d' % number)
    if rng.random() < 0.3:
        lines.append(b'Set-Cookie: s=%d' % number)
    return lines


def test_threads_and_clients_evict(raw_servers):
    # Four threads on two clients parse blocks of 400 names that keep
    # replacing each other in the cache, and keep every result.
    server = raw_servers(serve(
        lambda number: b'HTTP/1.1 200 OK\r\n'
        + b''.join(line + b'\r\n' for line in random_block(number))))
    clients = [_mwcomms.Client(), _mwcomms.Client()]
    results_alive = []
    failures = []
    lock = threading.Lock()

    def work(thread):
        client = clients[thread % 2]
        for i in range(60):
            number = thread * 1000 + i
            result = client.request('GET', server.url(f'/{number}'),
                                    timeout=10)
            item = Response(result, None) if i % 3 == 0 else result
            with lock:
                results_alive.append((number, item))
            if i % 20 == 0:
                gc.collect()

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for client in clients:
        client.close()
    assert len(results_alive) == 240
    for number, item in results_alive:
        expected = expected_pairs(random_block(number)) + [
            ('Content-Length', '2')]
        if isinstance(item, Response):
            if item.headers._store != make_headers(expected)._store:
                failures.append(number)
        elif list(item.headers) != expected:
            failures.append(number)
    assert failures == []


def test_cached_pair_refcount(raw_servers):
    # The cache keeps one reference to a pair.  Responses that are freed
    # give theirs back.
    lines = [b'Server: refcount-check']
    server = raw_servers(serve(lines_head([lines] * 60)))
    with _mwcomms.Client() as client:
        first = client.request('GET', server.url('/0'), timeout=10)
        pair = first.headers[0]
        base = sys.getrefcount(pair)
        for number in range(1, 60):
            result = client.request('GET', server.url(f'/{number}'),
                                    timeout=10)
            Response(result, None)
            assert result.headers[0] is pair
            del result
        gc.collect()
        assert sys.getrefcount(pair) == base


@pytest.fixture(scope='module')
def result_server():
    import servers
    head = (b'HTTP/1.1 201 Created\r\nServer: x\r\nX-Dup: 1\r\n'
            b'x-dup: 2\r\nSet-Cookie: a=b; Path=/\r\n')
    server = servers.RawServer(serve(lambda number: head))
    yield server
    server.stop()


@pytest.fixture
def result(result_server):
    with _mwcomms.Client() as client:
        yield client.request('GET', result_server.url('/0'), timeout=10)


class Slotted:
    __slots__ = ('a',)


class Meta(type):
    pass


class WithMeta(metaclass=Meta):
    pass


class SlottedResponse(Response):
    __slots__ = ('extra',)


@pytest.mark.parametrize('cls', [int, dict, object, tuple, Slotted],
                         ids=lambda cls: cls.__name__)
def test_requests_response_no_dict(result, cls):
    with pytest.raises(AttributeError, match='no __dict__'):
        result.requests_response(cls, Headers, None, None)


@pytest.mark.parametrize('cls', [type, Meta], ids=lambda cls: cls.__name__)
def test_requests_response_metaclass(result, cls):
    with pytest.raises(TypeError):
        result.requests_response(cls, Headers, None, None)


def test_requests_response_odd_classes(result):
    instance = result.requests_response(WithMeta, Headers, None, None)
    assert type(instance) is WithMeta
    assert instance.status_code == 201
    slotted = result.requests_response(SlottedResponse, Headers, None, None)
    assert type(slotted) is SlottedResponse
    assert slotted.headers['X-DUP'] == '1, 2'
    slotted.extra = 1
    assert slotted.extra == 1


@pytest.mark.parametrize('headers_type', [int, dict, Slotted],
                         ids=lambda cls: cls.__name__)
def test_requests_state_bad_headers_type(result, headers_type):
    with pytest.raises((AttributeError, TypeError)):
        result.requests_state(headers_type, None, None)
    with pytest.raises((AttributeError, TypeError)):
        result.requests_response(Response, headers_type, None, None)


def test_requests_state_headers_new_other(result):
    # A headers type whose __new__ returns another object: that object
    # gets the _store, as setattr would give it.
    class Other:
        pass

    class Odd(Headers):
        def __new__(cls):
            return Other()

    state = result.requests_state(Odd, None, None)
    assert type(state['headers']) is Other
    assert state['headers']._store['x-dup'] == ('X-Dup', '1, 2')


def test_requests_state_reentrant(result, result_server):
    # Another parse runs inside requests_state, from the headers type.
    inner = []

    class Reentrant(Headers):
        def __new__(cls):
            with _mwcomms.Client() as client:
                inner.append(client.request('GET', result_server.url('/1'),
                                            timeout=10).header_map())
            return super().__new__(cls)

    state = result.requests_state(Reentrant, None, None)
    assert state['headers']._store == result.header_map()
    assert inner[0] == result.header_map()


def test_requests_state_no_leak(result):
    # requests_state, requests_response and their error paths, run many
    # times, leave no allocated blocks behind.
    def run(count):
        for _ in range(count):
            Response(result, None, None)
            result.requests_response(Response, Headers, None, ())
            for cls, headers_type in ((int, Headers), (Response, int),
                                      (Slotted, Headers)):
                try:
                    result.requests_response(cls, headers_type, None, None)
                except (AttributeError, TypeError):
                    pass
            result.header_map()
            result.get_all('x-dup')

    run(100)
    gc.collect()
    before = sys.getallocatedblocks()
    run(2000)
    gc.collect()
    after = sys.getallocatedblocks()
    # A leak of one object per call would be thousands of blocks.
    assert after - before < 200


def describe(response) -> tuple:
    return (response.status_code, response.reason, dict(response.headers),
            response.content, response.cookies.get_dict(), response.url,
            response.ok, response.elapsed >= response.elapsed * 0,
            response.request.url if response.request else None)


@pytest.mark.parametrize('how', ['copy', 'deepcopy', 'pickle'])
def test_response_copy_like_requests(result_server, how):
    url = result_server.url('/0')
    with _mwcomms.Client() as client:
        result = client.request('GET', url, timeout=10)
    ours = Response(result, None, ('GET', url, [('User-Agent', 'x')], None))
    stock = requests.get(url, timeout=10)
    copies = []
    for response in (ours, stock):
        if how == 'copy':
            copies.append(copy.copy(response))
        elif how == 'deepcopy':
            copies.append(copy.deepcopy(response))
        else:
            copies.append(pickle.loads(pickle.dumps(response)))
    assert describe(copies[0]) == describe(copies[1])
    assert isinstance(copies[0].headers, Headers)
    assert copies[0].headers['x-dup'] == '1, 2'
    assert copies[0]._result is None
    # The original keeps its C result.
    assert ours._result is result
