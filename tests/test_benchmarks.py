"""The benchmark suite's smallest pieces: one worker run, the log checks.

The whole suite runs in CI as ``bash benchmarks/run.sh --smoke``; these
tests only check that a measurement returns checked results and that
the checks reject wrong responses.  They assert no timing.
"""
from __future__ import annotations

import shutil
import sys
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import _nginx, suite  # noqa: E402

SETTINGS = suite.Settings(repetitions=1, seconds=0.02, warmup=2,
                          max_requests_scale=0.0005, sign_number=10,
                          sign_repeat=1, import_runs=1,
                          stream_bytes=4 << 20)


@pytest.fixture(scope='module')
def bench(tmp_path_factory):
    if shutil.which('nginx') is None:
        pytest.skip('nginx is not installed')
    work = tmp_path_factory.mktemp('bench')
    sizes = suite.write_files(work / 'files')
    server = _nginx.Nginx(work / 'nginx', work / 'files', access_log=True)
    context = {'programs': suite.build_c_programs(work), 'sizes': sizes,
               'client_cpu': None, 'oauth_header': None,
               'pywikibot_dirs': suite.write_pywikibot_dirs(work)}
    yield server, context
    server.stop()


def test_reply_is_json():
    import json

    assert json.loads(_nginx.REPLY)['batchcomplete'] == ''


def test_worker_mwcomms_get(bench):
    server, context = bench
    result = suite.http_run(suite.SCENARIOS['get'], '_mwcomms', server,
                            SETTINGS, context)
    assert result['requests'] > 0
    assert result['sent'] == SETTINGS.warmup + result['requests']
    assert result['connections_logged'] == 1
    assert 'invalid' not in result
    assert result['maxrss_kib'] > 0


def test_worker_raw_libcurl_gzip(bench):
    server, context = bench
    result = suite.http_run(suite.SCENARIOS['gzip'], 'raw libcurl', server,
                            SETTINGS, context)
    assert result['requests'] > 0
    assert result['connections'] == 1
    assert result['connections_logged'] == 1


def test_worker_wrong_length_fails(bench):
    server, context = bench
    spec = {'client': 'requests', 'scenario': 'get',
            'url': server.base + suite.SCENARIOS['get'].path,
            'method': 'GET', 'body': None, 'threads': 1,
            'expected_length': context['sizes']['reply'] + 1, 'warmup': 1,
            'seconds': 0.01, 'max_requests': 2, 'cpu': None}
    env = suite.worker_env(context['pywikibot_dirs']['stock'])
    with pytest.raises(RuntimeError, match='expected status 200'):
        suite.run_worker(spec, env)


def test_log_count_mismatch(bench):
    server, context = bench
    start = server.log_offset()
    with urllib.request.urlopen(server.base
                                + suite.SCENARIOS['get'].path) as reply:
        reply.read()
    with pytest.raises(RuntimeError, match='nginx logged 1 requests'):
        suite.check_log(server, start, 2, suite.SCENARIOS['get'],
                        context['sizes'])


def test_log_wrong_encoding(bench):
    server, context = bench
    start = server.log_offset()
    # urllib sends no Accept-Encoding, so nginx sends the gzip scenario's
    # file uncompressed.
    with urllib.request.urlopen(server.base
                                + suite.SCENARIOS['gzip'].path) as reply:
        reply.read()
    with pytest.raises(RuntimeError, match='bytes sent'):
        suite.check_log(server, start, 1, suite.SCENARIOS['gzip'],
                        context['sizes'])


def test_new_connections_invalid(bench):
    server, context = bench
    start = server.log_offset()
    for _ in range(4):
        # urllib opens a connection per request.
        with urllib.request.urlopen(server.base
                                    + suite.SCENARIOS['get'].path) as reply:
            reply.read()
    lines, _ = suite.check_log(server, start, 4, suite.SCENARIOS['get'],
                               context['sizes'])
    assert suite.connection_problem(lines, 1) is not None
    assert suite.connection_problem(lines[:1], 1) is None


def test_streaming_checked(tmp_path):
    if shutil.which('nginx') is None:
        pytest.skip('nginx is not installed')
    result = suite.measure_streaming(SETTINGS, tmp_path,
                                     suite.build_c_programs(tmp_path), None)
    assert result['bytes'] == 4 << 20
    assert [row['client'] for row in result['rows']] == list(
        suite.STREAM_CLIENTS)
    for row in result['rows']:
        assert 'error' not in row, row
        assert row['requests'] == 1
        assert row['maxrss_kib'] > 0
