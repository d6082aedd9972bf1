"""Proxy variables in any case and the credentials cache under odd URIs
and thread races, compared with requests and pywikibot."""
from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests

import servers

from pywikibot_ext._transport import Transport

ROOT = Path(__file__).resolve().parent.parent


class EchoHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        self.send_response(200)
        self.send_header('Content-Length', '2')
        self.end_headers()
        self.wfile.write(b'ok')


@pytest.fixture
def echo_url():
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), EchoHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f'http://127.0.0.1:{server.server_port}/echo'
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize('name', ['Http_Proxy', 'HTTP_proxy', 'All_Proxy'])
def test_mixed_case_proxy_variable(echo_url, forward_proxy, monkeypatch,
                                   name):
    # urllib.request.getproxies(), and so requests, lower-cases every
    # variable name that ends in _proxy.
    for variable in ('http_proxy', 'HTTP_PROXY', 'all_proxy', 'ALL_PROXY',
                     'no_proxy', 'NO_PROXY'):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv(name, forward_proxy.url())
    forward_proxy.clear()
    requests.get(echo_url, timeout=10)
    through_requests = len(forward_proxy.seen())
    forward_proxy.clear()
    Transport(requests.cookies.RequestsCookieJar()).request(
        'GET', echo_url, timeout=10)
    through_transport = len(forward_proxy.seen())
    assert through_requests == 1
    assert through_transport == through_requests


AUTH_SCRIPT = r'''
import json, sys, threading
import pywikibot
from pywikibot import config
from pywikibot.comms import http
from pywikibot_ext import _pywikibot

CREDENTIALS = ('ck', 'cs', 'ak', 'as')
uri = 'http://127.0.0.1:9/w/api.php'
out = {}

# 1. A URI whose scheme urlsplit does not accept fills the per-host cache.
config.authenticate = {'127.0.0.1:9': CREDENTIALS}
_pywikibot.get_authentication('1http://127.0.0.1:9/x')
out['after_bad_scheme'] = _pywikibot.get_authentication(uri)
out['stock'] = http.get_authentication(uri)

# 2. A thread that looked the URI up before config.authenticate changed
# stores its result after the change was seen.
config.authenticate = {}
stock = http.get_authentication
inside = threading.Event()
resume = threading.Event()


def slow_lookup(text):
    value = stock(text)
    if threading.current_thread().name == 'slow':
        inside.set()
        resume.wait(10)
    return value


http.get_authentication = slow_lookup
slow = threading.Thread(target=_pywikibot.get_authentication, args=(uri,),
                        name='slow')
slow.start()
inside.wait(10)
config.authenticate['127.0.0.1:9'] = CREDENTIALS
out['during'] = _pywikibot.get_authentication(uri)
resume.set()
slow.join(10)
out['after_race'] = _pywikibot.get_authentication(uri)
print(json.dumps(out))
'''


@pytest.fixture(scope='module')
def auth_results(tmp_path_factory):
    directory = tmp_path_factory.mktemp('pywikibot')
    (directory / 'user-config.py').write_text(
        "family = 'wikipedia'\nmylang = 'en'\n"
        'import pywikibot_ext as _mwcomms_ext; _mwcomms_ext.install()\n')
    env = dict(os.environ, PYWIKIBOT_DIR=str(directory),
               PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, '-c', AUTH_SCRIPT], env=env,
                          capture_output=True, text=True, timeout=120,
                          check=False, cwd=directory)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_auth_cache_bad_scheme(auth_results):
    assert auth_results['stock'] == ['ck', 'cs', 'ak', 'as']
    assert auth_results['after_bad_scheme'] == auth_results['stock']


def test_auth_cache_race(auth_results):
    assert auth_results['during'] == ['ck', 'cs', 'ak', 'as']
    assert auth_results['after_race'] == ['ck', 'cs', 'ak', 'as']
