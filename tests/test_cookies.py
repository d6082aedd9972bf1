"""pywikibot's cookie file with mwcomms: saved, reused without a password,
cleared by logout."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import realwiki
from wiki_fixtures import ROOT

pytestmark = pytest.mark.realwiki

SCRIPT = r'''
import json, sys
import pywikibot
import pywikibot_ext
from pywikibot.comms import http
action = sys.argv[1]
site = pywikibot.Site('en', 'realwiki')
out = {'installed': pywikibot_ext.installed()}
if action == 'login':
    site.login()
elif action == 'reuse':
    # login() loads the cookie file first; the session must suffice.
    site.login()
elif action == 'logout':
    site.login()
    site.logout()
    # MediaWiki deletes the account cookies; the session cookie stays but
    # names a new, anonymous session.
    out['cookies_after_logout'] = sorted(
        cookie.name for cookie in http.cookie_jar
        if cookie.name.endswith(('UserID', 'UserName', 'Token')))
out['user'] = site.userinfo.get('name')
out['anonymous'] = 'anon' in site.userinfo
print(json.dumps(out))
'''


def run(directory, action):
    env = dict(os.environ, PYWIKIBOT_DIR=str(directory),
               PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, '-c', SCRIPT, action], env=env,
                            capture_output=True, text=True, timeout=300,
                            check=False)
    return result


def without_password(directory):
    (directory / 'user-password.py').unlink()
    config = directory / 'user-config.py'
    lines = [line for line in config.read_text().splitlines()
             if not line.startswith('password_file')]
    config.write_text('\n'.join(lines) + '\n')


def test_cookie_file_reused(wiki, tmp_path):
    directory = realwiki.write_pywikibot_dir(tmp_path, wiki,
                                             enable_mwcomms=True)
    first = run(directory, 'login')
    assert first.returncode == 0, first.stderr[-2000:]
    cookie_file = directory / 'pywikibot-PwbBot.lwp'
    assert cookie_file.exists()
    without_password(directory)

    second = run(directory, 'reuse')

    assert second.returncode == 0, second.stderr[-2000:]
    data = json.loads(second.stdout.strip().splitlines()[-1])
    assert data['installed'] is True
    assert data['user'] == 'PwbBot'
    assert data['anonymous'] is False


def test_cookie_logout_clears(wiki, tmp_path):
    directory = realwiki.write_pywikibot_dir(tmp_path, wiki,
                                             enable_mwcomms=True)
    result = run(directory, 'logout')
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert data['cookies_after_logout'] == []
    assert data['anonymous'] is True
    without_password(directory)

    again = run(directory, 'reuse')

    # The saved file no longer logs in; without a password login fails.
    assert again.returncode != 0
