"""The OAuth 1.0a handshake and identify of MediaWiki, without mwoauth.

::

    handshaker = Handshaker('https://wiki.example/w/index.php',
                            consumer_key, consumer_secret)
    request_token, authorize_url = handshaker.initiate()
    # The user opens authorize_url, approves, and pastes the address that
    # the wiki redirects to (or just its oauth_verifier).
    access_token = handshaker.complete(request_token, pasted)
    identity = handshaker.identify(access_token)

Requests are signed by ``_mwcomms.OAuth1`` and sent by ``_mwcomms.Client``.
The wiki returns its errors as HTTP 200 pages; they raise the classes of
:mod:`pywikibot_ext.errors`.
"""
from __future__ import annotations

import json
import secrets
import time
from typing import NamedTuple
from urllib.parse import parse_qs, urlencode, urlsplit

import _mwcomms

from pywikibot_ext._oauth_text import (
    MAX_CLOCK_CORRECTION_S,
    clock_offset,
    rejected_timestamp,
)
from pywikibot_ext.errors import (
    IdentifyError,
    InvalidVerifierError,
    OAuthError,
    error_from_index_php,
)

__all__ = ['AccessToken', 'ConsumerToken', 'Handshaker', 'RequestToken']

DEFAULT_TIMEOUT = (30, 60)   # (connect, read) seconds
DEFAULT_USER_AGENT = 'pywikibot_ext-oauth/0.1'
DEFAULT_PORTS = {'http': 80, 'https': 443}
# A token or JWT reply is short; a longer reply is an error page and only
# its start is parsed.
MAX_TOKEN_REPLY = 64 * 1024


class ConsumerToken(NamedTuple):

    """Consumer key and secret, as registered on the wiki."""

    key: str
    secret: str

    def __repr__(self) -> str:
        return f'ConsumerToken(key={self.key!r}, secret=<hidden>)'


class RequestToken(NamedTuple):

    """Temporary credentials returned by Special:OAuth/initiate."""

    key: str
    secret: str

    def __repr__(self) -> str:
        return f'RequestToken(key={self.key!r}, secret=<hidden>)'


class AccessToken(NamedTuple):

    """Access token and secret returned by Special:OAuth/token."""

    key: str
    secret: str

    def __repr__(self) -> str:
        return f'AccessToken(key={self.key!r}, secret=<hidden>)'


def canonical_origin(url: str) -> str:
    """Return scheme://host[:port] of *url*, without a default port."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or '').lower()
    if ':' in host:
        host = f'[{host}]'
    port = parts.port
    if port is None or port == DEFAULT_PORTS.get(scheme):
        return f'{scheme}://{host}'
    return f'{scheme}://{host}:{port}'


def parse_verifier(request_token: RequestToken, pasted: str) -> str:
    """Return the oauth_verifier from what the user pasted.

    *pasted* is the address the wiki redirected to after approval, its
    query string, or the bare verifier.  When it names an oauth_token,
    that must be the request token's key.
    """
    text = pasted.strip()
    if not text:
        raise InvalidVerifierError('the pasted response is empty')
    if '=' not in text:
        return text
    query = text.split('?', 1)[1] if '?' in text else text
    values = parse_qs(query.split('#', 1)[0])
    verifier = values.get('oauth_verifier', [''])[0]
    if not verifier:
        raise InvalidVerifierError(
            'the pasted response has no oauth_verifier value')
    token = values.get('oauth_token', [None])[0]
    if token is not None and token != request_token.key:
        raise InvalidVerifierError(
            f'the pasted response is for request token {token!r}, not '
            f'{request_token.key!r}')
    return verifier


class Handshaker:

    """Run MediaWiki's OAuth 1.0a handshake and identify for one consumer.

    :param index_url: the wiki's index.php, e.g.
        ``https://wiki.example/w/index.php``
    :param client: the ``_mwcomms.Client`` to send with; by default the
        handshaker makes its own, which :meth:`close` closes
    :param issuer: the ``iss`` claim expected from identify; by default
        scheme://host[:port] of *index_url*, which is MediaWiki's
        ``$wgCanonicalServer`` when the wiki is reached by its canonical
        address
    :param timeout: (connect, read) seconds for each request
    :param verify: TLS certificate check: True, False or a CA bundle path

    The wiki rejects a timestamp more than 300 s from its clock.  When it
    does, the handshaker stores the offset that the wiki reported in
    :attr:`clock_offset` and sends the request once more; later requests
    and identify's iat/exp checks use that offset.
    """

    def __init__(self, index_url: str, consumer_key: str,
                 consumer_secret: str, *, client: _mwcomms.Client | None = None,
                 issuer: str | None = None, user_agent: str | None = None,
                 timeout=DEFAULT_TIMEOUT, verify=True) -> None:
        if urlsplit(index_url).scheme not in DEFAULT_PORTS:
            raise ValueError(f'index_url must be an http or https URL of '
                             f'index.php, not {index_url!r}')
        self.index_url = index_url
        self.consumer = ConsumerToken(consumer_key, consumer_secret)
        self.issuer = canonical_origin(issuer or index_url)
        self.user_agent = user_agent or DEFAULT_USER_AGENT
        self.timeout = timeout
        self.verify = verify
        self.clock_offset = 0
        self._own_client = client is None
        self.client = _mwcomms.Client(cookies=False) if client is None \
            else client

    def __repr__(self) -> str:
        return (f'Handshaker({self.index_url!r}, '
                f'consumer_key={self.consumer.key!r})')

    def close(self) -> None:
        """Close the client if the handshaker made it."""
        if self._own_client:
            self.client.close()

    def __enter__(self) -> Handshaker:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- the steps --------------------------------------------------------

    def initiate(self) -> tuple[RequestToken, str]:
        """Obtain a request token and the URL where the user approves it.

        Calls ``Special:OAuth/initiate`` with ``oauth_callback=oob``.
        Returns (request token, authorize URL); the URL is
        ``Special:OAuth/authorize`` with ``oauth_token`` and
        ``oauth_consumer_key``.
        """
        reply, _ = self._signed_post('Special:OAuth/initiate',
                                     callback='oob')
        values = self._token_values(reply, 'Special:OAuth/initiate')
        if values.get('oauth_callback_confirmed') != 'true':
            raise OAuthError(
                'Special:OAuth/initiate did not confirm oauth_callback=oob '
                '(oauth_callback_confirmed is missing)',
                where=self.index_url)
        request_token = RequestToken(values['oauth_token'],
                                     values['oauth_token_secret'])
        authorize_url = self.index_url + '?' + urlencode({
            'title': 'Special:OAuth/authorize',
            'oauth_token': request_token.key,
            'oauth_consumer_key': self.consumer.key,
        })
        return request_token, authorize_url

    def complete(self, request_token: RequestToken,
                 response: str) -> AccessToken:
        """Exchange an approved request token for an access token.

        *response* is what the user pasted after approval: the address
        the wiki redirected to, its query string or the bare
        oauth_verifier.  Calls ``Special:OAuth/token``.
        """
        request_token = RequestToken(*request_token)
        verifier = parse_verifier(request_token, response)
        reply, _ = self._signed_post('Special:OAuth/token',
                                     token=request_token, verifier=verifier)
        values = self._token_values(reply, 'Special:OAuth/token')
        return AccessToken(values['oauth_token'],
                           values['oauth_token_secret'])

    def identify(self, access_token: AccessToken,
                 leeway: float = 30.0) -> dict:
        """Return the identity claims of the access token's user.

        Calls ``Special:OAuth/identify`` and verifies the JWT it returns:
        HS256 signature with the consumer secret, ``alg``, ``iss``,
        ``aud`` (the consumer key), ``nonce`` (the request's), and
        ``iat``/``exp`` within *leeway* seconds.  Returns the claims, the
        same dict that mwoauth.identify returns (``username``, ``sub``,
        ``groups``, ``rights``, ``grants``, ...).
        """
        access_token = AccessToken(*access_token)
        reply, nonce = self._signed_post('Special:OAuth/identify',
                                         token=access_token)
        token = reply.strip()
        if not _looks_like_jwt(token):
            raise error_from_index_php(reply, where=self.index_url)
        return self._verify_identity(token, nonce, leeway)

    # -- helpers ----------------------------------------------------------

    def _signed_post(self, title: str, *, token=None, callback=None,
                     verifier=None) -> tuple[bytes, str]:
        """POST to index.php?title=<title> signed; return (body, nonce).

        A reply that rejects the timestamp is corrected once: the offset
        the wiki reported goes to :attr:`clock_offset` and the request is
        signed again with a new nonce (the wiki uses up every nonce it receives)
        and sent once more.  The handshake steps change nothing on the
        wiki when they are rejected, so the resend is safe.
        """
        url = self.index_url + '?' + urlencode({'title': title})
        headers = [('User-Agent', self.user_agent)]
        signer = _mwcomms.OAuth1(
            self.consumer.key, self.consumer.secret,
            token.key if token else None, token.secret if token else None,
            callback=callback, verifier=verifier)
        for attempt in (1, 2):
            signer.clock_offset = self.clock_offset
            nonce = secrets.token_hex(16)
            authorization = signer.sign('POST', url, None, None, nonce=nonce)
            try:
                result = self.client.request(
                    'POST', url, headers + [('Authorization', authorization)],
                    None, timeout=self.timeout, verify=self.verify)
            except _mwcomms.Error as exc:
                raise OAuthError(f'{title} could not be reached: {exc}',
                                 where=self.index_url) from None
            body = result.body[:MAX_TOKEN_REPLY]
            if result.status != 200:
                raise OAuthError(
                    f'{title} returned HTTP {result.status} '
                    f'{result.reason}', where=self.index_url)
            if attempt == 1:
                # Only MediaWiki's exact timestamp rejection counts, as in
                # the transport: never text that merely quotes it.
                rejection = rejected_timestamp(
                    body, result.get_header('MediaWiki-API-Error'))
                if rejection is not None:
                    offset = clock_offset(rejection[2])
                    if abs(offset) <= MAX_CLOCK_CORRECTION_S:
                        self.clock_offset = offset
                        continue
            break
        return body, nonce

    def _token_values(self, reply: bytes, title: str) -> dict[str, str]:
        """Return oauth_token and its secret from a form-encoded reply."""
        text = reply.decode('utf-8', 'replace').strip()
        values = {}
        if text and text[0] not in '{<':
            values = {name: items[0] for name, items in parse_qs(text).items()}
        if not values.get('oauth_token') or \
                not values.get('oauth_token_secret'):
            error = error_from_index_php(reply, where=self.index_url)
            if type(error) is OAuthError and error.code is None:
                error = OAuthError(
                    f'{title} returned no oauth_token and '
                    f'oauth_token_secret: {error.reason}',
                    where=self.index_url)
            raise error
        return values

    def _verify_identity(self, token: str, nonce: str,
                         leeway: float) -> dict:
        try:
            header_json, payload_json = _mwcomms.jwt_verify_hs256(
                token, self.consumer.secret)
        except ValueError as exc:
            raise IdentifyError(f'the JWT did not verify: {exc}',
                                where=self.index_url) from None
        try:
            header = json.loads(header_json)
            claims = json.loads(payload_json)
        except ValueError:
            raise IdentifyError('the JWT header or payload is not JSON',
                                where=self.index_url) from None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise IdentifyError('the JWT header or payload is not a JSON '
                                'object', where=self.index_url)
        self._check_claims(header, claims, nonce, leeway)
        return claims

    def _check_claims(self, header: dict, claims: dict, nonce: str,
                      leeway: float) -> None:
        def fail(reason: str):
            raise IdentifyError(reason, where=self.index_url)

        if header.get('alg') != 'HS256':
            fail(f'the JWT algorithm is {header.get("alg")!r}, not HS256')

        issuer = claims.get('iss')
        if not isinstance(issuer, str) or \
                canonical_origin(issuer) != self.issuer:
            fail(f'the issuer is {issuer!r}, expected {self.issuer!r} '
                 '(pass issuer= if the wiki has another canonical address)')

        audience = claims.get('aud')
        audiences = audience if isinstance(audience, list) else [audience]
        if self.consumer.key not in audiences:
            fail(f'the audience is {audience!r}, not this consumer key '
                 f'{self.consumer.key!r}')

        if claims.get('nonce') != nonce:
            fail(f'the nonce is {claims.get("nonce")!r}, not the one this '
                 'request sent: the reply may be a replay')

        subject = claims.get('sub')
        if isinstance(subject, bool) or not isinstance(subject, (int, str)):
            fail(f'the subject (sub) is {subject!r}, expected the user id')

        # The wiki's clock, as far as a timestamp rejection has reported it.
        now = time.time() + self.clock_offset
        issued_at = _number_claim(claims, 'iat', fail)
        expires = _number_claim(claims, 'exp', fail)
        if issued_at > now + leeway:
            fail(f'the JWT was issued {issued_at - now:.0f} s in the '
                 f'future (leeway {leeway:g} s): check this clock')
        if expires < now - leeway:
            fail(f'the JWT expired {now - expires:.0f} s ago (leeway '
                 f'{leeway:g} s): check this clock')
        if 'nbf' in claims:
            not_before = _number_claim(claims, 'nbf', fail)
            if not_before > now + leeway:
                fail(f'the JWT is not valid for another '
                     f'{not_before - now:.0f} s (leeway {leeway:g} s)')


def _number_claim(claims: dict, name: str, fail) -> float:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        fail(f'the claim {name} is {value!r}, expected a number')
    return value


def _looks_like_jwt(reply: bytes) -> bool:
    """Return True for three base64url parts separated by two dots."""
    if reply.count(b'.') != 2:
        return False
    allowed = b'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz' \
              b'0123456789-_.'
    return not reply.translate(None, allowed) and all(reply.split(b'.')[:2])
