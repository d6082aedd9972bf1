"""The Cookie header of a request, kept until the cookie jar changes.

``CookieJar.add_cookie_header`` walks the jar and checks every cookie
against the policy on each request: about 300,000 instructions (34 us)
with the four cookies of a logged-in MediaWiki session, twice the rest
of a request through mwcomms.  The header depends only on the URL, the
cookies, the policy and the time.  This module keeps the header per URL
and computes it again when any of these changed:

- the jar's cookie dicts (``jar._cookies``, domain -> path -> name), the
  policy's attributes or the jar's own attributes, seen through
  ``_mwcomms.dict_version``;
- the jar's ``_cookies`` or ``_policy`` objects themselves;
- the time, once the earliest expiry of any cookie in the jar is reached.

Only a jar and policy that use http.cookiejar's own methods for this are
cached: a subclass or an instance attribute that overrides them gets the
plain call.  A Cookie object changed in place (``cookie.value = ...``) is
not seen; http.cookiejar and pywikibot replace cookies instead.

NOTE: a method patched on CookieJar or DefaultCookiePolicy themselves
after a header was kept is not seen until the jar changes.
"""
from __future__ import annotations

import math
import time
from http.cookiejar import CookieJar, DefaultCookiePolicy

import _mwcomms

from pywikibot_ext._response import cookie_request

__all__ = ['jar_cookie_header']

# The CookieJar methods whose results the cache replaces.
_JAR_METHODS = ('add_cookie_header', '_cookies_for_request',
                '_cookies_for_domain', '_cookie_attrs',
                'clear_expired_cookies', '__iter__')
_STOCK_JAR = tuple(getattr(CookieJar, name) for name in _JAR_METHODS)
# Names of the policy's methods, which an instance attribute could
# replace.
_POLICY_METHODS = frozenset(
    name for name in dir(DefaultCookiePolicy)
    if not name.startswith('__') and callable(getattr(DefaultCookiePolicy,
                                                      name)))

# url -> (jar, cookies, policy, versions, not_after, header)
_headers: dict = {}
MAX_ENTRIES = 256


def _cacheable(jar) -> bool:
    cls = type(jar)
    attributes = getattr(jar, '__dict__', None)
    policy = getattr(jar, '_policy', None)
    return (all(getattr(cls, name, None) is stock
                for name, stock in zip(_JAR_METHODS, _STOCK_JAR))
            and type(attributes) is dict
            and attributes.keys().isdisjoint(_JAR_METHODS)
            and type(policy) is DefaultCookiePolicy
            and _POLICY_METHODS.isdisjoint(vars(policy))
            and isinstance(getattr(jar, '_cookies', None), dict)
            and hasattr(jar, '_cookies_lock'))


def jar_cookie_header(jar, url: str):
    """Return (the request object or None, the Cookie header or None).

    The header is what ``jar.add_cookie_header`` sets on a request for
    *url*.  The request object is returned when one was built:
    ``extract_cookies`` can use it for the reply.  It is None when the
    header came from the cache.
    """
    entry = _headers.get(url)
    if entry is not None and entry[0] is jar:
        cookies = jar._cookies
        policy = jar._policy
        if (entry[1] is cookies and entry[2] is policy
                and time.time() < entry[4]
                and entry[3] == (_mwcomms.dict_version(cookies, 2),
                                 _mwcomms.dict_version(policy.__dict__),
                                 _mwcomms.dict_version(jar.__dict__))):
            return None, entry[5]
    return _compute(jar, url)


def _compute(jar, url: str):
    request = cookie_request(url)
    if not _cacheable(jar):
        jar.add_cookie_header(request)
        return request, request.unredirected_hdrs.get('Cookie')
    # The jar's lock keeps other threads from changing the cookies
    # between the header and the versions read for it.
    with jar._cookies_lock:
        jar.add_cookie_header(request)
        cookies = jar._cookies
        policy = jar._policy
        versions = (_mwcomms.dict_version(cookies, 2),
                    _mwcomms.dict_version(policy.__dict__),
                    _mwcomms.dict_version(jar.__dict__))
        try:
            not_after = min((cookie.expires for cookie in jar
                             if cookie.expires is not None),
                            default=math.inf)
        except TypeError:
            not_after = None
    if not isinstance(not_after, (int, float)):
        not_after = None
    header = request.unredirected_hdrs.get('Cookie')
    if versions[0] is not None and not_after is not None:
        if len(_headers) >= MAX_ENTRIES:
            _headers.clear()
        _headers[url] = (jar, cookies, policy, versions, not_after, header)
    return request, header
