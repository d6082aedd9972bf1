"""Build the multipart/form-data body of ``files=`` as requests does.

requests encodes ``files`` and ``data`` in Python (urllib3's
``encode_multipart_formdata``); here the same fields and files go into an
``_mwcomms.Multipart`` that libcurl encodes while sending, and a binary
file opened from disk is read by libcurl instead of into memory.  The
server receives the same part names, filenames and data.  Two things
differ on the wire: the boundary, and a file part without a content type
gets the type that libcurl guesses from the filename extension
(``text/plain`` for ``.txt``), where urllib3 sends no Content-Type.
"""
from __future__ import annotations

import io
import os

from requests.models import RequestEncodingMixin
from requests.utils import guess_filename, to_key_val_list

import _mwcomms

__all__ = ['multipart_body']


def multipart_body(headers, files, data):
    """Return the body for ``files=`` (and form *data*), setting headers.

    Falls back to requests' own encoder, which returns bytes, where
    libcurl would send something else: custom per-part headers, a
    Content-Type header set by the caller, and names with control
    characters, which urllib3 and libcurl escape differently.
    """
    if not files:
        raise ValueError('Files must be provided.')
    if isinstance(data, (str, bytes)):
        raise ValueError('Data must not be a string.')
    fields = _form_fields(data)
    parts = _file_parts(files)
    if ('Content-Type' in headers or parts is None
            or not _plain_names(fields, parts)):
        return _python_encoded(headers, files, data)
    return _mwcomms.Multipart(fields=fields, files=parts)


def _python_encoded(headers, files, data) -> bytes:
    body, content_type = RequestEncodingMixin._encode_files(files, data)
    headers.setdefault('Content-Type', content_type)
    return body


def _form_fields(data) -> list:
    """Return (name, value) pairs as requests builds them from *data*."""
    fields = []
    for name, values in to_key_val_list(data or {}):
        if isinstance(values, (str, bytes)) or not hasattr(values,
                                                           '__iter__'):
            values = [values]
        for value in values:
            if value is None:
                continue
            if not isinstance(value, bytes):
                value = str(value)
            if isinstance(name, bytes):
                name = name.decode('utf-8')
            fields.append((name, value))
    return fields


def _file_parts(files) -> list | None:
    """Return Multipart file tuples, or None when one has extra headers."""
    parts = []
    for name, value in to_key_val_list(files):
        content_type = None
        if isinstance(value, (tuple, list)):
            if len(value) == 2:
                filename, source = value
            elif len(value) == 3:
                filename, source, content_type = value
            else:
                filename, source, content_type, extra_headers = value
                if extra_headers:
                    return None
        else:
            filename = guess_filename(value) or name
            source = value
        if source is None:
            continue
        if isinstance(name, bytes):
            name = name.decode('utf-8')
        parts.append((name, filename, content_type, _file_data(source)))
    return parts


def _file_data(source):
    """Return a path that libcurl reads, or the bytes of *source*."""
    if isinstance(source, (bytes, bytearray)):
        return source
    if isinstance(source, str):
        return source.encode('utf-8')
    if hasattr(source, 'read'):
        path = _disk_path(source)
        if path is not None:
            # requests leaves the file at its end after reading it.
            source.seek(0, os.SEEK_END)
            return path
        content = source.read()
        return content.encode('utf-8') if isinstance(content, str) \
            else content
    if isinstance(source, int):
        return str(source).encode('utf-8')
    return source


def _disk_path(source) -> str | None:
    """Return the path of a binary regular file read from its start."""
    if not isinstance(source, (io.BufferedReader, io.FileIO)):
        return None
    name = getattr(source, 'name', None)
    if not isinstance(name, (str, os.PathLike)):
        return None
    try:
        if source.tell() != 0 or not os.path.isfile(name):
            return None
    except (OSError, ValueError):
        return None
    return os.fspath(name)


def _plain_names(fields, parts) -> bool:
    """Return True when no name or filename contains a control character."""
    names = [name for name, _ in fields]
    for name, filename, _, _ in parts:
        names.append(name)
        if filename is not None:
            names.append(filename)
    return not any(isinstance(name, str) and any(ord(c) < 0x20 for c in name)
                   for name in names)
