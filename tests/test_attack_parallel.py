"""preload_pages with a stand-in site: order, errors, laziness, close.

The stand-in's preloadpages() returns its batch after a short wait, so
several batches are in flight while earlier ones are being yielded.  No
wiki is needed.
"""
import itertools
import threading
import time

import pytest

import pywikibot_ext
from pywikibot_ext.parallel import preload_pages


class FakeSite:
    """A site whose preloadpages() returns each batch, or raises."""

    def __init__(self, fail_on=None):
        self.fail_on = fail_on
        self.lock = threading.Lock()
        self.batches = []
        self.active = 0
        self.max_active = 0

    def hostname(self):
        return 'fake.invalid'

    def preloadpages(self, batch, groupsize, **kwargs):
        with self.lock:
            self.batches.append(list(batch))
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            time.sleep(0.01)
            if self.fail_on is not None and self.fail_on in batch:
                raise RuntimeError(f'batch with {self.fail_on} failed')
            return list(batch)
        finally:
            with self.lock:
                self.active -= 1


@pytest.fixture(autouse=True)
def concurrency(monkeypatch):
    monkeypatch.setattr(pywikibot_ext.options, 'max_read_concurrency', 3)


def test_preload_order_kept():
    site = FakeSite()
    assert list(preload_pages(site, range(47), groupsize=5)) == list(
        range(47))
    assert site.max_active <= 3


def test_preload_error_in_place():
    site = FakeSite(fail_on=23)
    loaded = []
    with pytest.raises(RuntimeError, match='23'):
        for page in preload_pages(site, range(40), groupsize=5):
            loaded.append(page)
    assert loaded == list(range(20))


def test_preload_source_error():
    def pages():
        yield from range(12)
        raise KeyError('source failed')

    site = FakeSite()
    loaded = []
    with pytest.raises(KeyError):
        for page in preload_pages(site, pages(), groupsize=5):
            loaded.append(page)
    assert loaded == list(range(len(loaded)))
    assert site.active == 0


def test_preload_endless_closed():
    site = FakeSite()
    counter = itertools.count()
    loaded = preload_pages(site, counter, groupsize=4)
    first = [next(loaded) for _ in range(6)]
    loaded.close()
    assert first == list(range(6))
    assert site.active == 0
    # A window of at most 4 batches of 4 was read from the source.
    assert next(counter) <= 4 * 4 + 4
