"""Mixed request sequences on one pooled handle must act like a fresh
client for every request (plain setups keep options between requests)."""
from __future__ import annotations

import json
import random
import shutil

import pytest

import _mwcomms
import servers


@pytest.fixture(scope='module')
def ca_paths(certificates, tmp_path_factory):
    """Five copies of the test CA under distinct paths, and one unrelated
    CA that does not sign the server certificate."""
    directory = tmp_path_factory.mktemp('cas')
    copies = []
    for index in range(5):
        path = directory / f'ca-{index}.pem'
        shutil.copy(certificates['ca'], path)
        copies.append(str(path))
    other = servers.make_certificates(directory / 'other')
    return copies, str(other['ca'])


def echo_outcome(response, method):
    if method == 'HEAD':
        return (response.status, None, None, None)
    data = json.loads(response.body)
    names = {name.lower(): value for name, value in data['headers']}
    # A multipart body has a random boundary, so compare lengths.
    return (response.status, data['method'], 'accept-encoding' in names,
            len(data['body']), names.get('content-type', '')[:20])


def run_one(client, step, urls, forward_proxy):
    """Run one request and return what the server and the proxy saw."""
    kind, method, verify, proxy, encoding = step
    secure = verify is not None
    url = urls['https'] if secure else urls['http']
    options = {'accept_encoding': encoding, 'timeout': 10}
    if secure:
        options['verify'] = verify
    else:
        options['proxy'] = proxy
    body = None
    if method in ('POST', 'PUT'):
        body = 'field=value&n=1'

    before = len(forward_proxy.seen())
    try:
        if kind == 'stream':
            with client.stream(method, url, body=body, **options) as r:
                data = r.read()
                outcome = (r.status, json.loads(data)['method']
                           if method != 'HEAD' else None)
        elif kind == 'many':
            (response,) = client.request_many([(method, url, None, body)],
                                              **options)
            if isinstance(response, Exception):
                raise response
            outcome = echo_outcome(response, method)
        elif kind == 'multipart':
            multipart = _mwcomms.Multipart(fields={'a': '1'})
            response = client.request(method, url, body=multipart, **options)
            outcome = echo_outcome(response, method)
        else:
            response = client.request(method, url, body=body, **options)
            outcome = echo_outcome(response, method)
    except _mwcomms.Error as error:
        outcome = ('error', type(error).__name__)
    proxied = len(forward_proxy.seen()) - before
    return outcome, proxied


def make_steps(seed, ca_copies, bad_ca):
    rng = random.Random(seed)
    verifies = [True, False, bad_ca] + ca_copies
    steps = []
    for _ in range(60):
        kind = rng.choice(['request', 'request', 'stream', 'many',
                           'multipart'])
        method = rng.choice(['GET', 'GET', 'POST', 'HEAD', 'PUT'])
        if kind == 'multipart':
            method = rng.choice(['POST', 'PUT'])
        if kind == 'stream' and method == 'HEAD':
            method = 'GET'
        encoding = rng.random() < 0.5
        if rng.random() < 0.5:
            steps.append((kind, method, rng.choice(verifies), None, encoding))
        else:
            # The test proxy closes its connections after each response,
            # so only GET goes through it (a POST is never resent).
            proxy = rng.choice([None, '']) if method == 'GET' else ''
            steps.append((kind, method, None, proxy, encoding))
    return steps


@pytest.mark.parametrize('seed', [1, 2, 3])
def test_mixed_sequence_like_fresh(http_server, https_server, forward_proxy,
                                   ca_paths, monkeypatch, seed):
    monkeypatch.setenv('http_proxy', forward_proxy.url())
    monkeypatch.delenv('no_proxy', raising=False)
    monkeypatch.delenv('NO_PROXY', raising=False)
    urls = {'http': http_server.url('/echo'),
            'https': https_server.url('/echo')}
    copies, bad_ca = ca_paths
    steps = make_steps(seed, copies, bad_ca)
    with _mwcomms.Client(max_idle_handles=1) as pooled:
        for number, step in enumerate(steps):
            seen = run_one(pooled, step, urls, forward_proxy)
            with _mwcomms.Client() as fresh:
                expected = run_one(fresh, step, urls, forward_proxy)
            assert seen == expected, (number, step)


def test_ca_slots_then_bad_ca(https_server, ca_paths):
    copies, bad_ca = ca_paths
    url = https_server.url('/echo')
    with _mwcomms.Client(max_idle_handles=1) as client:
        for path in copies + copies:
            assert client.request('GET', url, verify=path).status == 200
            with pytest.raises(_mwcomms.SSLError):
                client.request('GET', url, verify=bad_ca)
            with pytest.raises(_mwcomms.SSLError):
                client.request('GET', url)
            assert client.request('GET', url, verify=False).status == 200
