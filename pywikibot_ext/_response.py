"""The response object that the mwcomms transport returns to pywikibot."""
from __future__ import annotations

import datetime
import urllib.request

import requests
from requests import exceptions as rexc
from requests.structures import CaseInsensitiveDict

import _mwcomms

__all__ = ['CookieResponse', 'Headers', 'RawStream', 'Response',
           'StreamedResponse', 'cookie_request', 'make_headers',
           'make_request', 'send_header_map']

# libcurl's CURLE_BAD_CONTENT_ENCODING: the body could not be decompressed.
CURLE_BAD_CONTENT_ENCODING = 61
# Size of the pieces that RawStream.stream() yields when the caller of
# iter_content() passes chunk_size=None.
DEFAULT_STREAM_CHUNK = 65536


class Headers(CaseInsensitiveDict):

    """requests' CaseInsensitiveDict with faster lookups.

    ``get`` and ``in`` run on every request in pywikibot (user agent,
    charset, Retry-After), and the inherited versions go through
    ``__getitem__`` and a caught KeyError.
    """

    def get(self, key, default=None):
        item = self._store.get(key.lower())
        return default if item is None else item[1]

    def __contains__(self, key) -> bool:
        return key.lower() in self._store


def make_headers(pairs) -> Headers:
    """Build a header mapping from (name, value) pairs.

    Repeated names are joined with ', ' as requests (urllib3) joins them.
    """
    headers = Headers.__new__(Headers)
    headers._store = store = {}
    for name, value in pairs:
        key = name.lower()
        old = store.get(key)
        if old is None:
            store[key] = (name, value)
        else:
            store[key] = (old[0], old[1] + ', ' + value)
    return headers


def send_header_map(pairs) -> Headers:
    """Build the headers of a request from (name, value) pairs.

    As in requests, names and values may be str or bytes (bytes values
    are sent as they are), and of names that differ only in case the
    last one counts.  A None value removes the header, because
    requests.Session drops None values when it merges headers.  Raises
    requests' InvalidHeader for any other type; the message names the
    header but never shows its value.
    """
    headers = Headers.__new__(Headers)
    headers._store = store = {}
    for name, value in pairs:
        if type(name) is not str or type(value) is not str:
            if value is None:
                name, _ = _native_header(name, '')
                store.pop(name.lower(), None)
                continue
            name, value = _native_header(name, value)
        store[name.lower()] = (name, value)
    return headers


def _native_header(name, value) -> tuple[str, str]:
    """Return a header as str: bytes names as ASCII, values as Latin-1."""
    if isinstance(name, bytes):
        try:
            name = name.decode('ascii')
        except UnicodeDecodeError:
            raise rexc.InvalidHeader(
                f'invalid header name {name!r}: not ASCII') from None
    elif not isinstance(name, str):
        raise rexc.InvalidHeader(
            f'header names must be str or bytes, not {type(name).__name__}')
    if isinstance(value, bytes):
        # Latin-1 maps every byte to one character, and the C client
        # encodes such a value back to the same bytes.
        value = value.decode('latin-1')
    elif not isinstance(value, str):
        raise rexc.InvalidHeader(
            f'the value of header {name!r} must be str or bytes, not '
            f'{type(value).__name__}')
    return name, value


def make_request(method: str, url: str, headers, body
                 ) -> requests.PreparedRequest:
    """Return a PreparedRequest that describes what was sent.

    No request is prepared through requests: the attributes are set
    directly, which is what code reading ``response.request`` needs.
    """
    prepared = requests.PreparedRequest()
    prepared.method = method
    prepared.url = url
    prepared.headers = make_headers(headers)
    prepared.body = body
    return prepared


class Response(requests.Response):

    """A :class:`requests.Response` filled from an ``_mwcomms.Response``.

    It is a real ``requests.Response`` subclass, so isinstance checks,
    ``text``, ``json()``, ``raise_for_status()``, ``iter_content()`` and
    the context manager protocol behave as with requests.  The body is
    already read: ``raw`` is None.
    """

    # requests.Response.__init__ builds a cookie jar and several empty
    # containers on every response.  This constructor takes the same
    # attributes as its __dict__, built in C from the result (see
    # _mwcomms.Response.requests_state); ``cookies`` and ``request`` are
    # built on first use.  ``elapsed`` is a number of seconds until it
    # is read, because few callers read it and a timedelta costs more to
    # build than the rest.  *sent* is (method, url, header pairs, body) for the
    # lazily built ``request`` when *request* is None.
    def __init__(self, result, request: requests.PreparedRequest | None,
                 sent: tuple | None = None) -> None:
        self.__dict__ = result.requests_state(Headers, request, sent)

    @property
    def request(self) -> requests.PreparedRequest | None:
        """The PreparedRequest that describes what was sent."""
        if self._request is None and self._sent is not None:
            self._request = make_request(*self._sent)
            self._sent = None
        return self._request

    @request.setter
    def request(self, value) -> None:
        self._request = value
        self._sent = None

    @property
    def elapsed(self) -> datetime.timedelta:
        """Time the transfer took, as a timedelta."""
        value = self._elapsed
        if not isinstance(value, datetime.timedelta):
            value = self._elapsed = datetime.timedelta(seconds=value)
        return value

    @elapsed.setter
    def elapsed(self, value) -> None:
        self._elapsed = value

    @property
    def ok(self) -> bool:
        """False for a 4xx or 5xx status, as requests' raise_for_status."""
        return not 400 <= self.status_code < 600

    @property
    def cookies(self) -> requests.cookies.RequestsCookieJar:
        """Cookies that this response set, as requests reports them."""
        if self._cookies is None:
            jar = requests.cookies.RequestsCookieJar()
            if self._result is not None and self.request is not None:
                jar.extract_cookies(CookieResponse(self._result),
                                    cookie_request(self.request.url))
            self._cookies = jar
        return self._cookies

    @cookies.setter
    def cookies(self, value) -> None:
        self._cookies = value

    def __getstate__(self):
        # The C result is not picklable; everything requests pickles is
        # already copied out of it.
        self.cookies  # noqa: B018 -- build the jar before dropping _result
        state = super().__getstate__()
        return state

    def __setstate__(self, state) -> None:
        self._result = None
        self._cookies = None
        super().__setstate__(state)

    def __repr__(self) -> str:
        return f'<Response [{self.status_code}]>'


class StreamedResponse(Response):

    """The :class:`Response` of a ``stream=True`` request.

    The body stays on the wire until it is read: ``iter_content()``,
    ``iter_lines()``, ``content``, ``text`` and ``raw.read()`` pull it from
    an ``_mwcomms.StreamResponse`` piece by piece, so memory stays bounded
    for a body of any size.  ``close()`` (or leaving a ``with`` block) ends
    the transfer; a connection whose body was not read to the end is
    closed instead of reused.
    """

    def __init__(self, stream, request: requests.PreparedRequest,
                 elapsed: float) -> None:
        self._content = False
        self._content_consumed = False
        self._next = None
        self._cookies = None
        self._result = stream
        self.status_code = stream.status
        self.headers = make_headers(stream.headers)
        self.raw = RawStream(stream, request)
        self.url = stream.url
        self.encoding = None
        self.history = []
        self.reason = stream.reason
        self.elapsed = datetime.timedelta(seconds=elapsed)
        self._request = request
        self._sent = None
        self.connection = None


class RawStream:

    """``response.raw`` of a streamed response, in the role of urllib3's.

    It offers the parts of urllib3's ``HTTPResponse`` that requests and
    pywikibot use: ``read()``, ``stream()``, ``close()``, ``closed`` and
    ``release_conn()``.  A transfer that fails while the body is read
    raises the exception that requests raises from ``iter_content()``
    (ChunkedEncodingError, ConnectionError for a timeout, SSLError or
    ContentDecodingError), from ``read()`` too, where urllib3 would raise
    its own exception classes.
    """

    def __init__(self, stream, request) -> None:
        self._stream = stream
        self._request = request

    @property
    def closed(self) -> bool:
        return self._stream.closed

    @property
    def bytes_read(self) -> int:
        """Body bytes returned so far."""
        return self._stream.bytes_read

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._stream.bytes_read

    def read(self, amt: int | None = None, decode_content: bool = True,
             cache_content: bool = False) -> bytes:
        """Return up to *amt* bytes of the body, or the rest when None.

        Returns b'' once the body was read to its end or the stream was
        closed, as urllib3 does.  ``read(0)`` returns b'' and leaves the
        stream open: only an empty read of a positive size ends it.
        """
        if self._stream.closed or amt == 0:
            return b''
        try:
            data = self._stream.read(-1 if amt is None else amt)
        except _mwcomms.Error as exc:
            self._stream.close()
            raise body_error(exc, self._request) from None
        if not data or amt is None:
            self._stream.close()
        return data

    def stream(self, amt: int | None = DEFAULT_STREAM_CHUNK,
               decode_content: bool = True):
        """Yield the body in pieces of 1 to *amt* bytes as they arrive."""
        size = amt or DEFAULT_STREAM_CHUNK
        stream = self._stream
        if stream.closed:
            return
        try:
            yield from stream.iter_chunks(size)
        except _mwcomms.Error as exc:
            raise body_error(exc, self._request) from None
        finally:
            # Ending the transfer here hands a fully read connection back
            # to the pool at once, instead of when the response is freed.
            stream.close()

    def close(self) -> None:
        self._stream.close()

    def release_conn(self) -> None:
        # The C stream returns its handle to the pool in close().
        pass


def body_error(exc: _mwcomms.Error, request) -> rexc.RequestException:
    """Return the requests exception for a failure while reading a body."""
    from pywikibot_ext._transport import _redact_url

    url = _redact_url(getattr(request, 'url', None) or '')
    if isinstance(exc, _mwcomms.Timeout):
        return rexc.ConnectionError(f'Read timed out from {url}: {exc}',
                                    request=request)
    if isinstance(exc, _mwcomms.SSLError):
        return rexc.SSLError(f'TLS error for {url}: {exc}', request=request)
    if getattr(exc, 'curl_code', 0) == CURLE_BAD_CONTENT_ENCODING:
        return rexc.ContentDecodingError(
            f'Failed to decode the body of {url}: {exc}', request=request)
    return rexc.ChunkedEncodingError(
        f'Connection broken while reading the body of {url}: {exc}',
        request=request)


class CookieResponse:

    """Adapter that lets http.cookiejar read Set-Cookie from a C result."""

    __slots__ = ('_result',)

    def __init__(self, result) -> None:
        self._result = result

    def info(self):
        return self

    def get_all(self, name, default=None):
        values = self._result.get_all(name)
        return values if values else default


def cookie_request(url: str):
    """Return the request object that http.cookiejar expects for *url*."""
    return urllib.request.Request(url)
