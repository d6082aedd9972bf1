"""Opt-in parallel preloading: serial by default, reads only."""
from __future__ import annotations

import threading
import urllib.parse

import pytest

import pywikibot_ext

pytestmark = pytest.mark.realwiki

PAGE_COUNT = 12


@pytest.fixture(scope='module')
def pages(pwb):
    site = pwb.Site('en', 'realwiki')
    site.login()
    result = []
    for number in range(PAGE_COUNT):
        page = pwb.Page(site, f'Preload test {number}')
        if not page.exists():
            page.text = f'Preload text {number}'
            page.save('preload test page')
        result.append(pwb.Page(site, f'Preload test {number}'))
    return site, result


def action_of(kwargs):
    data = kwargs.get('data') or ''
    if isinstance(data, bytes):
        data = data.decode('latin-1')
    if not isinstance(data, str):
        return None
    return urllib.parse.parse_qs(data).get('action', [None])[0]


class InFlight:
    """Count the transport's concurrent requests to the wiki."""

    def __init__(self, transport, monkeypatch):
        self.lock = threading.Condition()
        self.current = 0
        self.max = 0
        self.methods = []
        # Seconds a request that starts alone waits for a second one, so
        # that parallel requests are seen to overlap however fast the
        # wiki replies; 0 for no waiting.
        self.overlap_wait = 0
        original = transport.request

        def counting(method, url, **kwargs):
            with self.lock:
                self.current += 1
                self.max = max(self.max, self.current)
                self.methods.append((method, action_of(kwargs)))
                self.lock.notify_all()
                if self.overlap_wait:
                    self.lock.wait_for(lambda: self.current > 1,
                                       timeout=self.overlap_wait)
            try:
                return original(method, url, **kwargs)
            finally:
                with self.lock:
                    self.current -= 1

        monkeypatch.setattr(transport, 'request', counting)


@pytest.fixture
def in_flight(pwb, monkeypatch):
    from pywikibot_ext._pywikibot import transport
    return InFlight(transport(), monkeypatch)


def titles(loaded):
    return [page.title() for page in loaded]


def test_preload_default_serial(pages, in_flight):
    from pywikibot_ext.parallel import preload_pages
    site, page_list = pages
    assert pywikibot_ext.options.max_read_concurrency == 1
    fresh = [type(p)(site, p.title()) for p in page_list]
    loaded = list(preload_pages(site, fresh, groupsize=2))
    assert titles(loaded) == titles(page_list)
    assert in_flight.max == 1
    assert len(in_flight.methods) >= PAGE_COUNT // 2


def test_preload_parallel_bounded(pages, in_flight, monkeypatch):
    from pywikibot_ext.parallel import preload_pages
    site, page_list = pages
    monkeypatch.setattr(pywikibot_ext.options, 'max_read_concurrency', 3)
    fresh = [type(p)(site, p.title()) for p in page_list]
    loaded = list(preload_pages(site, fresh, groupsize=2))
    assert titles(loaded) == titles(page_list)
    assert [page.text for page in loaded] == [
        f'Preload text {number}' for number in range(PAGE_COUNT)]
    assert in_flight.max <= 3
    assert all(action != 'edit' for _, action in in_flight.methods)


def test_preload_parallel_overlaps(pages, in_flight, monkeypatch):
    from pywikibot_ext.parallel import preload_pages
    site, page_list = pages
    monkeypatch.setattr(pywikibot_ext.options, 'max_read_concurrency', 2)
    in_flight.overlap_wait = 2
    fresh = [type(p)(site, p.title()) for p in page_list]
    loaded = list(preload_pages(site, fresh, groupsize=3))
    assert titles(loaded) == titles(page_list)
    assert in_flight.max == 2


class Counted:
    """An endless page generator that counts the pages consumed from it."""

    def __init__(self, site, page_list):
        self.site = site
        self.page_list = page_list
        self.consumed = 0

    def __iter__(self):
        while True:
            page = self.page_list[self.consumed % len(self.page_list)]
            self.consumed += 1
            yield type(page)(self.site, page.title())


def test_preload_parallel_lazy(pages, in_flight, monkeypatch):
    from pywikibot_ext.parallel import preload_pages
    site, page_list = pages
    monkeypatch.setattr(pywikibot_ext.options, 'max_read_concurrency', 2)
    source = Counted(site, page_list)
    loaded = preload_pages(site, source, groupsize=2)
    first = next(loaded)
    assert first.title() == page_list[0].title()
    assert first.text == 'Preload text 0'
    # One batch being yielded and two in flight: three batches of two.
    assert source.consumed <= 6
    loaded.close()
    sent = len(in_flight.methods)
    assert sent <= 3
    assert source.consumed <= 6


def test_preload_groupsize_checked(pages):
    from pywikibot_ext.parallel import preload_pages
    site, page_list = pages
    with pytest.raises(ValueError, match='groupsize'):
        next(preload_pages(site, page_list, groupsize=0))


def test_submit_reads_rejects_writes(pages, in_flight, monkeypatch):
    from pywikibot.data import api

    from pywikibot_ext.parallel import submit_reads
    site, _ = pages
    monkeypatch.setattr(pywikibot_ext.options, 'max_read_concurrency', 4)
    edit = api.Request(site=site, parameters={
        'action': 'edit', 'title': 'Preload test 0', 'text': 'changed',
        'token': site.tokens['csrf']})
    read = api.Request(site=site, parameters={'action': 'query',
                                              'meta': 'siteinfo'})
    before = len(in_flight.methods)
    with pytest.raises(ValueError):
        submit_reads(site, [read, edit])
    assert len(in_flight.methods) == before


def test_submit_reads_order(pages, monkeypatch):
    from pywikibot.data import api

    from pywikibot_ext.parallel import submit_reads
    site, _ = pages
    monkeypatch.setattr(pywikibot_ext.options, 'max_read_concurrency', 2)
    requests = [api.Request(site=site, parameters={
        'action': 'query', 'titles': f'Preload test {number}'})
        for number in range(4)]
    results = submit_reads(site, requests)
    found = [list(result['query']['pages'].values())[0]['title']
             for result in results]
    assert found == [f'Preload test {number}' for number in range(4)]
