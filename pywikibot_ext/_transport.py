"""Send requests through ``_mwcomms`` with the semantics of requests.

:class:`Transport` accepts the arguments of ``requests.Session.request``,
follows redirects the way requests does, keeps cookies in pywikibot's
cookie jar, signs OAuth 1.0a natively and raises the exceptions of
``requests.exceptions``, so that pywikibot's error handling works
unchanged.
"""
from __future__ import annotations

import base64
import json as jsonlib
import re
import threading
import time
from collections.abc import Mapping
from urllib.parse import urljoin, urlsplit

import requests
from requests import exceptions as rexc
from requests.models import RequestEncodingMixin
from requests.utils import requote_uri, super_len

import _mwcomms

from pywikibot_ext import _log, options
from pywikibot_ext._oauth_text import (
    INDEX_ERROR_BYTES,
    MAX_CLOCK_CORRECTION_S,
    MAX_INDEX_ERROR_BYTES,
    clock_offset,
    rejected_timestamp,
)
from pywikibot_ext._cookies import jar_cookie_header
from pywikibot_ext._environ import environ_dict, getenv, stored_value_reader
from pywikibot_ext._multipart import multipart_body
from pywikibot_ext._proxy import _proxy_environment_set, select_proxy
from pywikibot_ext._response import (
    CookieResponse,
    Headers,
    Response,
    StreamedResponse,
    cookie_request,
    make_headers,
    send_header_map,
    make_request,
)

__all__ = ['Transport', 'to_requests_exception']


# Status codes after which requests follows the Location header.
REDIRECT_STATUSES = frozenset((301, 302, 303, 307, 308))
DEFAULT_PORTS = {'http': 80, 'https': 443}
MAX_REDIRECTS = 30  # requests.models.DEFAULT_REDIRECT_LIMIT

# Characters that may appear in a URL as pywikibot builds it; anything
# else is quoted by requote_uri, as requests does in prepare_url.
_SAFE_URL = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*\Z")

# Body types sent as they are, without _prepare_body.
_PLAIN_BODIES = (str, bytes)
# URLs that _SAFE_URL matched, so that a URL sent again is not matched
# again.  _netlocs maps signed URLs to their hosts (see _netloc).  Both
# are cleared when they grow large.
_safe_urls: dict = {}
_netlocs: dict = {}

# libcurl error codes that the messages below single out.
CURLE_COULDNT_RESOLVE_PROXY = 5
CURLE_COULDNT_RESOLVE_HOST = 6
CURLE_COULDNT_CONNECT = 7
CURLE_PEER_FAILED_VERIFICATION = 60
CURLE_SSL_CACERT_BADFILE = 77


class Transport:

    """A shared ``_mwcomms.Client`` plus the request semantics of requests.

    One instance serves every thread: ``_mwcomms.Client`` hands each
    concurrent request its own libcurl handle.
    """

    def __init__(self, cookie_jar=None) -> None:
        # Cookies live in pywikibot's jar (saved as pywikibot-<user>.lwp),
        # not in libcurl's cookie engine.
        self.client = _mwcomms.Client(cookies=False)
        self.cookie_jar = cookie_jar
        self.max_redirects = MAX_REDIRECTS
        # As requests.Session.trust_env: read the proxy variables.
        self.trust_env = True
        self._oauth = {}
        self._oauth_lock = threading.Lock()

    def close(self) -> None:
        self.client.close()

    # -- credentials ------------------------------------------------------

    def oauth_for(self, credentials: tuple,
                  host: str | None = None) -> _mwcomms.OAuth1:
        """Return the cached OAuth1 signer for a 4-tuple of tokens.

        Each host gets its own signer, so that the clock offset learned
        from one wiki (see :meth:`request`) applies to that wiki only.
        """
        key = (credentials, host)
        signer = self._oauth.get(key)
        if signer is None:
            if not all(isinstance(item, str) for item in credentials):
                raise TypeError(
                    'OAuth credentials must be four str values: consumer '
                    'key, consumer secret, access key, access secret')
            signer = _mwcomms.OAuth1(*credentials)
            with self._oauth_lock:
                signer = self._oauth.setdefault(key, signer)
        return signer

    # -- the request ------------------------------------------------------

    def request(self, method: str, url: str, params=None, data=None,
                headers=None, cookies=None, files=None, auth=None,
                timeout=None, allow_redirects: bool = True, proxies=None,
                hooks=None, stream=None, verify=None, cert=None,
                json=None, progress=None) -> Response:
        """Send a request; the arguments are those of requests.Session.

        With OAuth, a reply that rejects the timestamp (``Expired
        timestamp``) sets the signer's ``clock_offset`` to the wiki's clock
        and sends the request once more, unless
        ``pywikibot_ext.options.correct_clock_skew`` is False.  This also
        changes an ``_mwcomms.OAuth1`` passed as *auth*.  Only MediaWiki's
        exact error objects count (see :func:`rejected_timestamp`).  The
        offset must stay within MAX_CLOCK_CORRECTION_S and the body must
        be rewindable, or else the reply is returned as it is.  Streamed
        responses are not checked for it.

        *progress* (not a requests argument) is called as
        ``progress(bytes_read, total)`` while the body of a ``stream=True``
        response is read; it defaults to
        ``pywikibot_ext.options.download_progress``.
        """
        response = None
        if (not params and files is None and json is None and cookies is None
                and not hooks and not stream and not cert and proxies is None
                and (data is None or type(data) in _PLAIN_BODIES)
                and (verify is None or verify is True)
                and (auth is None or (type(auth) is tuple and len(auth) == 4))
                and type(method) is str):
            usual = self._send_usual(method, url, data, headers, auth,
                                     timeout)
            if usual is not None:
                response = usual[0]
                status = response.status_code
                # A redirect to follow or a possible timestamp rejection
                # (see below) continue on the general path.
                if not ((allow_redirects and status in REDIRECT_STATUSES)
                        or (usual[5] is not None and status == 200
                            and options.correct_clock_skew
                            and ('mediawiki-api-error'
                                 in response.headers._store
                                 or (len(response._content)
                                     <= MAX_INDEX_ERROR_BYTES
                                     and INDEX_ERROR_BYTES
                                     in response._content)))):
                    return response
                _, method, url, store, body, signer, verify = usual
                send_headers = Headers.__new__(Headers)
                send_headers._store = store
                body_position = None
        if response is None:
            if cert:
                raise NotImplementedError(
                    'mwcomms does not support TLS client certificates '
                    '(cert)')
            method, url, send_headers, body, signer, verify, progress = (
                self._prepare(method, url, params, data, headers, files,
                              auth, verify, json, stream, progress))
            body_position = (None if body is None
                             or type(body) in _PLAIN_BODIES
                             else _body_position(body))

        history = []
        clock_corrected = False
        while True:
            if response is None:
                proxy = select_proxy(url, proxies, self.trust_env)
                response = self._send_once(method, url, send_headers, body,
                                           signer, cookies, timeout, verify,
                                           proxy, stream, progress)
            # The header and body checks are the cheap first steps of
            # rejected_timestamp, done here for every signed reply.
            if (signer is not None and not clock_corrected and not stream
                    and response.status_code == 200
                    and options.correct_clock_skew
                    and ('mediawiki-api-error' in response.headers._store
                         or (len(response._content) <= MAX_INDEX_ERROR_BYTES
                             and INDEX_ERROR_BYTES in response._content))
                    and self._correct_rejected_clock(response, signer, url,
                                                     body, body_position)):
                # The wiki checks the OAuth header in its session provider,
                # before the API module or special page runs, so a request
                # rejected for its timestamp changed nothing and even a
                # POST edit can be sent again.  The C client signs each
                # call with a new nonce and timestamp, and clock_corrected
                # limits this to one resend per request.
                clock_corrected = True
                response = None
                continue
            location = None
            if allow_redirects and response.status_code in REDIRECT_STATUSES:
                location = response.headers.get('location')
            if not location:
                break
            if len(history) >= self.max_redirects:
                response.history = history
                raise rexc.TooManyRedirects(
                    f'Exceeded {self.max_redirects} redirects.',
                    response=response)
            if stream:
                # As requests does: read the redirect's body, so that its
                # connection can be reused, then end the transfer.
                response.content  # noqa: B018
                response.close()
            history.append(response)
            new_url = self._redirect_target(url, location)
            method, body = self._redirect_method(response.status_code,
                                                 method, body, send_headers)
            if body is not None:
                _rewind_body(body, body_position)
            if self._should_strip_auth(url, new_url):
                send_headers.pop('Authorization', None)
                signer = None
            send_headers.pop('Cookie', None)
            url = new_url
            response = None

        response.history = history
        if hooks:
            for hook in hooks.get('response', ()):
                result = hook(response)
                if result is not None:
                    response = result
        return response

    def _prepare(self, method, url, params, data, headers, files, auth,
                 verify, json, stream, progress):
        """Return (method, url, headers, body, signer, verify, progress)
        as the request sends them."""
        method = method.upper()
        if not _SAFE_URL.match(url):
            url = requote_uri(url)
        if params:
            prepared = requests.PreparedRequest()
            prepared.prepare_url(url, params)
            url = prepared.url

        send_headers = send_header_map(headers.items() if headers else ())
        # The tests on type() below skip the general helpers for the usual
        # cases: no body or a str or bytes body, no auth or an OAuth
        # 4-tuple, and verify left on.
        if (files or json is not None
                or not (data is None or type(data) in _PLAIN_BODIES)):
            body = self._prepare_body(send_headers, data, files, json)
        else:
            body = data
        if auth is None:
            signer = None
        elif type(auth) is tuple and len(auth) == 4:
            signer = self.oauth_for(auth, _netloc(url))
        else:
            if callable(auth) and not isinstance(auth, _mwcomms.OAuth1):
                url, body = self._run_auth_hook(auth, method, url,
                                                send_headers, body)
                auth = None
            signer, basic = self._prepare_auth(auth, method, url,
                                               send_headers, body)
            if basic is not None:
                send_headers['Authorization'] = basic
        verify = self._verify_option(verify)
        if stream and progress is None:
            progress = options.download_progress
        return method, url, send_headers, body, signer, verify, progress

    def _send_usual(self, method, url, data, headers, auth, timeout):
        """Send the usual request of pywikibot in few Python steps.

        The caller has checked that there are no params, files, json,
        cookies, hooks, proxies or cert, no stream, a str or bytes body or
        none, verify None or True and auth None or a 4-tuple.  Returns
        None, having sent nothing, when anything else is unusual: a URL
        to quote, headers that are not a dict of str, framing or Cookie
        headers, a proxy in the environment, or a str body with a lone
        surrogate.  :meth:`request` then takes its general path, which
        handles all of these.  Otherwise it returns (response, method,
        url, header store, body, signer, verify) with what was sent.
        """
        if url not in _safe_urls:
            if type(url) is not str or not _SAFE_URL.match(url):
                return None
            if len(_safe_urls) > 512:
                _safe_urls.clear()
            _safe_urls[url] = True
        if self.trust_env and _proxy_environment_set():
            return None
        signer = None
        if auth is not None:
            host = _netlocs.get(url)
            if host is None:
                host = _netloc(url)
                if len(_netlocs) > 512:
                    _netlocs.clear()
                _netlocs[url] = host
            signer = self._oauth.get((auth, host))
            if signer is None:
                signer = self.oauth_for(auth, host)
        verify = _ca_bundle() or True
        jar = self.cookie_jar
        cookie_req = cookie_header = None
        if jar is not None and getattr(jar, '_cookies', True):
            cookie_req, cookie_header = self._jar_cookie_header(url)
        # The header map, the body encoding, the transfer and the
        # Response run in C; see _mwcomms.Client.requests_send.
        try:
            sent = self.client.requests_send(method, url, headers, data,
                                             timeout, verify, signer,
                                             cookie_header, Response,
                                             Headers)
        except _mwcomms.Error as exc:
            method = method.upper()
            # The pairs that were sent: headers may have changed since.
            pairs = getattr(exc, 'sent_headers', None)
            if pairs is None:
                # Only when memory ran out as requests_send stored them.
                pairs = list(send_header_map(headers.items() if headers
                                             else ())._store.values())
                if cookie_header:
                    pairs.append(('Cookie', cookie_header))
            raise to_requests_exception(
                exc, make_request(method, url, pairs, data)) from None
        if sent is None:
            return None
        response, method, store = sent
        if jar is not None and 'set-cookie' in response.headers._store:
            self._keep_cookies(response._result, cookie_req, url)
        return response, method, url, store, data, signer, verify

    def _send_once(self, method, url, headers, body, signer, extra_cookies,
                   timeout, verify, proxy, stream=False,
                   progress=None) -> Response:
        store = headers._store
        if 'content-length' in store or 'transfer-encoding' in store:
            pairs = _framing_checked(store, body, method)
        else:
            pairs = list(store.values())
        jar = self.cookie_jar
        cookie_req = None
        if 'cookie' not in store:
            cookie_header = None
            if jar is not None and getattr(jar, '_cookies', True):
                cookie_req, cookie_header = self._jar_cookie_header(url)
            if extra_cookies:
                extra = _extra_cookie_header(extra_cookies, url)
                if extra:
                    cookie_header = (f'{cookie_header}; {extra}'
                                     if cookie_header else extra)
            if cookie_header:
                pairs.append(('Cookie', cookie_header))

        wire_body = body
        if method == 'HEAD':
            # A HEAD request has no content; requests would send one, but
            # servers ignore it and libcurl cannot send it.
            wire_body = None
        elif isinstance(body, str):
            # urllib3 2 sends a str body encoded as UTF-8, and requests
            # counts its Content-Length in those bytes.
            wire_body = body.encode('utf-8')
        # requests has applied no_proxy already.  With a proxy chosen, ''
        # keeps libcurl from applying the environment's no_proxy again.
        noproxy = '' if proxy else None
        try:
            if stream:
                started = time.perf_counter()
                result = self.client.stream(
                    method, url, pairs, wire_body, timeout=timeout,
                    verify=verify, auth=signer, proxy=proxy,
                    noproxy=noproxy, progress=progress)
            else:
                result = self.client.request(method, url, pairs, wire_body,
                                             timeout=timeout, verify=verify,
                                             auth=signer, proxy=proxy,
                                             noproxy=noproxy)
        except _mwcomms.Error as exc:
            raise to_requests_exception(
                exc, make_request(method, url, pairs, body)) from None

        if stream:
            response = StreamedResponse(result,
                                        make_request(method, url, pairs,
                                                     body),
                                        time.perf_counter() - started)
        else:
            response = result.requests_response(Response, Headers, None,
                                                (method, url, pairs, body))
        # The parsed headers tell whether there are cookies, so the C
        # result is searched again only for replies that set some.
        if jar is not None and 'set-cookie' in response.headers._store:
            self._keep_cookies(result, cookie_req, url)
        return response

    # Callers test ``getattr(jar, '_cookies', True)`` first: CookieJar's
    # __len__ walks every cookie of every site, while an empty store is
    # enough to tell that the jar is empty.
    def _jar_cookie_header(self, url: str):
        """Return (the cookie request or None, the jar's Cookie header or
        None); see jar_cookie_header."""
        return jar_cookie_header(self.cookie_jar, url)

    def _keep_cookies(self, result, cookie_req, url: str) -> None:
        """Store the cookies that a reply sets in the jar."""
        if cookie_req is None:
            cookie_req = cookie_request(url)
        self.cookie_jar.extract_cookies(CookieResponse(result), cookie_req)

    # -- helpers ----------------------------------------------------------

    @staticmethod
    def _correct_rejected_clock(response, signer: _mwcomms.OAuth1,
                                url: str, body, body_position) -> bool:
        """Prepare a resend if the wiki rejected the OAuth timestamp.

        Returns True after storing the wiki's clock offset on *signer* and
        rewinding *body*.  Returns False, and changes nothing, when the
        reply is not exactly a timestamp rejection (see
        :func:`rejected_timestamp`), when the offset is above
        MAX_CLOCK_CORRECTION_S, or when the body cannot be sent again
        (a generator or a file without seek).  The reply then goes back
        to the caller, as with ``options.correct_clock_skew`` False, and
        pywikibot's API layer raises TimestampError for it.  Raising here
        instead would make pywikibot's ``Request._http_request`` retry,
        because it retries every exception it does not know.
        """
        if response.status_code != 200:
            return False
        content = response._content
        if not isinstance(content, bytes):
            return False
        rejection = rejected_timestamp(
            content, response.headers.get('mediawiki-api-error'))
        if rejection is None:
            return False
        _, reason, server_time = rejection
        host = urlsplit(url).netloc
        offset = clock_offset(server_time)
        if abs(offset) > MAX_CLOCK_CORRECTION_S:
            _log.warning(
                'OAuth: %s rejected the request timestamp (%s). The wiki\'s '
                'clock is %+d s from this computer\'s, more than the %d s '
                'that mwcomms corrects, so the request is not sent again. '
                "Check this computer's clock and the wiki's address.",
                host, reason, offset, MAX_CLOCK_CORRECTION_S)
            return False
        try:
            _rewind_body(body, body_position)
        except rexc.UnrewindableBodyError:
            _log.warning(
                'OAuth: %s rejected the request timestamp (%s). The '
                'request body cannot be rewound, so the request is not sent '
                "again. Synchronise this computer's clock (NTP).",
                host, reason)
            return False
        old_offset = signer.clock_offset
        signer.clock_offset = offset
        _log.warning(
            'OAuth: %s rejected the request timestamp; sending it once '
            'more with clock_offset %+d s (was %+d s). Synchronise this '
            "computer's clock (NTP) to avoid the extra request.",
            host, offset, old_offset)
        return True

    @staticmethod
    def _prepare_body(headers, data, files, json):
        """Encode data, files or json as requests does; return the body.

        *files* becomes an ``_mwcomms.Multipart`` that libcurl encodes, a
        file-like or iterable *data* is streamed by the C client, and a
        mapping is form-encoded.
        """
        if files:
            return multipart_body(headers, files, data)
        if data is None or data == {} or data == []:
            if json is None:
                return None
            body = jsonlib.dumps(json, allow_nan=False).encode('utf-8')
            headers.setdefault('Content-Type', 'application/json')
            return body
        if isinstance(data, (str, bytes, bytearray)):
            return data
        if hasattr(data, 'read') or _is_stream(data):
            # requests sends Content-Length when it can tell the size and
            # chunked transfer encoding otherwise.
            # The C client sends chunked transfer encoding by itself when
            # it is given no size.
            length = super_len(data)
            if length:
                headers['Content-Length'] = str(length)
            return data
        body = RequestEncodingMixin._encode_params(data)
        headers.setdefault('Content-Type',
                           'application/x-www-form-urlencoded')
        return body

    def _prepare_auth(self, auth, method, url, headers, body):
        """Return (OAuth1 signer or None, Basic header value or None)."""
        if auth is None:
            return None, None
        if isinstance(auth, _mwcomms.OAuth1):
            return auth, None
        if isinstance(auth, tuple) and len(auth) == 4:
            return self.oauth_for(auth, _netloc(url)), None
        if isinstance(auth, tuple) and len(auth) == 2:
            user, password = auth
            if isinstance(user, str):
                user = user.encode('latin1')
            if isinstance(password, str):
                password = password.encode('latin1')
            token = base64.b64encode(user + b':' + password).decode('ascii')
            return None, 'Basic ' + token
        raise TypeError(
            f'auth must be None, a 2-tuple, a 4-tuple of OAuth tokens or a '
            f'requests auth object, not {type(auth).__name__}')

    @staticmethod
    def _run_auth_hook(auth, method, url, headers, body):
        """Apply a requests auth object; return the (url, body) it set.

        The object runs on a PreparedRequest, as in requests, and may
        change the headers (requests_oauthlib's OAuth1 turns them into
        bytes), the URL (a signature in the query) and the body.
        """
        prepared = requests.PreparedRequest()
        prepared.method = method
        prepared.url = url
        prepared.headers = headers
        prepared.body = body
        prepared = auth(prepared)
        changed = send_header_map(prepared.headers.items())
        headers.clear()
        headers._store.update(changed._store)
        return prepared.url, prepared.body

    @staticmethod
    def _verify_option(verify):
        """Map requests' verify argument to _mwcomms' (True, False or path).

        requests reads REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE when verify is
        True, so the same environment keeps working here.
        """
        if verify is None or verify is True:
            return _ca_bundle() or True
        return verify

    @staticmethod
    def _redirect_target(url: str, location: str) -> str:
        # requests decodes Location as UTF-8 when it is not Latin-1 text.
        try:
            location = location.encode('latin1').decode('utf8')
        except UnicodeError:
            pass
        if location.startswith('//'):
            location = urlsplit(url).scheme + ':' + location
        target = urljoin(url, location)
        if not _SAFE_URL.match(target):
            target = requote_uri(target)
        return target

    @staticmethod
    def _redirect_method(status: int, method: str, body, headers):
        """Return (method, body) for the next hop, as requests rebuilds it."""
        new_method = method
        if status in (302, 303) and method != 'HEAD':
            new_method = 'GET'
        elif status == 301 and method == 'POST':
            new_method = 'GET'
        if status not in (307, 308):
            # requests drops the body and its headers for these redirects.
            headers.pop('Content-Type', None)
            headers.pop('Content-Length', None)
            headers.pop('Transfer-Encoding', None)
            body = None
        return new_method, body

    @staticmethod
    def _should_strip_auth(old_url: str, new_url: str) -> bool:
        """Return True when credentials must not follow the redirect."""
        old = urlsplit(old_url)
        new = urlsplit(new_url)
        if old.hostname != new.hostname:
            return True
        if (old.scheme == 'http' and old.port in (80, None)
                and new.scheme == 'https' and new.port in (443, None)):
            return False
        changed_port = old.port != new.port
        changed_scheme = old.scheme != new.scheme
        default_port = (DEFAULT_PORTS.get(old.scheme), None)
        if (not changed_scheme and old.port in default_port
                and new.port in default_port):
            return False
        return changed_port or changed_scheme


_env_get, _REQUESTS_CA_BUNDLE = stored_value_reader('REQUESTS_CA_BUNDLE')
_, _CURL_CA_BUNDLE = stored_value_reader('CURL_CA_BUNDLE')
_environ_data = environ_dict()
_last_bundle = (None, None, None, None)


def _ca_bundle() -> str | None:
    """Return REQUESTS_CA_BUNDLE or else CURL_CA_BUNDLE, as requests
    reads them, reading them again only after the environment changed."""
    global _last_bundle
    last = _last_bundle
    version = (None if _environ_data is None
               else _mwcomms.dict_version(_environ_data))
    if version is not None and version == last[0]:
        return last[3]
    stored = (_env_get(_REQUESTS_CA_BUNDLE), _env_get(_CURL_CA_BUNDLE))
    if stored[0] is last[1] and stored[1] is last[2]:
        bundle = last[3]
    else:
        bundle = getenv('REQUESTS_CA_BUNDLE') or getenv('CURL_CA_BUNDLE')
    _last_bundle = (version, *stored, bundle)
    return bundle


def _netloc(url: str) -> str:
    """Return ``urlsplit(url).netloc``, without urlsplit for the usual
    'scheme://host[:port]/path' form."""
    parts = url.split('/', 3)
    if len(parts) >= 3 and parts[1] == '' and parts[0].endswith(':'):
        host = parts[2]
        if '?' not in host and '#' not in host and '\\' not in host:
            return host
    return urlsplit(url).netloc


def _framing_checked(store, body, method) -> list:
    """Return the header pairs without framing headers libcurl sets.

    libcurl frames the body itself and rejects these headers, except a
    Content-Length that gives the size of a streamed body.  requests, too,
    replaces a caller's Content-Length with the real size.
    """
    streamed = method != 'HEAD' and (hasattr(body, 'read')
                                     or _is_stream(body))
    pairs = []
    for key, pair in store.items():
        if key == 'transfer-encoding':
            continue
        if key == 'content-length' and not streamed:
            continue
        pairs.append(pair)
    return pairs


def _is_stream(data) -> bool:
    """Return True for a body that requests sends as a stream."""
    return (hasattr(data, '__iter__')
            and not isinstance(data, (str, bytes, list, tuple, Mapping)))


def _body_position(body):
    """Return the position of a file-like body, to rewind it for a resend."""
    tell = getattr(body, 'tell', None)
    if tell is None:
        return None
    try:
        return tell()
    except OSError:
        return None


def _rewind_body(body, position) -> None:
    """Seek a body back to *position* before it is sent again.

    Raises UnrewindableBodyError for a stream that cannot seek there: a
    generator or other iterable is used up after the first send, and
    sending it again would send an empty body.
    """
    if not hasattr(body, 'read') and not _is_stream(body):
        return
    if position is None or not hasattr(body, 'seek'):
        raise rexc.UnrewindableBodyError(
            'Unable to rewind the request body for a redirect or resend')
    try:
        body.seek(position)
    except OSError:
        raise rexc.UnrewindableBodyError(
            'Unable to rewind the request body for a redirect or resend'
        ) from None


def _extra_cookie_header(cookies, url: str) -> str | None:
    """Return the Cookie header for a per-request cookies argument."""
    if not isinstance(cookies, requests.cookies.cookielib.CookieJar):
        cookies = requests.cookies.cookiejar_from_dict(cookies)
    req = cookie_request(url)
    cookies.add_cookie_header(req)
    return req.unredirected_hdrs.get('Cookie')


# A URL's scheme and the slashes after it; see _redact_url.  As in
# mw_redact_url, the scheme may contain any character but the ones that
# end it, so that a malformed one such as " http:" still starts an
# authority.
_SCHEME_AND_SLASHES = re.compile(r'[^/\\?#@]*:(?=[/\\])')
_AUTHORITY = re.compile(r'[/\\]*([^/\\?#]*)')


def _redact_url(url: str) -> str:
    """Return *url* without user info, which may hold a password.

    The same rule as ``mw_redact_url`` in C, for any string, valid URL or
    not: the authority starts after the scheme (the text before the first
    ``/``, ``\\``, ``?``, ``#`` or ``@``, when it ends with ``:`` and a
    slash follows) and any slashes, ends at the first ``/``, ``\\``, ``?``
    or ``#``, and loses everything up to its last ``@``.
    """
    scheme = _SCHEME_AND_SLASHES.match(url)
    start = scheme.end() if scheme else 0
    authority = _AUTHORITY.match(url, start)
    at = authority.group(1).rfind('@')
    if at < 0:
        return url
    return url[:authority.start(1)] + url[authority.start(1) + at + 1:]


def to_requests_exception(exc: _mwcomms.Error,
                          request: requests.PreparedRequest
                          ) -> rexc.RequestException:
    """Translate an ``_mwcomms`` error into the requests exception.

    pywikibot's error_handling_callback branches on the class and, for
    ConnectionError, on urllib3's wording of name-resolution and
    connection failures.  The messages below keep those words, so that an
    unknown host stays fatal and a refused connection is retried, as with
    requests.
    """
    code = getattr(exc, 'curl_code', 0)
    url = _redact_url(getattr(exc, 'url', None) or request.url)
    detail = str(exc)
    # The C message ends with the URL, which the texts below name first.
    detail = detail.removesuffix(f' ({url})')
    if isinstance(exc, _mwcomms.Timeout):
        if getattr(exc, 'phase', 'read') == 'connect':
            return rexc.ConnectTimeout(f'Connection to {url} timed out: '
                                       f'{detail}', request=request)
        return rexc.ReadTimeout(f'Read timed out from {url}: {detail}',
                                request=request)
    if isinstance(exc, _mwcomms.SSLError):
        if code == CURLE_PEER_FAILED_VERIFICATION:
            detail = f'certificate verify failed: {detail}'
        return rexc.SSLError(f'TLS error for {url}: {detail}',
                             request=request)
    if isinstance(exc, _mwcomms.InvalidURL):
        return rexc.InvalidURL(detail, request=request)
    if isinstance(exc, _mwcomms.ConnectError):
        if code in (CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY):
            text = (f'NameResolutionError: failed to resolve the host of '
                    f'{url} ([Errno -2] Name or service not known): {detail}')
        else:
            text = (f'NewConnectionError: Failed to establish a new '
                    f'connection to {url}: {detail}')
        return rexc.ConnectionError(text, request=request)
    return rexc.ConnectionError(f'Connection to {url} failed: {detail}',
                                request=request)
