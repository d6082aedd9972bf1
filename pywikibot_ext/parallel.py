"""Opt-in parallel reads for bots that wait on many independent queries.

Wikimedia's API etiquette calls for serial requests unless a wiki allows
more, so everything here stays serial until
``pywikibot_ext.options.max_read_concurrency`` is raised, and that limit
applies per host across all callers.  Only read requests run in
parallel: :func:`submit_reads` accepts only the actions in
:data:`READ_ACTIONS` without a ``token`` parameter, and edits made
elsewhere are never routed through here.

Example, in a bot::

    import pywikibot_ext
    from pywikibot_ext.parallel import preload_pages

    pywikibot_ext.options.max_read_concurrency = 4
    for page in preload_pages(site, pages, groupsize=50):
        ...
"""
from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

from pywikibot_ext import options

__all__ = ['READ_ACTIONS', 'HostSlots', 'check_read', 'host_slots',
           'preload_pages', 'submit_reads']

#: API actions that :func:`submit_reads` sends in parallel: MediaWiki
#: core modules that only read, and Wikibase's entity reads.  Any other
#: action is rejected, because pywikibot's ``request.write`` (its
#: WRITE_ACTIONS list) misses state-changing modules such as
#: ``changecontentmodel``, ``stashedit``, ``logout`` and those of many
#: extensions.
READ_ACTIONS = frozenset((
    'compare', 'expandtemplates', 'feedcontributions', 'feedrecentchanges',
    'feedwatchlist', 'help', 'opensearch', 'paraminfo', 'parse', 'query',
    'wbgetentities', 'wbsearchentities',
))

# Parameters of action=query whose modules pywikibot 11.9 checks for
# mustbeposted (Request._use_get).
_QUERY_MODULE_PARAMETERS = ('list', 'prop', 'generator')


class HostSlots:

    """The bound on parallel reads to one host, shared by every caller.

    The bound is read from ``options.max_read_concurrency`` on every
    acquire, so a change applies to requests that start afterwards, and
    requests already running are never counted against a second bound.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self.active = 0

    def acquire(self) -> None:
        with self._condition:
            while self.active >= _limit():
                self._condition.wait()
            self.active += 1

    def release(self) -> None:
        with self._condition:
            self.active -= 1
            # notify_all: a raised limit may admit several waiters.
            self._condition.notify_all()

    def __enter__(self) -> HostSlots:
        self.acquire()
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()


_slots_lock = threading.Lock()
# host -> the HostSlots shared by every parallel helper for that host.
_slots: dict[str, HostSlots] = {}


def _limit() -> int:
    return max(1, int(options.max_read_concurrency))


def host_slots(host: str) -> HostSlots:
    """Return the bound on parallel reads to *host*."""
    with _slots_lock:
        slots = _slots.get(host)
        if slots is None:
            slots = _slots[host] = HostSlots()
        return slots


def _run_bounded(site, calls):
    """Run the callables, at most the host's limit at a time, in order."""
    limit = _limit()
    if limit == 1 or len(calls) < 2:
        return [call() for call in calls]
    slots = host_slots(site.hostname())

    def bounded(call):
        with slots:
            return call()

    with ThreadPoolExecutor(max_workers=min(limit, len(calls))) as pool:
        futures = [pool.submit(bounded, call) for call in calls]
        return [future.result() for future in futures]


def _parameters(request) -> Mapping:
    """Return the parameters of a pywikibot ``api.Request`` as a mapping."""
    if isinstance(request, Mapping):
        return request
    params = getattr(request, '_params', None)
    if params is None:
        params = getattr(request, 'params', None)
    return params if isinstance(params, Mapping) else {}


def _values(value) -> list[str]:
    """Return a parameter value as a list of str (pywikibot keeps lists)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part for part in value.split('|') if part]
    return [str(part) for part in value]


def _modules(action: str, params: Mapping) -> set[str]:
    """Return the API modules a request runs, as pywikibot's _use_get."""
    if action != 'query':
        return {action}
    modules = set()
    for name in _QUERY_MODULE_PARAMETERS:
        if name in params:
            modules.update(_values(params[name]))
    return modules


def _must_be_posted(site, modules: set[str]) -> list[str]:
    """Return the modules whose paraminfo contains ``mustbeposted``.

    Uses the site's ``_paraminfo`` when the site has one (pywikibot's
    APISite does, and fetches what it lacks); returns [] otherwise.
    """
    paraminfo = getattr(site, '_paraminfo', None)
    if paraminfo is None or not modules:
        return []
    paraminfo.fetch(modules)
    found = []
    for module in sorted(modules):
        try:
            info = paraminfo[module]
        except KeyError:
            continue
        if 'mustbeposted' in info:
            found.append(module)
    return found


def check_read(site, request) -> None:
    """Raise ValueError unless *request* is safe to send in parallel.

    A request qualifies when pywikibot does not mark it as a write, its
    action is in :data:`READ_ACTIONS`, it carries no ``token`` parameter
    and none of its modules must be posted.
    """
    action = getattr(request, 'action', None)
    if getattr(request, 'write', False):
        raise ValueError(f'{action!r} is a write request, and writes are '
                         'never sent in parallel')
    if action not in READ_ACTIONS:
        raise ValueError(
            f'action {action!r} is not a known read-only action: only '
            f'{", ".join(sorted(READ_ACTIONS))} are sent in parallel')
    params = _parameters(request)
    if 'token' in params:
        raise ValueError(f'{action!r} request carries a token, so it may '
                         'change the wiki: it is never sent in parallel')
    posted = _must_be_posted(getattr(request, 'site', None) or site,
                             _modules(action, params))
    if posted:
        raise ValueError(
            f'the API module(s) {", ".join(posted)} must be posted '
            '(mustbeposted), so the request is never sent in parallel')


def submit_reads(site, requests) -> list:
    """Submit pywikibot ``api.Request`` objects, in parallel when allowed.

    Returns their results in order.  Raises ValueError, before anything is
    sent, when a request fails :func:`check_read`: a write, an action
    outside :data:`READ_ACTIONS`, a ``token`` parameter or a module that
    must be posted.
    """
    requests = list(requests)
    for request in requests:
        check_read(site, request)
    return _run_bounded(site, [request.submit for request in requests])


def _batches(items, size: int):
    """Yield lists of *size* items from *items*, consuming it lazily."""
    iterator = iter(items)
    while True:
        batch = list(itertools.islice(iterator, size))
        if not batch:
            return
        yield batch


def preload_pages(site, pages, groupsize: int = 50, **kwargs):
    """Yield *pages* with their text, like ``site.preloadpages()``.

    With ``options.max_read_concurrency`` at its default of 1 this is
    ``site.preloadpages()`` itself.  Above 1, the pages are read from
    *pages* lazily in batches of *groupsize*, and up to that many batches
    are fetched at once while earlier ones are being yielded: pages come
    back in the order of *pages*' batches, and no more than a window of
    batches is ever held, so an endless generator works.  An exception
    from a batch is raised where that batch's pages would have come.
    Closing the generator early cancels the batches not yet started.
    """
    if groupsize < 1:
        raise ValueError(f'groupsize must be at least 1, not {groupsize!r}')
    limit = _limit()
    if limit == 1:
        yield from site.preloadpages(pages, groupsize=groupsize, **kwargs)
        return
    slots = host_slots(site.hostname())

    def load(batch):
        with slots:
            return list(site.preloadpages(batch, groupsize=groupsize,
                                          **kwargs))

    pending: deque = deque()
    pool = ThreadPoolExecutor(max_workers=limit)
    try:
        for batch in _batches(pages, groupsize):
            pending.append(pool.submit(load, batch))
            if len(pending) > limit:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True)
