"""OAuth 1.0a handshake and identify endpoints of the front.

Served on ``/w/index.php?title=Special:OAuth/<step>`` like Extension:OAuth:

initiate
    Signed with the consumer only; ``oauth_callback`` must be exactly
    ``oob``.  Returns ``oauth_token=..&oauth_token_secret=..
    &oauth_callback_confirmed=true``.
authorize
    The user's approval, normally a form in the browser.  Test-only
    shortcut: ``GET ...Special:OAuth/authorize&oauth_token=T
    &oauth_consumer_key=C&approve=1`` approves the request token as the
    bot account and responds with ``302`` to ``Special:OAuth/verified`` with
    ``oauth_verifier`` and ``oauth_token`` in the query (as MediaWiki does
    for oob consumers), with the same two values as a JSON body.  Without
    ``approve=1`` it returns a JSON description of the request.
token
    Signed with the request token and ``oauth_verifier``; returns
    ``oauth_token=..&oauth_token_secret=..`` of a new access token.
identify
    Signed with an access token; returns a bare JWT (HS256, key = consumer
    secret) about the bot account, labelled application/json.

Errors use the index.php format ``{"error": "mwoauth-oauth-exception",
"message": "An error occurred in the OAuth protocol: <reason>"}``.
"""

import json
import logging
import time
import urllib.parse

import jwt
from oauthlib.oauth1 import (AccessTokenEndpoint, AuthorizationEndpoint,
                             RequestTokenEndpoint, SignatureOnlyEndpoint)

from oauth_front import (UNKNOWN_REQUEST_TOKEN, FrontValidator, OAuthFailure,
                         body_text, check_request_parameters,
                         header_oauth_params, oauthlib_headers)

log = logging.getLogger('oauth_front')

JWT_LIFETIME_S = 100
CALLBACK_ERROR = ('oauth_callback must be set, and must be set to "oob" '
                  '(case-sensitive)')
# NOTE: the text for a wrong verifier was not observed on a real wiki; it is
# the front's own wording.
BAD_VERIFIER = 'Provided verifier does not match the request token'


class HandshakeValidator(FrontValidator):
    """FrontValidator plus the request-token and verifier hooks."""

    def get_request_token_secret(self, client_key, token, request):
        record = self.registry.request_tokens.get(token)
        if record is None or record['consumer'] != client_key:
            return 'dummy-secret'
        return record['secret']

    @property
    def dummy_request_token(self):
        return 'dummy-request-token'

    def check_request_token(self, request_token):
        return True

    def check_verifier(self, verifier):
        return True

    def get_default_realms(self, client_key, request):
        return []

    def get_realms(self, token, request):
        return []

    def validate_requested_realms(self, client_key, realms, request):
        return True

    def validate_redirect_uri(self, client_key, redirect_uri, request):
        # The "oob" rule is applied after the signature check, as MediaWiki
        # does, by Handshake.initiate().
        return True

    def get_redirect_uri(self, token, request):
        return 'oob'

    def verify_request_token(self, token, request):
        return token in self.registry.request_tokens

    def validate_request_token(self, client_key, token, request):
        record = self.registry.request_tokens.get(token)
        return record is not None and record['consumer'] == client_key

    def validate_verifier(self, client_key, token, verifier, request):
        record = self.registry.request_tokens.get(token)
        return record is not None and record['verifier'] == verifier

    def save_request_token(self, token, request):
        with self.registry.lock:
            self.registry.request_tokens[token['oauth_token']] = {
                'secret': token['oauth_token_secret'],
                'consumer': request.client_key,
                'callback': request.redirect_uri,
                'verifier': None,
            }

    def save_verifier(self, token, verifier, request):
        with self.registry.lock:
            self.registry.request_tokens[token]['verifier'] = \
                verifier['oauth_verifier']

    def save_access_token(self, token, request):
        with self.registry.lock:
            self.registry.access_tokens[token['oauth_token']] = {
                'secret': token['oauth_token_secret'],
                'consumer': request.client_key,
            }

    def invalidate_request_token(self, client_key, request_token, request):
        with self.registry.lock:
            self.registry.request_tokens.pop(request_token, None)


def mw_timestamp(iso):
    """Convert '2026-12-04T16:30:51Z' to MediaWiki's '20261204163051'."""
    return ''.join(c for c in iso if c.isdigit())[:14] if iso else None


class Handshake:
    """Dispatcher for Special:OAuth/<step> on the front."""

    STEPS = ('initiate', 'authorize', 'token', 'identify', 'verified')

    def __init__(self, server):
        self.server = server
        validator = HandshakeValidator(server.registry)
        self.request_token_endpoint = RequestTokenEndpoint(validator)
        self.authorization_endpoint = AuthorizationEndpoint(validator)
        self.access_token_endpoint = AccessTokenEndpoint(validator)
        self.signature_endpoint = SignatureOnlyEndpoint(validator)

    def step(self, path, params):
        """Return the Special:OAuth subpage addressed, or None."""
        title = params.get('title')
        if title is None and '/index.php/' in path:
            title = urllib.parse.unquote(path.split('/index.php/', 1)[1])
        if not title:
            return None
        prefix, _, sub = title.replace(' ', '_').partition('/')
        if prefix.lower() != 'special:oauth' or sub not in self.STEPS:
            return None
        return sub

    def handles(self, path, params):
        on_index_php = path.endswith('/index.php') or '/index.php/' in path
        return on_index_php and self.step(path, params) is not None

    def dispatch(self, handler, path, params, body):
        step = self.step(path, params)
        if step is None:
            return None
        try:
            return getattr(self, step)(handler, params, body)
        except OAuthFailure as failure:
            handler.send_oauth_failure('index', params, failure.reason)
            return 'Special:OAuth/%s rejected: %s' % (step, failure.reason)

    # -- helpers --

    def uri(self, handler):
        return self.server.origin + handler.path

    def oauth_params(self, handler):
        authorization = handler.headers.get('Authorization', '')
        if authorization[:6].lower() != 'oauth ':
            raise OAuthFailure('Invalid consumer key')
        return header_oauth_params(authorization)

    def signature_is_valid(self, handler, body):
        valid, _ = self.signature_endpoint.validate_request(
            self.uri(handler), handler.command, body_text(body),
            oauthlib_headers(handler.headers))
        return valid

    def send_text(self, handler, text):
        handler.send_reply(200, 'OK', [
            ('Content-Type', 'text/plain; charset=UTF-8'),
            ('Cache-Control', 'private, must-revalidate, max-age=0')],
            text.encode())

    # -- steps --

    def initiate(self, handler, params, body):
        oauth = self.oauth_params(handler)
        check_request_parameters(self.server.registry, oauth, None,
                                 index_php=True)
        callback = oauth.get('oauth_callback')
        if not callback:
            # oauthlib stops early without a callback; check the signature
            # alone so the reason matches MediaWiki's order.
            if not self.signature_is_valid(handler, body):
                raise OAuthFailure('Invalid signature')
            raise OAuthFailure(CALLBACK_ERROR)
        headers, token_body, status = \
            self.request_token_endpoint.create_request_token_response(
                self.uri(handler), handler.command, body_text(body),
                oauthlib_headers(handler.headers))
        if status != 200:
            raise OAuthFailure('Invalid signature')
        token = dict(urllib.parse.parse_qsl(token_body))
        if callback != 'oob':
            self.server.registry.request_tokens.pop(token['oauth_token'], None)
            raise OAuthFailure(CALLBACK_ERROR)
        self.send_text(handler, token_body)
        return 'Special:OAuth/initiate: request token issued'

    def authorize(self, handler, params, body):
        token = params.get('oauth_token', '')
        record = self.server.registry.request_tokens.get(token)
        if record is None or record['consumer'] != params.get(
                'oauth_consumer_key'):
            raise OAuthFailure(UNKNOWN_REQUEST_TOKEN % token)
        if params.get('approve') != '1':
            handler.send_json({'authorize': {
                'consumer': record['consumer'], 'oauth_token': token,
                'user': self.server.bot.userinfo.get('name'),
                'approve': 'add approve=1 to the query to approve as this user',
            }})
            return 'Special:OAuth/authorize: approval page'
        uri = '%s/w/index.php?%s' % (self.server.origin, urllib.parse.urlencode(
            {'title': 'Special:OAuth/authorize', 'oauth_token': token}))
        _, verifier_body, _ = \
            self.authorization_endpoint.create_authorization_response(uri)
        verifier = dict(urllib.parse.parse_qsl(verifier_body))
        location = '%s/w/index.php?%s' % (self.server.origin, urllib.parse.urlencode({
            'title': 'Special:OAuth/verified',
            'oauth_verifier': verifier['oauth_verifier'],
            'oauth_token': token}))
        payload = json.dumps({'oauth_verifier': verifier['oauth_verifier'],
                              'oauth_token': token}).encode()
        handler.send_reply(302, 'Found', [
            ('Location', location),
            ('Content-Type', 'application/json; charset=utf-8')], payload)
        return 'Special:OAuth/authorize: approved'

    def verified(self, handler, params, body):
        handler.send_json({'oauth_verifier': params.get('oauth_verifier'),
                           'oauth_token': params.get('oauth_token')})
        return 'Special:OAuth/verified'

    def token(self, handler, params, body):
        registry = self.server.registry
        oauth = self.oauth_params(handler)
        request_token = oauth.get('oauth_token', '')
        check_request_parameters(registry, oauth, 'request', index_php=True)
        headers, token_body, status = \
            self.access_token_endpoint.create_access_token_response(
                self.uri(handler), handler.command, body_text(body),
                oauthlib_headers(handler.headers))
        if status != 200:
            record = registry.request_tokens.get(request_token)
            if record and record['verifier'] and \
                    record['verifier'] == oauth.get('oauth_verifier'):
                raise OAuthFailure('Invalid signature')
            raise OAuthFailure(BAD_VERIFIER)
        token = dict(urllib.parse.parse_qsl(token_body))
        self.send_text(handler, urllib.parse.urlencode({
            'oauth_token': token['oauth_token'],
            'oauth_token_secret': token['oauth_token_secret']}))
        return 'Special:OAuth/token: access token issued'

    def identify(self, handler, params, body):
        consumer_key = handler.verify('index', body)
        oauth = self.oauth_params(handler)
        bot = self.server.bot
        info = bot.api(bot.copy_cookies(), 'GET', {
            'action': 'query', 'meta': 'userinfo', 'format': 'json',
            'uiprop': 'groups|rights|editcount|registrationdate|blockinfo'
                      '|email'})['query']['userinfo']
        now = int(time.time())
        consumer = self.server.registry.consumers[consumer_key]
        claims = {
            'iss': self.server.origin,
            'aud': consumer_key,
            'sub': int(info['id']),
            'iat': now,
            'exp': now + JWT_LIFETIME_S,
            'nonce': oauth.get('oauth_nonce'),
            'username': info['name'],
            'editcount': int(info.get('editcount', 0)),
            'confirmed_email': 'emailauthenticated' in info,
            'blocked': 'blockid' in info,
            'registered': mw_timestamp(info.get('registrationdate')),
            'groups': info.get('groups', []),
            'rights': info.get('rights', []),
            'grants': consumer['grants'],
        }
        token = jwt.encode(claims, consumer['secret'], algorithm='HS256')
        handler.send_reply(200, 'OK', [
            ('Content-Type', 'application/json; charset=utf-8'),
            ('Cache-Control', 'private, must-revalidate, max-age=0')],
            token.encode())
        return 'Special:OAuth/identify: JWT for %s' % info['name']


def install(server):
    """Serve the handshake steps on server (a FrontServer)."""
    server.handshake = Handshake(server)
