"""Opt-in parallel reads for bots that wait on many independent queries.

Wikimedia's API etiquette asks for serial requests unless a wiki allows
more, so everything here stays serial until
``pywikibot_ext.options.max_read_concurrency`` is raised, and that limit
applies per host across all callers.  Only read requests run in
parallel: :func:`submit_reads` rejects a request that pywikibot marks as
a write, and edits made elsewhere are never routed through here.

Example, in a bot::

    import pywikibot_ext
    from pywikibot_ext.parallel import preload_pages

    pywikibot_ext.options.max_read_concurrency = 4
    for page in preload_pages(site, pages, groupsize=50):
        ...
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from pywikibot_ext import options

__all__ = ['host_slots', 'preload_pages', 'submit_reads']

_slots_lock = threading.Lock()
# (host, limit) -> semaphore shared by every parallel helper for that host.
_slots: dict[tuple[str, int], threading.BoundedSemaphore] = {}


def _limit() -> int:
    return max(1, int(options.max_read_concurrency))


def host_slots(host: str) -> threading.BoundedSemaphore:
    """Return the semaphore that bounds parallel reads to *host*."""
    key = (host, _limit())
    with _slots_lock:
        slots = _slots.get(key)
        if slots is None:
            slots = _slots[key] = threading.BoundedSemaphore(key[1])
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


def submit_reads(site, requests) -> list:
    """Submit pywikibot ``api.Request`` objects, in parallel when allowed.

    Returns their results in order.  Raises ValueError, before anything is
    sent, when a request is a write (``request.write``).
    """
    requests = list(requests)
    for request in requests:
        if request.write:
            raise ValueError(
                f'{request.action!r} is a write request; writes are never '
                'sent in parallel')
    return _run_bounded(site, [request.submit for request in requests])


def preload_pages(site, pages, groupsize: int = 50, **kwargs):
    """Yield *pages* with their text, like ``site.preloadpages()``.

    The pages are split into batches of *groupsize*; with
    ``options.max_read_concurrency`` above 1, up to that many batches are
    fetched at once.  Pages come back in batch order; within a batch, in
    the order ``site.preloadpages()`` yields them.
    """
    pages = list(pages)
    batches = [pages[start:start + groupsize]
               for start in range(0, len(pages), groupsize)]
    calls = [lambda batch=batch: list(site.preloadpages(
        batch, groupsize=groupsize, **kwargs)) for batch in batches]
    if _limit() == 1:
        for call in calls:
            yield from call()
        return
    for loaded in _run_bounded(site, calls):
        yield from loaded
