"""One measurement in its own process: a client, a scenario, a loop.

The suite runs ``python -m benchmarks.worker SPEC`` with SPEC a JSON
object (see :func:`run`) and reads one JSON line from stdout.  Running
each measurement in a fresh process gives every client its own peak RSS
(``ru_maxrss``) and keeps one client's imports and caches from changing
another's figures.

Every response is checked (status 200, body length).  A wrong one exits
with status 1 and the reason on stderr.
"""
from __future__ import annotations

import gzip
import io
import json
import os
import resource
import subprocess
import sys
import threading
import time
import urllib.parse

FORM_TYPE = 'application/x-www-form-urlencoded'
# Size of the pieces a streamed download is read in.
STREAM_PIECE = 1024 * 1024


class CheckFailed(Exception):
    """A response had the wrong status or body length."""


def fail(client: str, status, length, expected: int) -> None:
    raise CheckFailed(f'{client}: expected status 200 and a body of '
                      f'{expected} bytes, got status {status} and '
                      f'{length} bytes')


# -- clients ------------------------------------------------------------------
#
# Each make_* function returns a factory: calling it gives a function that
# sends one request and checks the response.  A factory called from
# several threads returns calls over one shared client object where the
# library allows that, and over a client object per thread otherwise.

def make_pycurl(spec: dict):
    import pycurl

    def factory():
        # pycurl.Curl objects must not be used by two threads at once.
        curl = pycurl.Curl()
        buffer = io.BytesIO()
        curl.setopt(pycurl.URL, spec['url'])
        curl.setopt(pycurl.NOSIGNAL, 1)
        curl.setopt(pycurl.WRITEDATA, buffer)
        # Every encoding libcurl decodes, as the raw libcurl rows and
        # _mwcomms.Client send.
        curl.setopt(pycurl.ENCODING, '')
        curl.setopt(pycurl.HTTPHEADER, ['Expect:'])
        if spec['method'] == 'POST':
            curl.setopt(pycurl.POSTFIELDS, spec['body'].encode())
        expected = spec['expected_length']

        def call():
            buffer.seek(0)
            buffer.truncate()
            curl.perform()
            status = curl.getinfo(pycurl.RESPONSE_CODE)
            if status != 200 or buffer.tell() != expected:
                fail('pycurl', status, buffer.tell(), expected)
        return call
    return factory


def make_requests(spec: dict):
    import requests
    auth = None
    if spec.get('consumer'):
        import requests_oauthlib
        auth = requests_oauthlib.OAuth1(*spec['consumer'])
    url, method = spec['url'], spec['method']
    body = spec['body'].encode() if spec['body'] is not None else None
    headers = {'Content-Type': FORM_TYPE} if body is not None else None
    expected = spec['expected_length']

    def factory():
        # requests does not promise that a Session is thread-safe.
        session = requests.Session()

        def call():
            response = session.request(method, url, data=body,
                                       headers=headers, auth=auth)
            if (response.status_code != 200
                    or len(response.content) != expected):
                fail('requests', response.status_code,
                     len(response.content), expected)
        return call
    return factory


def make_httpx(spec: dict):
    import httpx
    client = httpx.Client()  # thread-safe: shared by all threads
    url, method = spec['url'], spec['method']
    body = spec['body'].encode() if spec['body'] is not None else None
    headers = {'Content-Type': FORM_TYPE} if body is not None else None
    expected = spec['expected_length']

    def call():
        response = client.request(method, url, content=body, headers=headers)
        if response.status_code != 200 or len(response.content) != expected:
            fail('httpx', response.status_code, len(response.content),
                 expected)
    return lambda: call


def make_http_client(spec: dict):
    import http.client
    parts = urllib.parse.urlsplit(spec['url'])
    target = parts.path + ('?' + parts.query if parts.query else '')
    method = spec['method']
    body = spec['body'].encode() if spec['body'] is not None else None
    headers = {}
    if body is not None:
        headers['Content-Type'] = FORM_TYPE
    decode = spec['scenario'] == 'gzip'
    if decode:
        headers['Accept-Encoding'] = 'gzip'
    expected = spec['expected_length']

    def factory():
        connection = http.client.HTTPConnection(parts.hostname, parts.port)

        def call():
            connection.request(method, target, body, headers)
            response = connection.getresponse()
            data = response.read()
            if decode and response.getheader('Content-Encoding') == 'gzip':
                data = gzip.decompress(data)
            if response.status != 200 or len(data) != expected:
                fail('http.client', response.status, len(data), expected)
        return call
    return factory


def make_mwcomms(spec: dict):
    import _mwcomms
    client = _mwcomms.Client(cookies=False)  # threads may share one
    signer = _mwcomms.OAuth1(*spec['consumer']) if spec.get('consumer') \
        else None
    url, method, body = spec['url'], spec['method'], spec['body']
    headers = [('Content-Type', FORM_TYPE)] if body is not None else None
    expected = spec['expected_length']

    def call():
        response = client.request(method, url, headers, body, auth=signer)
        if response.status != 200 or len(response.body) != expected:
            fail('_mwcomms', response.status, len(response.body), expected)
    return lambda: call


def make_fetch(spec: dict):
    # PYWIKIBOT_DIR, set by the suite, selects stock pywikibot or
    # pywikibot through mwcomms (the user-config.py line that installs
    # pywikibot_ext, which replaces http.fetch).
    import pywikibot  # noqa: F401
    from pywikibot import config
    from pywikibot.comms import http

    if spec['client'] == 'fetch-mwcomms':
        import pywikibot_ext
        if not pywikibot_ext.installed():
            raise SystemExit('user-config.py did not install pywikibot_ext')
    host = urllib.parse.urlsplit(spec['url']).netloc
    if spec.get('consumer'):
        config.authenticate[host] = tuple(spec['consumer'])
    url, method, body = spec['url'], spec['method'], spec['body']
    headers = {'Content-Type': FORM_TYPE} if body is not None else None
    expected = spec['expected_length']
    fetch = http.fetch

    def call():
        response = fetch(url, method=method, headers=headers, data=body)
        if response.status_code != 200 or len(response.content) != expected:
            fail(spec['client'], response.status_code,
                 len(response.content), expected)
    return lambda: call


FACTORIES = {
    'pycurl': make_pycurl,
    'requests': make_requests,
    'httpx': make_httpx,
    'http.client': make_http_client,
    '_mwcomms': make_mwcomms,
    '_mwcomms-threads': make_mwcomms,
    'fetch-stock': make_fetch,
    'fetch-mwcomms': make_fetch,
}


# -- loops ----------------------------------------------------------------

def cpu_seconds() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def serial_loop(call, spec: dict) -> dict:
    for _ in range(spec['warmup']):
        call()
    limit = spec['max_requests']
    user, system = cpu_seconds()
    start = time.perf_counter()
    deadline = start + spec['seconds']
    done = 0
    while done < limit:
        # Reading the clock every 8 requests keeps it out of the figures.
        for _ in range(min(8, limit - done)):
            call()
        done += min(8, limit - done)
        if time.perf_counter() >= deadline:
            break
    wall = time.perf_counter() - start
    user_end, system_end = cpu_seconds()
    return {'requests': done, 'sent': spec['warmup'] + done, 'wall': wall,
            'user': user_end - user, 'system': system_end - system}


def threaded_loop(factory, spec: dict) -> dict:
    """Run the loop in spec['threads'] threads; CPU counts all threads."""
    threads = spec['threads']
    per_thread = spec['max_requests'] // threads
    ready = threading.Barrier(threads + 1)
    go = threading.Event()
    counts = [0] * threads
    errors = []
    deadline = [0.0]

    def run(index: int) -> None:
        try:
            call = factory()
            for _ in range(max(1, spec['warmup'] // threads)):
                call()
        except Exception as error:
            errors.append(error)
            ready.abort()
            return
        try:
            ready.wait()
        except threading.BrokenBarrierError:
            return
        go.wait()
        done = 0
        try:
            while done < per_thread:
                call()
                done += 1
                if time.perf_counter() >= deadline[0]:
                    break
        except Exception as error:
            errors.append(error)
        counts[index] = done

    workers = [threading.Thread(target=run, args=(index,))
               for index in range(threads)]
    for worker in workers:
        worker.start()
    try:
        ready.wait()
    except threading.BrokenBarrierError:
        pass
    user, system = cpu_seconds()
    start = time.perf_counter()
    deadline[0] = start + spec['seconds']
    go.set()
    for worker in workers:
        worker.join()
    wall = time.perf_counter() - start
    user_end, system_end = cpu_seconds()
    if errors:
        raise errors[0]
    warmup = max(1, spec['warmup'] // threads) * threads
    return {'requests': sum(counts), 'sent': warmup + sum(counts),
            'wall': wall, 'user': user_end - user,
            'system': system_end - system}


def request_many_loop(spec: dict) -> dict:
    """Send batches with Client.request_many until the time is up."""
    import _mwcomms
    client = _mwcomms.Client(cookies=False)
    expected = spec['expected_length']
    batch_size = min(256, spec['max_requests'])

    def send(count: int) -> None:
        results = client.request_many([('GET', spec['url'])] * count,
                                      max_concurrency=spec['threads'])
        for response in results:
            if isinstance(response, Exception):
                raise response
            if response.status != 200 or len(response.body) != expected:
                fail('request_many', response.status, len(response.body),
                     expected)

    send(spec['warmup'])
    user, system = cpu_seconds()
    start = time.perf_counter()
    deadline = start + spec['seconds']
    done = 0
    while done < spec['max_requests']:
        count = min(batch_size, spec['max_requests'] - done)
        send(count)
        done += count
        if time.perf_counter() >= deadline:
            break
    wall = time.perf_counter() - start
    user_end, system_end = cpu_seconds()
    return {'requests': done, 'sent': spec['warmup'] + done, 'wall': wall,
            'user': user_end - user, 'system': system_end - system}


def raw_libcurl(spec: dict) -> dict:
    """Run the C program; its output covers the timed loop only."""
    flags = ['-e', '-w', str(spec['warmup']), '-t', str(spec['seconds']),
             '-l', str(spec['expected_length'])]
    if spec['threads'] > 1:
        command = [spec['curl_multi'], *flags, spec['url'],
                   str(spec['max_requests']), str(spec['threads'])]
    else:
        if spec['scenario'] == 'big':
            # Keep each body in a buffer of its Content-Length, with the
            # 128 KiB receive buffer that _mwcomms.Client sets.
            flags += ['-k', '-b', '131072']
        elif spec['scenario'] == 'stream':
            # Drop the body as it arrives, as a streamed download does.
            flags += ['-b', '131072']
        command = [spec['curl_loop'], *flags, spec['url'],
                   str(spec['max_requests'])]
        if spec['body'] is not None:
            command.append(spec['body'])
            if spec.get('oauth_header'):
                command.append(spec['oauth_header'])
    result = subprocess.run(command, capture_output=True, text=True,
                            check=False, timeout=120)
    if result.returncode != 0:
        raise CheckFailed(f'raw libcurl: {result.stderr.strip()}')
    fields = result.stdout.split()
    if spec['threads'] > 1:
        wall, cpu, done = float(fields[0]), float(fields[1]), int(fields[2])
    else:
        cpu, done, wall = float(fields[0]), int(fields[1]), float(fields[2])
    # The C programs report user+system together, as "user".
    return {'requests': done, 'sent': spec['warmup'] + done, 'wall': wall,
            'user': cpu, 'system': 0.0, 'connections': int(fields[3]),
            'maxrss_kib': int(fields[4])}


def peak_rss_kib() -> int:
    """Return this process's peak resident set size in KiB.

    Linux carries ru_maxrss over an exec(): a worker started by the
    suite would report the suite's own peak if that is larger.  VmHWM in
    /proc/self/status is the peak of this program's memory alone.
    """
    try:
        with open('/proc/self/status') as status:
            for line in status:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def measure_signing(spec: dict) -> dict:
    """Time OAuth 1.0a HMAC-SHA1 signing alone (see bench_sign.py)."""
    from benchmarks import bench_sign

    bench_sign.check_same_signature()
    ours = bench_sign._mwcomms.OAuth1(
        bench_sign.CONSUMER_KEY, bench_sign.CONSUMER_SECRET,
        bench_sign.TOKEN, bench_sign.TOKEN_SECRET)
    client = bench_sign.Client(
        bench_sign.CONSUMER_KEY, client_secret=bench_sign.CONSUMER_SECRET,
        resource_owner_key=bench_sign.TOKEN,
        resource_owner_secret=bench_sign.TOKEN_SECRET)
    namespace = {'sign': ours.sign, 'client_sign': client.sign,
                 'URL': bench_sign.URL, 'HEADERS': bench_sign.HEADERS,
                 'BODY': bench_sign.BODY}
    number, repeat = spec['number'], spec['repeat']
    return {
        'mwcomms_us': bench_sign.median_microseconds(
            "sign('POST', URL, HEADERS, BODY)", namespace, number, repeat),
        'oauthlib_us': bench_sign.median_microseconds(
            "client_sign(URL, 'POST', BODY, HEADERS)", namespace,
            max(1, number // 10), repeat),
        'number': number, 'repeat': repeat,
    }


def measure_stream(spec: dict) -> dict:
    """Stream one large body, dropping each piece; check the total size."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    received = 0
    if spec['client'] == '_mwcomms':
        import _mwcomms
        with _mwcomms.Client(cookies=False) as client:
            with client.stream('GET', spec['url']) as response:
                status = response.status
                for piece in response.iter_chunks(STREAM_PIECE):
                    received += len(piece)
    else:
        import requests
        with requests.Session() as session:
            with session.get(spec['url'], stream=True,
                             timeout=60) as response:
                status = response.status_code
                for piece in response.iter_content(STREAM_PIECE):
                    received += len(piece)
    wall = time.perf_counter() - start
    end = resource.getrusage(resource.RUSAGE_SELF)
    if status != 200 or received != spec['expected_length']:
        fail(spec['client'], status, received, spec['expected_length'])
    return {'requests': 1, 'sent': 1, 'wall': wall,
            'user': end.ru_utime - usage.ru_utime,
            'system': end.ru_stime - usage.ru_stime, 'bytes': received}


def run(spec: dict) -> dict:
    """Measure one client in one scenario.

    spec keys: client, scenario, url, method, body (str or None),
    expected_length (bytes after decoding), threads, warmup, seconds,
    max_requests, cpu (a core to pin this process to, or None), consumer
    (OAuth credentials or None), oauth_header, curl_loop, curl_multi.
    """
    pinned = False
    if spec.get('cpu') is not None:
        os.sched_setaffinity(0, {spec['cpu']})
        pinned = True
    client = spec['client']
    if spec['scenario'] == 'sign':
        result = measure_signing(spec)
    elif spec['scenario'] == 'stream' and client != 'raw libcurl':
        result = measure_stream(spec)
    elif client == 'raw libcurl':
        result = raw_libcurl(spec)
    elif client == '_mwcomms-request_many':
        result = request_many_loop(spec)
    elif spec['threads'] > 1:
        result = threaded_loop(FACTORIES[client](spec), spec)
    else:
        result = serial_loop(FACTORIES[client](spec)(), spec)
    result.setdefault('maxrss_kib', peak_rss_kib())
    result['pinned'] = pinned
    return result


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    try:
        result = run(spec)
    except CheckFailed as error:
        print(error, file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
