"""Benchmark OAuth 1.0a signing: _mwcomms.OAuth1 against oauthlib's Client.

Signs a typical MediaWiki edit POST (8 form parameters, one non-ASCII
value, a CSRF token ending in "+\\") with HMAC-SHA1.  Both signers make
their own nonce and timestamp, as they do for real requests.  As a floor,
it also times Python's hmac module (OpenSSL's HMAC-SHA1) over a base string
of the same size, which is the MAC alone with no parsing or encoding.

Run from the repository root after building the extension in place:

    python bench/bench_sign.py [--number N] [--repeat R]

Prints microseconds per signature (median of R repeats of N signatures)
and the ratio oauthlib / ours.  This is a measurement, not a test: it has
no thresholds.
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


def median_microseconds(func, number, repeat):
    times = timeit.repeat(func, number=number, repeat=repeat)
    return statistics.median(times) / number * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--number', type=int, default=20000,
                        help='signatures per repeat for our signer '
                             '(oauthlib does a tenth of them)')
    parser.add_argument('--repeat', type=int, default=7,
                        help='repeats; the median is reported')
    args = parser.parse_args()

    ours = _mwcomms.OAuth1(CONSUMER_KEY, CONSUMER_SECRET, TOKEN, TOKEN_SECRET)
    client = Client(CONSUMER_KEY, client_secret=CONSUMER_SECRET,
                    resource_owner_key=TOKEN,
                    resource_owner_secret=TOKEN_SECRET)

    # Same inputs must give the same signature before anything is timed.
    fixed = ours.sign('POST', URL, HEADERS, BODY, nonce='1234567890',
                      timestamp='1700000000')
    fixed_client = Client(CONSUMER_KEY, client_secret=CONSUMER_SECRET,
                          resource_owner_key=TOKEN,
                          resource_owner_secret=TOKEN_SECRET,
                          nonce='1234567890', timestamp='1700000000')
    expected = fixed_client.sign(URL, 'POST', BODY, HEADERS)[1]
    signature = fixed.rsplit('oauth_signature="', 1)[1]
    if ('oauth_signature="' + signature) not in expected['Authorization']:
        sys.exit('signatures differ: the benchmark would compare unequal '
                 'work')

    base = ours.signature_base_string('POST', URL, HEADERS, BODY,
                                      nonce='0' * 32, timestamp='1700000000')
    key = (CONSUMER_SECRET + '&' + TOKEN_SECRET).encode()
    base_bytes = base.encode()

    ours_us = median_microseconds(
        lambda: ours.sign('POST', URL, HEADERS, BODY), args.number,
        args.repeat)
    oauthlib_us = median_microseconds(
        lambda: client.sign(URL, 'POST', BODY, HEADERS),
        max(1, args.number // 10), args.repeat)
    floor_us = median_microseconds(
        lambda: hmac.new(key, base_bytes, hashlib.sha1).digest(),
        args.number, args.repeat)

    print(f'Python {platform.python_version()} on {platform.machine()}, '
          f'base string {len(base_bytes)} bytes, body {len(BODY)} bytes')
    print(f'median of {args.repeat} repeats')
    print(f'_mwcomms.OAuth1.sign     {ours_us:8.2f} us/signature')
    print(f'oauthlib Client.sign     {oauthlib_us:8.2f} us/signature')
    print(f'hmac.new(...).digest()   {floor_us:8.2f} us (MAC only, floor)')
    print(f'ratio oauthlib / ours    {oauthlib_us / ours_us:8.1f}x')


if __name__ == '__main__':
    main()
