"""fork() detection by the pid that a pthread_atfork handler refreshes:
requests in parent and child in various states of the client."""
from __future__ import annotations

import json
import multiprocessing
import os
import threading

import pytest

import _mwcomms

pytestmark = pytest.mark.skipif(not hasattr(os, 'fork'),
                                reason='needs os.fork')


def run_in_child(function) -> bytes:
    """Run function() in a forked child; return the bytes it returns, or
    b'error: ...' when it raises."""
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
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return b''.join(chunks)


@pytest.fixture
def client():
    with _mwcomms.Client() as instance:
        yield instance


def echo_port(client, url) -> int:
    return json.loads(client.request('GET', url, timeout=10).body)[
        'client_port']


def test_fork_during_other_thread_request(client, http_server):
    # Another thread uses a handle in a transfer while the process forks.
    key = 'fork-busy'
    outcome = {}

    def blocked():
        outcome['body'] = client.request(
            'GET', http_server.url(f'/block?key={key}'), timeout=20).body

    thread = threading.Thread(target=blocked)
    thread.start()
    assert http_server.wait_state(key, 'started')

    def child():
        response = client.request('GET', http_server.url('/echo'), timeout=10)
        stats = client.stats
        return b'%d %d %d' % (response.status, response.new_connections,
                              stats['handles'])

    try:
        result = run_in_child(child)
    finally:
        http_server.release(key)
        thread.join()
    assert result == b'200 1 1'
    assert outcome['body'] == b'released'
    assert client.request('GET', http_server.url('/echo')).status == 200


def test_fork_from_worker_thread(client, http_server):
    before = echo_port(client, http_server.url('/echo'))
    results = []

    def fork_here():
        results.append(run_in_child(
            lambda: b'%d' % echo_port(client, http_server.url('/echo'))))

    thread = threading.Thread(target=fork_here)
    thread.start()
    thread.join()
    assert results[0].isdigit()
    assert int(results[0]) != before
    assert echo_port(client, http_server.url('/echo')) == before


def test_fork_grandchild(client, http_server):
    parent_port = echo_port(client, http_server.url('/echo'))

    def child():
        child_port = echo_port(client, http_server.url('/echo'))
        grandchild = run_in_child(
            lambda: b'%d' % echo_port(client, http_server.url('/echo')))
        again = echo_port(client, http_server.url('/echo'))
        return b'%d %s %d' % (child_port, grandchild, again)

    child_port, grandchild_port, again = map(int, run_in_child(child).split())
    assert child_port != parent_port
    assert grandchild_port not in (parent_port, child_port)
    assert again == child_port
    assert echo_port(client, http_server.url('/echo')) == parent_port


def test_fork_batch_then_child_batch(client, http_server):
    # The parent's multi handle and its connections stay the parent's.
    urls = [('GET', http_server.url(f'/concurrent?delay=0&n={i}'))
            for i in range(6)]
    assert [r.status for r in client.request_many(urls)] == [200] * 6

    def child():
        results = client.request_many(urls, max_concurrency=3)
        single = client.request('GET', http_server.url('/echo'), timeout=10)
        return b' '.join(b'%d' % r.status for r in results + [single])

    assert run_in_child(child) == b' '.join([b'200'] * 7)
    results = client.request_many(urls)
    paths = [f'/concurrent?delay=0&n={i}'.encode() for i in range(6)]
    assert [r.body for r in results] == paths


def test_fork_stream_open_child_new_stream(client, http_server):
    stream = client.stream('GET', http_server.url('/stream?size=2000000'))
    first = stream.read(1000)

    def child():
        try:
            stream.read(10)
        except ValueError:
            rejected = b'rejected'
        else:
            rejected = b'read'
        stream.close()
        with client.stream('GET', http_server.url('/stream?size=300000')
                           ) as own:
            size = len(own.read())
        return b'%s %d' % (rejected, size)

    assert run_in_child(child) == b'rejected 300000'
    rest = stream.read()
    stream.close()
    assert len(first) + len(rest) == 2000000


def worker_request(url: str) -> tuple:
    response = SHARED_CLIENT.request('GET', url, timeout=10)
    return os.getpid(), response.status, json.loads(response.body)['path']


SHARED_CLIENT = None


def test_multiprocessing_fork_pool(http_server):
    # /echo only: a 204 or 205 reply of the test server carries a body,
    # which would break the next reply on its connection.
    global SHARED_CLIENT
    SHARED_CLIENT = _mwcomms.Client()
    try:
        before = SHARED_CLIENT.request('GET', http_server.url('/echo?n=-1'))
        assert before.status == 200
        context = multiprocessing.get_context('fork')
        urls = [http_server.url(f'/echo?n={i}') for i in range(8)]
        with context.Pool(2) as pool:
            results = pool.map(worker_request, urls, chunksize=1)
        assert [path for _, _, path in results] == [
            f'/echo?n={i}' for i in range(8)]
        assert [status for _, status, _ in results] == [200] * 8
        assert all(pid != os.getpid() for pid, _, _ in results)
        after = SHARED_CLIENT.request('GET', http_server.url('/echo?n=9'))
        assert after.status == 200
        assert after.new_connections == 0
    finally:
        SHARED_CLIENT.close()
        SHARED_CLIENT = None
