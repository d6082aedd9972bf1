"""Session fixtures: the local MediaWiki, its OAuth front, and pywikibot.

pywikibot reads its configuration once, at import, from PYWIKIBOT_DIR.
The ``pwb`` fixture therefore writes that directory first and imports
pywikibot afterwards; no test module may import pywikibot at module level.

A remote wiki is used as well when these variables are set:

PYWIKIBOT_TEST_SITE
    ``family:code`` of a wiki with a pywikibot family file, e.g. ``wikipedia:test``.
PYWIKIBOT_TEST_OAUTH
    ``consumer_key:consumer_secret:access_key:access_secret`` of an OAuth
    consumer on that wiki, with the basic and editpage grants.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import realwiki  # noqa: E402

REMOTE_SITE_VAR = 'PYWIKIBOT_TEST_SITE'
REMOTE_OAUTH_VAR = 'PYWIKIBOT_TEST_OAUTH'


@dataclass
class OAuthTarget:
    """A wiki that a test reaches with OAuth."""

    name: str
    family: str
    code: str
    host: str
    credentials: tuple
    username: str
    local: bool


@pytest.fixture(scope='session')
def wiki():
    """The local MediaWiki, started for this session if it was not running."""
    instance = realwiki.Wiki.up()
    yield instance
    if not instance.was_running:
        instance.stop()


@pytest.fixture(scope='session')
def front(wiki, tmp_path_factory):
    """The OAuth 1.0a front of the local wiki."""
    instance = realwiki.OAuthFront.start(
        wiki, state_dir=tmp_path_factory.mktemp('oauth-front'))
    yield instance
    instance.stop()


@pytest.fixture(scope='session')
def pwb(wiki, front, tmp_path_factory):
    """pywikibot, configured for the local wiki with mwcomms enabled.

    The configuration directory contains the user-config.py line that
    operators add, so this also checks that the line works.
    """
    if 'pywikibot' in sys.modules:
        pytest.fail('pywikibot was imported before its configuration was '
                    'written; import it only through the pwb fixture')
    directory = tmp_path_factory.mktemp('pywikibot')
    realwiki.write_pywikibot_dir(directory, wiki, front,
                                 enable_mwcomms=True)
    os.environ['PYWIKIBOT_DIR'] = str(directory)
    import pywikibot

    import pywikibot_ext
    assert pywikibot_ext.installed(), 'user-config.py did not enable mwcomms'
    return pywikibot


def _remote_target():
    site = os.environ.get(REMOTE_SITE_VAR)
    oauth = os.environ.get(REMOTE_OAUTH_VAR)
    if not site or not oauth:
        pytest.skip(f'remote wiki not configured: set {REMOTE_SITE_VAR}='
                    f'family:code and {REMOTE_OAUTH_VAR}=ck:cs:ak:as')
    family, _, code = site.partition(':')
    parts = tuple(oauth.split(':'))
    if len(parts) != 4 or not all(parts) or not code:
        pytest.fail(f'{REMOTE_SITE_VAR} must be family:code and '
                    f'{REMOTE_OAUTH_VAR} four non-empty values separated by '
                    "':' (the values are not shown)")
    return family, code, parts


@pytest.fixture(params=['local', 'remote'])
def oauth_target(request, pwb):
    """The OAuth wiki a test runs against: the local front or a remote."""
    if request.param == 'local':
        front = request.getfixturevalue('front')
        return OAuthTarget('local', 'oauthwiki', 'en',
                           f'127.0.0.1:{front.port}',
                           (front.consumer_key, front.consumer_secret,
                            front.access_key, front.access_secret),
                           front.username, True)
    family, code, credentials = _remote_target()
    from pywikibot import config

    site = pwb.Site(code, family)
    host = site.hostname()
    config.authenticate[host] = credentials
    # pywikibot needs the account name before login, so ask the wiki.
    name = _signed_username(site, credentials)
    config.usernames.setdefault(family, {})[code] = name
    return OAuthTarget('remote', family, code, host, credentials, name,
                       False)


def _signed_username(site, credentials) -> str:
    import _mwcomms

    signer = _mwcomms.OAuth1(*credentials)
    url = site.base_url(site.apipath())
    body = 'action=query&meta=userinfo&format=json'
    with _mwcomms.Client(cookies=False) as client:
        result = client.request(
            'POST', url,
            [('Content-Type', 'application/x-www-form-urlencoded')],
            body, timeout=(10, 30), auth=signer)
    import json
    reply = json.loads(result.body)
    if 'error' in reply:
        pytest.fail(f"the remote wiki rejected the OAuth tokens: "
                    f"{reply['error'].get('info')}")
    return reply['query']['userinfo']['name']
