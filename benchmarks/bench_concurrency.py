"""Large bodies, memory and concurrency: mwcomms beside the stock stack.

Against one local nginx (a separate process), in one run:

1. a 1 MiB GET in one thread: requests per second and the peak RSS of a
   process that does only that, for raw libcurl, http.client, requests,
   stock pywikibot fetch, ``_mwcomms.Client`` and pywikibot fetch through
   mwcomms;
2. a 1 GiB download streamed with ``Client.stream``: rate and peak RSS;
3. small GETs from 8 concurrent transfers: raw libcurl multi (without
   and with Accept-Encoding), one ``_mwcomms.Client`` shared by 8
   threads, ``Client.request_many`` (with and without Accept-Encoding),
   pycurl (a Curl per thread, when installed), requests (a Session per
   thread) and pywikibot fetch through mwcomms in 8 threads;
4. the import time of pywikibot with and without pywikibot_ext.

Each figure is a median of several rounds.  Usage::

    python benchmarks/bench_concurrency.py [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from _nginx import Nginx  # noqa: E402

THREADS = 8
MIB = 1024 * 1024


# -- workers: run in a child process so that each has its own peak RSS ----

def worker_big(client: str, url: str, count: int) -> dict:
    """GET url count times with one client; return rate and peak RSS."""
    if client == 'http.client':
        import http.client
        import urllib.parse
        parts = urllib.parse.urlsplit(url)
        connection = http.client.HTTPConnection(parts.hostname, parts.port)

        def call():
            connection.request('GET', parts.path)
            return len(connection.getresponse().read())
    elif client == 'requests':
        import requests
        session = requests.Session()

        def call():
            return len(session.get(url).content)
    elif client == '_mwcomms':
        import _mwcomms
        mw_client = _mwcomms.Client(cookies=False)

        def call():
            return len(mw_client.request('GET', url).body)
    elif client in ('fetch-mwcomms', 'fetch-stock'):
        import pywikibot  # noqa: F401 -- configured by PYWIKIBOT_DIR
        from pywikibot.comms import http
        if client == 'fetch-mwcomms':
            from pywikibot_ext import _pywikibot
            fetch = _pywikibot.fetch
        else:
            fetch = http.fetch

        def call():
            return len(fetch(url).content)
    else:
        raise SystemExit(f'unknown client {client}')
    size = call()
    if size != MIB:
        raise SystemExit(f'{client}: expected {MIB} bytes from {url}, got '
                         f'{size}')
    start = time.perf_counter()
    for _ in range(count):
        call()
    elapsed = time.perf_counter() - start
    return {'rate': count / elapsed, 'size': size,
            'maxrss_kib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}


def worker_stream(url: str) -> dict:
    import _mwcomms
    client = _mwcomms.Client(cookies=False)
    total = 0
    start = time.perf_counter()
    with client.stream('GET', url) as stream:
        for chunk in stream.iter_chunks(1 << 20):
            total += len(chunk)
    elapsed = time.perf_counter() - start
    return {'bytes': total, 'mib_per_s': total / MIB / elapsed,
            'maxrss_kib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}


def run_worker(args: list[str], env=None) -> dict:
    result = subprocess.run([sys.executable, __file__, '--worker', *args],
                            capture_output=True, text=True, check=False,
                            env=env, timeout=900)
    if result.returncode != 0:
        sys.exit(f'worker {args} failed:\n{result.stderr[-3000:]}')
    return json.loads(result.stdout.strip().splitlines()[-1])


# -- concurrency ------------------------------------------------------------

def threaded_rate(make_call, total: int) -> float:
    """Run total calls split over THREADS threads; return calls/second."""
    per_thread = total // THREADS
    barrier = threading.Barrier(THREADS + 1)
    errors = []

    def run():
        call = make_call()
        barrier.wait()
        try:
            for _ in range(per_thread):
                call()
        except Exception as exc:  # reported below, with the client name
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return per_thread * THREADS / elapsed


def concurrency_rates(url: str, total: int, exe_multi: Path | None) -> dict:
    import requests

    import _mwcomms
    from pywikibot_ext import _pywikibot

    rates = {}
    if exe_multi is not None:
        for name, flags in (('raw libcurl multi', []),
                            ('raw libcurl multi, Accept-Encoding', ['-e'])):
            out = subprocess.run([str(exe_multi), *flags, url, str(total),
                                  str(THREADS)],
                                 capture_output=True, text=True,
                                 check=True).stdout.split()
            rates[name] = int(out[2]) / float(out[0])

    shared = _mwcomms.Client(cookies=False)
    rates['_mwcomms.Client, 8 threads'] = threaded_rate(
        lambda: (lambda: shared.request('GET', url)), total)

    batch = [('GET', url)] * 200
    for name, encoding in (('_mwcomms request_many', True),
                           ('_mwcomms request_many, no Accept-Encoding',
                            False)):
        start = time.perf_counter()
        done = 0
        while done < total:
            results = shared.request_many(batch, max_concurrency=THREADS,
                                          accept_encoding=encoding)
            bad = [r for r in results if isinstance(r, Exception)]
            if bad:
                raise bad[0]
            done += len(results)
        rates[name] = done / (time.perf_counter() - start)

    try:
        import pycurl
    except ImportError:
        pycurl = None
    if pycurl is not None:
        def make_pycurl():
            curl = pycurl.Curl()
            curl.setopt(pycurl.URL, url)
            curl.setopt(pycurl.NOSIGNAL, 1)
            curl.setopt(pycurl.WRITEFUNCTION, lambda data: None)
            return curl.perform
        rates['pycurl, 8 threads'] = threaded_rate(make_pycurl, total)

    def make_requests():
        session = requests.Session()
        return lambda: session.get(url)
    rates['requests, 8 threads'] = threaded_rate(make_requests,
                                                 max(total // 10, 400))

    rates['pywikibot fetch mwcomms, 8 threads'] = threaded_rate(
        lambda: (lambda: _pywikibot.fetch(url)), max(total // 4, 800))
    return rates


# -- the run ----------------------------------------------------------------

def compile_c(source: str, exe: Path) -> Path | None:
    flags = subprocess.run(['pkg-config', '--cflags', '--libs', 'libcurl'],
                           capture_output=True, text=True, check=False)
    if flags.returncode != 0:
        return None
    command = ['cc', '-O2', '-o', str(exe), str(HERE / source),
               *flags.stdout.split()]
    if subprocess.run(command, check=False).returncode != 0:
        return None
    return exe


def import_time(code: str, env: dict, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        subprocess.run([sys.executable, '-c', code], env=env, check=True,
                       capture_output=True)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true',
                        help='fewer requests and a 256 MiB stream')
    parser.add_argument('--worker', nargs='+', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, *rest = args.worker
        if kind == 'big':
            print(json.dumps(worker_big(rest[0], rest[1], int(rest[2]))))
        else:
            print(json.dumps(worker_stream(rest[0])))
        return

    big_count = 100 if args.quick else 400
    small_total = 4000 if args.quick else 16000
    stream_size = (256 if args.quick else 1024) * MIB

    with tempfile.TemporaryDirectory(prefix='mwcomms-bench-') as tmp:
        tmp = Path(tmp)
        files = tmp / 'files'
        files.mkdir()
        (files / 'one-mib').write_bytes(os.urandom(MIB))
        with open(files / 'stream', 'wb') as handle:
            handle.truncate(stream_size)  # sparse: no disk used
        (tmp / 'pwb').mkdir()
        (tmp / 'pwb' / 'user-config.py').write_text(
            "family = 'wikipedia'\nmylang = 'en'\n")
        env = dict(os.environ, PYWIKIBOT_DIR=str(tmp / 'pwb'),
                   PYTHONPATH=str(ROOT))
        os.environ['PYWIKIBOT_DIR'] = str(tmp / 'pwb')
        server = Nginx(tmp / 'nginx', files)
        try:
            report_big(server, tmp, env, big_count)
            report_stream(server, env, stream_size)
            report_concurrency(server, tmp, small_total)
        finally:
            server.stop()
        report_import(env)


def report_big(server, tmp, env, count) -> None:
    url = server.base + '/files/one-mib'
    print(f'1 MiB GET, one thread, {count} requests per client, one '
          'process each')
    rows = {}
    exe = compile_c('curl_loop.c', tmp / 'curl_loop')
    # The raw rows send Accept-Encoding as _mwcomms does.  "kept" rows
    # copy each body into a buffer of its Content-Length, the copy that
    # _mwcomms makes into Response.body too; "128 KiB" rows use the
    # CURLOPT_BUFFERSIZE that _mwcomms sets.
    raw_variants = {
        'raw libcurl': ['-e'],
        'raw libcurl, kept': ['-e', '-k'],
        'raw libcurl, kept, 128 KiB': ['-e', '-k', '-b', '131072'],
    }
    if exe is not None:
        for name, flags in raw_variants.items():
            out = subprocess.run([str(exe), *flags, url, str(count)],
                                 capture_output=True, text=True,
                                 check=True).stdout.split()
            rows[name] = {'rate': count / float(out[2]),
                          'cpu': float(out[0]) / count,
                          'maxrss_kib': None}
    for client in ('http.client', 'requests', 'fetch-stock', '_mwcomms',
                   'fetch-mwcomms'):
        rows[client] = run_worker(['big', client, url, str(count)], env)
    print(f"{'client':24}{'requests/s':>12}{'peak RSS':>12}")
    for name, row in rows.items():
        rate = f"{row['rate']:10.1f}"
        rss = (f"{row['maxrss_kib'] / 1024:9.1f} MiB"
               if row.get('maxrss_kib') else '            ')
        print(f'{name:24}{rate:>12}{rss}')
    for reference in raw_variants:
        if reference not in rows:
            continue
        raw = rows[reference]['rate']
        for name in ('_mwcomms', 'fetch-mwcomms', 'http.client'):
            print(f"{name} / {reference} requests/s: "
                  f"{rows[name]['rate'] / raw:.2f}x")
    base = rows['http.client']['maxrss_kib']
    for name in ('_mwcomms', 'fetch-mwcomms'):
        print(f'peak RSS of {name} minus http.client: '
              f"{(rows[name]['maxrss_kib'] - base) / 1024:+.1f} MiB")
    for reference in raw_variants:
        if reference in rows:
            print(f"{reference} client CPU per 1 MiB GET: "
                  f"{rows[reference]['cpu'] * 1e6:.0f} us")
    print()


def report_stream(server, env, size) -> None:
    row = run_worker(['stream', server.base + '/files/stream'], env)
    print(f"Client.stream of {size // MIB} MiB: {row['mib_per_s']:.0f} MiB/s,"
          f" peak RSS {row['maxrss_kib'] / 1024:.1f} MiB, "
          f"{row['bytes'] == size and 'all bytes read' or 'SHORT READ'}")
    print()


def report_concurrency(server, tmp, total) -> None:
    exe = compile_c('curl_multi.c', tmp / 'curl_multi')
    rates = concurrency_rates(server.base + '/w/api.php', total, exe)
    print(f'small GETs, {THREADS} concurrent transfers (requests/s, wall);')
    print('"raw": / raw libcurl multi, "raw AE": / the same with '
          'Accept-Encoding,')
    print('which _mwcomms sends by default (pycurl and requests rows do not)')
    reference = rates.get('raw libcurl multi')
    reference_encoding = rates.get('raw libcurl multi, Accept-Encoding')
    for name, rate in rates.items():
        ratio = f'{rate / reference:8.2f}x raw' if reference else ''
        if reference_encoding:
            ratio += f'{rate / reference_encoding:8.2f}x raw AE'
        print(f'{name:42}{rate:10.0f}{ratio}')
    print()


def report_import(env) -> None:
    rounds = 5
    plain = import_time('import pywikibot', env, rounds)
    with_ext = import_time(
        'import pywikibot_ext; pywikibot_ext.install(); import pywikibot',
        env, rounds)
    print(f'import pywikibot: {plain * 1e3:.0f} ms; with pywikibot_ext '
          f'installed first: {with_ext * 1e3:.0f} ms '
          f'({(with_ext - plain) * 1e3:+.0f} ms), median of {rounds}')


if __name__ == '__main__':
    main()
