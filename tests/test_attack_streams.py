"""Attacks on streams that borrow the client's kept multi handle."""
from __future__ import annotations

import gc
import json
import os
import signal
import threading
import time

import pytest

import _mwcomms
import servers

MIB = 1024 * 1024


def expected_body(size: int) -> bytes:
    block = servers.STREAM_BLOCK
    return block * (size // len(block)) + block[:size % len(block)]


@pytest.fixture
def client():
    with _mwcomms.Client() as instance:
        yield instance


def stream_url(server, size: int, **query) -> str:
    extra = ''.join(f'&{key}={value}' for key, value in query.items())
    return server.url(f'/stream?size={size}{extra}')


def test_streams_in_a_row_one_connection(client, http_server):
    url = stream_url(http_server, 70000)
    for _ in range(20):
        with client.stream('GET', url) as r:
            assert r.read() == expected_body(70000)
    stats = client.stats
    assert stats['connects'] == 1
    assert stats['requests'] == 20
    assert stats['handles'] == stats['idle']


def test_streams_closed_early_alternating(client, http_server):
    big = stream_url(http_server, 3 * MIB)
    small = stream_url(http_server, 5000)
    for _ in range(5):
        with client.stream('GET', big) as r:
            assert r.read(100) == expected_body(100)
        with client.stream('GET', small) as r:
            assert r.read() == expected_body(5000)
        response = client.request('GET', small)
        assert response.body == expected_body(5000)
    stats = client.stats
    assert stats['handles'] == stats['idle']


def test_stream_never_read_collected(http_server):
    with _mwcomms.Client() as client:
        url = stream_url(http_server, 4 * MIB)
        for _ in range(3):
            client.stream('GET', url)  # dropped at once
        gc.collect()
        stats = client.stats
        assert stats['handles'] == stats['idle']
        with client.stream('GET', url) as r:
            assert r.read() == expected_body(4 * MIB)


def test_two_streams_at_once(client, http_server):
    url_a = stream_url(http_server, 2 * MIB + 3)
    url_b = stream_url(http_server, MIB + 7)
    first = client.stream('GET', url_a)
    second = client.stream('GET', url_b)
    parts_a = []
    parts_b = []
    for _ in range(4):
        parts_a.append(first.read(300000))
        parts_b.append(second.read(300000))
    parts_a.append(first.read())
    parts_b.append(second.read())
    first.close()
    second.close()
    assert b''.join(parts_a) == expected_body(2 * MIB + 3)
    assert b''.join(parts_b) == expected_body(MIB + 7)
    # The kept multi handle is free again, so streams reuse a connection.
    before = client.stats['connects']
    for _ in range(3):
        with client.stream('GET', url_b) as r:
            assert r.read() == expected_body(MIB + 7)
    assert client.stats['connects'] - before <= 1


def test_two_streams_second_closed_early(client, http_server):
    url = stream_url(http_server, 3 * MIB)
    first = client.stream('GET', url)
    second = client.stream('GET', url)
    assert second.read(10) == expected_body(10)
    second.close()
    assert first.read() == expected_body(3 * MIB)
    first.close()
    results = client.request_many([('GET', url)] * 3)
    assert [result.body for result in results] == [expected_body(3 * MIB)] * 3


def test_stream_request_many_other_thread(client, http_server):
    url = stream_url(http_server, 2 * MIB)
    small = stream_url(http_server, 40000)
    results = []
    errors = []

    def batch():
        try:
            for _ in range(3):
                results.extend(client.request_many([('GET', small)] * 4))
        except Exception as error:  # reported by the asserts below
            errors.append(error)

    with client.stream('GET', url) as r:
        head = r.read(1000)
        thread = threading.Thread(target=batch)
        thread.start()
        rest = r.read()
        thread.join(60)
    assert not thread.is_alive()
    assert errors == []
    assert head + rest == expected_body(2 * MIB)
    assert len(results) == 12
    assert all(result.body == expected_body(40000) for result in results)


def test_request_many_then_stream_threads(client, http_server):
    url = stream_url(http_server, 300000)
    errors = []

    def streams():
        try:
            for _ in range(5):
                with client.stream('GET', url) as r:
                    if r.read() != expected_body(300000):
                        errors.append('stream body differs')
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=streams) for _ in range(2)]
    for thread in threads:
        thread.start()
    for _ in range(3):
        for result in client.request_many([('GET', url)] * 3):
            assert result.body == expected_body(300000)
    for thread in threads:
        thread.join(60)
    assert errors == []
    stats = client.stats
    assert stats['handles'] == stats['idle']


def test_client_closed_during_stream(http_server):
    client = _mwcomms.Client()
    url = stream_url(http_server, 3 * MIB)
    r = client.stream('GET', url)
    head = r.read(1000)
    client.close()
    with pytest.raises(ValueError, match='closed'):
        client.request('GET', url)
    rest = r.read()
    assert head + rest == expected_body(3 * MIB)
    r.close()
    stats = client.stats
    assert stats['handles'] == 0


def test_client_closed_stream_abandoned(http_server):
    client = _mwcomms.Client()
    r = client.stream('GET', stream_url(http_server, 3 * MIB))
    r.read(10)
    client.close()
    r.close()
    assert client.stats['handles'] == 0
    with pytest.raises(ValueError, match='closed'):
        client.stream('GET', stream_url(http_server, 10))


def test_upload_after_early_close(client, http_server):
    with client.stream('GET', stream_url(http_server, 3 * MIB)) as r:
        r.read(10)
    chunks = [b'x' * 70000, b'y' * 5]
    response = client.request('POST', http_server.url('/hash'),
                              body=iter(chunks))
    assert json.loads(response.body)['length'] == 70005
    with client.stream('GET', stream_url(http_server, 1000)) as r:
        assert r.read() == expected_body(1000)


def test_upload_iterator_raises_then_stream(client, http_server):
    def chunks():
        yield b'a' * 1000
        raise RuntimeError('upload source failed')

    with pytest.raises(RuntimeError, match='upload source failed'):
        client.request('POST', http_server.url('/hash'), body=chunks())
    for _ in range(3):
        with client.stream('GET', stream_url(http_server, 200000)) as r:
            assert r.read() == expected_body(200000)
    stats = client.stats
    assert stats['handles'] == stats['idle']


def test_upload_big_response_body(client, http_server):
    # The server sends a body larger than the receive buffer.
    response = client.request('POST', stream_url(http_server, 3 * MIB),
                              body=iter([b'q' * 10]))
    assert response.body == expected_body(3 * MIB)


def test_stream_timeout_then_next(client, http_server):
    url = stream_url(http_server, 2 * MIB, stall_after=1000, stall=3)
    with client.stream('GET', url, timeout=(5, 0.5)) as r:
        with pytest.raises(_mwcomms.Timeout):
            r.read()
    with client.stream('GET', stream_url(http_server, 100000)) as r:
        assert r.read() == expected_body(100000)


def test_stream_interrupt_then_next(client, http_server):
    url = stream_url(http_server, 2 * MIB, stall_after=10, stall=3)
    timer = threading.Timer(0.3, signal.raise_signal, (signal.SIGINT,))
    with client.stream('GET', url) as r:
        timer.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                r.read()
        finally:
            timer.cancel()
    with client.stream('GET', stream_url(http_server, 100000)) as r:
        assert r.read() == expected_body(100000)
    results = client.request_many([('GET', stream_url(http_server, 9))] * 2)
    assert [result.body for result in results] == [expected_body(9)] * 2


def run_child(work) -> int:
    """Run work() in a forked child and return its exit status (0 when
    it passed).  The child exits with os._exit, so it runs no pytest code."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = work()
        finally:
            os._exit(code)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return -1


@pytest.mark.parametrize('tls', [False, True])
def test_fork_with_open_stream(http_server, https_server, certificates, tls):
    server = https_server if tls else http_server
    verify = str(certificates['ca'])
    client = _mwcomms.Client()
    url = stream_url(server, 3 * MIB)
    holder = {'r': client.stream('GET', url, verify=verify)}
    head = holder['r'].read(1000)

    def child():
        try:
            holder['r'].read(10)
            return 2  # reading in the child must fail
        except ValueError:
            pass
        response = client.request('GET', stream_url(server, 5000),
                                  verify=verify, timeout=10)
        if response.body != expected_body(5000):
            return 3
        with client.stream('GET', stream_url(server, 5000), verify=verify,
                           timeout=10) as r:
            if r.read() != expected_body(5000):
                return 4
        del holder['r']
        gc.collect()
        client.close()
        return 0

    assert run_child(child) == 0
    rest = holder['r'].read()
    assert head + rest == expected_body(3 * MIB)
    holder['r'].close()
    with client.stream('GET', stream_url(server, 5000), verify=verify) as r:
        assert r.read() == expected_body(5000)
    client.close()


def test_stats_no_leak_many_streams(client, http_server):
    url = stream_url(http_server, 2 * MIB)
    for index in range(30):
        r = client.stream('GET', url)
        if index % 3 == 0:
            r.read(5)
        elif index % 3 == 1:
            r.read()
        r.close()
    stats = client.stats
    assert stats['handles'] == stats['idle']
    assert stats['handles'] <= 2
    assert stats['requests'] == 30


@pytest.fixture(scope='module')
def big_file(nginx):
    path = nginx.root / 'www' / 'big.bin'
    path.write_bytes(expected_body(6 * MIB))
    return nginx.url('/big.bin')


def test_h2_streams_closed_early(nginx, big_file, certificates):
    verify = str(certificates['ca'])
    with _mwcomms.Client() as client:
        for _ in range(6):
            with client.stream('GET', big_file, verify=verify,
                               timeout=(5, 5)) as r:
                assert r.http_version == '2'
                assert r.read(1000) == expected_body(1000)
        for _ in range(3):
            with client.stream('GET', big_file, verify=verify,
                               timeout=(5, 5)) as r:
                assert r.read() == expected_body(6 * MIB)
        results = client.request_many(
            [('GET', nginx.url('/text'))] * 4, verify=verify, timeout=5)
        assert all(result.status == 200 for result in results)
        stats = client.stats
        assert stats['handles'] == stats['idle']


def test_h2_two_streams_paused(nginx, big_file, certificates):
    verify = str(certificates['ca'])
    with _mwcomms.Client() as client:
        first = client.stream('GET', big_file, verify=verify, timeout=(5, 5))
        second = client.stream('GET', big_file, verify=verify,
                               timeout=(5, 5))
        assert second.read() == expected_body(6 * MIB)
        second.close()
        assert first.read() == expected_body(6 * MIB)
        first.close()


EXIT_SCRIPT = """
import sys
import _mwcomms
client = _mwcomms.Client()
half_read = client.stream('GET', sys.argv[1])
half_read.read(10)
other = client.stream('GET', sys.argv[1])
if sys.argv[2] == 'close':
    client.close()
print('opened', flush=True)
"""


@pytest.mark.parametrize('mode', ['open', 'close'])
def test_stream_open_at_exit(http_server, mode):
    import subprocess
    import sys
    result = subprocess.run(
        [sys.executable, '-c', EXIT_SCRIPT,
         stream_url(http_server, 4 * MIB), mode],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert result.stdout == 'opened\n'
    assert result.stderr == ''


def test_upload_source_uses_client(client, http_server):
    url = stream_url(http_server, 300000)
    seen = []

    def chunks():
        yield b'a' * 1000
        with client.stream('GET', url) as r:
            seen.append(r.read())
        seen.extend(result.body for result in
                    client.request_many([('GET', url)] * 2))
        yield b'b' * 1000

    response = client.request('POST', http_server.url('/hash'),
                              body=chunks())
    assert json.loads(response.body)['length'] == 2000
    assert seen == [expected_body(300000)] * 3
    stats = client.stats
    assert stats['handles'] == stats['idle']


def test_upload_source_closes_client(http_server):
    client = _mwcomms.Client()

    def chunks():
        yield b'a' * 1000
        client.close()
        yield b'b' * 1000

    response = client.request('POST', http_server.url('/hash'),
                              body=chunks())
    assert json.loads(response.body)['length'] == 2000
    assert client.stats['handles'] == 0


def test_stream_over_limit_then_next(http_server):
    with _mwcomms.Client(max_response_size=MIB + MIB // 2) as client:
        with client.stream('GET', stream_url(http_server, 3 * MIB)) as r:
            with pytest.raises(_mwcomms.TransferError,
                               match='max_response_size'):
                r.read()
        for _ in range(2):
            with client.stream('GET', stream_url(http_server, MIB)) as r:
                assert r.read() == expected_body(MIB)
        stats = client.stats
        assert stats['connects'] == 2
        assert stats['handles'] == stats['idle']


def read_request(connection) -> bytes | None:
    """Read one request head and its Content-Length or chunked body."""
    data = b''
    while b'\r\n\r\n' not in data:
        piece = connection.recv(65536)
        if not piece:
            return None
        data += piece
    head, _, rest = data.partition(b'\r\n\r\n')
    lower = head.lower()
    if b'transfer-encoding: chunked' in lower:
        while not rest.endswith(b'0\r\n\r\n'):
            piece = connection.recv(65536)
            if not piece:
                return None
            rest += piece
    elif b'content-length:' in lower:
        length = int(lower.split(b'content-length:')[1].split(b'\r\n')[0])
        while len(rest) < length:
            piece = connection.recv(65536)
            if not piece:
                return None
            rest += piece
    return head


def idle_closing_handler(server, connection, index):
    """Reply to requests until the connection idles for 0.3 s, then close."""
    connection.settimeout(0.3)
    while True:
        try:
            head = read_request(connection)
        except OSError:
            return
        if head is None:
            return
        server.record((index, head.split(b'\r\n')[0]))
        connection.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n'
                           b'conn%d' % (index % 10))


def test_upload_after_server_closed_idle(client, raw_servers):
    server = raw_servers(idle_closing_handler)
    with client.stream('GET', server.url('/a')) as r:
        assert r.read() == b'conn0'
    time.sleep(1)
    response = client.request('POST', server.url('/b'),
                              body=iter([b'x' * 100]))
    assert response.status == 200
    assert response.body == b'conn1'
    with client.stream('POST', server.url('/c'),
                       body=iter([b'y' * 100])) as r:
        assert r.read() == b'conn1'
    time.sleep(1)
    with client.stream('POST', server.url('/d'),
                       body=iter([b'z' * 100])) as r:
        assert r.read() == b'conn2'
