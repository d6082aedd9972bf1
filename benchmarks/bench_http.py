"""Client CPU per request: mwcomms against the stock pywikibot stack.

Runs, in one process and against one local nginx (a separate process, so
its CPU is not counted), a small GET, a small form POST and an
OAuth 1.0a-signed form POST over one kept-alive connection through:

- raw libcurl (benchmarks/curl_loop.c, compiled on the fly; its OAuth row
  sends a fixed, pre-computed Authorization header, so it does no
  signing), without and with CURLOPT_ACCEPT_ENCODING "": the second
  sends the same headers as ``_mwcomms.Client`` with its default
  accept_encoding=True, and libcurl 7.88 spends several microseconds per
  request on that one header,
- ``_mwcomms.Client.request`` directly,
- pywikibot's ``fetch`` through mwcomms,
- stock pywikibot ``fetch`` (requests + requests_oauthlib),
- plain ``requests.Session.request`` (+ requests_oauthlib.OAuth1).

It prints the median client CPU time per request of several rounds
(``time.process_time`` for Python, ``getrusage`` for the C loop) and the
ratios.  Usage::

    python benchmarks/bench_http.py [--requests N] [--rounds R]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from _nginx import Nginx  # noqa: E402

CONSUMER = ('bench-consumer-key', 'bench-consumer-secret',
            'bench-access-key', 'bench-access-secret')
FORM_BODY = ('action=query&format=json&meta=userinfo&uiprop=groups%7Crights'
             '&assert=user&maxlag=5')
def build_curl_loop(run: Path) -> Path | None:
    exe = run / 'curl_loop'
    flags = subprocess.run(['pkg-config', '--cflags', '--libs', 'libcurl'],
                           capture_output=True, text=True, check=False)
    if flags.returncode != 0:
        return None
    cmd = ['cc', '-O2', '-o', str(exe), str(HERE / 'curl_loop.c'),
           *flags.stdout.split()]
    if subprocess.run(cmd, check=False).returncode != 0:
        return None
    return exe


def measure(call, count: int, rounds: int) -> float:
    """Return the median CPU seconds per call over *rounds* rounds."""
    for _ in range(min(count, 200)):
        call()
    samples = []
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(count):
            call()
        samples.append((time.process_time() - start) / count)
    return statistics.median(samples)


def measure_curl_loop(exe, url, count, rounds, body=None, header=None,
                      accept_encoding=False):
    samples = []
    args = [str(exe), *(['-e'] if accept_encoding else []), url, str(count)]
    if body is not None:
        args.append(body)
        if header is not None:
            args.append(header)
    for _ in range(rounds):
        out = subprocess.run(args, capture_output=True, text=True,
                             check=True).stdout.split()
        samples.append(float(out[0]) / int(out[1]))
    return statistics.median(samples)


def setup_pywikibot(tmp: Path) -> None:
    """Import pywikibot with a throwaway configuration directory."""
    (tmp / 'user-config.py').write_text(
        "family = 'wikipedia'\nmylang = 'en'\n"
        "put_throttle = 0\nminthrottle = 0\n")
    os.environ['PYWIKIBOT_DIR'] = str(tmp)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--requests', type=int, default=1000,
                        help='requests per round (default 1000)')
    parser.add_argument('--rounds', type=int, default=5,
                        help='rounds; the median is reported (default 5)')
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix='mwcomms-bench-') as tmpdir:
        tmp = Path(tmpdir)
        server = Nginx(tmp / 'nginx')
        try:
            setup_pywikibot(tmp)
            results = run_all(tmp, server.port, args.requests, args.rounds)
        finally:
            server.stop()
    report(results, args)


def run_all(tmp: Path, port: int, count: int, rounds: int) -> dict:
    import requests
    import requests_oauthlib

    import _mwcomms
    import pywikibot  # noqa: F401 -- loads config from PYWIKIBOT_DIR
    from pywikibot import config
    from pywikibot.comms import http

    from pywikibot_ext import _pywikibot

    base = f'http://127.0.0.1:{port}'
    get_url = f'{base}/w/api.php?action=query&meta=siteinfo&format=json'
    post_url = f'{base}/w/api.php'
    oauth_host = f'127.0.0.1:{port}'
    form = {'Content-Type': 'application/x-www-form-urlencoded'}
    results = {}

    exe = build_curl_loop(tmp)
    if exe is not None:
        signer = _mwcomms.OAuth1(*CONSUMER)
        header = 'Authorization: ' + signer.sign('POST', post_url, form,
                                                 FORM_BODY)
        for name, encoding in (('raw libcurl', False),
                               ('raw libcurl, Accept-Encoding', True)):
            results[name] = {
                'GET': measure_curl_loop(exe, get_url, count, rounds,
                                         accept_encoding=encoding),
                'POST': measure_curl_loop(exe, post_url, count, rounds,
                                          FORM_BODY,
                                          accept_encoding=encoding),
                'OAuth POST': measure_curl_loop(exe, post_url, count,
                                                rounds, FORM_BODY, header,
                                                accept_encoding=encoding),
            }

    client = _mwcomms.Client(cookies=False)
    signer = _mwcomms.OAuth1(*CONSUMER)
    form_pairs = list(form.items())
    results['_mwcomms.Client'] = {
        'GET': measure(lambda: client.request('GET', get_url), count,
                       rounds),
        'POST': measure(lambda: client.request('POST', post_url, form_pairs,
                                               FORM_BODY), count, rounds),
        'OAuth POST': measure(lambda: client.request(
            'POST', post_url, form_pairs, FORM_BODY, auth=signer), count,
            rounds),
    }

    stock_fetch = http.fetch

    def fetch_rows(fetch):
        config.authenticate.pop(oauth_host, None)
        rows = {
            'GET': measure(lambda: fetch(get_url), count, rounds),
            'POST': measure(lambda: fetch(post_url, method='POST',
                                          headers=dict(form),
                                          data=FORM_BODY), count, rounds),
        }
        config.authenticate[oauth_host] = CONSUMER
        rows['OAuth POST'] = measure(
            lambda: fetch(post_url, method='POST', headers=dict(form),
                          data=FORM_BODY), count, rounds)
        config.authenticate.pop(oauth_host, None)
        return rows

    results['pywikibot fetch, mwcomms'] = fetch_rows(_pywikibot.fetch)
    results['pywikibot fetch, stock'] = fetch_rows(stock_fetch)

    session = requests.Session()
    oauth = requests_oauthlib.OAuth1(*CONSUMER)
    results['requests.Session'] = {
        'GET': measure(lambda: session.get(get_url), count, rounds),
        'POST': measure(lambda: session.post(post_url, data=FORM_BODY,
                                             headers=form), count, rounds),
        'OAuth POST': measure(lambda: session.post(
            post_url, data=FORM_BODY, headers=form, auth=oauth), count,
            rounds),
    }
    return results


def report(results: dict, args) -> None:
    kinds = ('GET', 'POST', 'OAuth POST')
    stock = results['pywikibot fetch, stock']
    print(f'client CPU per request, median of {args.rounds} rounds x '
          f'{args.requests} requests, one kept-alive connection to nginx on '
          '127.0.0.1')
    print(f'{"":30}' + ''.join(f'{kind:>14}' for kind in kinds))
    for name, rows in results.items():
        print(f'{name:30}' + ''.join(f'{rows[k] * 1e6:11.1f} us'
                                     for k in kinds))
    print()
    print('stock pywikibot fetch / each (higher = cheaper than stock)')
    for name, rows in results.items():
        print(f'{name:30}' + ''.join(f'{stock[k] / rows[k]:13.1f}x'
                                     for k in kinds))
    for base_name in ('raw libcurl', 'raw libcurl, Accept-Encoding'):
        raw = results.get(base_name)
        if not raw:
            continue
        print()
        print(f'each / {base_name} (1.0 = as cheap as {base_name})')
        for name, rows in results.items():
            print(f'{name:30}' + ''.join(f'{rows[k] / raw[k]:13.2f}x'
                                         for k in kinds))


if __name__ == '__main__':
    main()
