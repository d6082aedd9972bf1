"""request_many() against callers that change its input while it runs,
mixed good and bad items, and batches that outnumber the handles.

The input checks run in a child process with Python's debug allocator,
because a read of freed memory there may crash the interpreter instead
of failing an assert.
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest

import _mwcomms

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_child(code, url):
    """Run code in a child with URL bound to url, and return the process."""
    script = f'URL = {url!r}\n' + textwrap.dedent(code)
    # The debug allocator overwrites freed memory, so that a read of a
    # freed object fails at once.
    env = dict(os.environ, PYTHONMALLOC='debug')
    return subprocess.run([sys.executable, '-c', script], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def client():
    with _mwcomms.Client(cookies=False) as instance:
        yield instance


def test_many_list_cleared(http_server):
    # The items() of a headers object empties the caller's list.
    child = run_child('''
        import _mwcomms
        requests = []

        class Headers:
            def items(self):
                requests.clear()
                return [('X-A', 'b')]

        requests.append(('GET', URL, Headers()))
        requests.extend(('GET', URL + f'?n={n}') for n in range(20))
        with _mwcomms.Client(cookies=False) as client:
            results = client.request_many(requests, max_concurrency=2)
        print(len(results), sum(r.status == 200 for r in results))
    ''', http_server.url('/echo'))
    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.split() == ['21', '21']


def test_many_dict_cleared(http_server):
    # The items() of a headers object empties the item's own dict, whose
    # body and url were read from it.
    child = run_child('''
        import json
        import _mwcomms
        entry = {}

        class Headers:
            def items(self):
                entry.clear()
                return [('X-A', 'b')]

        body = ''.join(['b'] * 100)
        entry.update(method='POST', url=URL + '?' + 'u' * 40,
                     headers=Headers(), body=body)
        del body
        with _mwcomms.Client(cookies=False) as client:
            result, = client.request_many([entry])
        data = json.loads(result.body)
        print(data['method'], data['body'] == 'b' * 100,
              data['path'].endswith('u' * 40))
    ''', http_server.url('/echo'))
    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.split() == ['POST', 'True', 'True']


def test_many_list_grown(http_server):
    # Items appended during the batch are not sent: the batch is the list
    # as it was passed.
    child = run_child('''
        import _mwcomms
        requests = []

        class Headers:
            def items(self):
                requests.extend([('GET', URL)] * 50)
                return []

        requests.extend([('GET', URL, Headers()), ('GET', URL)])
        with _mwcomms.Client(cookies=False) as client:
            results = client.request_many(requests)
        print(len(results), len(requests))
    ''', http_server.url('/echo'))
    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.split() == ['2', '52']


def echo(response):
    assert response.status == 200
    data = json.loads(response.body)
    data['headers'] = {name.lower(): value
                       for name, value in data['headers']}
    return data


def test_many_mixed_items_order(client, http_server, closed_port):
    url = http_server.url('/echo')
    good = [('GET', f'{url}?n={n}') for n in range(30)]
    batch = []
    for n, item in enumerate(good):
        batch.append(item)
        if n % 3 == 0:
            batch.append(('GET', f'http://127.0.0.1:{closed_port}/'))
        if n % 4 == 0:
            batch.append(('GET', 'ftp://127.0.0.1/'))
        if n % 5 == 0:
            batch.append(42)
        if n % 7 == 0:
            batch.append({'url': url, 'headers': {'Bad\nName': 'x'}})
    results = client.request_many(batch, max_concurrency=3)
    assert len(results) == len(batch)
    for item, result in zip(batch, results):
        if item in good:
            assert echo(result)['path'] == item[1][len(url) - 5:]
        else:
            assert isinstance(result, BaseException), item
    stats = client.stats
    assert stats['idle'] == stats['handles']


def test_many_large_batch(client, http_server):
    url = http_server.url('/echo')
    batch = [('GET', f'{url}?n={n}') for n in range(400)]
    results = client.request_many(batch, max_concurrency=4)
    assert [echo(r)['path'] for r in results] == [
        f'/echo?n={n}' for n in range(400)]
    assert client.stats['handles'] <= 8


def test_many_options_not_kept(client, http_server, forward_proxy):
    # A batch through a proxy or without certificate checks must not
    # leave those options on the pooled handles.
    url = http_server.url('/echo')
    forward_proxy.clear()
    client.request_many([('GET', url)] * 4, proxy=forward_proxy.url())
    seen = len(forward_proxy.seen())
    assert seen == 4
    client.request_many([('GET', url)] * 4, verify=False)
    results = client.request_many([('GET', url)] * 4)
    for response in results:
        assert response.status == 200
    assert len(forward_proxy.seen()) == seen
    for _ in range(4):
        assert client.request('GET', url).status == 200
    assert len(forward_proxy.seen()) == seen


@pytest.mark.parametrize('error', [KeyboardInterrupt, SystemExit])
def test_many_interrupt_in_setup(client, http_server, error):
    # An exception that is not an Exception ends the batch instead of
    # becoming one item's result.
    url = http_server.url('/echo')

    class Headers:
        def items(self):
            raise error

    batch = [('GET', url), ('GET', url), ('GET', url, Headers()),
             ('GET', url)]
    with pytest.raises(error):
        client.request_many(batch, max_concurrency=4)
    stats = client.stats
    assert stats['idle'] == stats['handles']
    results = client.request_many([('GET', url)] * 3)
    assert [r.status for r in results] == [200, 200, 200]


def test_many_value_error_in_setup(client, http_server):
    url = http_server.url('/echo')

    class Headers:
        def items(self):
            raise ValueError('bad headers')

    results = client.request_many([('GET', url, Headers()), ('GET', url)])
    assert isinstance(results[0], ValueError)
    assert results[1].status == 200
