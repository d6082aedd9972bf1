"""Signatures on the paths that avoid work per request, checked with oauthlib.

The signer keeps the HMAC state after each of the first blocks of the
last base string and starts from it when the next base string begins
alike.  The client links the Authorization line into libcurl's header
list without copying it.  These tests sign sequences with one signer and send signed
requests through request(), request_many() and stream(), and recompute
every signature with oauthlib from the nonce and timestamp that were sent.
"""
import json
from urllib.parse import unquote

import pytest
from oauthlib.oauth1.rfc5849 import signature as oauthlib_signature
from oauthlib.oauth1.rfc5849 import utils as oauthlib_utils

import _mwcomms

# oauthlib 4 deprecates sign_hmac_sha1() in favour of the *_with_client
# variants, which need a Client; the plain functions are still correct.
pytestmark = pytest.mark.filterwarnings(
    'ignore:use sign_hmac:DeprecationWarning')

FORM_TYPE = 'application/x-www-form-urlencoded'
CONSUMER_KEY = 'consumer-key'
CONSUMER_SECRET = 'consumer-secret-SENTINEL'
TOKEN = 'token-key'
TOKEN_SECRET = 'token-secret-SENTINEL'


def make_signer(method='HMAC-SHA1'):
    return _mwcomms.OAuth1(CONSUMER_KEY, CONSUMER_SECRET, TOKEN,
                           TOKEN_SECRET, signature_method=method)


def header_params(header):
    return {name: unquote(value) for name, value
            in oauthlib_utils.parse_authorization_header(header)}


def expected_signature(method, url, body, params, signature_method):
    """Return oauthlib's signature of a request with these oauth_* params."""
    collected = oauthlib_signature.collect_parameters(
        uri_query=url.partition('?')[2])
    if body is not None and method not in ('GET', 'HEAD'):
        collected += oauthlib_signature.collect_parameters(body=body)
    collected += [(name, value) for name, value in params.items()
                  if name not in ('oauth_signature', 'realm')]
    base = oauthlib_signature.signature_base_string(
        method, oauthlib_signature.base_string_uri(url.partition('?')[0]),
        oauthlib_signature.normalize_parameters(collected))
    if signature_method == 'HMAC-SHA1':
        return oauthlib_signature.sign_hmac_sha1(base, CONSUMER_SECRET,
                                                 TOKEN_SECRET)
    return oauthlib_signature.sign_hmac_sha256(base, CONSUMER_SECRET,
                                               TOKEN_SECRET)


# ---- one signer, base strings that share their first block or not --------

BASE = 'https://en.wikipedia.org/w/api.php'
SEQUENCE = [
    # Same request twice: the second starts from the saved state.
    ('POST', BASE, 'action=query&meta=userinfo&format=json'),
    ('POST', BASE, 'action=query&meta=userinfo&format=json'),
    # Same first 64 bytes, different rest.
    ('POST', BASE, 'action=query&meta=siteinfo&format=json'),
    # Different first block: the method and then the URI differ.
    ('PUT', BASE, 'action=query&meta=siteinfo&format=json'),
    ('POST', BASE + '?x=1', 'action=edit&text=%C3%BC'),
    # Back to the first request after a miss.
    ('POST', BASE, 'action=query&meta=userinfo&format=json'),
    # Base strings shorter than one block skip the saved state.
    ('GET', 'http://a.b/', None),
    ('GET', 'http://a.b/', None),
    ('POST', BASE, 'action=query&meta=userinfo&format=json'),
    # Longer than the 8 blocks whose states are kept, then changed after
    # them, inside them and at the start.
    ('POST', BASE, 'action=edit&text=' + 'a' * 700),
    ('POST', BASE, 'action=edit&text=' + 'a' * 699 + 'b'),
    ('POST', BASE, 'action=edit&text=' + 'a' * 200 + 'c' + 'a' * 499),
    ('POST', BASE, 'action=edit&text=' + 'a' * 700),
    ('POST', BASE, 'action=edit&text=' + 'a' * 130),
    ('POST', BASE, 'action=edit&text=' + 'a' * 700),
    ('POST', BASE, 'action=edit&text=d' + 'a' * 699),
]


@pytest.mark.parametrize('signature_method', ['HMAC-SHA1', 'HMAC-SHA256'])
def test_block_cache_sequence(signature_method):
    signer = make_signer(signature_method)
    for index, (method, url, body) in enumerate(SEQUENCE):
        headers = {'Content-Type': FORM_TYPE} if body is not None else None
        header = signer.sign(method, url, headers, body,
                             nonce=f'nonce{index % 2}', timestamp=1700000000)
        params = header_params(header)
        assert params['oauth_signature'] == expected_signature(
            method, url, body, params, signature_method), (index, method,
                                                           url, body)


def test_block_cache_per_signer():
    # Two signers with other secrets must not share a saved state.
    first = make_signer()
    second = _mwcomms.OAuth1(CONSUMER_KEY, 'other-secret', TOKEN,
                             TOKEN_SECRET)
    method, url, body = SEQUENCE[0]
    headers = {'Content-Type': FORM_TYPE}
    signed_first = first.sign(method, url, headers, body, nonce='n',
                              timestamp=1)
    signed_second = second.sign(method, url, headers, body, nonce='n',
                                timestamp=1)
    signed_again = first.sign(method, url, headers, body, nonce='n',
                              timestamp=1)
    assert header_params(signed_first)['oauth_signature'] != header_params(
        signed_second)['oauth_signature']
    assert signed_first == signed_again


# ---- the Authorization line in libcurl's header list ------------------------

def sent(response):
    assert response.status == 200
    data = json.loads(response.body)
    return {name.lower(): value for name, value in data['headers']}, data


def check_sent(response, method, url, body, signature_method='HMAC-SHA1'):
    headers, data = sent(response)
    params = header_params(headers['authorization'])
    assert data['method'] == method
    assert params['oauth_signature'] == expected_signature(
        method, url, body, params, signature_method)
    return headers


@pytest.fixture
def client():
    with _mwcomms.Client() as instance:
        yield instance


def test_request_auth_only_header(client, http_server):
    # No other header: the Authorization node is the whole list.
    url = http_server.url('/echo?a=1')
    signer = make_signer()
    for _ in range(3):
        check_sent(client.request('GET', url, auth=signer), 'GET', url, None)


def test_request_auth_after_headers(client, http_server):
    url = http_server.url('/echo')
    body = 'action=edit&text=' + 'x' * 2000
    signer = make_signer()
    headers = check_sent(
        client.request('POST', url, [('Content-Type', FORM_TYPE),
                                     ('X-Extra', 'one')], body, auth=signer),
        'POST', url, body)
    assert headers['x-extra'] == 'one'
    assert 'expect' not in headers


def test_request_auth_then_plain(client, http_server):
    # A handle that sent a signed request must not keep its header.
    url = http_server.url('/echo')
    signer = make_signer()
    check_sent(client.request('GET', url, auth=signer), 'GET', url, None)
    headers, _ = sent(client.request('GET', url))
    assert 'authorization' not in headers


def test_request_auth_long_header(client, http_server):
    # A header longer than the request's inline storage (512 bytes).
    url = http_server.url('/echo')
    signer = _mwcomms.OAuth1('k' * 600, CONSUMER_SECRET, TOKEN, TOKEN_SECRET)
    for _ in range(2):
        headers = check_sent(client.request('GET', url, auth=signer), 'GET',
                             url, None)
        assert len(headers['authorization']) > 600


def test_request_many_auth(client, http_server):
    url = http_server.url('/echo')
    signer = make_signer()
    batch = [('GET', url, None, None, signer),
             ('POST', url, {'Content-Type': FORM_TYPE}, 'a=1&b=2', signer),
             ('GET', url)]
    results = client.request_many(batch)
    check_sent(results[0], 'GET', url, None)
    check_sent(results[1], 'POST', url, 'a=1&b=2')
    headers, _ = sent(results[2])
    assert 'authorization' not in headers


def test_stream_auth(client, http_server):
    url = http_server.url('/echo')
    signer = make_signer()
    with client.stream('POST', url, {'Content-Type': FORM_TYPE}, 'a=1',
                       auth=signer) as stream:
        body = stream.read()
    data = json.loads(body)
    headers = {name.lower(): value for name, value in data['headers']}
    params = header_params(headers['authorization'])
    assert params['oauth_signature'] == expected_signature(
        'POST', url, 'a=1', params, 'HMAC-SHA1')


def test_ascii_str_body_sent(client, http_server):
    # An ASCII str body is sent from the str itself.
    url = http_server.url('/echo')
    text = 'a=1&b=' + 'z' * 5000
    _, data = sent(client.request('POST', url, None, text))
    assert data['body'] == text


def test_non_ascii_str_body_sent(client, http_server):
    url = http_server.url('/echo')
    text = 'a=\u00fc\u20ac'
    _, data = sent(client.request('POST', url, None, text))
    assert data['body'].encode('latin-1') == text.encode('utf-8')
