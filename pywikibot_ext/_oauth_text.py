"""MediaWiki's OAuth error texts, parsed without importing pywikibot.

The transport imports this module; it must stay importable before
pywikibot has read its configuration.
"""
from __future__ import annotations

import email.utils
import json
import re
import time

__all__ = ['API_ERROR_CODE', 'API_INFO_PREFIX', 'INDEX_ERROR_CODE',
           'INDEX_MESSAGE_PREFIX', 'MAX_CLOCK_CORRECTION_S',
           'MAX_ERROR_REPLY_BYTES', 'MAX_INDEX_ERROR_BYTES',
           'TIMESTAMP_WINDOW_S', 'clock_offset', 'expired_timestamps',
           'rejected_timestamp', 'server_time_from_date']

API_ERROR_CODE = 'mwoauth-invalid-authorization'
INDEX_ERROR_CODE = 'mwoauth-oauth-exception'
# The texts that MediaWiki puts before the reason (Extension:OAuth messages
# mwoauth-invalid-authorization and mwoauth-oauth-exception).
API_INFO_PREFIX = 'The authorization headers in your request are not valid: '
INDEX_MESSAGE_PREFIX = 'An error occurred in the OAuth protocol: '
# MediaWiki rejects an oauth_timestamp more than this many seconds away
# from its own clock (OAuthServer in Extension:OAuth).
TIMESTAMP_WINDOW_S = 300

# The largest clock offset (seconds) that mwcomms corrects by itself.  A
# wiki that reports a clock further away than this is more likely
# misconfigured or a different server than the clock of this computer
# wrong by days, so the reply is passed on instead.
MAX_CLOCK_CORRECTION_S = 3 * 24 * 3600
# Largest reply parsed as an OAuth timestamp error.  MediaWiki's error
# objects are a few hundred bytes.
MAX_ERROR_REPLY_BYTES = 16384
# Largest reply parsed as index.php's error object, which holds only the
# error code and a message of about 100 characters.  Signed replies
# larger than this are not searched for its error code.
MAX_INDEX_ERROR_BYTES = 1024

_EXPIRED = re.compile(r'Expired timestamp, yours (\S+), ours (\d+)')
# The whole reason text that OAuthServer::check_timestamp writes, with the
# integer oauth_timestamp that mwcomms always sends.
_EXPIRED_EXACT = re.compile(r'Expired timestamp, yours (\d+), ours (\d+)')
INDEX_ERROR_BYTES = INDEX_ERROR_CODE.encode('ascii')


def expired_timestamps(reason: str) -> tuple[int | None, int | None]:
    """Return (client, server) Unix times from an "Expired timestamp" text.

    MediaWiki writes ``Expired timestamp, yours <client>, ours <server>``.
    A part that is missing or not an integer is None.
    """
    match = _EXPIRED.search(reason)
    if match is None:
        return None, None
    try:
        client = int(match.group(1).rstrip(','))
    except ValueError:
        client = None
    return client, int(match.group(2))


def server_time_from_date(date_header: str | None) -> int | None:
    """Return the Unix time in an HTTP Date header, or None."""
    if not date_header:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(date_header)
    except (TypeError, ValueError):
        return None
    return int(parsed.timestamp())


def clock_offset(server_time: int, now: float | None = None) -> int:
    """Return the seconds to add to this clock to match *server_time*."""
    if now is None:
        now = time.time()
    return int(round(server_time - now))


def rejected_timestamp(body: bytes, api_error: str | None
                       ) -> tuple[str, str, int] | None:
    """Return (code, reason, wiki's clock) if *body* rejects the timestamp.

    *api_error* is the reply's ``MediaWiki-API-Error`` header, or None.
    With the header, it must be exactly ``mwoauth-invalid-authorization``
    and *body* an api.php error object with that code whose info is
    API_INFO_PREFIX and the reason.  Without it, *body* must be exactly
    index.php's ``{"error": "mwoauth-oauth-exception", "message": ...}``
    with INDEX_MESSAGE_PREFIX and the reason.  The reason must be exactly
    ``Expired timestamp, yours <int>, ours <int>``.  Anything else,
    including an HTML page or page text that quotes these strings,
    returns None.
    """
    if len(body) > MAX_ERROR_REPLY_BYTES or body.lstrip()[:1] != b'{':
        return None
    # Cheap checks first, because this runs on every signed reply.
    # MediaWiki's JSON writes ASCII letters and '-' unescaped, so the
    # index.php error code appears literally in the body.
    if api_error is not None:
        if api_error.strip() != API_ERROR_CODE:
            return None
    elif len(body) > MAX_INDEX_ERROR_BYTES or INDEX_ERROR_BYTES not in body:
        return None
    try:
        reply = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(reply, dict):
        return None
    if api_error is not None:
        error = reply.get('error')
        if not isinstance(error, dict) or error.get('code') != API_ERROR_CODE:
            return None
        code = API_ERROR_CODE
        text = error.get('info')
        prefix = API_INFO_PREFIX
    else:
        if set(reply) != {'error', 'message'}:
            return None
        if reply['error'] != INDEX_ERROR_CODE:
            return None
        code = INDEX_ERROR_CODE
        text = reply['message']
        prefix = INDEX_MESSAGE_PREFIX
    if not isinstance(text, str) or not text.startswith(prefix):
        return None
    reason = text[len(prefix):]
    match = _EXPIRED_EXACT.fullmatch(reason)
    if match is None:
        return None
    return code, reason, int(match.group(2))
