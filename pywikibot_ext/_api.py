"""Replacements for two methods of ``pywikibot.data.api.Request``.

``_internal_api_error``
    pywikibot 11.9's ``Request.submit()`` calls it for an API error just
    before its own ``mwoauth-invalid-authorization`` branch, which
    raises a bare NoUsernameError and retries "Nonce already used" without
    a limit.  The replacement raises the matching class of
    :mod:`pywikibot_ext.errors` in its place and retries a used nonce at
    most ``options.max_nonce_retries`` times.  A retry is sound because
    mwcomms signs every attempt with a new nonce.  Other codes go to the
    original method.
``_use_get``
    pywikibot sends every request as POST when OAuth is on, a workaround
    it keeps for an old MediaWiki problem with signed GET requests.
    MediaWiki 1.39 with Extension:OAuth accepts signed GET requests with
    parameters in the query string.  With ``options.signed_get`` the
    decision follows pywikibot's other rules without that clause.
"""
from __future__ import annotations

import pywikibot

from pywikibot_ext import options
from pywikibot_ext._oauth_text import API_ERROR_CODE
from pywikibot_ext.errors import NonceUsedError, error_from_api

__all__ = ['wrap_internal_api_error', 'wrap_use_get']


def wrap_internal_api_error(original):
    """Return ``Request._internal_api_error`` that maps OAuth errors."""
    def _internal_api_error(self, code, error, result) -> bool:
        if API_ERROR_CODE not in code:
            return original(self, code, error, result)
        exc = error_from_api(code, str(error.get('info', '')),
                             where=self.site)
        if isinstance(exc, NonceUsedError):
            retries = getattr(self, '_mwcomms_nonce_retries', 0)
            if retries < options.max_nonce_retries:
                self._mwcomms_nonce_retries = retries + 1
                pywikibot.warning(
                    f'{exc.reason} on {self.site}; sending the request '
                    f'again with a new nonce (retry {retries + 1} of '
                    f'{options.max_nonce_retries})')
                # submit() raises APIError when an error repeats word for
                # word, as a replayed nonce does.  The count above is the
                # limit here, so that the error raised is NonceUsedError.
                self.last_error = dict.fromkeys(['code', 'info'])
                return True   # submit() sends the request again
        raise exc

    _internal_api_error.__wrapped__ = original
    return _internal_api_error


class _SiteWithoutOAuthCheck:

    """A site proxy whose ``is_oauth_token_available()`` returns False."""

    __slots__ = ('_site',)

    def __init__(self, site) -> None:
        self._site = site

    def is_oauth_token_available(self) -> bool:
        return False

    def __getattr__(self, name):
        return getattr(self._site, name)


class _RequestWithoutOAuthCheck:

    """A read-only view of a Request whose site hides its OAuth tokens.

    The original ``_use_get`` runs on this view, so pywikibot's other
    rules (https or enable_GET_without_SSL, ``use_get``, modules that
    must be posted) stay pywikibot's and nothing on the shared site
    changes, which other threads may be reading.
    """

    __slots__ = ('_request', 'site')

    def __init__(self, request) -> None:
        self._request = request
        self.site = _SiteWithoutOAuthCheck(request.site)

    def __getattr__(self, name):
        return getattr(self._request, name)


def wrap_use_get(original):
    """Return ``Request._use_get`` that allows signed GET requests."""
    def _use_get(self) -> bool:
        if options.signed_get:
            return original(_RequestWithoutOAuthCheck(self))
        return original(self)

    _use_get.__wrapped__ = original
    return _use_get
