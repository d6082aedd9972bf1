"""Exceptions for OAuth 1.0a requests that a MediaWiki wiki rejects.

MediaWiki's OAuth extension rejects a request with HTTP 200 and an error
body: on api.php the code ``mwoauth-invalid-authorization`` (or a code that
starts with it), on index.php (``Special:OAuth/...``) the JSON object
``{"error": "mwoauth-oauth-exception", "message": ...}``.  The functions
below turn either into one of the classes here.

Every class derives from :class:`pywikibot.exceptions.NoUsernameError`,
which is what pywikibot 11.9 raises for ``mwoauth-invalid-authorization``,
so bot code that catches NoUsernameError keeps working.  They are not
:class:`~pywikibot.exceptions.APIError` subclasses, because pywikibot
11.9 never raised APIError for these replies, and ``APISite.login()``
ignores an APIError from its first userinfo request: it would send the
same failing request once more.

Messages name the cause and what to check.  They contain the wiki's reason
text, the consumer key at most, and never a secret.
"""
from __future__ import annotations

import json
import re

from pywikibot.exceptions import NoUsernameError

from pywikibot_ext._oauth_text import (
    API_ERROR_CODE,
    API_INFO_PREFIX,
    INDEX_MESSAGE_PREFIX,
    TIMESTAMP_WINDOW_S,
    expired_timestamps,
)

__all__ = [
    'ConsumerNotApprovedError',
    'IdentifyError',
    'InvalidConsumerError',
    'InvalidSignatureError',
    'InvalidTokenError',
    'InvalidVerifierError',
    'NonceUsedError',
    'OAuthError',
    'TimestampError',
    'error_from_api',
    'error_from_index_php',
    'error_from_reason',
]

# Characters of a reply that an error message quotes at most.
MAX_QUOTED_TEXT = 300
_HTML_TAG = re.compile(r'<[^>]*>')
_HTML_SKIP = re.compile(r'<(script|style|head)\b.*?</\1\s*>',
                        re.DOTALL | re.IGNORECASE)
_WHITESPACE = re.compile(r'\s+')


class OAuthError(NoUsernameError):

    """The wiki rejected an OAuth 1.0a request, or its reply was unusable.

    :ivar reason: the wiki's reason text (``Invalid signature``, ...) or a
        description of what was wrong with the reply
    :ivar code: the API error code or ``mwoauth-oauth-exception``; None
        when the reply was not an OAuth error object
    :ivar where: the site or URL the request went to, or None
    """

    hint = ('Check the four OAuth values in user-config.py '
            '(authenticate[...]) and the consumer on the wiki.')
    #: The hint for a Special:OAuth reply (the handshake or identify),
    #: where the tokens come from the caller rather than user-config.py.
    handshake_hint = ('Check the consumer key and secret that were given '
                      'to the handshake, and the consumer on the wiki.')

    def __init__(self, reason: str, *, code: str | None = None,
                 where: object = None) -> None:
        self.reason = reason
        self.code = code
        self.where = where
        target = f' to {where}' if where is not None else ''
        super().__init__(f'OAuth request{target} failed: '
                         f'{reason.rstrip(".")}. {self.hint}')


class InvalidConsumerError(OAuthError):

    """The wiki does not know the consumer key."""

    hint = ('The consumer key (first value of authenticate[...] in '
            'user-config.py) is not registered on this wiki: check for a '
            'typo and that the consumer was registered on this wiki or on '
            'the central wiki of its farm.')
    handshake_hint = ('The consumer key that was given to the handshake is '
                      'not registered on this wiki: check for a typo.')


class ConsumerNotApprovedError(OAuthError):

    """The consumer exists but is not approved (proposed, disabled, ...)."""

    hint = ('The consumer is registered but not approved, or it was '
            'disabled: check its status on Special:OAuthListConsumers and '
            'ask an OAuth administrator to approve it.')


class InvalidTokenError(OAuthError):

    """The access or request token is unknown to the wiki or was revoked."""

    hint = ('The token is unknown to the wiki, belongs to another consumer '
            'or was revoked (Special:OAuthManageMyGrants): check the access '
            'key (third value of authenticate[...]) and run '
            '"pwb login -oauth" for a new access token.')
    handshake_hint = ('The request or access token is unknown to the wiki '
                      'or was already used: start the handshake again.')


class InvalidVerifierError(OAuthError):

    """The verifier does not belong to the request token."""

    hint = ('Paste the whole address that the wiki shows after approval, '
            'or its oauth_verifier value. A request token can be completed '
            'only once: start the handshake again.')


class InvalidSignatureError(OAuthError):

    """The wiki computed a different signature for the request."""

    hint = ('Check the consumer secret and the access secret (second and '
            'fourth values of authenticate[...]), and that the family file '
            'uses the scheme, host and port of the wiki\'s server name: '
            'the signature covers all three.')
    handshake_hint = ('Check the consumer secret that was given to the '
                      'handshake, and that the wiki address uses the scheme, '
                      'host and port of the wiki\'s server name.')


class NonceUsedError(OAuthError):

    """The wiki has seen the request's nonce before.

    mwcomms signs every attempt with a new nonce, so this means that the
    same signed request reached the wiki twice, for example through a
    proxy that repeats requests.
    """

    hint = ('Every attempt carries a new nonce, so the same signed request '
            'reached the wiki twice: check for a proxy that repeats '
            'requests.')


class TimestampError(OAuthError):

    """The wiki rejected the request's timestamp as too far from its clock.

    :ivar client_timestamp: the oauth_timestamp sent (int), or None if the
        wiki's text did not contain one that parses
    :ivar server_timestamp: the wiki's clock when it rejected the request
        (int, Unix time), or None
    """

    def __init__(self, reason: str, *, code: str | None = None,
                 where: object = None) -> None:
        self.client_timestamp, self.server_timestamp = \
            expired_timestamps(reason)
        super().__init__(reason, code=code, where=where)

    @property
    def skew(self) -> int | None:
        """Seconds that the client's timestamp was behind the wiki's clock."""
        if self.client_timestamp is None or self.server_timestamp is None:
            return None
        return self.server_timestamp - self.client_timestamp

    @property
    def hint(self) -> str:
        skew = self.skew
        if skew is None:
            difference = 'differs from the wiki\'s'
        elif skew > 0:
            difference = f'is {skew} s behind the wiki\'s'
        else:
            difference = f'is {-skew} s ahead of the wiki\'s'
        return (f'The clock of this computer {difference} and the wiki '
                f'accepts {TIMESTAMP_WINDOW_S} s: synchronise the clock '
                '(NTP). Unless pywikibot_ext.options.correct_clock_skew is '
                'False, mwcomms has already sent the request once more with '
                'the offset that the wiki reported.')


class IdentifyError(OAuthError):

    """Special:OAuth/identify returned a JWT that failed verification."""

    hint = ('The identity token (JWT) from Special:OAuth/identify did not '
            'verify: check the consumer secret, the wiki\'s address '
            '(issuer) and the clock of this computer.')


# Reason texts of Extension:OAuth (OAuthServer, OAuthDataStore and the
# i18n messages) mapped to classes; the first match wins.
_REASONS = (
    ('Invalid consumer', InvalidConsumerError),
    ('No consumer exists', InvalidConsumerError),
    ('not approved', ConsumerNotApprovedError),
    ('No approved grant was found', InvalidTokenError),
    ('No access token exists', InvalidTokenError),
    ('No token was found', InvalidTokenError),
    ('Invalid request token', InvalidTokenError),
    ('Invalid token', InvalidTokenError),
    ('verifier', InvalidVerifierError),
    ('verification code', InvalidVerifierError),
    ('Invalid signature', InvalidSignatureError),
    ('Nonce already used', NonceUsedError),
    ('Expired timestamp', TimestampError),
)

# Codes that api.php sends after "mwoauth-invalid-authorization-".
_API_CODE_SUFFIXES = {
    'not-approved': ConsumerNotApprovedError,
}


def error_from_reason(reason: str, *, code: str | None = None,
                      where: object = None) -> OAuthError:
    """Return the exception for one of MediaWiki's OAuth reason texts."""
    for text, cls in _REASONS:
        if text in reason:
            return cls(reason, code=code, where=where)
    return OAuthError(reason, code=code, where=where)


def error_from_api(code: str, info: str, *,
                   where: object = None) -> OAuthError:
    """Return the exception for an api.php ``mwoauth-invalid-authorization*``.

    *info* is the error's info text; the generic prefix is dropped from
    the reason.
    """
    reason = info.removeprefix(API_INFO_PREFIX) or code
    suffix = code.removeprefix(API_ERROR_CODE).lstrip('-')
    cls = _API_CODE_SUFFIXES.get(suffix)
    if cls is not None:
        return cls(reason, code=code, where=where)
    return error_from_reason(reason, code=code, where=where)


def error_from_index_php(body: bytes | str, *,
                         where: object = None) -> OAuthError:
    """Return the exception for a ``Special:OAuth`` reply without a token.

    The message carries the class's ``handshake_hint``: the handshake and
    identify use tokens that the caller passed, not user-config.py's.
    """
    error = _error_from_special_page(body, where=where)
    # Only classes whose hint names user-config.py define their own
    # handshake_hint; the others' hints fit the handshake as they are.
    handshake_hint = vars(type(error)).get('handshake_hint')
    if handshake_hint is not None:
        # pywikibot's Error keeps its message in .unicode.
        error.unicode = error.unicode.replace(error.hint, handshake_hint)
    return error


def _error_from_special_page(body: bytes | str, *,
                             where: object = None) -> OAuthError:
    """Return the exception for a ``Special:OAuth`` reply without a token.

    The wiki returns its errors as HTTP 200: a JSON object (``error`` and
    ``message``, or an API-style ``error`` object), an ``Error: ...`` text
    on old versions, or an HTML page.  Anything else becomes an OAuthError
    that quotes the start of the reply.
    """
    if isinstance(body, (bytes, bytearray)):
        text = bytes(body).decode('utf-8', 'replace')
    else:
        text = body
    stripped = text.strip()

    if stripped.startswith('{'):
        try:
            reply = json.loads(stripped)
        except ValueError:
            reply = None
        if isinstance(reply, dict):
            error = reply.get('error')
            if isinstance(error, dict):
                return error_from_api(str(error.get('code', API_ERROR_CODE)),
                                      str(error.get('info', '')),
                                      where=where)
            if isinstance(error, str):
                message = str(reply.get('message') or error)
                reason = message.removeprefix(INDEX_MESSAGE_PREFIX)
                return error_from_reason(reason, code=error, where=where)

    if stripped.startswith('Error: '):
        return error_from_reason(stripped[len('Error: '):][:MAX_QUOTED_TEXT],
                                 where=where)

    if stripped[:1] == '<':
        page = _HTML_SKIP.sub(' ', stripped)
        page = _WHITESPACE.sub(' ', _HTML_TAG.sub(' ', page)).strip()
        quoted = page[:MAX_QUOTED_TEXT]
        error = error_from_reason(quoted, where=where)
        if type(error) is OAuthError:
            error = OAuthError(f'the wiki returned an HTML page: {quoted!r}',
                               where=where)
        return error

    quoted = stripped[:MAX_QUOTED_TEXT]
    return OAuthError(f'unexpected reply {quoted!r}', where=where)
