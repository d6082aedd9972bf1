"""_mwcomms.utf8_valid against Python's strict UTF-8 decoder."""
from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

import _mwcomms


def decodes(data: bytes) -> bool:
    try:
        data.decode('utf-8')
    except UnicodeDecodeError:
        return False
    return True


EDGES = [
    b'', b'a' * 7, b'a' * 8, b'a' * 9 + b'\xc3\xa9', b'\xc3\xa9' + b'a' * 20,
    b'\xc2\x80', b'\xc1\xbf', b'\xdf\xbf', b'\xc2', b'\xe0\xa0\x80',
    b'\xe0\x9f\xbf', b'\xed\x9f\xbf', b'\xed\xa0\x80', b'\xed\xbf\xbf',
    b'\xee\x80\x80', b'\xef\xbf\xbf', b'\xe1\x80', b'\xf0\x90\x80\x80',
    b'\xf0\x8f\xbf\xbf', b'\xf4\x8f\xbf\xbf', b'\xf4\x90\x80\x80',
    b'\xf5\x80\x80\x80', b'\xf0\x90\x80', b'\x80', b'\xbf', b'\xfe', b'\xff',
    b'abc\xe2\x82\xacdef', b'abcdefg\xe2\x82', b'\xe2\x82\xac' * 3,
    b'\xc3\x28', b'\xe2\x28\xa1', b'\xf0\x28\x8c\xbc',
]


@pytest.mark.parametrize('data', EDGES)
def test_edges(data):
    assert _mwcomms.utf8_valid(data) is decodes(data)


@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes(data):
    assert _mwcomms.utf8_valid(data) is decodes(data)


@settings(max_examples=1000, deadline=None)
@given(st.text(max_size=40), st.integers(0, 200), st.binary(max_size=3))
def test_text_with_damage(text, cut, tail):
    data = text.encode('utf-8', 'surrogatepass')
    data = data[:cut] + tail + data[cut:]
    assert _mwcomms.utf8_valid(data) is decodes(data)


def test_buffers():
    assert _mwcomms.utf8_valid(bytearray(b'\xc3\xa9')) is True
    assert _mwcomms.utf8_valid(memoryview(b'\xc3')) is False


def test_not_a_buffer():
    with pytest.raises(TypeError):
        _mwcomms.utf8_valid('text')
