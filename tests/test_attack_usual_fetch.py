"""fetch() with mwcomms follows configuration and environment changes
between calls, also while other threads fetch.

pywikibot reads its configuration at import, so each check runs in a
subprocess with its own PYWIKIBOT_DIR; every URL is on 127.0.0.1.
"""
from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

USER_CONFIG = """\
family = 'wikipedia'
mylang = 'en'
import pywikibot_ext as _mwcomms_ext; _mwcomms_ext.install()
"""

SCRIPT = r'''
import json, os, sys, threading
import pywikibot
from pywikibot import config
from pywikibot.comms import http
import pywikibot_ext

base = sys.argv[1]
host = base.split('/')[2]
out = {'installed': pywikibot_ext.installed()}


def received(path='/echo', **kwargs):
    response = http.fetch(base + path, **kwargs)
    return json.loads(response.content)


def agent():
    return received()['user-agent']


config.authenticate = {}
os.environ.pop('PYWIKIBOT_USERNAME', None)
os.environ.pop('PWB_USERNAME', None)
out['agent_plain'] = agent()
os.environ['PYWIKIBOT_USERNAME'] = 'First User'
out['agent_first'] = agent()
os.environ['PYWIKIBOT_USERNAME'] = 'Second%User'
out['agent_second'] = agent()
del os.environ['PYWIKIBOT_USERNAME']
os.environ['PWB_USERNAME'] = 'Tool'
out['agent_pwb'] = agent()
del os.environ['PWB_USERNAME']
out['agent_unset'] = agent()
config.user_agent_description = 'desc-one'
out['agent_description'] = agent()
config.user_agent_description = ''.join(['desc-', 'two'])
out['agent_description_two'] = agent()
config.user_agent_format = 'Fixed/{username}'
out['agent_format'] = agent()
os.environ['PYWIKIBOT_USERNAME'] = 'Third'
out['agent_format_user'] = agent()
del os.environ['PYWIKIBOT_USERNAME']

out['auth_none'] = received().get('authorization')
config.authenticate[host] = ('ck1', 'cs1', 'ak1', 'as1')
out['auth_in_place'] = received().get('authorization')
config.authenticate = {'127.0.0.*': ('bad',)}
config.authenticate = {host: ('ck2', 'cs2', 'ak2', 'as2')}
out['auth_replaced'] = received().get('authorization')
config.authenticate[host] = ('user', 'password')
out['auth_basic'] = received().get('authorization')
del config.authenticate[host]
out['auth_deleted'] = received().get('authorization')
config.authenticate[host] = ('ck3', 'cs3', 'ak3', 'as3')
out['auth_explicit_none'] = received(auth=None).get('authorization')
out['auth_after_explicit'] = received().get('authorization')
config.authenticate = {}

# Threads fetch while the description changes; every request carries
# the user agent of one of the values, and the last fetch the last one.
values = [f'thread-desc-{n}' for n in range(5)]
agents = set()
errors = []
stop = threading.Event()


def worker():
    while not stop.is_set():
        try:
            agents.add(agent())
        except Exception as exc:
            errors.append(repr(exc))
            return


config.user_agent_format = '{script_product} ({script_comments})'
workers = [threading.Thread(target=worker) for _ in range(4)]
for thread in workers:
    thread.start()
for round_number in range(40):
    config.user_agent_description = values[round_number % len(values)]
    config.authenticate = ({host: ('ckt', 'cst', 'akt', 'ast')}
                           if round_number % 2 else {})
stop.set()
for thread in workers:
    thread.join(60)
config.user_agent_description = 'final-desc'
config.authenticate = {}
out['thread_errors'] = errors
out['thread_agents'] = sorted(agents)
out['agent_final'] = agent()
out['auth_final'] = received().get('authorization')
print(json.dumps(out))
'''


class EchoHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        payload = json.dumps({name.lower(): value
                              for name, value in self.headers.items()})
        payload = payload.encode()
        self.send_response(200)
        self.send_header('Content-Type', 'application/json; charset=utf-8')
        self.send_header('Content-Length', str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture(scope='module')
def results(tmp_path_factory):
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), EchoHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    directory = tmp_path_factory.mktemp('pywikibot')
    (directory / 'user-config.py').write_text(USER_CONFIG)
    env = {name: value for name, value in os.environ.items()
           if name.lower() not in ('http_proxy', 'https_proxy', 'all_proxy')}
    env.update(PYWIKIBOT_DIR=str(directory), PYTHONPATH=str(ROOT))
    try:
        done = subprocess.run(
            [sys.executable, '-c', SCRIPT,
             f'http://127.0.0.1:{server.server_port}'],
            env=env, capture_output=True, text=True, timeout=240,
            check=False, cwd=directory)
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_installed(results):
    assert results['installed'] is True


def test_agent_follows_username_env(results):
    assert 'First_User' in results['agent_first']
    assert 'Second%25User' in results['agent_second']
    assert 'Tool' in results['agent_pwb']
    assert 'First_User' not in results['agent_plain']
    assert results['agent_unset'] == results['agent_plain']


def test_agent_follows_config(results):
    assert 'desc-one' in results['agent_description']
    assert 'desc-two' in results['agent_description_two']
    assert 'desc-one' not in results['agent_description_two']
    assert results['agent_format'] == 'Fixed/'
    assert results['agent_format_user'] == 'Fixed/Third'


def test_auth_follows_config(results):
    assert results['auth_none'] is None
    assert 'oauth_consumer_key="ck1"' in results['auth_in_place']
    assert 'oauth_consumer_key="ck2"' in results['auth_replaced']
    assert results['auth_basic'].startswith('Basic ')
    assert results['auth_deleted'] is None
    assert results['auth_explicit_none'] is None
    assert 'oauth_consumer_key="ck3"' in results['auth_after_explicit']


def test_threads_follow_config(results):
    assert results['thread_errors'] == []
    allowed = {f'thread-desc-{n}' for n in range(5)} | {'desc-two'}
    for agent in results['thread_agents']:
        comment = agent[agent.index('(') + 1:agent.rindex(')')]
        assert comment in allowed, agent
    assert 'final-desc' in results['agent_final']
    assert results['auth_final'] is None
