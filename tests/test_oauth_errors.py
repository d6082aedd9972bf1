"""OAuth rejections from the wiki as typed exceptions, and clock skew.

Runs pywikibot with mwcomms against the local wiki's OAuth front, which
rejects requests with the texts of MediaWiki's OAuth extension.
"""
from __future__ import annotations

import time
import uuid

import pytest


pytestmark = pytest.mark.realwiki

def _transport():
    from pywikibot_ext import _pywikibot
    return _pywikibot.transport()


class Target:
    """The front's site, host and credentials, with a repr without secrets."""

    def __init__(self, pwb, front):
        from pywikibot import config

        self.site = pwb.Site('en', 'oauthwiki')
        self.host = f'127.0.0.1:{front.port}'
        self.credentials = config.authenticate[self.host]

    def signer(self):
        return _transport().oauth_for(self.credentials, self.host)

    def __repr__(self):
        return f'<Target {self.host}>'


@pytest.fixture
def target(pwb, front):
    from pywikibot import config

    import pywikibot_ext

    target = Target(pwb, front)
    target.site.login()
    saved_options = vars(pywikibot_ext.options).copy()
    yield target
    config.authenticate[target.host] = target.credentials
    target.signer().clock_offset = 0
    vars(pywikibot_ext.options).update(saved_options)


def _userinfo(site):
    from pywikibot.data import api
    return api.Request(site=site, parameters={
        'action': 'query', 'meta': 'userinfo'}).submit()


def _requests_sent(before):
    return _transport().client.stats['requests'] - before


class ReplayingClient:
    """Delegate to an _mwcomms.Client, signing some requests itself.

    The first ``replays`` signed requests carry the same nonce, or, when
    ``timestamp`` is given, that timestamp and a new nonce each.  Later
    ones are signed by the real client.
    """

    def __init__(self, client, replays, timestamp=None):
        self.client = client
        self.replays = replays
        self.timestamp = timestamp
        self.nonce = 'replayed-nonce-' + uuid.uuid4().hex
        self.signed = 0

    def request(self, method, url, headers=(), body=None, *, auth=None,
                **kwargs):
        if auth is not None and self.signed < self.replays:
            self.signed += 1
            if self.timestamp is None:
                chosen = {'nonce': self.nonce}
            else:
                chosen = {'timestamp': self.timestamp}
            header = auth.sign(method, url, list(headers), body, **chosen)
            headers = list(headers) + [('Authorization', header)]
            auth = None
        return self.client.request(method, url, headers, body, auth=auth,
                                   **kwargs)

    def requests_send(self, method, url, headers, body, timeout, verify,
                      auth, *rest):
        # The transport's short path.  None sends a request that must be
        # replayed through request() instead, as for unusual input.
        if auth is not None and self.signed < self.replays:
            return None
        return self.client.requests_send(method, url, headers, body, timeout,
                                         verify, auth, *rest)

    def __getattr__(self, name):
        return getattr(self.client, name)


@pytest.fixture
def replaying(monkeypatch):
    def install(replays, timestamp=None):
        transport = _transport()
        client = ReplayingClient(transport.client, replays, timestamp)
        monkeypatch.setattr(transport, 'client', client)
        return client
    return install


# -- rejections map to classes --------------------------------------------

def test_unknown_consumer_error(target):
    from pywikibot import config
    from pywikibot.exceptions import NoUsernameError
    from pywikibot_ext.errors import InvalidConsumerError

    consumer_secret = target.credentials[1]
    config.authenticate[target.host] = ('unknown-consumer',
                                        *target.credentials[1:])
    with pytest.raises(InvalidConsumerError) as excinfo:
        _userinfo(target.site)
    assert isinstance(excinfo.value, NoUsernameError)
    assert excinfo.value.code == 'mwoauth-invalid-authorization'
    assert excinfo.value.reason == 'Invalid consumer'
    assert consumer_secret not in str(excinfo.value)
    assert 'consumer key' in str(excinfo.value)


def test_wrong_secret_error(target):
    from pywikibot import config
    from pywikibot_ext.errors import InvalidSignatureError

    key, _, access_key, access_secret = target.credentials
    config.authenticate[target.host] = (key, 'wrong-secret-value',
                                        access_key, access_secret)
    with pytest.raises(InvalidSignatureError) as excinfo:
        _userinfo(target.site)
    assert excinfo.value.reason == 'Invalid signature'
    assert 'wrong-secret-value' not in str(excinfo.value)
    assert access_secret not in str(excinfo.value)


def test_revoked_token_error(target):
    from pywikibot import config
    from pywikibot_ext.errors import InvalidTokenError

    key, secret, _, access_secret = target.credentials
    config.authenticate[target.host] = (key, secret, 'revoked-token',
                                        access_secret)
    with pytest.raises(InvalidTokenError) as excinfo:
        _userinfo(target.site)
    assert excinfo.value.reason.startswith('No approved grant was found')
    assert 'revoked' in str(excinfo.value)


def test_reused_nonce_retries_bounded(target, replaying):
    """Every attempt replays one nonce: retried max_nonce_retries times."""
    import pywikibot_ext
    from pywikibot_ext.errors import NonceUsedError

    client = replaying(replays=100)
    _userinfo(target.site)           # uses up the replayed nonce
    before = _transport().client.stats['requests']

    with pytest.raises(NonceUsedError) as excinfo:
        _userinfo(target.site)

    assert _requests_sent(before) == 1 + pywikibot_ext.options.max_nonce_retries
    assert client.signed == 2 + pywikibot_ext.options.max_nonce_retries
    assert client.nonce in excinfo.value.reason


def test_reused_nonce_retry_succeeds(target, replaying):
    """One replayed nonce is retried with a new nonce and succeeds."""
    client = replaying(replays=2)
    _userinfo(target.site)           # uses up the replayed nonce
    before = _transport().client.stats['requests']

    reply = _userinfo(target.site)   # replayed once, then signed afresh

    assert reply['query']['userinfo']['name'] == target.site.username()
    assert _requests_sent(before) == 2
    assert client.signed == 2


def test_expired_timestamp_error(target):
    import pywikibot_ext
    from pywikibot_ext.errors import TimestampError

    pywikibot_ext.options.correct_clock_skew = False
    target.signer().clock_offset = -1000
    before = _transport().client.stats['requests']

    with pytest.raises(TimestampError) as excinfo:
        _userinfo(target.site)

    error = excinfo.value
    assert _requests_sent(before) == 1
    assert error.client_timestamp is not None
    assert error.server_timestamp is not None
    assert 995 <= error.skew <= 1005
    assert 'behind' in str(error)
    assert target.signer().clock_offset == -1000


def test_expired_after_correction_error(target, replaying):
    """A wiki that rejects the corrected request too raises TimestampError."""
    from pywikibot_ext.errors import TimestampError

    replaying(replays=100, timestamp=1_000_000_000)
    before = _transport().client.stats['requests']

    with pytest.raises(TimestampError) as excinfo:
        _userinfo(target.site)

    assert _requests_sent(before) == 2
    assert excinfo.value.client_timestamp == 1_000_000_000


def test_skew_beyond_bound_error(target, monkeypatch):
    """A wiki clock days away from ours is not corrected or resent."""
    from pywikibot_ext import _oauth_text
    from pywikibot_ext import _transport as transport_module
    from pywikibot_ext.errors import TimestampError

    # As if this computer's clock were four days behind the wiki's.
    def four_days_behind(server_time):
        return _oauth_text.clock_offset(server_time,
                                        now=time.time() - 4 * 86400)

    monkeypatch.setattr(transport_module, 'clock_offset', four_days_behind)
    target.signer().clock_offset = -400
    before = _transport().client.stats['requests']

    with pytest.raises(TimestampError):
        _userinfo(target.site)

    assert _requests_sent(before) == 1
    assert target.signer().clock_offset == -400


# -- clock skew is corrected ----------------------------------------------

def test_clock_skew_corrected_once(target):
    signer = target.signer()
    signer.clock_offset = -400
    before = _transport().client.stats['requests']

    reply = _userinfo(target.site)

    assert reply['query']['userinfo']['name'] == target.site.username()
    assert _requests_sent(before) == 2
    assert abs(signer.clock_offset) <= 5

    # Later requests to the host use the learned offset.
    before = _transport().client.stats['requests']
    _userinfo(target.site)
    assert _requests_sent(before) == 1


def test_clock_skew_edit_saved_once(pwb, target):
    """A POST edit rejected for its timestamp is saved exactly once."""
    from pywikibot.data import api

    title = f'User:{target.site.username()}/clock skew'
    page = pwb.Page(target.site, title)
    page.text = f'before {uuid.uuid4()}'
    page.save(summary='clock skew: before')
    revisions_before = len(list(pwb.Page(target.site, title).revisions()))
    token = target.site.tokens['csrf']
    marker = uuid.uuid4().hex
    edit = api.Request(site=target.site, parameters={
        'action': 'edit', 'title': title, 'text': f'after {marker}',
        'summary': f'clock skew {marker}', 'token': token})

    target.signer().clock_offset = 400
    before = _transport().client.stats['requests']
    reply = edit.submit()

    assert reply['edit']['result'] == 'Success'
    assert _requests_sent(before) == 2
    assert abs(target.signer().clock_offset) <= 5
    revisions = list(pwb.Page(target.site, title).revisions(content=True))
    assert len(revisions) == revisions_before + 1
    assert revisions[0].comment == f'clock skew {marker}'
    assert revisions[0].text == f'after {marker}'


def test_clock_skew_is_per_host(target):
    """The offset learned for one host leaves other hosts' signers alone."""
    signer = target.signer()
    other = _transport().oauth_for(target.credentials, '127.0.0.1:1')
    other.clock_offset = 0
    signer.clock_offset = -400

    _userinfo(target.site)

    assert abs(signer.clock_offset) <= 5
    assert other.clock_offset == 0
    assert other is not signer


# -- index.php and API texts ----------------------------------------------

@pytest.mark.parametrize('code, info, class_name', [
    ('mwoauth-invalid-authorization',
     'The authorization headers in your request are not valid: '
     'Invalid consumer', 'InvalidConsumerError'),
    ('mwoauth-invalid-authorization',
     'The authorization headers in your request are not valid: '
     'Nonce already used: abc', 'NonceUsedError'),
    ('mwoauth-invalid-authorization',
     'The authorization headers in your request are not valid: '
     'Expired timestamp, yours 100, ours 500', 'TimestampError'),
    ('mwoauth-invalid-authorization-not-approved',
     'The app that you are trying to connect seems to be set up '
     'incorrectly. Contact the author of "Bot" for help.',
     'ConsumerNotApprovedError'),
    ('mwoauth-invalid-authorization-blocked-user',
     'The authorization headers in your request are for a user who is '
     'blocked', 'OAuthError'),
])
def test_api_codes_map_to_classes(pwb, code, info, class_name):
    from pywikibot_ext.errors import error_from_api

    error = error_from_api(code, info)
    assert type(error).__name__ == class_name
    assert error.code == code


def test_timestamp_error_attributes(pwb):
    from pywikibot_ext.errors import error_from_index_php

    error = error_from_index_php(
        b'{"error":"mwoauth-oauth-exception","message":"An error occurred '
        b'in the OAuth protocol: Expired timestamp, yours 1000, ours 1400"}')
    assert type(error).__name__ == 'TimestampError'
    assert error.client_timestamp == 1000
    assert error.server_timestamp == 1400
    assert error.skew == 400
    assert '400 s behind' in str(error)


def test_index_rejection_size_limit():
    from pywikibot_ext._oauth_text import (
        MAX_INDEX_ERROR_BYTES,
        rejected_timestamp,
    )

    def reply(padding: int) -> bytes:
        return (b'{"error":"mwoauth-oauth-exception",' + b' ' * padding
                + b'"message":"An error occurred in the OAuth protocol: '
                b'Expired timestamp, yours 1000, ours 1400"}')

    fits = reply(MAX_INDEX_ERROR_BYTES - len(reply(0)))
    assert len(fits) == MAX_INDEX_ERROR_BYTES
    assert rejected_timestamp(fits, None) == (
        'mwoauth-oauth-exception',
        'Expired timestamp, yours 1000, ours 1400', 1400)
    # A larger body is not searched for index.php's error object.
    assert rejected_timestamp(fits[:1] + b' ' + fits[1:], None) is None
