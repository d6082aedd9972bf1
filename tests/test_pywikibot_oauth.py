"""pywikibot with OAuth through mwcomms, against a real MediaWiki.

The local wiki is Debian's MediaWiki behind an OAuth 1.0a front built on
oauthlib's provider endpoints; see realwiki/.  Every test here runs
against it, and against a remote wiki too when one is configured (see
tests/wiki_fixtures.py).
"""
from __future__ import annotations

import json
import urllib.parse
import uuid

import pytest
import requests


pytestmark = pytest.mark.realwiki


@pytest.fixture
def no_stock_transport(monkeypatch):
    """Fail the test if any request goes through requests' adapters."""
    def refuse(self, request, *args, **kwargs):
        raise AssertionError(f'requests sent {request.method} {request.url} '
                             'instead of mwcomms')

    monkeypatch.setattr(requests.adapters.HTTPAdapter, 'send', refuse)


def _transport():
    from pywikibot_ext import _pywikibot
    return _pywikibot.transport()


def _fresh_site(pwb, target):
    """Return the target's site with no cached login state."""
    site = pwb.Site(target.code, target.family)
    site._loginstatus = pwb.login.LoginStatus.NOT_ATTEMPTED
    if hasattr(site, '_userinfo'):
        del site.userinfo
    return site


def test_oauth_login_logout_userinfo(pwb, oauth_target, no_stock_transport):
    from pywikibot.exceptions import APIError

    site = _fresh_site(pwb, oauth_target)
    requests_before = _transport().client.stats['requests']

    site.login()

    userinfo = site._userinfo
    assert userinfo['name'] == oauth_target.username
    assert 'anon' not in userinfo
    assert site.logged_in()
    assert site.user() == oauth_target.username
    if oauth_target.local:
        assert 'bot' in userinfo['groups']
    assert _transport().client.stats['requests'] > requests_before

    # MediaWiki rejects ending an OAuth session: the API returns
    # cannotlogout, pywikibot raises APIError and stays logged in.
    with pytest.raises(APIError) as excinfo:
        site.logout()
    assert excinfo.value.code == 'cannotlogout'
    assert site._userinfo['name'] == oauth_target.username
    assert site.logged_in()

    # The wiki agrees: a new userinfo request is still the OAuth account.
    del site.userinfo
    assert site.userinfo['name'] == oauth_target.username
    assert 'anon' not in site.userinfo


def test_botpassword_logout_ends_anonymous(pwb, wiki, no_stock_transport):
    """The same transport on the same wiki does log out without OAuth."""
    site = pwb.Site('en', 'realwiki')
    site.login()
    assert site._userinfo['name'] == wiki.bot_user
    assert site.logged_in()

    site.logout()

    assert not site.logged_in()
    assert 'anon' in site.userinfo
    assert site.userinfo['name'] != wiki.bot_user
    # The session cookies are gone from pywikibot's jar: a new request is
    # anonymous on the wiki too.
    del site.userinfo
    assert 'anon' in site.userinfo


def test_oauth_edit_user_page_history(pwb, oauth_target, no_stock_transport):
    site = _fresh_site(pwb, oauth_target)
    site.login()
    title = f'User:{oauth_target.username}'
    marker = f'mwcomms OAuth edit {uuid.uuid4().hex}'
    summary = f'mwcomms test {uuid.uuid4().hex[:8]}'

    page = pwb.Page(site, title)
    page.text = marker + '\n\nThis user page is edited by the mwcomms tests.'
    page.save(summary=summary, bot=True)

    reread = pwb.Page(site, title)
    latest = next(iter(reread.revisions(total=1, content=True)))
    assert latest.user == oauth_target.username
    assert latest.comment == summary
    assert latest.text.startswith(marker)
    assert reread.latest_revision_id == latest.revid


def test_oauth_edit_seen_without_oauth(pwb, wiki, front):
    """The history read anonymously from the wiki names the OAuth account."""
    site = pwb.Site('en', 'oauthwiki')
    site.login()
    title = f'User:{front.username}'
    marker = uuid.uuid4().hex
    page = pwb.Page(site, title)
    page.text = f'anonymous check {marker}'
    page.save(summary=f'check {marker}')

    query = urllib.parse.urlencode({
        'action': 'query', 'prop': 'revisions', 'titles': title,
        'rvprop': 'user|comment', 'rvlimit': 1, 'format': 'json',
        'formatversion': 2})
    reply = requests.get(f'{wiki.api_url}?{query}', timeout=30).json()
    revision = reply['query']['pages'][0]['revisions'][0]
    assert revision['user'] == front.username
    assert revision['comment'] == f'check {marker}'


# -- bad requests surface as clear errors --------------------------------

def _userinfo_request(pwb, site):
    from pywikibot.data import api
    return api.Request(site=site, parameters={'action': 'query',
                                              'meta': 'userinfo'})


class Credentials(tuple):

    """The front's four tokens; the repr hides them from test output."""

    def __repr__(self) -> str:
        return '<OAuth credentials>'


@pytest.fixture
def local_oauth(pwb, front):
    from pywikibot import config
    host = f'127.0.0.1:{front.port}'
    good = Credentials(config.authenticate[host])
    site = pwb.Site('en', 'oauthwiki')
    yield site, host, good
    config.authenticate[host] = tuple(good)


def test_wrong_secret_is_invalid_signature(pwb, local_oauth):
    from pywikibot import config
    from pywikibot.exceptions import NoUsernameError

    site, host, good = local_oauth
    config.authenticate[host] = (good[0], 'not-the-consumer-secret',
                                 good[2], good[3])
    with pytest.raises(NoUsernameError) as excinfo:
        _userinfo_request(pwb, site).submit()
    message = str(excinfo.value)
    assert 'Invalid signature' in message
    assert 'not-the-consumer-secret' not in message
    assert good[3] not in message


def test_old_timestamp_is_expired(pwb, local_oauth):
    from pywikibot.exceptions import NoUsernameError

    import pywikibot_ext

    site, host, good = local_oauth
    signer = _transport().oauth_for(tuple(good), host)
    signer.clock_offset = -1000
    # With the correction on, the transport would fix the clock and resend.
    pywikibot_ext.options.correct_clock_skew = False
    try:
        with pytest.raises(NoUsernameError) as excinfo:
            _userinfo_request(pwb, site).submit()
    finally:
        pywikibot_ext.options.correct_clock_skew = True
        signer.clock_offset = 0
    assert 'Expired timestamp' in str(excinfo.value)


def test_unknown_consumer_is_rejected(pwb, local_oauth):
    from pywikibot import config
    from pywikibot.exceptions import NoUsernameError

    site, host, good = local_oauth
    config.authenticate[host] = ('unknown-consumer', good[1], good[2],
                                 good[3])
    with pytest.raises(NoUsernameError) as excinfo:
        _userinfo_request(pwb, site).submit()
    assert 'Invalid consumer' in str(excinfo.value)


def test_reused_nonce_is_rejected(pwb, front):
    """A replayed Authorization header is refused by the wiki's rules."""
    import _mwcomms
    from pywikibot.comms import http

    signer = _mwcomms.OAuth1(front.consumer_key, front.consumer_secret,
                             front.access_key, front.access_secret)
    body = 'action=query&meta=userinfo&format=json'
    form = {'Content-Type': 'application/x-www-form-urlencoded'}
    nonce = uuid.uuid4().hex
    header = signer.sign('POST', front.api_url, form, body, nonce=nonce)
    headers = dict(form, Authorization=header)

    first = http.fetch(front.api_url, method='POST', headers=dict(headers),
                       data=body, auth=None)
    second = http.fetch(front.api_url, method='POST', headers=dict(headers),
                        data=body, auth=None)

    assert json.loads(first.text)['query']['userinfo']['name'] == \
        front.username
    assert second.headers['MediaWiki-API-Error'] == \
        'mwoauth-invalid-authorization'
    error = json.loads(second.text)['error']
    assert error['code'] == 'mwoauth-invalid-authorization'
    assert error['info'].endswith(f'Nonce already used: {nonce}')


def test_tampered_signature_is_rejected(pwb, front):
    import _mwcomms
    from pywikibot.comms import http

    signer = _mwcomms.OAuth1(front.consumer_key, front.consumer_secret,
                             front.access_key, front.access_secret)
    body = 'action=query&meta=userinfo&format=json'
    form = {'Content-Type': 'application/x-www-form-urlencoded'}
    # Signed for one body, sent with another.
    header = signer.sign('POST', front.api_url, form, body)
    tampered = body.replace('userinfo', 'siteinfo')
    reply = http.fetch(front.api_url, method='POST',
                       headers=dict(form, Authorization=header),
                       data=tampered, auth=None)
    error = json.loads(reply.text)['error']
    assert error['code'] == 'mwoauth-invalid-authorization'
    assert error['info'].endswith('Invalid signature')
