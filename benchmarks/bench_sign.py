"""Benchmark OAuth 1.0a signing: _mwcomms.OAuth1 against oauthlib's Client.

Signs a typical MediaWiki edit POST (8 form parameters, one non-ASCII
value, a CSRF token ending in "+\\") with HMAC-SHA1.  Both signers make
their own nonce and timestamp, as they do for real requests.

Two C-level floors time the part of an HMAC-SHA1 signature that no signer
can skip, in a C loop (_mwcomms._oauth_floor()).  That part is a 16-byte
nonce, HMAC-SHA1 from a precomputed key schedule over a base string of the
same size, and base64.  The floors differ only in the nonce:

- rand_bytes: one RAND_bytes() call per signature.
- pooled: the nonce pool that the signer itself uses (one RAND_bytes()
  call per 64 nonces).

Our figure includes the Python call, argument parsing and the result
string, which the floors do not.  Python's hmac.new(key, base).digest()
is printed for reference; it sets up the key on every call.

Run from the repository root after building the extension in place:

    python benchmarks/bench_sign.py [--number N] [--repeat R]

Prints microseconds per signature (median of R repeats of N signatures)
and the ratios.  This is a measurement, not a test: it has no thresholds.
"""
import argparse
import hashlib
import hmac
import os
import platform
import statistics
import sys
import timeit
from urllib.parse import urlencode

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

import _mwcomms  # noqa: E402
from oauthlib.oauth1 import Client  # noqa: E402

URL = 'https://en.wikipedia.org/w/api.php'
HEADERS = {'Content-Type': 'application/x-www-form-urlencoded'}
BODY = urlencode([
    ('action', 'edit'),
    ('format', 'json'),
    ('title', 'User:Example/Sandbox'),
    ('text', 'Grüße aus der Sandbox, [[Main Page|link]] {{tl|x}}.'),
    ('summary', 'Bot: update sandbox (test edit)'),
    ('token', 'd41d8cd98f00b204e9800998ecf8427e5f3c2a1b+\\'),
    ('bot', '1'),
    ('assert', 'user'),
])
CONSUMER_KEY = 'a3f1c9e07b5d4e2f8c6a0b1d2e3f4a5b'
CONSUMER_SECRET = '0f1e2d3c4b5a69788796a5b4c3d2e1f0a1b2c3d4'
TOKEN = '9b8a7c6d5e4f3a2b1c0d9e8f7a6b5c4d'
TOKEN_SECRET = '1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b'


def median_microseconds(statement, namespace, number, repeat):
    """Time statement, a string, so that no lambda call is counted."""
    times = timeit.repeat(statement, number=number, repeat=repeat,
                          globals=namespace)
    return statistics.median(times) / number * 1e6


def median_floor_microseconds(n_bytes, number, repeat, pooled_nonce):
    times = [_mwcomms._oauth_floor(n_bytes, number,
                                   pooled_nonce=pooled_nonce)
             for _ in range(repeat)]
    return statistics.median(times) * 1e6


def check_same_signature():
    """Exit unless both signers give the same signature for fixed input."""
    ours = _mwcomms.OAuth1(CONSUMER_KEY, CONSUMER_SECRET, TOKEN, TOKEN_SECRET)
    fixed = ours.sign('POST', URL, HEADERS, BODY, nonce='1234567890',
                      timestamp='1700000000')
    client = Client(CONSUMER_KEY, client_secret=CONSUMER_SECRET,
                    resource_owner_key=TOKEN,
                    resource_owner_secret=TOKEN_SECRET,
                    nonce='1234567890', timestamp='1700000000')
    expected = client.sign(URL, 'POST', BODY, HEADERS)[1]
    signature = fixed.rsplit('oauth_signature="', 1)[1]
    if ('oauth_signature="' + signature) not in expected['Authorization']:
        sys.exit('signatures differ: the benchmark would compare unequal '
                 'work')


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--number', type=int, default=20000,
                        help='signatures per repeat for our signer and the '
                             'floors (oauthlib does a tenth of them)')
    parser.add_argument('--repeat', type=int, default=7,
                        help='repeats; the median is reported')
    args = parser.parse_args()

    check_same_signature()
    ours = _mwcomms.OAuth1(CONSUMER_KEY, CONSUMER_SECRET, TOKEN, TOKEN_SECRET)
    client = Client(CONSUMER_KEY, client_secret=CONSUMER_SECRET,
                    resource_owner_key=TOKEN,
                    resource_owner_secret=TOKEN_SECRET)
    base = ours.signature_base_string('POST', URL, HEADERS, BODY,
                                      nonce='0' * 32, timestamp='1700000000')
    namespace = {
        'sign': ours.sign, 'client_sign': client.sign, 'URL': URL,
        'HEADERS': HEADERS, 'BODY': BODY, 'hmac': hmac, 'sha1': hashlib.sha1,
        'key': (CONSUMER_SECRET + '&' + TOKEN_SECRET).encode(),
        'base': base.encode(),
    }

    ours_us = median_microseconds("sign('POST', URL, HEADERS, BODY)",
                                  namespace, args.number, args.repeat)
    oauthlib_us = median_microseconds(
        "client_sign(URL, 'POST', BODY, HEADERS)", namespace,
        max(1, args.number // 10), args.repeat)
    python_hmac_us = median_microseconds("hmac.new(key, base, sha1).digest()",
                                         namespace, args.number, args.repeat)
    floor_us = median_floor_microseconds(len(base), args.number, args.repeat,
                                         pooled_nonce=False)
    pooled_floor_us = median_floor_microseconds(len(base), args.number,
                                                args.repeat,
                                                pooled_nonce=True)

    print(f'Python {platform.python_version()} on {platform.machine()}, '
          f'{os.cpu_count()} CPUs, base string {len(base)} bytes, body '
          f'{len(BODY)} bytes')
    print(f'median of {args.repeat} repeats, microseconds per signature')
    print(f'_mwcomms.OAuth1.sign            {ours_us:8.2f}')
    print(f'oauthlib Client.sign            {oauthlib_us:8.2f}')
    print(f'floor, RAND_bytes nonce (C)     {floor_us:8.2f}')
    print(f'floor, pooled nonce (C)         {pooled_floor_us:8.2f}')
    print(f'Python hmac.new().digest()      {python_hmac_us:8.2f} '
          '(MAC only, key set up per call)')
    print(f'ratio oauthlib / ours           {oauthlib_us / ours_us:8.1f}x')
    print(f'ratio ours / RAND_bytes floor   {ours_us / floor_us:8.2f}x')
    print(f'ratio ours / pooled floor       {ours_us / pooled_floor_us:8.2f}x')


if __name__ == '__main__':
    main()
