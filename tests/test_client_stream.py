"""Tests of Client.stream() and StreamResponse against local servers."""
from __future__ import annotations

import gc
import signal
import threading
import tracemalloc
import zlib

import pytest

import _mwcomms
import servers

MIB = 1024 * 1024


@pytest.fixture
def client():
    with _mwcomms.Client() as instance:
        yield instance


def expected_body(size: int) -> bytes:
    block = servers.STREAM_BLOCK
    return block * (size // len(block)) + block[:size % len(block)]


def test_stream_headers_first(client, http_server):
    with client.stream('GET', http_server.url('/stream?size=3000000')) as r:
        assert r.status == 200
        assert r.reason == 'OK'
        assert r.http_version == '1.1'
        assert r.url == http_server.url('/stream?size=3000000')
        assert r.get_header('content-length') == '3000000'
        assert r.get_all('Content-Type') == ['application/octet-stream']
        assert r.bytes_read == 0


def test_stream_read_exact(client, http_server):
    size = 3 * MIB + 17
    with client.stream('GET', http_server.url(f'/stream?size={size}')) as r:
        first = r.read(10)
        middle = r.read(2 * MIB)
        rest = r.read()
        tail = r.read(5)
    assert len(first) == 10
    assert len(middle) == 2 * MIB
    assert first + middle + rest == expected_body(size)
    assert tail == b''


def test_stream_iter_chunks(client, http_server):
    size = 2 * MIB + 5
    with client.stream('GET', http_server.url(f'/stream?size={size}')) as r:
        chunks = list(r.iter_chunks(100000))
    assert all(0 < len(chunk) <= 100000 for chunk in chunks)
    assert b''.join(chunks) == expected_body(size)


def test_stream_chunked_trailer(client, http_server):
    size = MIB + 3
    url = http_server.url(f'/stream?size={size}&chunked=1')
    with client.stream('GET', url) as r:
        body = r.read()
        headers = [name.lower() for name, _ in r.headers]
    assert body == expected_body(size)
    assert 'transfer-encoding' in headers
    assert 'x-trailer' not in headers


def test_stream_gzip_decoded(client, http_server):
    with client.stream('GET', http_server.url('/gzip')) as r:
        assert r.read() == servers.COMPRESSIBLE


def test_stream_head(client, http_server):
    with client.stream('HEAD', http_server.url('/echo')) as r:
        assert r.status == 200
        assert r.read() == b''


def test_stream_status_error(client, http_server):
    with client.stream('GET', http_server.url('/status/404')) as r:
        assert r.status == 404
        assert r.read() == b'status body'


def test_stream_one_gib_bounded(client, http_server):
    size = 1024 * MIB
    checksum = 0
    total = 0
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        with client.stream('GET',
                           http_server.url(f'/stream?size={size}')) as r:
            for chunk in r.iter_chunks(MIB):
                checksum = zlib.crc32(chunk, checksum)
                total += len(chunk)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total == size
    assert checksum == zlib.crc32(servers.STREAM_BLOCK * 1024)
    # Body buffer (at most about 1 MiB plus a libcurl chunk), one chunk
    # object and the server's write buffer; far below the body size.
    assert peak < 16 * MIB


def test_stream_progress(client, http_server):
    calls = []
    size = 3 * MIB
    url = http_server.url(f'/stream?size={size}')
    with client.stream('GET', url,
                       progress=lambda done, total: calls.append(
                           (done, total))) as r:
        for _ in r.iter_chunks(MIB):
            pass
    assert calls
    assert calls[-1] == (size, size)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


def test_stream_progress_no_length(client, http_server):
    calls = []
    url = http_server.url('/stream?size=1000&chunked=1')
    with client.stream('GET', url,
                       progress=lambda *args: calls.append(args)) as r:
        r.read()
    assert calls[-1] == (1000, None)


def test_stream_progress_raises(client, http_server):
    def fail(done, total):
        raise RuntimeError('stop here')

    with client.stream('GET', http_server.url('/stream?size=1000'),
                       progress=fail) as r:
        with pytest.raises(RuntimeError, match='stop here'):
            r.read()


def test_stream_progress_not_callable(client, http_server):
    with pytest.raises(TypeError, match='progress'):
        client.stream('GET', http_server.url(), progress=3)


def test_stream_read_timeout(client, http_server):
    url = http_server.url('/stream?size=2000000&stall_after=1000&stall=3')
    with client.stream('GET', url, timeout=(5, 0.5)) as r:
        first = r.read(1000)
        with pytest.raises(_mwcomms.Timeout) as info:
            r.read()
    assert first == expected_body(1000)
    assert info.value.phase == 'read'


def test_stream_slow_reader_not_idle(client, http_server):
    # Time spent in Python between reads is not server idle time.
    import time
    url = http_server.url(f'/stream?size={3 * MIB}')
    with client.stream('GET', url, timeout=0.5) as r:
        first = r.read(MIB)
        time.sleep(1.0)
        rest = r.read()
    assert first + rest == expected_body(3 * MIB)


def test_stream_connect_error(client, closed_port):
    with pytest.raises(_mwcomms.ConnectError):
        client.stream('GET', f'http://127.0.0.1:{closed_port}/')
    stats = client.stats
    # libcurl ended the transfer, so its handle is back in the pool.
    assert stats['handles'] == stats['idle']


def test_stream_abandoned_not_pooled(http_server):
    with _mwcomms.Client() as client:
        r = client.stream('GET', http_server.url(f'/stream?size={8 * MIB}'))
        assert r.read(10) == expected_body(10)
        assert client.stats['idle'] == 0
        del r
        gc.collect()
        stats = client.stats
        assert stats['handles'] == 0
        assert stats['idle'] == 0
        # The client still works after the aborted transfer.
        response = client.request('GET', http_server.url('/echo'))
        assert response.status == 200


def test_stream_complete_pooled(http_server):
    with _mwcomms.Client() as client:
        with client.stream('GET', http_server.url('/stream?size=1000')) as r:
            r.read()
        stats = client.stats
        assert stats['handles'] == 1
        assert stats['idle'] == 1
        assert stats['requests'] == 1


def test_stream_close_then_read(client, http_server):
    r = client.stream('GET', http_server.url('/stream?size=1000'))
    r.close()
    r.close()
    assert r.closed
    with pytest.raises(ValueError, match='closed'):
        r.read()
    assert 'closed' in repr(r)


def test_stream_cycle_collected(http_server):
    with _mwcomms.Client() as client:
        r = client.stream('GET', http_server.url(f'/stream?size={4 * MIB}'))
        r.read(1)
        holder = {'stream': r}
        r2 = client.stream('GET', http_server.url('/stream?size=10'),
                           progress=lambda *args: holder)
        holder['other'] = r2
        del r, r2, holder
        gc.collect()
        stats = client.stats
        # No handle stays in use: the unfinished one was cleaned up and
        # the finished one, if any, went back to the pool.
        assert stats['handles'] == stats['idle']
        assert stats['handles'] <= 1


def test_stream_max_response_size(http_server):
    with _mwcomms.Client(max_response_size=MIB) as client:
        with client.stream('GET',
                           http_server.url(f'/stream?size={2 * MIB}')) as r:
            with pytest.raises(_mwcomms.TransferError,
                               match='max_response_size'):
                r.read()


def test_stream_upload_body(client, http_server):
    chunks = [b'a' * 1000, b'', b'b' * 5000]
    with client.stream('POST', http_server.url('/hash'), body=iter(chunks)) as r:
        import json
        data = json.loads(r.read())
    assert data['length'] == 6000


def test_stream_other_thread(client, http_server):
    r = client.stream('GET', http_server.url(f'/stream?size={2 * MIB}'))
    result = []
    thread = threading.Thread(target=lambda: result.append(r.read()))
    thread.start()
    thread.join(30)
    r.close()
    assert result[0] == expected_body(2 * MIB)


def test_stream_keyboard_interrupt(client, http_server):
    url = http_server.url('/stream?size=2000000&stall_after=10&stall=5')
    timer = threading.Timer(0.3, signal.raise_signal, (signal.SIGINT,))
    with client.stream('GET', url) as r:
        timer.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                r.read()
        finally:
            timer.cancel()
    assert client.stats['handles'] == 0


def test_stream_chunk_size_invalid(client, http_server):
    with client.stream('GET', http_server.url('/stream?size=10')) as r:
        with pytest.raises(ValueError, match='chunk_size'):
            r.iter_chunks(0)


def test_stream_not_constructible():
    with pytest.raises(TypeError):
        _mwcomms.StreamResponse()


# -- content encodings ----------------------------------------------------

@pytest.mark.parametrize('encoding, feature', [
    ('br', 'brotli'), ('zstd', 'zstd'), ('gzip', 'libz')])
def test_encoding_decoded(client, http_server, encoding, feature):
    if feature not in _mwcomms.curl_features():
        pytest.skip(f'libcurl is built without {feature}')
    if encoding != 'gzip' and servers.encode_body(encoding, b'x') is None:
        pytest.skip(f'no command line encoder for {encoding}')
    url = http_server.url(f'/encoded?encoding={encoding}')
    response = client.request('GET', url)
    assert response.get_header('content-encoding') == encoding
    assert response.body == servers.COMPRESSIBLE
    with client.stream('GET', url) as r:
        assert r.read() == servers.COMPRESSIBLE


def test_accept_encoding_lists(client, http_server):
    import json
    response = client.request('GET', http_server.url('/echo'))
    headers = {n.lower(): v for n, v in json.loads(response.body)['headers']}
    features = _mwcomms.curl_features()
    for encoding, feature in (('br', 'brotli'), ('zstd', 'zstd')):
        if feature in features:
            assert encoding in headers['accept-encoding']


@pytest.mark.parametrize('encoding', ['gzip', 'zstd', 'br'])
def test_decompression_bomb_bounded(http_server, encoding):
    if encoding != 'gzip' and servers.encode_body(encoding, b'x') is None:
        pytest.skip(f'no command line encoder for {encoding}')
    url = http_server.url(f'/encoded?encoding={encoding}&size={64 * MIB}')
    with _mwcomms.Client(max_response_size=MIB) as client:
        with pytest.raises(_mwcomms.TransferError,
                           match='max_response_size'):
            client.request('GET', url)
        with client.stream('GET', url) as r:
            with pytest.raises(_mwcomms.TransferError,
                               match='max_response_size'):
                r.read()


def test_stream_reuses_connection(client, http_server):
    url = http_server.url('/stream?size=100000')
    for _ in range(3):
        with client.stream('GET', url) as r:
            assert r.read() == expected_body(100000)
    assert client.stats['connects'] == 1


def test_stream_closed_early_then_next(client, http_server):
    size = 3 * MIB
    url = http_server.url(f'/stream?size={size}')
    with client.stream('GET', url) as r:
        assert len(r.read(1000)) == 1000
    # Most of the first response was never read: the next stream must
    # not take its connection and read the rest as its own response.
    with client.stream('GET', url) as r:
        assert r.read() == expected_body(size)
    assert client.stats['connects'] == 2


def test_stream_beside_request_many(client, http_server):
    url = http_server.url('/stream?size=50000')
    with client.stream('GET', url) as r:
        results = client.request_many([('GET', url), ('GET', url)])
        assert r.read() == expected_body(50000)
    assert [result.body for result in results] == [expected_body(50000)] * 2
    with client.stream('GET', url) as r:
        assert r.read() == expected_body(50000)
