"""Replacements for ``pywikibot.comms.http.fetch`` and ``request``.

Both keep the signature, the user-agent rules, the callbacks and the
encoding decision of pywikibot 11.9; only the transport differs.  The
user agent is formatted once per site, account and format string
instead of on every request.
"""
from __future__ import annotations

import codecs
import re
import threading
from urllib.parse import urlparse

import requests

import _mwcomms
import pywikibot
from pywikibot import config
from pywikibot.comms import http

from pywikibot_ext._environ import stored_value_reader
from pywikibot_ext._response import Headers, Response
from pywikibot_ext._transport import Transport

__all__ = ['MwcommsSession', 'fetch', 'request', 'transport']

_transport: Transport | None = None
_transport_lock = threading.Lock()


def transport() -> Transport:
    """Return the process-wide transport, creating it on first use."""
    global _transport
    if _transport is None:
        with _transport_lock:
            if _transport is None:
                _transport = Transport(cookie_jar=http.cookie_jar)
    return _transport


class MwcommsSession(requests.Session):

    """A requests.Session whose requests go through mwcomms.

    It replaces ``pywikibot.comms.http.session`` so that code calling the
    session directly uses the same transport and cookie jar.
    """

    def __init__(self, cookie_jar) -> None:
        super().__init__()
        self.cookies = cookie_jar

    def request(self, method, url, **kwargs):
        return transport().request(method, url, **kwargs)

    def close(self) -> None:
        # The transport outlives the session object: pywikibot closes the
        # session at exit, when no request runs any more.
        super().close()


# -- user agent -----------------------------------------------------------

_ua_cache: dict = {}


_env_get, _PYWIKIBOT_USERNAME = stored_value_reader('PYWIKIBOT_USERNAME')
_, _PWB_USERNAME = stored_value_reader('PWB_USERNAME')


def _ua_key(site, format_string):
    username = site.username() if site else None
    # http.user_agent_username() reads these variables only when the site
    # has no account name.
    environment = None if username else (
        _env_get(_PYWIKIBOT_USERNAME), _env_get(_PWB_USERNAME))
    return (id(site), format_string, username, config.user_agent_format,
            config.user_agent_description, environment,
            pywikibot.argvu[0] if pywikibot.argvu else None)


def cached_user_agent(site=None, format_string=None) -> str:
    """Return ``http.user_agent(site, format_string)``, formatted once.

    The value depends only on the inputs in the cache key; the site object
    is kept in the entry so that its id cannot be reused while cached.
    """
    key = _ua_key(site, format_string)
    entry = _ua_cache.get(key)
    if entry is None:
        entry = (site, http.user_agent(site, format_string))
        if len(_ua_cache) > 256:
            _ua_cache.clear()
        _ua_cache[key] = entry
    return entry[1]


# The inputs and the result of the last plain_user_agent() call.
_plain_ua: tuple = (object(),) * 6


def plain_user_agent() -> str:
    """Return ``cached_user_agent()``: the user agent without a site.

    The same inputs as in the cache key of cached_user_agent, compared by
    identity with those of the last call: a changed value is a new
    object, so this never returns a stale value, and the usual call
    builds no key.
    """
    global _plain_ua
    argv = pywikibot.argvu
    inputs = (config.user_agent_format, config.user_agent_description,
              _env_get(_PYWIKIBOT_USERNAME), _env_get(_PWB_USERNAME),
              argv[0] if argv else None)
    last = _plain_ua
    if (inputs[0] is last[0] and inputs[1] is last[1]
            and inputs[2] is last[2] and inputs[3] is last[3]
            and inputs[4] is last[4]):
        return last[5]
    user_agent = cached_user_agent()
    _plain_ua = (*inputs, user_agent)
    return user_agent


def _assign_fake_user_agent(use_fake_user_agent, uri):
    if config.fake_user_agent_exceptions:
        domain = urlparse(uri).netloc
        use_fake_user_agent = config.fake_user_agent_exceptions.get(
            domain, use_fake_user_agent)
    if use_fake_user_agent is False:
        return cached_user_agent()
    if use_fake_user_agent is True:
        return http.fake_user_agent()
    if use_fake_user_agent and isinstance(use_fake_user_agent, str):
        return use_fake_user_agent
    raise ValueError('Invalid parameter: '
                     f'{use_fake_user_agent=!s}')


def _assign_user_agent(user_agent_format_string):
    if not user_agent_format_string or '{' in user_agent_format_string:
        return cached_user_agent(None, user_agent_format_string)
    return user_agent_format_string


# -- authentication -------------------------------------------------------

# Marks a cache miss where None is a cached value.
_MISSING = object()

_auth_cache: dict = {}
_auth_by_uri: dict = {}
_auth_source = None
_auth_copy: dict = {}
# Counts the times the caches were dropped, so that a lookup that ran
# against an older config.authenticate is not stored after a drop.
_auth_generation = 0
_auth_lock = threading.Lock()
# A scheme that urlsplit accepts.  Only after one is the text after '//'
# the host that pywikibot looks up, so only then is the host cache used.
_SCHEME = re.compile(r'[A-Za-z][A-Za-z0-9+.\-]*:\Z')


def get_authentication(uri: str):
    """Return ``http.get_authentication(uri)``, cached per URI and host.

    The caches are dropped whenever ``config.authenticate`` is another
    dict or differs from the copy taken when they were filled, so changes
    at run time take effect.
    """
    global _auth_source, _auth_copy, _auth_generation
    authenticate = config.authenticate
    if authenticate is not _auth_source or authenticate != _auth_copy:
        with _auth_lock:
            _auth_cache.clear()
            _auth_by_uri.clear()
            _auth_generation += 1
            _auth_source = authenticate
            _auth_copy = dict(authenticate)
    generation = _auth_generation
    # The API's URI repeats from request to request: one lookup.
    value = _auth_by_uri.get(uri, _MISSING)
    if value is not _MISSING:
        return value
    parts = uri.split('/', 3)
    if (len(parts) < 3 or not parts[1] == '' or '@' in parts[2]
            or not _SCHEME.match(parts[0])):
        return http.get_authentication(uri)
    host = parts[2]
    value = _auth_cache.get(host, _MISSING)
    if value is _MISSING:
        value = http.get_authentication(uri)
    with _auth_lock:
        if generation == _auth_generation:
            _auth_cache[host] = value
            if len(_auth_by_uri) > 256:
                _auth_by_uri.clear()
            _auth_by_uri[uri] = value
    return value


# -- fetch and request ----------------------------------------------------

def request(site, uri: str | None = None, headers: dict | None = None,
            **kwargs) -> requests.Response:
    """Request to Site with default error handling and response decoding.

    Same contract as :func:`pywikibot.comms.http.request`.
    """
    kwargs.setdefault('verify', site.verify_SSL_certificate())
    if not headers:
        headers = {}
        format_string = None
    else:
        format_string = headers.get('user-agent')
    headers['user-agent'] = cached_user_agent(site, format_string)

    baseuri = site.base_url(uri, protocol=kwargs.pop('protocol', None))
    if getattr(site, '_oauth_disabled', False):
        kwargs.setdefault('auth', None)
    r = http.fetch(baseuri, headers=headers, **kwargs)
    retry_after = r.headers.get('retry-after', '0')
    site.throttle.retry_after = int(float(retry_after))
    return r


def fetch(uri: str, method: str = 'GET', headers: dict | None = None,
          default_error_handling: bool = True,
          use_fake_user_agent: bool | str = False,
          **kwargs) -> requests.Response | Exception:
    """HTTP request through mwcomms.

    Same contract as :func:`pywikibot.comms.http.fetch`: a 4-tuple in
    ``config.authenticate`` (or *auth*) is signed with OAuth 1.0a in C,
    without requests_oauthlib.
    """
    headers = (headers or {}) | config.extra_headers
    if 'user-agent' not in headers:
        if (use_fake_user_agent is False
                and not config.fake_user_agent_exceptions):
            headers['user-agent'] = plain_user_agent()
        else:
            headers['user-agent'] = _assign_fake_user_agent(
                use_fake_user_agent, uri)
    else:
        headers['user-agent'] = _assign_user_agent(headers.get('user-agent'))

    callbacks = kwargs.pop('callbacks', None)
    if callbacks:
        callbacks = list(callbacks)
    error_callback = None
    if default_error_handling:
        error_callback = http.error_handling_callback

    charset = kwargs.pop('charset', None)

    if 'auth' in kwargs:
        auth = kwargs.pop('auth')
    else:
        auth = get_authentication(uri)

    timeout = config.socket_timeout

    try:
        response = (_transport or transport()).request(
            method, uri, headers=headers, auth=auth, timeout=timeout,
            **kwargs)
    except Exception as e:
        response = e
    else:
        if kwargs.get('stream'):
            if charset is not None:
                response.encoding = charset
        else:
            response.encoding = decide_encoding(response, charset, headers)

    if error_callback is not None and not (
            error_callback is _STOCK_ERROR_CALLBACK
            and type(response) is Response
            and response.status_code in _QUIET_STATUSES):
        # pywikibot's callback neither raises nor logs for these statuses,
        # so it is skipped for them unless someone replaced it.
        error_callback(response)
    if callbacks:
        for callback in callbacks:
            callback(response)

    return response


# -- response encoding ----------------------------------------------------

_STOCK_ERROR_CALLBACK = http.error_handling_callback
# Statuses for which error_handling_callback does nothing (HTTP 200 and
# 207, see pywikibot.comms.http).
_QUIET_STATUSES = frozenset((200, 207))

# Content-Type value -> (encoding, whether its codec is UTF-8), for values
# whose encoding does not depend on the body.
_header_encodings: dict = {}


def _is_utf8_codec(encoding: str) -> bool:
    try:
        return codecs.lookup(encoding).name == 'utf-8'
    except LookupError:
        return False


def _header_encoding(response, content_type: str) -> tuple[str, bool] | None:
    """Return (encoding, whether its codec is UTF-8) that pywikibot reads
    from *content_type*, or None, and cache it when the body cannot
    change it."""
    encoding = http._get_encoding_from_response_headers(response)
    if encoding is None:
        entry = None
    else:
        entry = (encoding, _is_utf8_codec(encoding))
    # Only an xml type without a charset reads the body's declaration.
    if ('xml' not in content_type
            or http.get_charset_from_content_type(content_type)):
        if len(_header_encodings) > 256:
            _header_encodings.clear()
        _header_encodings[content_type] = entry
    return entry


def decide_encoding(response, charset, headers) -> str | None:
    """Return ``http._decide_encoding(response, charset)``, faster.

    This function decides the common case: no charset requested, no
    Accept-Charset header, a Content-Type that names the encoding, and a
    body that decodes with it.  pywikibot's function decides every other
    case, and logs or warns as it does.
    """
    if charset is not None:
        return http._decide_encoding(response, charset)
    for name in headers:
        # The length test skips the lower() of almost every name.
        if len(name) == 14 and name.lower() == 'accept-charset':
            return http._decide_encoding(response, charset)
    response_headers = response.headers
    if type(response_headers) is Headers:
        item = response_headers._store.get('content-type')
        content_type = item and item[1]
    else:
        content_type = response_headers.get('content-type')
    entry = None
    if content_type:
        entry = _header_encodings.get(content_type, _MISSING)
        if entry is _MISSING:
            entry = _header_encoding(response, content_type)
    if entry is not None:
        encoding, utf8 = entry
        # The body of a Response from the usual path is in _content.
        content = (response._content if type(response) is Response
                   else response.content)
        if utf8 and isinstance(content, bytes):
            # Checks the bytes without building the str.
            if _mwcomms.utf8_valid(content):
                return encoding
        else:
            try:
                content.decode(encoding)
            except (LookupError, UnicodeDecodeError):
                pass
            else:
                return encoding
    return http._decide_encoding(response, charset)
