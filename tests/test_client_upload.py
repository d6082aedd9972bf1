"""Tests of Multipart and streamed request bodies against local servers."""
from __future__ import annotations

import hashlib
import io
import json
import time
import tracemalloc

import pytest

import _mwcomms

MIB = 1024 * 1024


@pytest.fixture
def client():
    with _mwcomms.Client() as instance:
        yield instance


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def payload(size: int) -> bytes:
    return bytes(i * 7 % 256 for i in range(256)) * (size // 256) \
        + b'z' * (size % 256)


# -- multipart ------------------------------------------------------------

def test_multipart_parts(client, http_server, tmp_path):
    file_data = payload(300000)
    path = tmp_path / 'upload.bin'
    path.write_bytes(file_data)
    body = _mwcomms.Multipart(
        fields=[('action', 'upload'), ('text', 'caf\u00e9'),
                ('raw', b'\x00\xff')],
        files=[('file', 'a.bin', 'application/x-test', b'\x01\x02\x03'),
               ('disk', None, 'image/png', path),
               ('named', 'other.txt', None, str(path))])
    response = client.request('POST', http_server.url('/form'), body=body)
    data = json.loads(response.body)
    parts = data['parts']
    assert data['content_type'].startswith('multipart/form-data; boundary=')
    assert [part['name'] for part in parts] == [
        'action', 'text', 'raw', 'file', 'disk', 'named']
    assert parts[0]['sha256'] == sha256(b'upload')
    assert parts[1]['sha256'] == sha256('caf\u00e9'.encode())
    assert parts[2]['sha256'] == sha256(b'\x00\xff')
    assert parts[3]['filename'] == 'a.bin'
    assert parts[3]['content_type'] == 'application/x-test'
    assert parts[3]['sha256'] == sha256(b'\x01\x02\x03')
    assert parts[4]['filename'] == 'upload.bin'
    assert parts[4]['content_type'] == 'image/png'
    assert parts[4]['sha256'] == sha256(file_data)
    assert parts[5]['filename'] == 'other.txt'
    assert parts[5]['sha256'] == sha256(file_data)


def test_multipart_dict_fields(client, http_server):
    body = _mwcomms.Multipart(fields={'a': '1', 'b': '2'})
    parts = json.loads(client.request('POST', http_server.url('/form'),
                                      body=body).body)['parts']
    assert [part['name'] for part in parts] == ['a', 'b']
    assert parts[1]['filename'] is None


def test_multipart_put(client, http_server):
    body = _mwcomms.Multipart(fields=[('a', '1')])
    response = client.request('PUT', http_server.url('/echo'), body=body)
    data = json.loads(response.body)
    assert data['method'] == 'PUT'
    assert 'name="a"' in data['body']


def test_multipart_reused(client, http_server):
    body = _mwcomms.Multipart(fields=[('a', 'x' * 1000)])
    for _ in range(3):
        parts = json.loads(client.request('POST', http_server.url('/form'),
                                          body=body).body)['parts']
        assert parts[0]['length'] == 1000


def test_multipart_content_type_rejected(client, http_server):
    body = _mwcomms.Multipart(fields=[('a', '1')])
    with pytest.raises(ValueError, match='Content-Type'):
        client.request('POST', http_server.url('/form'),
                       {'Content-Type': 'text/plain'}, body)


def test_multipart_get_rejected(client, http_server):
    with pytest.raises(ValueError, match='GET'):
        client.request('GET', http_server.url(),
                       body=_mwcomms.Multipart(fields=[('a', '1')]))


@pytest.mark.parametrize('kwargs, error', [
    ({'fields': [('a',)]}, TypeError),
    ({'fields': 'ab'}, TypeError),
    ({'fields': [(1, 'v')]}, TypeError),
    ({'fields': [('a\r\nX: y', 'v')]}, ValueError),
    ({'fields': [('a', 3)]}, TypeError),
    ({'files': [('f', None, None)]}, TypeError),
    ({'files': [('f', 'x"\n', None, b'1')]}, ValueError),
    ({'files': [('f', None, None, 5)]}, TypeError),
    ({'files': [('f', None, 'text/plain\r\n', b'1')]}, ValueError),
])
def test_multipart_invalid(kwargs, error):
    with pytest.raises(error):
        _mwcomms.Multipart(**kwargs)


def test_multipart_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        _mwcomms.Multipart(files=[('f', None, None, tmp_path / 'missing')])


def test_multipart_repr():
    body = _mwcomms.Multipart(fields=[('a', '1')], files=[])
    assert repr(body) == '<_mwcomms.Multipart fields=1 files=0>'
    assert body.fields == ((b'a', b'1'),)


def test_multipart_oauth_signed(client, http_server):
    auth = _mwcomms.OAuth1('ck', 'cs', 'tk', 'ts')
    body = _mwcomms.Multipart(fields=[('a', '1')])
    response = client.request('POST', http_server.url('/echo'), body=body,
                              auth=auth)
    headers = {name.lower(): value
               for name, value in json.loads(response.body)['headers']}
    assert headers['authorization'].startswith('OAuth ')


# -- streamed bodies ------------------------------------------------------

def test_iterator_chunked(client, http_server):
    chunks = [b'first', b'', bytearray(b'second'), memoryview(b'third'), 'str']
    response = client.request('POST', http_server.url('/hash'),
                              body=iter(chunks))
    data = json.loads(response.body)
    assert data['sha256'] == sha256(b'firstsecondthirdstr')
    assert data['transfer_encoding'] == 'chunked'
    assert data['content_length'] is None


def test_list_body_streamed(client, http_server):
    response = client.request('PUT', http_server.url('/hash'),
                              body=[b'a', b'b'])
    assert json.loads(response.body)['sha256'] == sha256(b'ab')


def test_file_content_length(client, http_server, tmp_path):
    data = payload(3 * MIB + 5)
    path = tmp_path / 'body.bin'
    path.write_bytes(data)
    with open(path, 'rb') as file:
        file.seek(5)
        response = client.request('POST', http_server.url('/hash'),
                                  body=file)
    result = json.loads(response.body)
    assert result['sha256'] == sha256(data[5:])
    assert result['content_length'] == str(len(data) - 5)
    assert result['transfer_encoding'] is None


def test_bytesio_chunked(client, http_server):
    data = payload(200000)
    response = client.request('POST', http_server.url('/hash'),
                              body=io.BytesIO(data))
    result = json.loads(response.body)
    assert result['sha256'] == sha256(data)
    assert result['transfer_encoding'] == 'chunked'


def test_given_content_length(client, http_server):
    data = payload(100000)
    response = client.request('POST', http_server.url('/hash'),
                              {'Content-Length': str(len(data))},
                              io.BytesIO(data))
    result = json.loads(response.body)
    assert result['sha256'] == sha256(data)
    assert result['content_length'] == str(len(data))


def test_content_length_invalid(client, http_server):
    with pytest.raises(ValueError, match='Content-Length'):
        client.request('POST', http_server.url('/hash'),
                       {'Content-Length': 'ten'}, io.BytesIO(b'x'))


def test_upload_fifty_mib_bounded(client, http_server):
    piece = payload(65536)
    count = 50 * 16
    digest = hashlib.sha256()
    for _ in range(count):
        digest.update(piece)

    def generate():
        for _ in range(count):
            yield piece

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        response = client.request('POST', http_server.url('/hash'),
                                  body=generate())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    result = json.loads(response.body)
    assert result['length'] == 50 * MIB
    assert result['sha256'] == digest.hexdigest()
    # One piece in the upload buffer, one in the server, and overhead.
    assert peak < 8 * MIB


def test_slow_upload_not_idle(client, http_server):
    def generate():
        for _ in range(6):
            time.sleep(0.25)
            yield b'x' * 100

    response = client.request('POST', http_server.url('/hash'),
                              body=generate(), timeout=(5, 0.6))
    assert json.loads(response.body)['length'] == 600


def test_upload_source_error(client, http_server):
    def generate():
        yield b'start'
        raise OSError('disk gone')

    with pytest.raises(OSError, match='disk gone'):
        client.request('POST', http_server.url('/hash'), body=generate())
    stats = client.stats
    assert stats['handles'] == stats['idle']
    response = client.request('GET', http_server.url('/echo'))
    assert response.status == 200


def test_upload_bad_item(client, http_server):
    with pytest.raises(TypeError, match='bytes-like'):
        client.request('POST', http_server.url('/hash'), body=iter([1]))


def test_stream_body_head_rejected(client, http_server):
    with pytest.raises(ValueError, match='HEAD'):
        client.request('HEAD', http_server.url(), body=iter([b'x']))


def test_body_dict_rejected(client, http_server):
    with pytest.raises(TypeError, match='body must be'):
        client.request('POST', http_server.url(), body={'a': 1})


def test_oauth_form_stream_rejected(client, http_server):
    auth = _mwcomms.OAuth1('ck', 'cs', 'tk', 'ts')
    with pytest.raises(ValueError, match='form body'):
        client.request('POST', http_server.url('/hash'),
                       {'Content-Type': 'application/x-www-form-urlencoded'},
                       iter([b'a=1']), auth=auth)
