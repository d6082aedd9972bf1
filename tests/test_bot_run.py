"""An unchanged pywikibot bot, run as operators run it, on mwcomms."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import realwiki
from wiki_fixtures import ROOT

pytestmark = pytest.mark.realwiki

BLOCK_OAUTH_LIBRARIES = (
    "import sys; sys.modules.update(dict.fromkeys("
    "['requests_oauthlib', 'mwoauth', 'oauthlib'])); "
    "import runpy; sys.argv = sys.argv[1:]; "
    "runpy.run_path(sys.argv[0], run_name='__main__')")


def run_bot(directory: Path, family: str, *, block: bool):
    """Run demo/bot.py; return its JSON summary and its stderr."""
    bot = [str(ROOT / 'demo' / 'bot.py'), f'-family:{family}', '-lang:en',
           '-pages:3']
    prefix = [sys.executable, '-c', BLOCK_OAUTH_LIBRARIES] if block \
        else [sys.executable]
    env = dict(os.environ, PYWIKIBOT_DIR=str(directory),
               PYTHONPATH=str(ROOT))
    result = subprocess.run(prefix + bot, env=env, capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


def test_oauth_bot_without_oauth_libraries(wiki, front, tmp_path):
    """OAuth works with requests_oauthlib, oauthlib and mwoauth absent."""
    realwiki.write_pywikibot_dir(tmp_path, wiki, front, enable_mwcomms=True)

    summary, stderr = run_bot(tmp_path, 'oauthwiki', block=True)

    assert summary['userinfo_name'] == front.username
    assert summary['edit_author'] == front.username
    assert summary['edit_comment_matches'] is True
    assert summary['preloaded'] == 3
    assert summary['logout'] == 'cannotlogout'
    assert summary['logged_in_after_logout'] is True
    # The documented user-config.py line adds no configuration warning.
    assert 'but unknown' not in stderr


def test_readme_documents_the_line():
    readme = (ROOT / 'README.rst').read_text()
    assert '    ' + realwiki.MWCOMMS_LINE + '\n' in readme


def test_stock_oauth_bot_needs_libraries(wiki, front, tmp_path):
    """Without mwcomms the same run fails for want of requests_oauthlib.

    This shows that the run above did not sign through the Python
    libraries.
    """
    realwiki.write_pywikibot_dir(tmp_path, wiki, front,
                                 enable_mwcomms=False)
    bot = [str(ROOT / 'demo' / 'bot.py'), '-family:oauthwiki', '-lang:en',
           '-pages:1']
    env = dict(os.environ, PYWIKIBOT_DIR=str(tmp_path),
               PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, '-c', BLOCK_OAUTH_LIBRARIES, *bot], env=env,
        capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode != 0
    assert 'requests_oauthlib' in result.stdout + result.stderr


def test_botpassword_bot_logs_out(wiki, front, tmp_path):
    realwiki.write_pywikibot_dir(tmp_path, wiki, front, enable_mwcomms=True)

    summary, _ = run_bot(tmp_path, 'realwiki', block=True)

    assert summary['userinfo_name'] == wiki.bot_user
    assert summary['edit_author'] == wiki.bot_user
    assert summary['logout'] == 'ok'
    assert summary['logged_in_after_logout'] is False
