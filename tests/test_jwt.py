"""jwt_verify_hs256 against tokens made by PyJWT, an independent library."""
from __future__ import annotations

import base64
import json

import jwt
import pytest

import _mwcomms

KEY = 'consumer-secret-' + '0123456789abcdef' * 4
CLAIMS = {'iss': 'http://127.0.0.1:28181', 'aud': 'consumer-key', 'sub': 7,
          'iat': 1700000000, 'exp': 1700000100, 'nonce': 'n0nce',
          'username': 'Bøt', 'groups': ['bot', '*']}


def make_token(claims=CLAIMS, key=KEY, algorithm='HS256', headers=None):
    return jwt.encode(claims, key, algorithm=algorithm, headers=headers)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode('ascii')


def test_verify_returns_header_and_payload():
    header, payload = _mwcomms.jwt_verify_hs256(make_token(), KEY)
    assert json.loads(header)['alg'] == 'HS256'
    assert json.loads(payload) == CLAIMS


def test_verify_accepts_bytes():
    token = make_token().encode('ascii')
    header, payload = _mwcomms.jwt_verify_hs256(token, KEY.encode())
    assert json.loads(payload)['sub'] == 7


def test_wrong_key_rejected():
    with pytest.raises(ValueError, match='signature') as excinfo:
        _mwcomms.jwt_verify_hs256(make_token(), KEY + 'x')
    assert KEY not in str(excinfo.value)


def test_tampered_payload_rejected():
    head, _, signature = make_token().split('.')
    forged = b64url(json.dumps(dict(CLAIMS, username='Admin')).encode())
    with pytest.raises(ValueError, match='signature'):
        _mwcomms.jwt_verify_hs256(f'{head}.{forged}.{signature}', KEY)


def test_hs512_token_rejected():
    token = make_token(algorithm='HS512')
    with pytest.raises(ValueError, match='HS256'):
        _mwcomms.jwt_verify_hs256(token, KEY)


def test_alg_none_token_rejected():
    head = b64url(b'{"alg":"none","typ":"JWT"}')
    body = b64url(json.dumps(CLAIMS).encode())
    with pytest.raises(ValueError):
        _mwcomms.jwt_verify_hs256(f'{head}.{body}.', KEY)


@pytest.mark.parametrize('token', [
    '', 'abc', 'a.b', 'a.b.c.d', 'a..' + 'A' * 43, '*.e30.' + 'A' * 43,
    'e30.e30.' + 'A' * 42 + '=', 'e30.e30.' + 'A' * 44, 'e30.e30\0.x',
])
def test_malformed_token_rejected(token):
    with pytest.raises(ValueError, match='JWT'):
        _mwcomms.jwt_verify_hs256(token, KEY)


def test_noncanonical_base64_rejected():
    token = make_token()
    head, body, signature = token.split('.')
    # Flip the unused low bits of the signature's last character.
    last = signature[-1]
    alphabet = ('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'
                '0123456789-_')
    twin = alphabet[alphabet.index(last) ^ 1]
    with pytest.raises(ValueError):
        _mwcomms.jwt_verify_hs256(f'{head}.{body}.{signature[:-1]}{twin}',
                                  KEY)


def test_oversized_token_rejected():
    with pytest.raises(ValueError, match='longer'):
        _mwcomms.jwt_verify_hs256('a' * 70000, KEY)


@pytest.mark.parametrize('args', [(1, KEY), ('a.b.c', None), ('a.b.c',)])
def test_wrong_types_rejected(args):
    with pytest.raises(TypeError):
        _mwcomms.jwt_verify_hs256(*args)
