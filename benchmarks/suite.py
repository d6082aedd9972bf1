"""The benchmark suite: ``python -m benchmarks [--smoke] [--out DIR]``.

Starts nginx on 127.0.0.1 (one worker, pinned to one core), then runs
every (scenario, client, repetition) in its own worker process pinned to
another core, in an order shuffled with a printed seed.  Each worker
checks every response.  The suite also checks nginx's access log for
one line per request sent, the expected status, size, encoding and
OAuth header, and kept-alive connections.  Then it times a streamed
download, OAuth signing, the import of pywikibot_ext, and a pywikibot
bot on a local MediaWiki.

It writes results.md, results.json and ratios.png into --out and prints
the tables.  Exit status 1 means that a response or a check was wrong.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import _nginx, bench_sign, report

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

THREADS = 8
CONSUMER = ('bench-consumer-key', 'bench-consumer-secret',
            'bench-access-key', 'bench-access-secret')
FORM_TYPE = 'application/x-www-form-urlencoded'
#: 8 form parameters, one of them non-ASCII, as a MediaWiki edit sends.
FORM_BODY = bench_sign.BODY
MIB = 1024 * 1024

SERIAL_CLIENTS = ('raw libcurl', 'pycurl', 'requests', 'httpx',
                  'http.client', 'fetch-stock', '_mwcomms', 'fetch-mwcomms')
OAUTH_CLIENTS = ('raw libcurl', 'requests', 'fetch-stock', '_mwcomms',
                 'fetch-mwcomms')
CONCURRENT_CLIENTS = ('raw libcurl', 'pycurl', 'requests', 'httpx',
                      'fetch-stock', '_mwcomms-request_many',
                      '_mwcomms-threads', 'fetch-mwcomms')


@dataclass
class Scenario:

    """One kind of request and the clients that send it."""

    name: str
    title: str
    path: str
    clients: tuple
    method: str = 'GET'
    body: str | None = None
    oauth: bool = False
    threads: int = 1
    content_encoding: str = '-'
    max_requests: int = 100_000


SCENARIOS = {
    'get': Scenario('get', 'small JSON GET (1.5 KB)',
                    '/files/reply.json?action=query&format=json',
                    SERIAL_CLIENTS),
    'gzip': Scenario('gzip', 'small JSON GET, gzip-encoded',
                     '/gz/reply.json?action=query&format=json',
                     SERIAL_CLIENTS, content_encoding='gzip'),
    'post': Scenario('post', 'small form POST (8 parameters)',
                     '/w/api.php', SERIAL_CLIENTS, method='POST',
                     body=FORM_BODY),
    'oauth': Scenario('oauth', 'OAuth 1.0a POST (HMAC-SHA1)', '/w/api.php',
                      OAUTH_CLIENTS, method='POST', body=FORM_BODY,
                      oauth=True),
    'big': Scenario('big', '1 MiB GET', '/files/one-mib', SERIAL_CLIENTS,
                    max_requests=20_000),
    'concurrent': Scenario('concurrent', f'{THREADS} concurrent small GETs',
                           '/files/reply.json?action=query&format=json',
                           CONCURRENT_CLIENTS, threads=THREADS,
                           max_requests=400_000),
}

LABELS = {
    'raw libcurl': 'raw libcurl',
    'pycurl': 'pycurl',
    'requests': 'requests',
    'httpx': 'httpx',
    'http.client': 'http.client',
    'fetch-stock': 'pywikibot fetch, stock',
    '_mwcomms': '_mwcomms.Client',
    '_mwcomms-request_many': '_mwcomms request_many',
    '_mwcomms-threads': '_mwcomms.Client, 8 threads',
    'fetch-mwcomms': 'pywikibot fetch, mwcomms',
}
CONCURRENT_LABELS = {
    'raw libcurl': 'raw libcurl multi, 8 transfers',
    'pycurl': 'pycurl, 8 threads (a Curl each)',
    'requests': 'requests, 8 threads (a Session each)',
    'httpx': 'httpx, 8 threads sharing a Client',
    'fetch-stock': 'pywikibot fetch, stock, 8 threads',
    'fetch-mwcomms': 'pywikibot fetch, mwcomms, 8 threads',
}


def label(scenario: str, client: str) -> str:
    if scenario == 'concurrent' and client in CONCURRENT_LABELS:
        return CONCURRENT_LABELS[client]
    if scenario == 'oauth' and client == 'requests':
        return 'requests + requests_oauthlib'
    return LABELS[client]


@dataclass
class Settings:

    """How long and how often each measurement runs."""

    repetitions: int
    seconds: float
    warmup: int
    max_requests_scale: float
    sign_number: int
    sign_repeat: int
    import_runs: int
    stream_bytes: int
    wiki: dict = field(default_factory=dict)


FULL = Settings(repetitions=5, seconds=0.8, warmup=64,
                max_requests_scale=1.0, sign_number=20000, sign_repeat=7,
                import_runs=7, stream_bytes=1 << 30,
                wiki={'rounds': 3, 'pages': 20, 'preload_pages': 60,
                      'groupsize': 10, 'preload_rounds': 3,
                      'concurrency': '1,2,4'})
SMOKE = Settings(repetitions=1, seconds=0.05, warmup=8,
                 max_requests_scale=0.002, sign_number=500, sign_repeat=2,
                 import_runs=2, stream_bytes=64 << 20,
                 wiki={'rounds': 1, 'pages': 3, 'preload_pages': 10,
                      'groupsize': 2, 'preload_rounds': 1,
                      'concurrency': '1,2'})


# -- set-up -----------------------------------------------------------------

def choose_cores() -> tuple[int | None, int | None, str]:
    """Pick a core for nginx and another for the clients."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return None, None, (f'only {len(cores)} core available: nginx and '
                            'the clients share it, nothing is pinned')
    return cores[0], cores[1], (f'nginx pinned to core {cores[0]}, clients '
                                f'to core {cores[1]}')


def build_c_programs(folder: Path) -> dict:
    """Compile curl_loop.c and curl_multi.c against the system libcurl."""
    flags = subprocess.run(['pkg-config', '--cflags', '--libs', 'libcurl'],
                           capture_output=True, text=True, check=False)
    if flags.returncode != 0:
        raise SystemExit('pkg-config found no libcurl: install '
                         'libcurl4-openssl-dev (scripts/bootstrap.sh does)')
    programs = {}
    for name in ('curl_loop', 'curl_multi'):
        exe = folder / name
        command = ['cc', '-O2', '-o', str(exe), str(HERE / f'{name}.c'),
                   *flags.stdout.split()]
        result = subprocess.run(command, capture_output=True, text=True,
                                check=False)
        if result.returncode != 0:
            raise SystemExit(f'compiling {name}.c failed:\n{result.stderr}')
        programs[name] = str(exe)
    return programs


def write_files(folder: Path) -> dict:
    """Write the served files; return the expected sizes."""
    folder.mkdir(parents=True, exist_ok=True)
    reply = folder / 'reply.json'
    reply.write_bytes(_nginx.REPLY_BYTES)
    compressed = _nginx.write_gzip(reply)
    (folder / 'one-mib').write_bytes(random.randbytes(MIB))
    return {'reply': len(_nginx.REPLY_BYTES),
            'reply_gzip': compressed.stat().st_size, 'big': MIB}


def write_pywikibot_dirs(folder: Path) -> dict:
    """Write a stock configuration and one that installs mwcomms."""
    from realwiki import MWCOMMS_LINE

    base = "family = 'wikipedia'\nmylang = 'en'\n"
    dirs = {}
    for name, text in (('stock', base),
                       ('mwcomms', base + MWCOMMS_LINE + '\n')):
        path = folder / f'pywikibot-{name}'
        path.mkdir(parents=True)
        (path / 'user-config.py').write_text(text)
        dirs[name] = str(path)
    return dirs


def versions() -> dict:
    found = {'python': platform.python_version(),
             'machine': platform.machine(),
             'cores': os.cpu_count()}
    curl = subprocess.run(['curl-config', '--version'], capture_output=True,
                          text=True, check=False)
    found['libcurl'] = curl.stdout.split()[-1] if curl.stdout else '?'
    nginx = subprocess.run(['nginx', '-v'], capture_output=True, text=True,
                           check=False)
    found['nginx'] = nginx.stderr.strip().rpartition('/')[2]
    for package in ('pywikibot', 'requests', 'requests_oauthlib',
                    'oauthlib', 'httpx', 'pycurl', 'urllib3'):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = 'not installed'
    found['mwcomms'] = importlib.metadata.version('mwcomms') \
        if _has_distribution('mwcomms') else 'source tree'
    found['os'] = _os_name()
    return found


def _has_distribution(name: str) -> bool:
    try:
        importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _os_name() -> str:
    try:
        for line in Path('/etc/os-release').read_text().splitlines():
            if line.startswith('PRETTY_NAME='):
                return line.partition('=')[2].strip('"')
    except OSError:
        pass
    return platform.platform()


# -- HTTP runs --------------------------------------------------------------

def worker_env(pywikibot_dir: str) -> dict:
    env = dict(os.environ, PYWIKIBOT_DIR=pywikibot_dir)
    env['PYTHONPATH'] = str(ROOT) + os.pathsep + env.get('PYTHONPATH', '')
    # Keep the figures free of proxies configured in the environment.
    for name in ('http_proxy', 'HTTP_PROXY', 'https_proxy', 'HTTPS_PROXY',
                 'all_proxy', 'ALL_PROXY'):
        env.pop(name, None)
    env['NO_PROXY'] = env['no_proxy'] = '127.0.0.1'
    return env


def run_worker(spec: dict, env: dict) -> dict:
    """Run one worker process; raise RuntimeError with its message."""
    result = subprocess.run(
        [sys.executable, '-m', 'benchmarks.worker', json.dumps(spec)],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=600,
        check=False)
    if result.returncode != 0:
        raise RuntimeError(result.stderr.strip()[-2000:]
                           or f'exit status {result.returncode}')
    return json.loads(result.stdout.strip().splitlines()[-1])


def check_log(server: _nginx.Nginx, start: int, sent: int,
              scenario: Scenario, sizes: dict) -> tuple[list, int]:
    """Return the log lines of one run; raise RuntimeError if wrong."""
    lines, end = _nginx.read_access_log(server.access_log, start)
    # nginx writes the log line just after the response: wait briefly
    # for the last ones.
    deadline = time.monotonic() + 2
    while len(lines) < sent and time.monotonic() < deadline:
        time.sleep(0.05)
        lines, end = _nginx.read_access_log(server.access_log, start)
    if len(lines) != sent:
        raise RuntimeError(f'nginx logged {len(lines)} requests, the client '
                           f'reported {sent}')
    if scenario.name == 'big':
        size = sizes['big']
    elif scenario.content_encoding == 'gzip':
        size = sizes['reply_gzip']
    else:
        size = sizes['reply']
    for line in lines:
        problems = []
        if line.status != 200:
            problems.append(f'status {line.status}')
        if line.method != scenario.method:
            problems.append(f'method {line.method}')
        if line.body_bytes_sent != size:
            problems.append(f'{line.body_bytes_sent} bytes sent, not {size}')
        if line.content_encoding != scenario.content_encoding:
            problems.append(f'Content-Encoding {line.content_encoding}')
        if line.oauth != scenario.oauth:
            problems.append('OAuth header ' + ('present' if line.oauth
                                               else 'missing'))
        if problems:
            raise RuntimeError('nginx logged a wrong request: '
                               + ', '.join(problems))
    return lines, end


def connection_problem(lines: list, threads: int) -> str | None:
    """Return why the logged requests did not reuse connections, or None.

    A client that keeps its connections alive opens one per thread; twice
    that is allowed for connections that a pool replaces.
    """
    connections = len({line.connection for line in lines})
    if connections > 2 * threads:
        return (f'{connections} connections for {len(lines)} requests: '
                'not kept alive')
    return None


def http_run(scenario: Scenario, client: str, server: _nginx.Nginx,
             settings: Settings, context: dict) -> dict:
    spec = {
        'client': client, 'scenario': scenario.name,
        'url': server.base + scenario.path, 'method': scenario.method,
        'body': scenario.body, 'threads': scenario.threads,
        'expected_length': (context['sizes']['big'] if scenario.name == 'big'
                            else context['sizes']['reply']),
        'warmup': settings.warmup, 'seconds': settings.seconds,
        'max_requests': max(THREADS * 4, int(scenario.max_requests
                                             * settings.max_requests_scale)),
        'cpu': context['client_cpu'],
        'consumer': CONSUMER if scenario.oauth else None,
        'oauth_header': context['oauth_header'] if scenario.oauth else None,
        **context['programs'],
    }
    directory = context['pywikibot_dirs'][
        'mwcomms' if client == 'fetch-mwcomms' else 'stock']
    start = server.log_offset()
    result = run_worker(spec, worker_env(directory))
    lines, _ = check_log(server, start, result['sent'], scenario,
                         context['sizes'])
    result['connections_logged'] = len({line.connection for line in lines})
    problem = connection_problem(lines, scenario.threads)
    if problem:
        result['invalid'] = problem
    cpu = result['user'] + result['system']
    result['rate'] = result['requests'] / result['wall']
    result['cpu_per_request'] = cpu / result['requests']
    return result


def run_http(settings: Settings, args, work: Path, meta: dict) -> list:
    server_cpu, client_cpu, pinning = choose_cores()
    meta['pinning'] = pinning
    print(pinning, flush=True)
    import _mwcomms

    programs = build_c_programs(work)
    sizes = write_files(work / 'files')
    server = _nginx.Nginx(work / 'nginx', work / 'files', cpu=server_cpu,
                          access_log=True)
    post_url = server.base + SCENARIOS['oauth'].path
    header = 'Authorization: ' + _mwcomms.OAuth1(*CONSUMER).sign(
        'POST', post_url, {'Content-Type': FORM_TYPE}, FORM_BODY)
    context = {'programs': programs, 'sizes': sizes,
               'client_cpu': client_cpu, 'oauth_header': header,
               'pywikibot_dirs': write_pywikibot_dirs(work)}
    plan = [(name, client, repetition)
            for name in args.scenarios
            for client in SCENARIOS[name].clients
            for repetition in range(settings.repetitions)]
    random.Random(args.seed).shuffle(plan)
    print(f'{len(plan)} runs in shuffled order, seed {args.seed}',
          flush=True)
    runs = []
    try:
        for number, (name, client, repetition) in enumerate(plan, 1):
            record = {'scenario': name, 'client': client,
                      'label': label(name, client),
                      'repetition': repetition}
            try:
                record.update(http_run(SCENARIOS[name], client, server,
                                       settings, context))
            except (RuntimeError, subprocess.TimeoutExpired) as error:
                record['error'] = str(error)
            runs.append(record)
            print(f'[{number}/{len(plan)}] {report.describe_run(record)}',
                  flush=True)
    finally:
        server.stop()
    return runs


# -- other measurements -------------------------------------------------------

STREAM_CLIENTS = ('raw libcurl', '_mwcomms', 'requests')
STREAM_LABELS = {'raw libcurl': 'raw libcurl (body dropped)',
                 '_mwcomms': '_mwcomms.Client.stream',
                 'requests': 'requests, stream=True'}


def measure_streaming(settings: Settings, work: Path, programs: dict,
                      cpu) -> dict:
    """Download one large file once per client, reading it in pieces.

    The file is sparse, so nginx serves it without reading a disk.  Peak
    RSS that stays near the clients' small-request figures shows that the
    body is never held whole.
    """
    folder = work / 'stream-files'
    folder.mkdir()
    with open(folder / 'large', 'wb') as handle:
        handle.truncate(settings.stream_bytes)
    # Read it once, so that the first client does not pay for filling the
    # page cache that nginx's sendfile reads from.
    with open(folder / 'large', 'rb') as handle:
        while handle.read(1 << 23):
            pass
    server = _nginx.Nginx(work / 'stream-nginx', folder, cpu=None)
    rows = []
    try:
        for client in STREAM_CLIENTS:
            spec = {'client': client, 'scenario': 'stream',
                    'url': server.base + '/files/large', 'threads': 1,
                    'body': None, 'expected_length': settings.stream_bytes,
                    'warmup': 0, 'seconds': 600, 'max_requests': 1,
                    'cpu': cpu, **programs}
            row = {'client': client, 'label': STREAM_LABELS[client]}
            try:
                row.update(run_worker(spec, worker_env(str(work))))
            except (RuntimeError, subprocess.TimeoutExpired) as error:
                row['error'] = str(error)
            rows.append(row)
    finally:
        server.stop()
    return {'bytes': settings.stream_bytes, 'rows': rows}


def measure_signing(settings: Settings, dirs_root: Path, cpu) -> dict:
    spec = {'client': 'sign', 'scenario': 'sign', 'cpu': cpu,
            'number': settings.sign_number, 'repeat': settings.sign_repeat}
    try:
        return run_worker(spec, worker_env(str(dirs_root)))
    except RuntimeError as error:
        return {'error': str(error)}


IMPORT_PLAIN = ('import time; start = time.perf_counter(); import pywikibot; '
                'print(time.perf_counter() - start)')
IMPORT_WITH_EXT = ('import time; start = time.perf_counter(); '
                   'import pywikibot_ext; pywikibot_ext.install(); '
                   'import pywikibot; print(time.perf_counter() - start)')


def measure_import(settings: Settings, pywikibot_dir: str) -> dict:
    """Time ``import pywikibot`` with and without pywikibot_ext first."""
    env = worker_env(pywikibot_dir)
    samples = {'plain': [], 'with_ext': []}
    for _ in range(settings.import_runs):
        for name, code in (('plain', IMPORT_PLAIN),
                           ('with_ext', IMPORT_WITH_EXT)):
            result = subprocess.run([sys.executable, '-c', code], env=env,
                                    cwd=ROOT, capture_output=True, text=True,
                                    timeout=120, check=False)
            if result.returncode != 0:
                return {'error': result.stderr.strip()[-2000:]}
            samples[name].append(float(result.stdout.split()[-1]))
    plain = statistics.median(samples['plain'])
    with_ext = statistics.median(samples['with_ext'])
    return {'plain_ms': plain * 1e3, 'with_ext_ms': with_ext * 1e3,
            'added_ms': (with_ext - plain) * 1e3,
            'runs': settings.import_runs}


# -- main ---------------------------------------------------------------------

def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog='python -m benchmarks',
        description='Run the mwcomms benchmark suite against a local nginx '
                    'and a local MediaWiki.')
    parser.add_argument('--smoke', action='store_true',
                        help='a very short run: one repetition of a few '
                             'requests, a tiny wiki run')
    parser.add_argument('--out', type=Path, default=HERE / 'out',
                        help='folder for results.md, results.json and '
                             'ratios.png (default benchmarks/out)')
    parser.add_argument('--seed', type=int, default=20261204,
                        help='seed of the shuffled run order')
    parser.add_argument('--repetitions', type=int,
                        help='runs of each client in each scenario '
                             '(default 5, 1 with --smoke)')
    parser.add_argument('--seconds', type=float,
                        help='length of each timed loop in seconds '
                             '(default 0.8, 0.05 with --smoke)')
    parser.add_argument('--scenarios', default=','.join(SCENARIOS),
                        help='comma-separated HTTP scenarios to run '
                             f'(default all: {",".join(SCENARIOS)})')
    parser.add_argument('--no-wiki', action='store_true',
                        help='skip the local MediaWiki scenario')
    args = parser.parse_args(argv)

    args.scenarios = [name for name in args.scenarios.split(',') if name]
    unknown = [name for name in args.scenarios if name not in SCENARIOS]
    if unknown:
        parser.error(f'unknown scenario {", ".join(unknown)}; choose from '
                     f'{", ".join(SCENARIOS)}')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    base = SMOKE if args.smoke else FULL
    settings = Settings(**{**base.__dict__})
    if args.repetitions:
        settings.repetitions = args.repetitions
    if args.seconds:
        settings.seconds = args.seconds
    started = time.monotonic()
    meta = {'date': datetime.datetime.now().astimezone().isoformat(
                timespec='seconds'),
            'mode': 'smoke' if args.smoke else 'full',
            'seed': args.seed, 'repetitions': settings.repetitions,
            'seconds': settings.seconds, 'versions': versions()}
    print(report.describe_meta(meta), flush=True)

    results = {'meta': meta}
    with tempfile.TemporaryDirectory(prefix='mwcomms-bench-') as tmp:
        work = Path(tmp)
        results['runs'] = run_http(settings, args, work, meta)
        _, client_cpu, _ = choose_cores()
        print('timing OAuth signing', flush=True)
        results['signing'] = measure_signing(settings, work, client_cpu)
        print(f'streaming {settings.stream_bytes >> 20} MiB once per '
              'client', flush=True)
        results['stream'] = measure_streaming(
            settings, work, build_c_programs(work), client_cpu)
        print('timing import pywikibot', flush=True)
        results['import'] = measure_import(
            settings, str(work / 'pywikibot-stock'))
        if not args.no_wiki:
            from benchmarks import wiki
            results['wiki'] = wiki.run({**settings.wiki, 'seed': args.seed},
                                       work)

    meta['duration_s'] = round(time.monotonic() - started, 1)
    results['rows'] = report.aggregate(results['runs'])
    args.out.mkdir(parents=True, exist_ok=True)
    text = report.write_all(results, args.out, SCENARIOS)
    print()
    print(text)
    print(f'wrote {args.out}/results.md, results.json and ratios.png '
          f'in {meta["duration_s"]:.0f} s')
    failures = report.failures(results)
    for failure in failures:
        print(f'FAILED: {failure}', file=sys.stderr)
    return 1 if failures else 0
