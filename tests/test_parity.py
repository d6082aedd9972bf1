"""The same bot operations with stock pywikibot and with mwcomms.

A script runs twice in subprocesses against the local wiki, once with
``pywikibot_ext.uninstall()`` (requests, stock) and once with mwcomms
installed, and prints what it saw as JSON.  The test compares the two.
"""
from __future__ import annotations

import hashlib
import http.server
import json
import os
import secrets
import subprocess
import sys
import threading

import pytest

import realwiki
import servers
from wiki_fixtures import ROOT

pytestmark = pytest.mark.realwiki

PARITY_SCRIPT = r'''
import hashlib, json, resource, sys
mode, settings = sys.argv[1], json.loads(sys.argv[2])
import pywikibot
import pywikibot_ext
if mode == 'stock':
    pywikibot_ext.uninstall()
from pywikibot import config
from pywikibot.comms import http
from pywikibot.data import api

out = {'installed': pywikibot_ext.installed()}


def outcome(call):
    """Return the class name and module of what call() raised, or 'ok'."""
    try:
        call()
    except Exception as exc:
        return [type(exc).__module__.split('.')[0], type(exc).__name__]
    return 'ok'


def cookie_file():
    http.cookie_jar.save(ignore_discard=True)
    lines = open(http.cookie_jar.filename).read().splitlines()
    cookies = []
    for line in lines:
        if not line.startswith('Set-Cookie3: '):
            continue
        name, _, rest = line[len('Set-Cookie3: '):].partition('=')
        attributes = sorted(
            part for part in rest.split('; ')[1:]
            if not part.startswith('expires='))
        cookies.append([name, attributes])
    return {'header': lines[0], 'cookies': sorted(cookies)}


site = pywikibot.Site('en', 'realwiki')
site.login()
out['logged_in'] = site.logged_in()
out['user'] = site.user()
out['siteinfo'] = {key: site.siteinfo[key] for key in
                   ('sitename', 'generator', 'lang', 'case', 'mainpage')}
token = site.tokens['csrf']
out['token'] = [len(token), token.endswith('+\\'), token != '+\\']
out['cookie_file'] = cookie_file()

page = pywikibot.Page(site, 'Parity page ' + mode)
page.text = settings['text']
page.save('parity run')
fresh = pywikibot.Page(site, 'Parity page ' + mode)
out['text'] = fresh.get(force=True)
out['revision_user'] = fresh.latest_revision.user
out['revision_count'] = len(list(fresh.revisions(total=2))) > 0

# Uploads, plain and chunked, then a download of each.
uploads = {}
for kind, chunk_size in (('plain', 0), ('chunked', 256 * 1024)):
    file_page = pywikibot.FilePage(site, f'File:Parity-{mode}-{kind}.txt')
    site.upload(file_page, source_filename=settings['upload'],
                comment='parity', ignore_warnings=True,
                chunk_size=chunk_size)
    info = pywikibot.FilePage(site, file_page.title()).latest_file_info
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    target = settings['download_dir'] + f'/{mode}-{kind}.txt'
    downloaded = pywikibot.FilePage(site, file_page.title()).download(target)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    uploads[kind] = {
        'sha1': info.sha1,
        'size': info.size,
        'downloaded': downloaded,
        'download_sha1': hashlib.sha1(open(target, 'rb').read()).hexdigest(),
        'download_rss_growth_kib': after - before,
    }
out['uploads'] = uploads

# Errors.
missing = pywikibot.Page(site, 'No such page ' + settings['nonce'])
out['missing_page'] = outcome(missing.get)
bad_token = api.Request(site=site, parameters={
    'action': 'edit', 'title': 'Parity page ' + mode, 'text': 'x',
    'token': 'bad+\\'})
try:
    bad_token.submit()
    out['bad_token'] = 'ok'
except pywikibot.exceptions.APIError as exc:
    out['bad_token'] = exc.code
local = settings['local']
out['status_500'] = outcome(lambda: http.fetch(local + '/status/500'))
out['status_414'] = outcome(lambda: http.fetch(local + '/status/414'))
out['status_504'] = outcome(lambda: http.fetch(local + '/status/504'))
config.socket_timeout = (5, 0.5)
out['timeout'] = outcome(lambda: http.fetch(local + '/slow?seconds=2'))
config.socket_timeout = (3, 30)
out['refused'] = outcome(lambda: http.fetch(settings['refused']))
out['invalid_url'] = outcome(lambda: http.fetch('http://'))
out['unparsable_url'] = outcome(lambda: http.fetch('http://[::1/x'))
out['untrusted_tls'] = outcome(lambda: http.fetch(settings['tls']))

# Retry-After and pywikibot's maxlag loop, with the site's API pointed at
# a local server for these requests only.
site.base_url = lambda uri, protocol=None: settings['maxlag'] + '/' + mode \
    + uri
http.request(site, uri='/w/api.php?retry-after')
out['retry_after'] = site.throttle.retry_after
reply = api.Request(site=site, parameters={
    'action': 'query', 'list': 'allpages'}).submit()
out['maxlag_reply'] = reply['query']['allpages'][0]['title']
out['maxlag_retry_after'] = site.throttle.retry_after
del site.base_url

print(json.dumps(out))
'''


class MaxlagHandler(http.server.BaseHTTPRequestHandler):
    """Reply to the first two API requests of each mode with maxlag errors."""

    protocol_version = 'HTTP/1.1'

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        length = int(self.headers.get('Content-Length') or 0)
        if length:
            self.rfile.read(length)
        mode = self.path.split('/')[1]
        if 'retry-after' in self.path:
            self.answer(b'{}', [('Retry-After', '7')])
            return
        with self.server.lock:
            count = self.server.counts.get(mode, 0) + 1
            self.server.counts[mode] = count
        if count <= 2:
            body = json.dumps({'error': {
                'code': 'maxlag', 'lag': 0.2,
                'info': 'Waiting for 127.0.0.1: 0.2 seconds lagged'}})
            self.answer(body.encode(), [('Retry-After', '1'),
                                        ('MediaWiki-API-Error', 'maxlag')])
            return
        body = json.dumps({'batchcomplete': '', 'query': {
            'allpages': [{'ns': 0, 'title': 'Lag page'}]}})
        self.answer(body.encode(), [])

    do_POST = do_GET

    def answer(self, body, headers):
        self.send_response(200)
        self.send_header('Content-Type', 'application/json; charset=utf-8')
        for name, value in headers:
            self.send_header(name, value)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope='module')
def maxlag_server():
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0),
                                             MaxlagHandler)
    server.lock = threading.Lock()
    server.counts = {}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def upload_file(path) -> str:
    lines = [f'{number:08d} {secrets.token_hex(24)}\n'
             for number in range(25000)]
    path.write_text(''.join(lines))
    return hashlib.sha1(path.read_bytes()).hexdigest()


def run_mode(mode, directory, settings):
    env = dict(os.environ, PYWIKIBOT_DIR=str(directory),
               PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, '-c', PARITY_SCRIPT, mode, json.dumps(settings)],
        env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope='module')
def runs(wiki, http_server, https_server, maxlag_server,
         tmp_path_factory):
    base = tmp_path_factory.mktemp('parity')
    upload = base / 'upload.txt'
    sha1 = upload_file(upload)
    downloads = base / 'downloads'
    downloads.mkdir()
    settings = {
        'text': 'Parity text ' + secrets.token_hex(8),
        'nonce': secrets.token_hex(8),
        'upload': str(upload),
        'download_dir': str(downloads),
        'local': f'http://127.0.0.1:{http_server.server_port}',
        'refused': f'http://127.0.0.1:{servers.closed_port()}/',
        'tls': https_server.url('/echo'),
        'maxlag': f'http://127.0.0.1:{maxlag_server.server_port}',
    }
    results = {}
    for mode in ('stock', 'mwcomms'):
        directory = realwiki.write_pywikibot_dir(base / mode, wiki,
                                                 enable_mwcomms=True)
        results[mode] = run_mode(mode, directory, settings)
    results['settings'] = settings
    results['sha1'] = sha1
    results['size'] = upload.stat().st_size
    return results


def test_parity_modes(runs):
    assert runs['stock']['installed'] is False
    assert runs['mwcomms']['installed'] is True


@pytest.mark.parametrize('key', [
    'logged_in', 'user', 'siteinfo', 'token', 'revision_user',
    'revision_count', 'cookie_file', 'missing_page', 'bad_token',
    'status_500', 'status_414', 'status_504', 'timeout', 'refused',
    'invalid_url', 'unparsable_url', 'untrusted_tls', 'retry_after', 'maxlag_reply',
    'maxlag_retry_after'])
def test_parity_same(runs, key):
    assert runs['mwcomms'][key] == runs['stock'][key]


def test_parity_login(runs):
    assert runs['mwcomms']['logged_in'] is True
    assert runs['mwcomms']['user'] == 'PwbBot'


def test_parity_text(runs):
    assert runs['stock']['text'] == runs['settings']['text']
    assert runs['mwcomms']['text'] == runs['settings']['text']


def test_parity_cookie_file(runs):
    cookies = runs['mwcomms']['cookie_file']['cookies']
    assert runs['mwcomms']['cookie_file']['header'] == '#LWP-Cookies-2.0'
    assert any(name.endswith('_session') for name, _ in cookies)
    assert all('domain="127.0.0.1"' in attributes
               for _, attributes in cookies)


@pytest.mark.parametrize('mode', ['stock', 'mwcomms'])
@pytest.mark.parametrize('kind', ['plain', 'chunked'])
def test_parity_upload_download(runs, mode, kind):
    result = runs[mode]['uploads'][kind]
    assert result['sha1'] == runs['sha1']
    assert result['size'] == runs['size']
    assert result['downloaded'] is True
    assert result['download_sha1'] == runs['sha1']


def test_parity_errors(runs):
    ours = runs['mwcomms']
    assert ours['missing_page'] == ['pywikibot', 'NoPageError']
    # pywikibot handles badtoken by fetching a new token and resending.
    assert ours['bad_token'] == 'ok'
    assert ours['status_500'] == ['pywikibot', 'ServerError']
    assert ours['status_414'] == ['pywikibot', 'Client414Error']
    assert ours['status_504'] == ['pywikibot', 'Server504Error']
    assert ours['timeout'] == ['pywikibot', 'ServerError']
    assert ours['invalid_url'] == ['pywikibot', 'FatalServerError']
    # pywikibot's fetch parses the URL itself before any request.
    assert ours['unparsable_url'] == ['builtins', 'ValueError']
    assert ours['refused'] == ['requests', 'ConnectionError']
    assert ours['untrusted_tls'] == ['pywikibot', 'FatalServerError']


def test_parity_maxlag(runs, maxlag_server):
    assert runs['mwcomms']['maxlag_reply'] == 'Lag page'
    assert runs['mwcomms']['retry_after'] == 7
    assert maxlag_server.counts == {'stock': 3, 'mwcomms': 3}
