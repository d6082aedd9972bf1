"""Proxies, cookies and failed requests: the transport against requests."""
from __future__ import annotations

import http.cookiejar
import socket
import threading

import pytest
import requests
from requests import exceptions as rexc

from pywikibot_ext._proxy import PROXY_VARIABLES, select_proxy
from pywikibot_ext._transport import Transport

PROXY_PASSWORD = 'pr0xy-secret'


@pytest.fixture
def transport():
    instance = Transport(cookie_jar=http.cookiejar.CookieJar())
    yield instance
    instance.close()


@pytest.fixture
def clean_environment(monkeypatch):
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def proxied(proxy, call) -> int:
    """Return how many requests went through proxy during call()."""
    proxy.clear()
    call()
    return len(proxy.seen())


# -- proxies ----------------------------------------------------------------

PROXY_CASES = {
    'scheme': lambda p: ({'http': p}, {}),
    'all': lambda p: ({'all': p}, {}),
    'host_key': lambda p: ({'http://127.0.0.1': p}, {}),
    'other_scheme': lambda p: ({'https': p}, {}),
    'env_lower': lambda p: (None, {'http_proxy': p}),
    'env_upper': lambda p: (None, {'HTTP_PROXY': p}),
    'env_all': lambda p: (None, {'ALL_PROXY': p}),
    'env_no_proxy': lambda p: (None, {'http_proxy': p,
                                      'NO_PROXY': '127.0.0.1'}),
    'env_no_proxy_star': lambda p: (None, {'http_proxy': p,
                                           'no_proxy': '*'}),
    'env_no_proxy_cidr': lambda p: (None, {'http_proxy': p,
                                           'no_proxy': '127.0.0.0/8'}),
    'env_no_proxy_other': lambda p: (None, {'http_proxy': p,
                                            'no_proxy': 'example.org'}),
    'argument_no_proxy': lambda p: ({'no_proxy': '127.0.0.1'},
                                    {'http_proxy': p}),
    'env_only_no_proxy': lambda p: (None, {'no_proxy': '127.0.0.1',
                                           'NO_PROXY': 'example.org'}),
    'env_no_proxy_with_argument': lambda p: ({'http': p},
                                             {'no_proxy': '127.0.0.1'}),
    'none_overrides_env': lambda p: ({'http': None}, {'http_proxy': p}),
    'argument_over_env': lambda p: ({'http': p},
                                    {'http_proxy': 'http://127.0.0.1:9'}),
}


@pytest.mark.parametrize('case', sorted(PROXY_CASES))
def test_proxy_matches_requests(transport, http_server, forward_proxy,
                                clean_environment, case):
    proxies, environment = PROXY_CASES[case](forward_proxy.url())
    for name, value in environment.items():
        clean_environment.setenv(name, value)
    url = http_server.url('/echo')

    ours = proxied(forward_proxy, lambda: transport.request(
        'GET', url, proxies=proxies, timeout=10))
    theirs = proxied(forward_proxy, lambda: requests.get(
        url, proxies=proxies, timeout=10))

    assert ours == theirs


@pytest.mark.parametrize('environment', [
    {'no_proxy': '127.0.0.1'},
    {'NO_PROXY': '*'},
    {'no_proxy': 'example.org', 'NO_PROXY': '127.0.0.1'},
    {'no_proxy': '127.0.0.1', 'https_proxy': 'http://127.0.0.1:9'},
    {'no_proxy': 'example.org', 'ALL_PROXY': 'http://127.0.0.1:9'},
])
def test_select_proxy_with_no_proxy_variables(clean_environment,
                                              environment):
    # The variables that name no proxy skip requests' rules, so compare
    # the choice with requests' own merge for both URL schemes.
    for name, value in environment.items():
        clean_environment.setenv(name, value)
    session = requests.Session()
    for url in ('http://127.0.0.1:8/w/api.php',
                'https://wiki.example.org/w/api.php'):
        settings = session.merge_environment_settings(url, {}, None, None,
                                                      None)
        expected = requests.utils.select_proxy(url, settings['proxies'])
        assert select_proxy(url, None) == (expected or '')


def test_proxy_forwards_request(transport, http_server, forward_proxy,
                                clean_environment):
    url = http_server.url('/echo?x=1')
    forward_proxy.clear()
    response = transport.request('GET', url,
                                 proxies={'http': forward_proxy.url()},
                                 timeout=10)
    assert response.json()['path'] == '/echo?x=1'
    assert forward_proxy.seen() == [('GET', url, None)]


def test_proxy_tunnels_https(transport, https_server, certificates,
                             forward_proxy, clean_environment):
    url = https_server.url('/echo')
    forward_proxy.clear()
    response = transport.request('GET', url, timeout=10,
                                 proxies={'https': forward_proxy.url()},
                                 verify=str(certificates['ca']))
    assert response.status_code == 200
    port = https_server.server_port
    assert forward_proxy.seen()[0][:2] == ('CONNECT', f'127.0.0.1:{port}')


def test_proxy_credentials(transport, http_server, auth_proxy,
                           clean_environment):
    proxy = auth_proxy.url(f'proxyuser:{PROXY_PASSWORD}')
    auth_proxy.clear()
    response = transport.request('GET', http_server.url('/echo'),
                                 proxies={'http': proxy}, timeout=10)
    assert response.status_code == 200
    assert auth_proxy.seen()[0][2].startswith('Basic ')


def test_proxy_error_hides_password(transport, http_server, closed_port,
                                    clean_environment):
    proxy = f'http://user:{PROXY_PASSWORD}@127.0.0.1:{closed_port}'
    with pytest.raises(rexc.ConnectionError) as info:
        transport.request('GET', http_server.url('/echo'),
                          proxies={'http': proxy}, timeout=10)
    assert PROXY_PASSWORD not in str(info.value)


def test_proxy_none_without_environment(clean_environment):
    assert select_proxy('http://127.0.0.1/', None) == ''


def test_proxy_scheme_added(clean_environment):
    assert select_proxy('http://127.0.0.1/',
                        {'http': '127.0.0.1:3128'}) == 'http://127.0.0.1:3128'


def test_proxy_trust_env_false(clean_environment):
    clean_environment.setenv('http_proxy', 'http://127.0.0.1:3128')
    assert select_proxy('http://127.0.0.1/', None, trust_env=False) == ''


# -- cookies ----------------------------------------------------------------

def sent_cookie(response):
    headers = dict((name.lower(), value)
                   for name, value in response.json()['headers'])
    return headers.get('cookie')


def test_cookie_other_host_isolated(transport, http_server):
    """A cookie of 127.0.0.1 never reaches localhost, as with requests."""
    port = http_server.server_port
    transport.request('GET', http_server.url('/set-cookie?name=s&value=1'))
    local = transport.request('GET', f'http://localhost:{port}/echo',
                              timeout=10)
    same = transport.request('GET', http_server.url('/echo'))
    assert sent_cookie(local) is None
    assert sent_cookie(same) == 's=1'


def test_cookie_port_rule(transport, http_server):
    """RFC 6265: cookies do not isolate ports on one host.

    A cookie set by 127.0.0.1:A is sent to 127.0.0.1:B as well, by
    requests and by the transport alike.
    """
    other = __import__('servers').Server().start()
    try:
        transport.request('GET',
                          http_server.url('/set-cookie?name=p&value=2'))
        ours = transport.request('GET', other.url('/echo'))
        session = requests.Session()
        session.get(http_server.url('/set-cookie?name=p&value=2'),
                    timeout=10)
        theirs = session.get(other.url('/echo'), timeout=10)
    finally:
        other.stop()
    assert sent_cookie(ours) == 'p=2'
    assert sent_cookie(theirs) == 'p=2'


def test_cookie_threads(http_server):
    """Many threads receive Set-Cookie at once; the jar keeps every one."""
    jar = http.cookiejar.LWPCookieJar()
    transport = Transport(cookie_jar=jar)
    errors = []

    def work(thread_id):
        try:
            for number in range(20):
                transport.request('GET', http_server.url(
                    f'/set-cookie?name=t{thread_id}n{number}&value=v'))
        except Exception as exc:  # reported by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    transport.close()
    names = {cookie.name for cookie in jar}
    assert errors == []
    assert len(names) == 160
    assert 't7n19' in names


# -- failures ---------------------------------------------------------------

class DroppingServer(threading.Thread):
    """Read each request, then close the connection without a response."""

    def __init__(self):
        super().__init__(daemon=True)
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen()
        self.sock.settimeout(15)
        self.port = self.sock.getsockname()[1]
        self.received = 0
        self.lock = threading.Lock()

    def run(self):
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            with connection:
                connection.settimeout(5)
                try:
                    data = connection.recv(65536)
                except OSError:
                    continue
                if data:
                    with self.lock:
                        self.received += 1

    def stop(self):
        self.sock.close()


@pytest.mark.parametrize('client', ['ours', 'requests'])
def test_sent_post_not_resent(transport, client):
    server = DroppingServer()
    server.start()
    url = f'http://127.0.0.1:{server.port}/w/api.php'
    call = transport.request if client == 'ours' else requests.request
    try:
        with pytest.raises(rexc.ConnectionError):
            call('POST', url, data={'action': 'edit'}, timeout=10)
    finally:
        server.stop()
    assert server.received == 1


def test_refused_like_requests(transport, closed_port):
    url = f'http://127.0.0.1:{closed_port}/'
    with pytest.raises(rexc.ConnectionError) as ours:
        transport.request('GET', url, timeout=10)
    with pytest.raises(rexc.ConnectionError) as theirs:
        requests.get(url, timeout=10)
    # pywikibot retries a refused connection; the words it looks for.
    assert 'NewConnectionError' in str(ours.value)
    assert 'NewConnectionError' in str(theirs.value)


def test_read_timeout_like_requests(transport, http_server):
    url = http_server.url('/slow?seconds=2')
    with pytest.raises(rexc.ReadTimeout):
        transport.request('GET', url, timeout=(5, 0.5))
    with pytest.raises(rexc.ReadTimeout):
        requests.get(url, timeout=(5, 0.5))


@pytest.mark.parametrize('url', ['http://', 'nothing', 'http://[::1/'])
def test_invalid_url_like_requests(transport, url):
    with pytest.raises(ValueError) as theirs:
        requests.get(url, timeout=5)
    with pytest.raises(ValueError) as ours:
        transport.request('GET', url, timeout=5)
    assert isinstance(ours.value, rexc.RequestException)
    assert isinstance(theirs.value, rexc.RequestException)


def test_untrusted_certificate_like_requests(transport, https_server):
    url = https_server.url('/echo')
    with pytest.raises(rexc.SSLError) as ours:
        transport.request('GET', url, timeout=10)
    with pytest.raises(rexc.SSLError) as theirs:
        requests.get(url, timeout=10)
    assert 'certificate verify failed' in str(ours.value)
    assert 'certificate verify failed' in str(theirs.value)
