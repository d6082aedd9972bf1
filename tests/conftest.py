"""Fixtures with local test servers (see servers.py)."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import servers  # noqa: E402


@pytest.fixture(scope='session')
def http_server():
    server = servers.Server().start()
    yield server
    server.stop()


@pytest.fixture(scope='session')
def certificates(tmp_path_factory):
    return servers.make_certificates(tmp_path_factory.mktemp('tls'))


@pytest.fixture(scope='session')
def https_server(certificates):
    server = servers.Server(servers.tls_context(certificates)).start()
    yield server
    server.stop()


@pytest.fixture
def raw_servers():
    """Start servers.RawServer instances with the given handlers; stop
    them after the test."""
    started = []

    def start(handler):
        server = servers.RawServer(handler)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def closed_port():
    return servers.closed_port()


@pytest.fixture(scope='session')
def forward_proxy():
    proxy = servers.ForwardProxy().start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope='session')
def auth_proxy():
    proxy = servers.ForwardProxy(('proxyuser', 'pr0xy-secret')).start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope='session')
def nginx(tmp_path_factory, certificates):
    if shutil.which('nginx') is None:
        pytest.skip('nginx is not installed')
    server = servers.Nginx(tmp_path_factory.mktemp('nginx'),
                           certificates).start()
    yield server
    server.stop()


# The local wiki, its OAuth front and the configured pywikibot: one
# instance each for the whole session, shared by every module.
pytest_plugins = ['wiki_fixtures']
