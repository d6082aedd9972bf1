"""Instructions per request, counted by callgrind: stable on a busy machine.

CPU-time benchmarks on a shared machine move by a factor of two between
runs.  valgrind's callgrind counts the instructions a process executes
in user space, which does not depend on the load (kernel time for
system calls is not counted, so the figures leave out the socket work
that every client does alike).

For each client it runs the same loop twice, with N1 and N2 requests to
a local nginx, and reports (count(N2) - count(N1)) / (N2 - N1): the cost
of one request without start-up.  Side by side:

- raw libcurl (benchmarks/curl_loop.c, with Accept-Encoding as _mwcomms sends
  it by default; the OAuth row sends a fixed header, no signing),
- ``_mwcomms.Client.request``,
- pywikibot ``fetch`` through mwcomms,
- stock pywikibot ``fetch`` (requests + requests_oauthlib).

and, for GETs with 8 transfers in flight, raw libcurl multi
(benchmarks/curl_multi.c) beside ``_mwcomms.Client.request_many`` in
batches of up to 256, as the suite's concurrent scenario sends them.

Usage (takes a few minutes; needs valgrind)::

    python benchmarks/bench_instructions.py [--small N1] [--large N2]
        [--only serial|concurrent]
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from benchmarks._nginx import Nginx  # noqa: E402
from benchmarks.suite import (  # noqa: E402
    CONSUMER, FORM_BODY, THREADS, build_c_programs)

FORM = 'application/x-www-form-urlencoded'

# Run inside valgrind: one client, one kind of request, COUNT times.
LOOP = '''
import os, sys
kind, client, count, url = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
consumer = tuple(sys.argv[5].split(','))
body = sys.argv[6]
form = {"Content-Type": "%(form)s"}
if client == "_mwcomms":
    import _mwcomms
    c = _mwcomms.Client(cookies=False)
    signer = _mwcomms.OAuth1(*consumer) if kind == "OAuth POST" else None
    pairs = list(form.items())
    if kind == "GET":
        call = lambda: c.request("GET", url)
    else:
        call = lambda: c.request("POST", url, pairs, body, auth=signer)
else:
    import pywikibot
    from pywikibot import config
    from pywikibot.comms import http
    if client == "fetch-mwcomms":
        from pywikibot_ext import _pywikibot
        fetch = _pywikibot.fetch
    else:
        fetch = http.fetch
    if kind == "OAuth POST":
        config.authenticate[url.split("/")[2]] = consumer
    if kind == "GET":
        call = lambda: fetch(url)
    else:
        call = lambda: fetch(url, method="POST", headers=dict(form), data=body)
for _ in range(count):
    call()
''' % {'form': FORM}

# Run inside valgrind: COUNT GETs through request_many, in batches of up
# to BATCH with CONCURRENCY transfers in flight.
BATCH_LOOP = '''
import sys
import _mwcomms
count, url = int(sys.argv[1]), sys.argv[2]
batch, concurrency = int(sys.argv[3]), int(sys.argv[4])
client = _mwcomms.Client(cookies=False)
done = 0
while done < count:
    size = min(batch, count - done)
    for response in client.request_many([("GET", url)] * size,
                                        max_concurrency=concurrency):
        if isinstance(response, Exception):
            raise response
        if response.status != 200:
            sys.exit(f"expected status 200, got {response.status}")
    done += size
'''
BATCH_SIZE = 256


def collected(command: list[str], env: dict) -> int:
    """Run command under callgrind; return its instruction count."""
    with tempfile.TemporaryDirectory() as tmp:
        result = subprocess.run(
            ['valgrind', '--tool=callgrind',
             f'--callgrind-out-file={tmp}/callgrind.out', *command],
            capture_output=True, text=True, env=env, check=False)
    match = re.search(r'Collected : (\d+)', result.stderr)
    if result.returncode != 0 or match is None:
        sys.exit(f'{command[:3]} failed under valgrind:\n'
                 f'{result.stderr[-2000:]}')
    return int(match.group(1))


def per_request(make_command, small: int, large: int, env: dict) -> float:
    low = collected(make_command(small), env)
    high = collected(make_command(large), env)
    return (high - low) / (large - small)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--small', type=int, default=50,
                        help='requests in the first run (default 50)')
    parser.add_argument('--large', type=int, default=250,
                        help='requests in the second run (default 250)')
    parser.add_argument('--only', choices=('serial', 'concurrent'),
                        help='measure only one request at a time, or only '
                             f'{THREADS} transfers in flight (default: both)')
    args = parser.parse_args()
    if shutil.which('valgrind') is None:
        sys.exit('valgrind is not installed: apt-get install valgrind')

    with tempfile.TemporaryDirectory(prefix='mwcomms-bench-') as tmpdir:
        tmp = Path(tmpdir)
        (tmp / 'pwb').mkdir()
        (tmp / 'pwb' / 'user-config.py').write_text(
            "family = 'wikipedia'\nmylang = 'en'\n")
        env = dict(os.environ, PYWIKIBOT_DIR=str(tmp / 'pwb'),
                   PYTHONPATH=str(ROOT))
        server = Nginx(tmp / 'nginx')
        try:
            results = {}
            concurrent = {}
            if args.only != 'concurrent':
                results = measure_all(server, tmp, env, args)
            if args.only != 'serial':
                concurrent = measure_concurrent(server, tmp, env, args)
        finally:
            server.stop()
    if results:
        report(results, args)
    if concurrent:
        report_concurrent(concurrent, args)


def measure_all(server, tmp: Path, env: dict, args) -> dict:
    get_url = f'{server.base}/w/api.php?action=query&meta=siteinfo'
    post_url = f'{server.base}/w/api.php'
    urls = {'GET': get_url, 'POST': post_url, 'OAuth POST': post_url}
    results = {}
    exe = build_c_programs(tmp)['curl_loop']
    if exe is not None:
        import _mwcomms
        signer = _mwcomms.OAuth1(*CONSUMER)
        header = 'Authorization: ' + signer.sign(
            'POST', post_url, {'Content-Type': FORM}, FORM_BODY)
        extra = {'GET': [], 'POST': [FORM_BODY],
                 'OAuth POST': [FORM_BODY, header]}
        results['raw libcurl, Accept-Encoding'] = {
            kind: per_request(
                lambda n, kind=kind: [str(exe), '-e', urls[kind], str(n),
                                      *extra[kind]],
                args.small, args.large, env)
            for kind in urls}
    for client in ('_mwcomms', 'fetch-mwcomms', 'fetch-stock'):
        results[client] = {}
        for kind in urls:
            results[client][kind] = per_request(
                lambda n, kind=kind, client=client: [
                    sys.executable, '-c', LOOP, kind, client, str(n),
                    urls[kind], ','.join(CONSUMER), FORM_BODY],
                args.small, args.large, env)
            print(f'{client:14} {kind:11} '
                  f'{results[client][kind]:12,.0f} instructions',
                  flush=True)
    return results


def measure_concurrent(server, tmp: Path, env: dict, args) -> dict:
    """Count GETs with THREADS transfers in flight: raw and request_many.

    Both runs send whole batches (multiples of BATCH_SIZE) so that the
    difference contains no partly filled batch.
    """
    url = f'{server.base}/w/api.php?action=query&meta=siteinfo'
    small = max(1, args.small // BATCH_SIZE) * BATCH_SIZE
    large = max(small + BATCH_SIZE, args.large // BATCH_SIZE * BATCH_SIZE)
    results = {}
    exe = build_c_programs(tmp)['curl_multi']
    results[f'raw libcurl multi, {THREADS} transfers'] = per_request(
        lambda n: [str(exe), '-e', url, str(n), str(THREADS)],
        small, large, env)
    results['_mwcomms request_many'] = per_request(
        lambda n: [sys.executable, '-c', BATCH_LOOP, str(n), url,
                   str(BATCH_SIZE), str(THREADS)],
        small, large, env)
    results['runs'] = (small, large)
    return results


def report_concurrent(results: dict, args) -> None:
    small, large = results.pop('runs')
    raw = results[f'raw libcurl multi, {THREADS} transfers']
    print()
    print(f'callgrind instructions per GET with {THREADS} in flight (user '
          f'space), from runs of {small} and {large} requests')
    for name, value in results.items():
        print(f'{name:34}{value:12,.0f}{raw / value:9.2f}x raw')


def report(results: dict, args) -> None:
    kinds = ('GET', 'POST', 'OAuth POST')
    print()
    print('callgrind instructions per request (user space), from runs of '
          f'{args.small} and {args.large} requests')
    print(f'{"":30}' + ''.join(f'{kind:>14}' for kind in kinds))
    for name, rows in results.items():
        print(f'{name:30}' + ''.join(f'{rows[k]:14,.0f}' for k in kinds))
    stock = results['fetch-stock']
    print()
    print('fetch-stock / each (higher = fewer instructions than stock)')
    for name, rows in results.items():
        print(f'{name:30}' + ''.join(f'{stock[k] / rows[k]:13.1f}x'
                                     for k in kinds))
    raw = results.get('raw libcurl, Accept-Encoding')
    if raw:
        print()
        print('each / raw libcurl with Accept-Encoding')
        for name, rows in results.items():
            print(f'{name:30}' + ''.join(f'{rows[k] / raw[k]:13.2f}x'
                                         for k in kinds))


if __name__ == '__main__':
    main()
