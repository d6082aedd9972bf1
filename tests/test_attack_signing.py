"""Sequences of signatures from one signer, recomputed with oauthlib.

The HMAC signer resumes from the hash state of the longest block prefix
that a base string shares with the previous one.  These tests sign
random sequences whose base strings cross 64-byte block boundaries, run
past the 8 cached blocks and change at every block.  They sign from one
thread and from several at once.  oauthlib's signature functions then
recompute each signature from the nonce and timestamp that were sent.
"""
import json
import threading
import time
from urllib.parse import unquote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oauthlib.oauth1.rfc5849 import signature as oauthlib_signature
from oauthlib.oauth1.rfc5849 import utils as oauthlib_utils

import _mwcomms
from rsa_test_key import RSA_TEST_KEY

pytestmark = pytest.mark.filterwarnings(
    'ignore:use sign_:DeprecationWarning',
    'ignore:use _sign_rsa:DeprecationWarning')

FORM_TYPE = 'application/x-www-form-urlencoded'
CONSUMER_KEY = 'attack-consumer'
CONSUMER_SECRET = 'attack-consumer-secret-SENTINEL'
TOKEN = 'attack-token'
TOKEN_SECRET = 'attack-token-secret-SENTINEL'
HMAC_METHODS = ['HMAC-SHA1', 'HMAC-SHA256']
ALL_METHODS = HMAC_METHODS + ['RSA-SHA1', 'PLAINTEXT']


def make_signer(signature_method, **kwargs):
    if signature_method == 'RSA-SHA1':
        kwargs['rsa_key'] = RSA_TEST_KEY
    return _mwcomms.OAuth1(CONSUMER_KEY, CONSUMER_SECRET, TOKEN, TOKEN_SECRET,
                           signature_method=signature_method, **kwargs)


def header_params(header):
    return {name: unquote(value) for name, value
            in oauthlib_utils.parse_authorization_header(header)}


def base_string(method, url, body, params):
    collected = oauthlib_signature.collect_parameters(
        uri_query=url.partition('?')[2])
    if body is not None and method.upper() not in ('GET', 'HEAD'):
        collected += oauthlib_signature.collect_parameters(body=body)
    collected += [(name, value) for name, value in params.items()
                  if name not in ('oauth_signature', 'realm')]
    return oauthlib_signature.signature_base_string(
        method.upper(),
        oauthlib_signature.base_string_uri(url.partition('?')[0]),
        oauthlib_signature.normalize_parameters(collected))


def assert_signed_like_oauthlib(signature_method, method, url, body, header):
    """Check the signature of header against oauthlib's computation."""
    params = header_params(header)
    base = base_string(method, url, body, params)
    signature = params['oauth_signature']
    if signature_method == 'HMAC-SHA1':
        expected = oauthlib_signature.sign_hmac_sha1(base, CONSUMER_SECRET,
                                                     TOKEN_SECRET)
        assert signature == expected, (method, url, body)
    elif signature_method == 'HMAC-SHA256':
        expected = oauthlib_signature.sign_hmac_sha256(base, CONSUMER_SECRET,
                                                       TOKEN_SECRET)
        assert signature == expected, (method, url, body)
    elif signature_method == 'PLAINTEXT':
        expected = oauthlib_signature.sign_plaintext(CONSUMER_SECRET,
                                                     TOKEN_SECRET)
        assert signature == expected
    else:
        # PKCS #1 v1.5 signatures are deterministic.
        expected = oauthlib_signature.sign_rsa_sha1(base, RSA_TEST_KEY)
        assert signature == expected, (method, url, body)


# ---- random sequences on one signer ----------------------------------------

# Hosts and paths of different lengths move the body parameters across
# block boundaries.
URLS = [
    'https://en.wikipedia.org/w/api.php',
    'https://en.wikipedia.org/w/api.php?action=query',
    'http://127.0.0.1:8080/w/api.php',
    'https://x.org/',
    'HTTPS://Commons.Wikimedia.ORG:443/w/api.php?format=json&a=' + 'q' * 90,
    'https://en.wikipedia.org/w/index.php',
]
# Whole escapes only: oauthlib turns invalid UTF-8 such as a cut "%C3"
# into U+FFFD, where the signer keeps the octets (see test_oauth_sign.py).
PIECE = st.sampled_from(['a', 'b', 'Z', '0', '%2B', '+', '%C3%BC', '=',
                         '&x=', '~', '-', '&'])


@st.composite
def signed_requests(draw):
    method = draw(st.sampled_from(['GET', 'POST', 'PUT', 'post', 'HEAD']))
    url = draw(st.sampled_from(URLS))
    if method in ('GET', 'HEAD'):
        return method, url, None
    # Bodies from 0 to about 1100 bytes: up to 17 blocks of base string.
    length = draw(st.sampled_from([0, 1, 20, 40, 63, 64, 65, 127, 128, 129,
                                   300, 447, 448, 449, 511, 512, 513, 700,
                                   1100]))
    stem = draw(st.lists(PIECE, min_size=1, max_size=6))
    pieces = []
    size = 0
    while size < length:
        piece = stem[len(pieces) % len(stem)]
        pieces.append(piece)
        size += len(piece)
    return method, url, 'action=edit&text=' + ''.join(pieces)


def valid_body(body):
    # oauthlib rejects a "%" that starts no escape.
    try:
        oauthlib_signature.collect_parameters(body=body)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize('signature_method', HMAC_METHODS)
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow,
                                 HealthCheck.function_scoped_fixture])
@given(sequence=st.lists(signed_requests(), min_size=2, max_size=12))
def test_sequence_random(signature_method, sequence):
    signer = make_signer(signature_method)
    for index, (method, url, body) in enumerate(sequence):
        if body is not None and not valid_body(body):
            continue
        headers = {'Content-Type': FORM_TYPE} if body is not None else None
        try:
            header = signer.sign(method, url, headers, body,
                                 nonce=f'n{index % 3}', timestamp=1700000000)
        except ValueError:
            continue
        assert_signed_like_oauthlib(signature_method, method, url, body,
                                    header)


def test_sequence_each_block_changed():
    # 16 blocks of base string.  Each request differs from the last
    # in one block only, so the cache resumes from every depth.
    for signature_method in HMAC_METHODS:
        signer = make_signer(signature_method)
        url = 'https://en.wikipedia.org/w/api.php'
        body = list('action=edit&text=' + 'a' * 800)
        for position in [17, 700, 100, 300, 64, 63, 500, 17, 130, 450, 799]:
            body[position] = 'b' if body[position] == 'a' else 'a'
            text = ''.join(body)
            header = signer.sign('POST', url, {'Content-Type': FORM_TYPE},
                                 text, nonce='n', timestamp=1)
            assert_signed_like_oauthlib(signature_method, 'POST', url, text,
                                        header)


def test_sequence_shrinks_then_grows():
    # A shorter base string drops cached blocks, so the next longer one
    # must not resume from a stale block beyond the shorter one.
    for signature_method in HMAC_METHODS:
        signer = make_signer(signature_method)
        url = 'https://en.wikipedia.org/w/api.php'
        for length in [700, 70, 700, 0, 700, 450, 700, 5, 1000]:
            text = 'action=edit&text=' + 'c' * length
            header = signer.sign('POST', url, {'Content-Type': FORM_TYPE},
                                 text, nonce='same', timestamp=5)
            assert_signed_like_oauthlib(signature_method, 'POST', url, text,
                                        header)


@pytest.mark.parametrize('signature_method', ALL_METHODS)
def test_sequence_all_methods(signature_method):
    signer = make_signer(signature_method)
    url = 'https://en.wikipedia.org/w/api.php'
    for length in [0, 64, 640, 63, 1200, 64]:
        text = 'action=edit&text=' + 'd' * length
        header = signer.sign('POST', url, {'Content-Type': FORM_TYPE}, text)
        assert_signed_like_oauthlib(signature_method, 'POST', url, text,
                                    header)


# ---- one signer from several threads ---------------------------------------

@pytest.mark.parametrize('signature_method', HMAC_METHODS)
def test_threads_one_signer(signature_method):
    signer = make_signer(signature_method)
    failures = []
    url = 'https://en.wikipedia.org/w/api.php'

    def run(key):
        for round_number in range(150):
            length = (key * 97 + round_number * 61) % 900
            text = f'action=edit&k={key}&text=' + 'e' * length
            header = signer.sign('POST', url, {'Content-Type': FORM_TYPE},
                                 text)
            try:
                assert_signed_like_oauthlib(signature_method, 'POST', url,
                                            text, header)
            except AssertionError:
                failures.append((key, round_number))

    threads = [threading.Thread(target=run, args=(key,)) for key in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert failures == []


# ---- signed requests through the client -------------------------------------

@pytest.fixture
def client():
    with _mwcomms.Client() as instance:
        yield instance


def sent_headers(response):
    assert response.status == 200
    data = json.loads(response.body)
    return {name.lower(): value for name, value in data['headers']}


@pytest.mark.parametrize('signature_method', ALL_METHODS)
def test_client_mixed_sequence(client, http_server, signature_method):
    signer = make_signer(signature_method)
    base = http_server.url('/echo')
    plan = [
        ('GET', base + '?action=query&meta=userinfo', None),
        ('POST', base, 'action=edit&text=' + 'f' * 900),
        ('POST', base, 'action=edit&text=' + 'f' * 899 + 'g'),
        ('GET', base + '?action=query&meta=userinfo', None),
        ('POST', base + '?x=1', 'a=1'),
        ('POST', base, 'action=edit&text=' + 'f' * 900),
    ]
    for method, url, body in plan:
        headers = [('Content-Type', FORM_TYPE)] if body is not None else None
        response = client.request(method, url, headers, body, auth=signer)
        sent = sent_headers(response)
        assert_signed_like_oauthlib(signature_method, method, url, body,
                                    sent['authorization'])


def test_client_clock_offset_changes(client, http_server):
    signer = make_signer('HMAC-SHA1')
    url = http_server.url('/echo?a=b')
    for offset in [0, 3600, -3600, 1, 0]:
        signer.clock_offset = offset
        before = int(time.time())
        sent = sent_headers(client.request('GET', url, auth=signer))
        after = int(time.time())
        params = header_params(sent['authorization'])
        timestamp = int(params['oauth_timestamp'])
        assert before + offset <= timestamp <= after + offset
        assert_signed_like_oauthlib('HMAC-SHA1', 'GET', url, None,
                                    sent['authorization'])


def test_client_two_signers_interleaved(client, http_server):
    first = make_signer('HMAC-SHA1')
    second = make_signer('HMAC-SHA256', clock_offset=-100)
    url = http_server.url('/echo')
    body = 'action=edit&text=' + 'h' * 600
    for round_number in range(4):
        for signature_method, signer in [('HMAC-SHA1', first),
                                         ('HMAC-SHA256', second)]:
            response = client.request('POST', url,
                                      {'Content-Type': FORM_TYPE},
                                      body + str(round_number), auth=signer)
            sent = sent_headers(response)
            assert_signed_like_oauthlib(signature_method, 'POST', url,
                                        body + str(round_number),
                                        sent['authorization'])


def test_client_threads_one_signer(http_server):
    # Four threads share a client and a signer; every request is signed
    # with the GIL held, so each signature must still verify.
    signer = make_signer('HMAC-SHA1')
    base = http_server.url('/echo')
    failures = []

    def run(key):
        for round_number in range(25):
            body = f'action=edit&k={key}&text=' + 'i' * (round_number * 37)
            response = shared.request('POST', base,
                                      {'Content-Type': FORM_TYPE}, body,
                                      auth=signer)
            sent = sent_headers(response)
            try:
                assert_signed_like_oauthlib('HMAC-SHA1', 'POST', base, body,
                                            sent['authorization'])
            except AssertionError:
                failures.append((key, round_number))

    with _mwcomms.Client() as shared:
        threads = [threading.Thread(target=run, args=(key,))
                   for key in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    assert failures == []
