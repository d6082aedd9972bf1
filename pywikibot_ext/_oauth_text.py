"""MediaWiki's OAuth error texts, parsed without importing pywikibot.

The transport imports this module; it must stay importable before
pywikibot has read its configuration.
"""
from __future__ import annotations

import email.utils
import re
import time

__all__ = ['API_ERROR_CODE', 'API_INFO_PREFIX', 'INDEX_ERROR_CODE',
           'INDEX_MESSAGE_PREFIX', 'TIMESTAMP_WINDOW_S', 'clock_offset',
           'expired_timestamps', 'server_time_from_date']

API_ERROR_CODE = 'mwoauth-invalid-authorization'
INDEX_ERROR_CODE = 'mwoauth-oauth-exception'
# The texts that MediaWiki puts before the reason (Extension:OAuth messages
# mwoauth-invalid-authorization and mwoauth-oauth-exception).
API_INFO_PREFIX = 'The authorization headers in your request are not valid: '
INDEX_MESSAGE_PREFIX = 'An error occurred in the OAuth protocol: '
# MediaWiki rejects an oauth_timestamp more than this many seconds away
# from its own clock (OAuthServer in Extension:OAuth).
TIMESTAMP_WINDOW_S = 300

_EXPIRED = re.compile(r'Expired timestamp, yours (\S+), ours (\d+)')


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
