"""Attacks on request_many items that fail before they start."""
from __future__ import annotations

import gc
import weakref

import _mwcomms


class ItemError(Exception):
    pass


class RaisingHeaders:
    """Headers whose items() raises the given exception."""

    def __init__(self, error):
        self.error = error

    def items(self):
        raise self.error


class ClosingHeaders:
    """Headers whose items() closes the client."""

    def __init__(self, client):
        self.client = client

    def items(self):
        self.client.close()
        return []


def test_failed_item_kept_after_close(http_server):
    client = _mwcomms.Client()
    error = ItemError('bad headers')
    watch = weakref.ref(error)
    url = http_server.url('/echo')
    results = client.request_many([
        ('GET', url),
        ('GET', url, RaisingHeaders(error)),
        ('GET', url, ClosingHeaders(client)),
    ])
    # The item whose headers raised keeps its own error.
    assert results[1] is error
    assert isinstance(results[0], ValueError)
    assert isinstance(results[2], ValueError)
    del error, results
    gc.collect()
    assert watch() is None


def test_closed_batch_no_leak(http_server):
    client = _mwcomms.Client()
    url = http_server.url('/echo')
    errors = [ItemError(str(index)) for index in range(3)]
    watches = [weakref.ref(error) for error in errors]
    requests = [('GET', url)]
    requests += [('GET', url, RaisingHeaders(error)) for error in errors]
    requests.append(('GET', url, ClosingHeaders(client)))
    client.request_many(requests)
    del errors, requests
    gc.collect()
    assert [watch() for watch in watches] == [None, None, None]
    assert client.stats['handles'] == 0
