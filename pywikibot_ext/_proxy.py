"""Choose the proxy for a URL with the rules of requests.

requests merges the *proxies* argument with the environment
(``http_proxy``, ``https_proxy``, ``all_proxy``, ``no_proxy`` and their
upper-case forms) and picks the entry for the URL's scheme and host.  The
result is passed to ``_mwcomms.Client`` as ``proxy``: a URL, or ``''``
for a direct connection, so that libcurl never reads the environment on
its own (its rules differ: it ignores ``HTTP_PROXY`` in upper case).

No message here or in ``_mwcomms`` quotes a proxy URL that cannot be
parsed, because its password cannot be separated from the rest.
"""
from __future__ import annotations

import os

from requests.exceptions import InvalidProxyURL
from requests.utils import (
    get_environ_proxies,
    prepend_scheme_if_needed,
    select_proxy as requests_select_proxy,
)

import _mwcomms

__all__ = ['select_proxy']

# The proxy variables in lower and upper case.  urllib's getproxies()
# reads the proxy names in any mix of case (see _proxy_environment_set).
PROXY_VARIABLES = tuple(
    name for base in ('http_proxy', 'https_proxy', 'all_proxy', 'no_proxy')
    for name in (base, base.upper()))

# os.environ keeps its items in a dict of encoded names.
_environ_data = getattr(os.environ, '_data', None)
if not isinstance(_environ_data, dict):
    _environ_data = None
# The environment's dict_version and the result of the last check.
_last_check = (None, False)


def _proxy_environment_set() -> bool:
    """Return True when a variable names a proxy: http_proxy, https_proxy
    or all_proxy in any case.  The proxy rules run only then or when
    proxies is given: no_proxy alone lists hosts to reach directly, which
    is what happens anyway when no proxy is named.  Machines often set
    it, and the rules cost more than the rest of a request's Python
    work.
    """
    global _last_check
    if _environ_data is None:
        return _mwcomms.has_proxy_variable(os.environ)
    # The walk over every name runs in C, and only after a change to the
    # environment: os.environ writes every change to _environ_data.
    version = _mwcomms.dict_version(_environ_data)
    last = _last_check
    if version is not None and version == last[0]:
        return last[1]
    found = _mwcomms.has_proxy_variable(_environ_data)
    _last_check = (version, found)
    return found


def select_proxy(url: str, proxies, trust_env: bool = True) -> str:
    """Return the proxy URL for *url*, or '' to connect directly.

    *proxies* is requests' per-request dict: keys are a scheme
    (``'http'``), ``'all'``, ``'scheme://host'`` or ``'all://host'``, and
    ``'no_proxy'`` (a comma-separated list of hosts); a value None means
    no proxy for that key.
    """
    if not proxies and not (trust_env and _proxy_environment_set()):
        return ''
    merged = dict(proxies or {})
    if trust_env:
        environment = get_environ_proxies(url, no_proxy=merged.get(
            'no_proxy'))
        for key, value in environment.items():
            merged.setdefault(key, value)
    # requests' merge_setting drops keys set to None.
    merged = {key: value for key, value in merged.items()
              if value is not None}
    proxy = requests_select_proxy(url, merged)
    if not proxy:
        return ''
    try:
        return prepend_scheme_if_needed(proxy, 'http')
    except ValueError:
        # urllib3's LocationParseError (a ValueError) quotes the proxy
        # URL, password included; 'from None' keeps it out of tracebacks.
        raise InvalidProxyURL(
            'invalid proxy URL: urllib3 cannot parse it. Expected '
            'scheme://[user:password@]host:port (the URL is not shown '
            'because it may contain a password)') from None
