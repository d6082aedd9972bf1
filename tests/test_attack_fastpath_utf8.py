"""_mwcomms.utf8_valid against bytes.decode('utf-8'), byte by byte."""
from __future__ import annotations

import array
import itertools
import random

import pytest

from _mwcomms import utf8_valid


def decodes(data) -> bool:
    try:
        bytes(data).decode('utf-8')
    except UnicodeDecodeError:
        return False
    return True


# Bytes at the edges of the ranges of Unicode Table 3-7.
EDGES = bytes([0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0,
               0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xec, 0xed, 0xee, 0xef, 0xf0,
               0xf1, 0xf3, 0xf4, 0xf5, 0xf8, 0xfe, 0xff])


def test_every_one_and_two_bytes():
    mismatches = []
    for length in (1, 2):
        for values in itertools.product(range(256), repeat=length):
            data = bytes(values)
            if utf8_valid(data) != decodes(data):
                mismatches.append(data)
    assert mismatches == []


@pytest.mark.parametrize('prefix', [b'', b'a' * 5, b'a' * 7, b'a' * 8,
                                    b'a' * 13, b'\xc3\xa9' * 4])
def test_edge_bytes_three_four(prefix):
    # The prefixes move the sequence around the eight-byte ASCII steps.
    mismatches = []
    for length in (3, 4):
        for values in itertools.product(EDGES, repeat=length):
            data = prefix + bytes(values)
            if utf8_valid(data) != decodes(data):
                mismatches.append(data)
    assert mismatches == []


def test_three_byte_second_byte_sweep():
    mismatches = []
    for lead in range(0xe0, 0xf5):
        for second in range(256):
            for third in (0x00, 0x7f, 0x80, 0xbf, 0xc0, 0xff):
                for fourth in (b'', b'\x80', b'\xbf', b'\xc0'):
                    data = bytes((lead, second, third)) + fourth
                    if utf8_valid(data) != decodes(data):
                        mismatches.append(data)
    assert mismatches == []


def test_every_code_point():
    text = ''.join(chr(c) for c in range(0x110000)
                   if not 0xd800 <= c <= 0xdfff)
    data = text.encode('utf-8')
    assert utf8_valid(data) is True
    surrogates = [chr(c).encode('utf-8', 'surrogatepass')
                  for c in (0xd800, 0xdbff, 0xdc00, 0xdfff)]
    for surrogate in surrogates:
        assert utf8_valid(surrogate) is False
        assert utf8_valid(b'ok' + surrogate + b'ok') is False


def test_error_at_every_position():
    base = ('a\u00e9\u20ac\U0001f600' * 8).encode('utf-8')
    for position in range(len(base) + 1):
        for bad in (b'\x80', b'\xc3', b'\xe2\x82', b'\xf0\x9f\x98', b'\xff'):
            data = base[:position] + bad + base[position:]
            assert utf8_valid(data) == decodes(data), (position, bad)


def test_random_mixes():
    rng = random.Random(7)
    pool = list(EDGES) + [0x20] * 10
    for _ in range(20000):
        data = bytes(rng.choice(pool) for _ in range(rng.randrange(0, 40)))
        assert utf8_valid(data) == decodes(data), data


def test_buffer_kinds():
    text = 'caf\u00e9 \u20ac \U0001f600'.encode('utf-8')
    assert utf8_valid(bytearray(text)) is True
    assert utf8_valid(memoryview(text)) is True
    # Slices that cut a sequence in two.
    for start in range(len(text)):
        for end in range(start, len(text) + 1):
            view = memoryview(text)[start:end]
            assert utf8_valid(view) == decodes(view), (start, end)
    words = array.array('H', [0xa9c3, 0x82e2])
    assert utf8_valid(words) == decodes(words.tobytes())
    assert utf8_valid(memoryview(b'\xc3\xa9\xc3\xa9').cast('H')) is True
    assert utf8_valid(b'') is True
    assert utf8_valid(bytearray()) is True


def test_rejects_non_buffers():
    for value in ('text', None, 5, [1, 2]):
        with pytest.raises(TypeError):
            utf8_valid(value)
    with pytest.raises(BufferError):
        utf8_valid(memoryview(b'abcdef')[::2])


def test_large_inputs():
    ascii_block = b'a' * (16 * 1024 * 1024)
    assert utf8_valid(ascii_block) is True
    assert utf8_valid(ascii_block + b'\x80') is False
    assert utf8_valid(b'\xe9' + ascii_block) is False
    accented = '\u00e9'.encode('utf-8') * (8 * 1024 * 1024)
    assert utf8_valid(accented) is True
    assert utf8_valid(accented[:-1]) is False
    assert utf8_valid(memoryview(accented)[1:]) is False
