"""The OAuth handshake and identify of pywikibot_ext.oauth.

The end-to-end tests run against the local wiki's OAuth front (see
realwiki/handshake.py).  The identify checks run against a small server
started here that returns JWTs forged with PyJWT.
"""
from __future__ import annotations

import http.server
import json
import threading
import time
import urllib.parse
import uuid

import jwt
import pytest

import _mwcomms


pytestmark = pytest.mark.realwiki

FORGE_KEY = 'forge-consumer-secret-' + '0123456789abcdef' * 3
FORGE_CONSUMER = 'forge-consumer-key'


def _transport():
    from pywikibot_ext import _pywikibot
    return _pywikibot.transport()


def _handshaker(front, secret=None, key=None):
    from pywikibot_ext.oauth import Handshaker
    return Handshaker(front.url + '/w/index.php',
                      key or front.consumer_key,
                      secret or front.consumer_secret,
                      client=_transport().client)


def _approve(authorize_url):
    """Approve as the bot account; return the redirect target."""
    with _mwcomms.Client(cookies=False) as client:
        reply = client.request('GET', authorize_url + '&approve=1',
                               timeout=(10, 30))
    assert reply.status == 302
    return reply.get_header('Location')


# -- against the front ----------------------------------------------------

def test_handshake_then_edit(pwb, front):
    from pywikibot import config
    from pywikibot.exceptions import NoUsernameError

    handshaker = _handshaker(front)
    request_token, authorize_url = handshaker.initiate()

    url = urllib.parse.urlsplit(authorize_url)
    query = urllib.parse.parse_qs(url.query)
    assert authorize_url.startswith(front.url + '/w/index.php?')
    assert query['title'] == ['Special:OAuth/authorize']
    assert query['oauth_token'] == [request_token.key]
    assert query['oauth_consumer_key'] == [front.consumer_key]

    access_token = handshaker.complete(request_token,
                                       _approve(authorize_url))
    assert access_token.key != front.access_key

    identity = handshaker.identify(access_token)
    assert identity['username'] == front.username
    assert identity['aud'] == front.consumer_key
    assert identity['iss'] == front.url
    assert isinstance(identity['sub'], int)
    assert 'editpage' in identity['grants']

    # The new access token edits as the account that approved it.
    host = f'127.0.0.1:{front.port}'
    saved = config.authenticate[host]
    config.authenticate[host] = (front.consumer_key, front.consumer_secret,
                                 access_token.key, access_token.secret)
    try:
        site = pwb.Site('en', 'oauthwiki')
        site._loginstatus = pwb.login.LoginStatus.NOT_ATTEMPTED
        if hasattr(site, '_userinfo'):
            del site.userinfo
        site.login()
        title = f'User:{front.username}/handshake'
        summary = f'handshake token {uuid.uuid4().hex[:8]}'
        page = pwb.Page(site, title)
        page.text = f'Edited with a handshake access token {uuid.uuid4()}'
        page.save(summary=summary)

        latest = next(iter(pwb.Page(site, title).revisions(total=1)))
        assert latest.user == front.username
        assert latest.comment == summary

        # The front checks the access token: an unknown one is rejected.
        config.authenticate[host] = (front.consumer_key,
                                     front.consumer_secret,
                                     'not-an-access-token',
                                     access_token.secret)
        del site.userinfo
        with pytest.raises(NoUsernameError):
            site.userinfo  # noqa: B018
    finally:
        config.authenticate[host] = saved


@pytest.mark.parametrize('form', ['url', 'query', 'verifier'])
def test_complete_pasted_forms(pwb, front, form):
    handshaker = _handshaker(front)
    request_token, authorize_url = handshaker.initiate()
    location = _approve(authorize_url)
    query = urllib.parse.urlsplit(location).query
    pasted = {
        'url': location,
        'query': query,
        'verifier': urllib.parse.parse_qs(query)['oauth_verifier'][0],
    }[form]

    access_token = handshaker.complete(request_token, pasted)

    assert handshaker.identify(access_token)['username'] == front.username


def test_complete_wrong_request_token(pwb, front):
    from pywikibot_ext.errors import InvalidVerifierError
    from pywikibot_ext.oauth import RequestToken

    handshaker = _handshaker(front)
    with pytest.raises(InvalidVerifierError) as excinfo:
        handshaker.complete(RequestToken('mine', 'secret-value'),
                            'oauth_verifier=v&oauth_token=other')
    assert "'other'" in str(excinfo.value)
    assert 'secret-value' not in str(excinfo.value)


def test_complete_wrong_verifier(pwb, front):
    from pywikibot_ext.errors import InvalidVerifierError

    handshaker = _handshaker(front)
    request_token, authorize_url = handshaker.initiate()
    _approve(authorize_url)
    with pytest.raises(InvalidVerifierError) as excinfo:
        handshaker.complete(request_token, 'not-the-verifier')
    assert excinfo.value.code == 'mwoauth-oauth-exception'


def test_initiate_wrong_secret(pwb, front):
    from pywikibot.exceptions import NoUsernameError
    from pywikibot_ext.errors import InvalidSignatureError

    handshaker = _handshaker(front, secret='wrong-consumer-secret')
    with pytest.raises(InvalidSignatureError) as excinfo:
        handshaker.initiate()
    assert isinstance(excinfo.value, NoUsernameError)
    assert excinfo.value.reason == 'Invalid signature'
    assert 'wrong-consumer-secret' not in str(excinfo.value)


def test_initiate_unknown_consumer(pwb, front):
    from pywikibot_ext.errors import InvalidConsumerError

    handshaker = _handshaker(front, key='unknown-consumer')
    with pytest.raises(InvalidConsumerError) as excinfo:
        handshaker.initiate()
    assert excinfo.value.reason == 'Invalid consumer key'


def test_identify_revoked_token(pwb, front):
    from pywikibot_ext.errors import InvalidTokenError
    from pywikibot_ext.oauth import AccessToken

    handshaker = _handshaker(front)
    with pytest.raises(InvalidTokenError) as excinfo:
        handshaker.identify(AccessToken('revoked-token', 'revoked-secret'))
    assert 'No approved grant' in excinfo.value.reason
    assert 'revoked-secret' not in str(excinfo.value)


def test_handshake_corrects_clock(pwb, front):
    handshaker = _handshaker(front)
    handshaker.clock_offset = -400
    requests_before = _transport().client.stats['requests']

    request_token, _ = handshaker.initiate()

    assert _transport().client.stats['requests'] - requests_before == 2
    assert abs(handshaker.clock_offset) <= 5
    assert request_token.key


def test_token_reprs_hide_secrets(pwb):
    from pywikibot_ext.oauth import AccessToken, ConsumerToken, RequestToken

    for cls in (AccessToken, ConsumerToken, RequestToken):
        token = cls('the-key', 'the-secret')
        assert 'the-key' in repr(token)
        assert 'the-secret' not in repr(token)
        assert token.secret == 'the-secret'
        assert tuple(token) == ('the-key', 'the-secret')


# -- identify against forged tokens ---------------------------------------

class IdentifyHandler(http.server.BaseHTTPRequestHandler):
    """Serve Special:OAuth/identify with the reply the test chose."""

    protocol_version = 'HTTP/1.1'

    def log_message(self, format, *args):
        pass

    def do_POST(self):
        length = int(self.headers.get('Content-Length') or 0)
        if length:
            self.rfile.read(length)
        authorization = self.headers.get('Authorization', '')
        params = dict(urllib.parse.parse_qsl(
            authorization[len('OAuth '):].replace('", ', '"&')
            .replace('"', '')))
        self.server.requests.append(params)
        body, content_type = self.server.reply(params)
        self.send_response(200)
        self.send_header('Content-Type', content_type)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def identify_server():
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0),
                                             IdentifyHandler)
    server.daemon_threads = True
    server.requests = []
    server.reply = None
    thread = threading.Thread(target=server.serve_forever,
                              kwargs={'poll_interval': 0.1}, daemon=True)
    thread.start()
    server.origin = f'http://127.0.0.1:{server.server_address[1]}'
    yield server
    server.shutdown()
    server.server_close()


def _claims(server, request_nonce, **changes):
    now = int(time.time())
    claims = {
        'iss': server.origin, 'aud': FORGE_CONSUMER, 'sub': 42,
        'iat': now, 'exp': now + 100, 'nonce': request_nonce,
        'username': 'Forged', 'grants': ['basic'],
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _jwt_reply(server, key=FORGE_KEY, algorithm='HS256', **changes):
    def reply(params):
        claims = _claims(server, params.get('oauth_nonce'), **changes)
        token = jwt.encode(claims, key, algorithm=algorithm)
        return token.encode(), 'application/json; charset=utf-8'
    return reply


def _identify(pwb, server, **kwargs):
    from pywikibot_ext.oauth import AccessToken, Handshaker

    with Handshaker(server.origin + '/w/index.php', FORGE_CONSUMER,
                    FORGE_KEY, **kwargs) as handshaker:
        return handshaker.identify(AccessToken('at', 'at-secret'))


def test_identify_forged_valid(pwb, identify_server):
    identify_server.reply = _jwt_reply(identify_server)
    identity = _identify(pwb, identify_server)
    assert identity['username'] == 'Forged'
    assert identity['sub'] == 42
    assert identity['nonce'] == identify_server.requests[0]['oauth_nonce']


@pytest.mark.parametrize('case, changes, expected', [
    ('secret', {'key': 'another-consumer-secret-' + '0123456789' * 5},
     'did not verify'),
    ('issuer', {'iss': 'http://127.0.0.1:1'}, 'issuer'),
    ('audience', {'aud': 'another-consumer'}, 'audience'),
    ('nonce', {'nonce': 'an-old-nonce'}, 'nonce'),
    ('expired', {'iat': int(time.time()) - 500,
                 'exp': int(time.time()) - 400}, 'expired'),
    ('future', {'iat': int(time.time()) + 400,
                'exp': int(time.time()) + 500}, 'future'),
    ('algorithm', {'algorithm': 'HS512'}, None),
    ('subject', {'sub': [1]}, 'subject'),
    ('no-expiry', {'exp': None}, 'claim exp'),
])
def test_identify_rejects_forged(pwb, identify_server, case, changes,
                                 expected):
    from pywikibot_ext.errors import IdentifyError

    identify_server.reply = _jwt_reply(identify_server, **changes)
    with pytest.raises(IdentifyError) as excinfo:
        _identify(pwb, identify_server)
    if expected is not None:
        assert expected in str(excinfo.value)
    assert FORGE_KEY not in str(excinfo.value)


def test_identify_rejects_header_alg(pwb, identify_server):
    """A header that names another algorithm fails even if HS256 signed."""
    import base64
    import hashlib
    import hmac

    from pywikibot_ext.errors import IdentifyError

    def encode(data):
        raw = json.dumps(data).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b'=')

    def reply(params):
        head = encode({'alg': 'HS384', 'typ': 'JWT'})
        body = encode(_claims(identify_server, params['oauth_nonce']))
        signature = hmac.new(FORGE_KEY.encode(), head + b'.' + body,
                             hashlib.sha256).digest()
        token = b'.'.join([head, body, base64.urlsafe_b64encode(
            signature).rstrip(b'=')])
        return token, 'application/json'

    identify_server.reply = reply
    with pytest.raises(IdentifyError) as excinfo:
        _identify(pwb, identify_server)
    assert 'HS384' in str(excinfo.value)


def test_identify_leeway_accepts_skew(pwb, identify_server):
    now = int(time.time())
    identify_server.reply = _jwt_reply(identify_server, iat=now + 20,
                                       exp=now + 120)
    assert _identify(pwb, identify_server)['username'] == 'Forged'


def test_identify_given_issuer(pwb, identify_server):
    from pywikibot_ext.errors import IdentifyError

    identify_server.reply = _jwt_reply(identify_server,
                                       iss='https://wiki.example')
    with pytest.raises(IdentifyError):
        _identify(pwb, identify_server)
    identity = _identify(pwb, identify_server, issuer='https://wiki.example')
    assert identity['iss'] == 'https://wiki.example'


@pytest.mark.parametrize('body, content_type, error_name', [
    (json.dumps({'error': 'mwoauth-oauth-exception',
                 'message': 'An error occurred in the OAuth protocol: '
                            'Invalid signature'}),
     'application/json', 'InvalidSignatureError'),
    (json.dumps({'error': 'mwoauth-oauth-exception',
                 'message': 'An error occurred in the OAuth protocol: '
                            'No approved grant was found for that '
                            'authorization token.'}),
     'application/json', 'InvalidTokenError'),
    ('<!DOCTYPE html><html><head><title>Error</title></head><body>'
     '<p>Invalid consumer</p></body></html>',
     'text/html', 'InvalidConsumerError'),
    ('<html><body><h1>Application Connection Error</h1></body></html>',
     'text/html', 'OAuthError'),
    ('Error: Nonce already used: abc', 'text/plain', 'NonceUsedError'),
])
def test_identify_error_pages(pwb, identify_server, body, content_type,
                              error_name):
    from pywikibot_ext import errors

    identify_server.reply = lambda params: (body.encode(), content_type)
    with pytest.raises(errors.OAuthError) as excinfo:
        _identify(pwb, identify_server)
    assert type(excinfo.value).__name__ == error_name
    assert 'at-secret' not in str(excinfo.value)


def test_identify_corrects_clock(pwb, identify_server):
    """After one expired-timestamp reply, identify resends and succeeds."""
    server_time = int(time.time()) + 600
    valid = _jwt_reply(identify_server, iat=server_time,
                       exp=server_time + 100)

    def reply(params):
        if len(identify_server.requests) == 1:
            message = ('An error occurred in the OAuth protocol: Expired '
                       f'timestamp, yours {params["oauth_timestamp"]}, '
                       f'ours {server_time}')
            return (json.dumps({'error': 'mwoauth-oauth-exception',
                                'message': message}).encode(),
                    'application/json')
        return valid(params)

    identify_server.reply = reply
    identity = _identify(pwb, identify_server)

    assert identity['username'] == 'Forged'
    assert len(identify_server.requests) == 2
    first, second = identify_server.requests
    assert first['oauth_nonce'] != second['oauth_nonce']
    assert abs(int(second['oauth_timestamp']) - server_time) <= 5


@pytest.mark.parametrize('body', [
    '<html><body><p>Expired timestamp, yours 1, ours 2000000000</p>'
    '</body></html>',
    'Error: An error occurred in the OAuth protocol: Expired timestamp, '
    'yours 1, ours 2000000000',
    json.dumps({'error': 'mwoauth-oauth-exception',
                'message': 'An error occurred in the OAuth protocol: '
                           'Expired timestamp, yours 1, ours 2000000000',
                'extra': 'page text'}),
])
def test_identify_lookalike_not_resent(pwb, identify_server, body):
    """Only MediaWiki's exact timestamp rejection makes identify resend."""
    from pywikibot_ext import errors

    identify_server.reply = lambda params: (body.encode(), 'text/html')
    with pytest.raises(errors.OAuthError):
        _identify(pwb, identify_server)
    assert len(identify_server.requests) == 1
