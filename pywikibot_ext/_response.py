"""The response object that the mwcomms transport returns to pywikibot."""
from __future__ import annotations

import datetime
import urllib.request

import requests
from requests.structures import CaseInsensitiveDict

__all__ = ['CookieResponse', 'Headers', 'Response', 'cookie_request', 'make_headers',
           'make_request']


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
    # containers on every response; this constructor sets the same
    # attributes from the C result and builds ``cookies`` on first use.
    def __init__(self, result, request: requests.PreparedRequest) -> None:
        self._content = result.body
        self._content_consumed = True
        self._next = None
        self._cookies = None
        self._result = result
        self.status_code = result.status
        self.headers = make_headers(result.headers)
        self.raw = None
        self.url = result.url
        self.encoding = None
        self.history = []
        self.reason = result.reason
        self.elapsed = datetime.timedelta(seconds=result.elapsed)
        self.request = request
        self.connection = None

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
