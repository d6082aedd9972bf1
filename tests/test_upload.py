"""``files=`` and streamed ``data=`` through the transport, against requests.

The server parses each multipart body and reports every part's name,
filename, content type and SHA-256; both clients must produce the same
parts.
"""
from __future__ import annotations

import hashlib
import http.server
import io
import json
import threading
import tracemalloc

import pytest
import requests

import _mwcomms
from pywikibot_ext._transport import Transport

MIB = 1024 * 1024


@pytest.fixture
def transport():
    instance = Transport()
    yield instance
    instance.close()


def payload(size: int) -> bytes:
    return bytes(i * 13 % 256 for i in range(256)) * (size // 256) \
        + b'q' * (size % 256)


def parts_of(response) -> list:
    return json.loads(response.content)['parts']


def both(transport, url, **kwargs):
    ours = transport.request('POST', url, timeout=30, **kwargs)
    theirs = requests.post(url, timeout=30, **kwargs)
    return parts_of(ours), parts_of(theirs)


def test_files_typed_parts(transport, http_server):
    kwargs = dict(
        data={'action': 'upload', 'comment': 'caf\u00e9', 'n': 3,
              'multi': ['a', 'b'], 'skipped': None},
        files=[('file', ('a.bin', b'\x00\x01\x02', 'application/x-test')),
               ('second', ('b.png', payload(70000), 'image/png'))])
    ours, theirs = both(transport, http_server.url('/form'), **kwargs)
    assert ours == theirs
    assert [part['name'] for part in ours] == [
        'action', 'comment', 'n', 'multi', 'multi', 'file', 'second']


def test_files_multipart_body(transport, http_server):
    response = transport.request(
        'POST', http_server.url('/echo'),
        files={'file': ('a.txt', b'x', 'text/plain')})
    assert isinstance(response.request.body, _mwcomms.Multipart)


def test_files_untyped_parts(transport, http_server):
    """Names, filenames and data match; libcurl guesses a missing type."""
    def files():
        return {'plain': ('notes.dat', b'some data'),
                'bare': io.BytesIO(b'from a buffer')}
    ours = parts_of(transport.request('POST', http_server.url('/form'),
                                      files=files()))
    theirs = parts_of(requests.post(http_server.url('/form'), timeout=10,
                                    files=files()))
    for part in ours + theirs:
        part.pop('content_type')
    assert ours == theirs


def test_files_disk_file(transport, http_server, tmp_path):
    data = payload(3 * MIB + 5)
    path = tmp_path / 'disk.bin'
    path.write_bytes(data)
    with open(path, 'rb') as ours_file, open(path, 'rb') as theirs_file:
        ours = parts_of(transport.request(
            'POST', http_server.url('/form'),
            files={'file': ('disk.bin', ours_file, 'application/x-bin')}))
        theirs = parts_of(requests.post(
            http_server.url('/form'), timeout=30,
            files={'file': ('disk.bin', theirs_file, 'application/x-bin')}))
        # requests leaves a file that it sent at its end.
        assert ours_file.tell() == theirs_file.tell()
    assert ours == theirs
    assert ours[0]['sha256'] == hashlib.sha256(data).hexdigest()


def test_files_filename_from_file(transport, http_server, tmp_path):
    path = tmp_path / 'named.bin'
    path.write_bytes(b'abc')
    with open(path, 'rb') as ours_file, open(path, 'rb') as theirs_file:
        ours = parts_of(transport.request('POST', http_server.url('/form'),
                                          files={'f': ours_file}))
        theirs = parts_of(requests.post(http_server.url('/form'), timeout=30,
                                        files={'f': theirs_file}))
    assert ours[0]['filename'] == theirs[0]['filename'] == 'named.bin'
    assert ours[0]['sha256'] == theirs[0]['sha256']


def test_files_quoted_names(transport, http_server):
    kwargs = dict(data={'we"ird': 'v'},
                  files={'fi"le': ('na"me.txt', b'd', 'text/plain')})
    ours, theirs = both(transport, http_server.url('/form'), **kwargs)
    assert ours == theirs


@pytest.mark.parametrize('case', ['part_headers', 'control_char',
                                  'content_type'])
def test_files_python_fallback(transport, http_server, case):
    """Cases that libcurl would encode differently use requests' encoder."""
    kwargs = {
        'part_headers': dict(files={'f': ('a.txt', b'x', 'text/plain',
                                          {'X-Part': '1'})}),
        'control_char': dict(files={'f': ('a\tb.txt', b'x', 'text/plain')}),
        'content_type': dict(files={'f': ('a.txt', b'x', 'text/plain')},
                             headers={'Content-Type': 'multipart/form-data; '
                                      'boundary=fixedboundary'}),
    }[case]
    if case == 'content_type':
        response = transport.request('POST', http_server.url('/echo'),
                                     **kwargs)
        assert isinstance(response.request.body, bytes)
        return
    ours, theirs = both(transport, http_server.url('/form'), **kwargs)
    assert ours == theirs


def test_files_errors_like_requests(transport, http_server):
    with pytest.raises(ValueError):
        transport.request('POST', http_server.url('/form'),
                          files={'f': b'x'}, data='a=b')


# -- streamed data= ---------------------------------------------------------

def hashed(response) -> dict:
    return json.loads(response.content)


def test_data_file_streamed(transport, http_server, tmp_path):
    data = payload(64 * MIB)
    path = tmp_path / 'big.bin'
    path.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    del data
    tracemalloc.start()
    try:
        with open(path, 'rb') as handle:
            response = transport.request('PUT', http_server.url('/hash'),
                                         data=handle, timeout=60)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    result = hashed(response)
    assert result['sha256'] == digest
    assert result['length'] == 64 * MIB
    # requests sends Content-Length for a file whose size it can tell.
    assert result['content_length'] == str(64 * MIB)
    assert result['transfer_encoding'] is None
    # The file went out in 64 KiB reads, never whole.
    assert peak < 4 * MIB


def test_data_buffer_length(transport, http_server):
    ours = hashed(transport.request('POST', http_server.url('/hash'),
                                    data=io.BytesIO(b'0123456789')))
    theirs = requests.post(http_server.url('/hash'), timeout=10,
                           data=io.BytesIO(b'0123456789')).json()
    assert ours == theirs


def test_data_generator_chunked(transport, http_server):
    def pieces():
        yield b'abc'
        yield b'defg'
    ours = hashed(transport.request('POST', http_server.url('/hash'),
                                    data=pieces()))
    theirs = requests.post(http_server.url('/hash'), timeout=10,
                           data=pieces()).json()
    assert ours == theirs
    assert ours['transfer_encoding'] == 'chunked'


class RedirectingHandler(http.server.BaseHTTPRequestHandler):
    """/to307 redirects with 307 to /sum, which returns the body's SHA-256."""

    protocol_version = 'HTTP/1.1'

    def log_message(self, format, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get('Content-Length') or 0))
        if self.path == '/to307':
            self.send_response(307)
            self.send_header('Location', '/sum')
            self.send_header('Content-Length', '0')
            self.end_headers()
            return
        reply = hashlib.sha256(body).hexdigest().encode()
        self.send_response(200)
        self.send_header('Content-Length', str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)


@pytest.fixture
def redirecting_server():
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0),
                                             RedirectingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f'http://127.0.0.1:{server.server_port}'
    server.shutdown()
    server.server_close()


def test_data_file_redirect_307(transport, redirecting_server, tmp_path):
    """A 307 sends the file body again from where it started."""
    data = payload(100000)
    path = tmp_path / 'body.bin'
    path.write_bytes(b'header' + data)
    with open(path, 'rb') as handle:
        handle.read(6)
        response = transport.request('POST', redirecting_server + '/to307',
                                     data=handle, timeout=10)
    assert response.status_code == 200
    assert response.text == hashlib.sha256(data).hexdigest()
    assert [r.status_code for r in response.history] == [307]


def test_data_iterator_redirect_307(transport, redirecting_server):
    """An iterator cannot be rewound, so a 307 raises.

    requests sends the used-up iterator, an empty body, to the new
    location; mwcomms raises UnrewindableBodyError instead, because an
    empty POST body can change a wiki (an edit that blanks a page).
    """
    url = redirecting_server + '/to307'
    with pytest.raises(requests.exceptions.UnrewindableBodyError):
        transport.request('POST', url, data=iter([b'a', b'b']), timeout=10)
