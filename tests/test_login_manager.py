"""pywikibot's OauthLoginManager replaced by pywikibot_ext, without mwoauth.

Runs against the local wiki's OAuth front.  ``pwb login -oauth`` runs in
a subprocess in which mwoauth, requests_oauthlib and oauthlib cannot be
imported.
"""
from __future__ import annotations

import ast
import os
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import _mwcomms


pytestmark = [
    pytest.mark.realwiki,
    # The test configuration has a BotPassword for the bot account as well.
    pytest.mark.filterwarnings('ignore:Password exists in password file'),
]

PWB_SCRIPT = Path(sys.executable).with_name('pwb')
LOGIN_TIMEOUT_S = 120
PROMPT_TIMEOUT_S = 60
BLOCKED_MODULES = ('mwoauth', 'requests_oauthlib', 'oauthlib')

# Runs ``pwb login -oauth -family:oauthwiki -code:en`` with the OAuth
# libraries made unimportable (a None entry in sys.modules raises
# ImportError on import).
PWB_PRELUDE = f'''
import sys
for name in {BLOCKED_MODULES!r}:
    sys.modules[name] = None
sys.argv = [{str(PWB_SCRIPT)!r}, 'login', '-oauth', '-family:oauthwiki',
            '-code:en']
from pywikibot.scripts.wrapper import run
run()
'''
AUTHENTICATE_LINE = re.compile(r"authenticate\[('[^']+')\] = (\(.*\))")
AUTHORIZE_URL = re.compile(r'(http://127\.0\.0\.1:\d+/w/index\.php\?title='
                           r'Special%3AOAuth%2Fauthorize\S*)')


def _transport():
    from pywikibot_ext import _pywikibot
    return _pywikibot.transport()


def _approve(authorize_url):
    """Approve as the bot account; return the redirect target."""
    with _mwcomms.Client(cookies=False) as client:
        reply = client.request('GET', authorize_url + '&approve=1',
                               timeout=(10, 30))
    assert reply.status == 302
    return reply.get_header('Location')


def _manager(pwb, front, secret=None):
    from pywikibot import login

    site = pwb.Site('en', 'oauthwiki')
    return login.OauthLoginManager(secret or front.consumer_secret, site,
                                   front.consumer_key)


def _redact(text, *secrets):
    for secret in secrets:
        text = text.replace(secret, '<secret>')
    return AUTHENTICATE_LINE.sub('authenticate[...] = <redacted>', text)


# -- in process -----------------------------------------------------------

def test_manager_replaces_pywikibot(pwb):
    import pywikibot.login
    import pywikibot.scripts.login as login_script

    from pywikibot_ext import _login

    assert pywikibot.login.OauthLoginManager is _login.OauthLoginManager
    assert login_script.OauthLoginManager is _login.OauthLoginManager


def test_manager_needs_consumer(pwb):
    from pywikibot import login

    with pytest.raises(ValueError):
        login.OauthLoginManager(None, pwb.Site('en', 'oauthwiki'), 'key')


def test_identity_integer_sub(pwb, front):
    manager = _manager(pwb, front)
    manager.access_token = (front.access_key, front.access_secret)

    identity = manager.identity

    assert identity is not None
    assert identity['username'] == front.username
    assert isinstance(identity['sub'], int)
    assert not isinstance(identity['sub'], bool)
    assert identity['aud'] == front.consumer_key


def test_identity_without_token(pwb, front):
    assert _manager(pwb, front).identity is None


def test_identity_wrong_secret(pwb, front):
    manager = _manager(pwb, front, secret='not-the-consumer-secret')
    manager.access_token = (front.access_key, front.access_secret)
    assert manager.identity is None


def test_login_token_already_set(pwb, front):
    manager = _manager(pwb, front)
    manager.access_token = ('preset-key', 'preset-secret')
    before = _transport().client.stats['requests']

    assert manager.login() is True

    assert _transport().client.stats['requests'] == before
    assert manager.access_token == ('preset-key', 'preset-secret')


def test_login_interactive(pwb, front, monkeypatch):
    import webbrowser

    opened = []
    monkeypatch.setattr(webbrowser, 'open', opened.append)
    monkeypatch.setattr(pwb, 'input',
                        lambda question: _approve(opened[-1]))
    manager = _manager(pwb, front)

    assert manager.login() is True

    assert len(opened) == 1
    assert manager.access_token is not None
    assert manager.access_token[0] != front.access_key
    assert manager.consumer_token == (front.consumer_key,
                                      front.consumer_secret)
    assert manager.identity['username'] == front.username


def test_login_retry_bounded(pwb, front, monkeypatch):
    import webbrowser

    from pywikibot_ext import _login

    questions = []
    monkeypatch.setattr(webbrowser, 'open', lambda url: True)

    def answer(question):
        questions.append(question)
        return 'oauth_verifier=wrong'

    monkeypatch.setattr(pwb, 'input', answer)
    manager = _manager(pwb, front)

    assert manager.login(retry=True) is False

    assert len(questions) == _login.MAX_LOGIN_ATTEMPTS
    assert manager.access_token is None


# -- pwb login -oauth in a subprocess -------------------------------------

def _reader(stream, lines):
    for line in iter(stream.readline, ''):
        lines.put(line)
    lines.put(None)


def _wait_for_url(lines, output, deadline):
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            break
        output.append(line)
        match = AUTHORIZE_URL.search(line)
        if match:
            return match.group(1)
    return None


def test_pwb_login_oauth(pwb, wiki, front, tmp_path):
    import realwiki

    directory = realwiki.write_pywikibot_dir(tmp_path / 'pwb', wiki, front,
                                             enable_mwcomms=True)
    root = str(Path(__file__).resolve().parent.parent)
    python_path = os.pathsep.join(
        filter(None, [root, os.environ.get('PYTHONPATH')]))
    # BROWSER=true makes webbrowser.open() run /bin/true.
    env = dict(os.environ, PYWIKIBOT_DIR=str(directory),
               PYTHONPATH=python_path, PYTHONUNBUFFERED='1', BROWSER='true')
    secrets = (front.consumer_secret, front.access_secret)
    # A new session has no controlling terminal, so getpass reads the
    # consumer secret from stdin.
    process = subprocess.Popen(
        [sys.executable, '-c', PWB_PRELUDE], env=env, cwd=str(tmp_path),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines = queue.Queue()
    threading.Thread(target=_reader, args=(process.stdout, lines),
                     daemon=True).start()
    output = []
    try:
        process.stdin.write(f'{front.consumer_key}\n'
                            f'{front.consumer_secret}\n')
        process.stdin.flush()
        url = _wait_for_url(lines, output,
                            time.monotonic() + PROMPT_TIMEOUT_S)
        assert url is not None, (
            'pwb login -oauth printed no authorize URL:\n'
            + _redact(''.join(output), *secrets))

        process.stdin.write(_approve(url) + '\n')
        process.stdin.close()
        returncode = process.wait(LOGIN_TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    while True:
        line = lines.get(timeout=PROMPT_TIMEOUT_S)
        if line is None:
            break
        output.append(line)
    text = ''.join(output)

    assert returncode == 0, _redact(text, *secrets)
    match = AUTHENTICATE_LINE.search(text)
    assert match is not None, _redact(text, *secrets)
    host = ast.literal_eval(match.group(1))
    tokens = ast.literal_eval(match.group(2))
    assert host == f'127.0.0.1:{front.port}'
    assert len(tokens) == 4
    assert tokens[0] == front.consumer_key
    same_consumer_secret = tokens[1] == front.consumer_secret
    assert same_consumer_secret
    new_access_token = tokens[2] != front.access_key
    assert new_access_token
    assert 'mwoauth is not installed' not in text

    # The printed tokens are a working access token for the bot account.
    signer = _mwcomms.OAuth1(*tokens)
    body = 'action=query&meta=userinfo&format=json'
    with _mwcomms.Client(cookies=False) as client:
        reply = client.request(
            'POST', front.api_url,
            [('Content-Type', 'application/x-www-form-urlencoded')], body,
            timeout=(10, 30), auth=signer)
    assert front.username.encode() in reply.body
    assert b'mwoauth-invalid-authorization' not in reply.body
