"""pywikibot_ext._environ.getenv and the Transport's host split."""
from __future__ import annotations

import os
from urllib.parse import urlsplit

import pytest

from pywikibot_ext._environ import getenv
from pywikibot_ext._transport import _netloc

NAME = 'MWCOMMS_TEST_GETENV'


def test_getenv_follows_changes(monkeypatch):
    monkeypatch.delenv(NAME, raising=False)
    assert getenv(NAME) is None
    monkeypatch.setenv(NAME, 'one')
    assert getenv(NAME) == 'one'
    assert getenv(NAME) == 'one'
    monkeypatch.setenv(NAME, 'two')
    assert getenv(NAME) == 'two'
    os.environ[NAME] = 'two'
    assert getenv(NAME) == 'two'
    monkeypatch.setenv(NAME, '\u00e9t\u00e9')
    assert getenv(NAME) == os.environ.get(NAME)
    monkeypatch.delenv(NAME)
    assert getenv(NAME) is None


@pytest.mark.parametrize('url', [
    'http://127.0.0.1:8080/w/api.php',
    'https://wiki.example.org/w/api.php?action=query',
    'https://wiki.example.org',
    'https://wiki.example.org?x=1',
    'https://wiki.example.org#frag',
    'https://user:pw@wiki.example.org/w/',
    'http://[::1]:8080/w/',
    'http:\\\\wiki.example.org\\w',
    'wiki.example.org/w/api.php',
    '//wiki.example.org/w/',
    'http:/wiki.example.org/w/',
    '',
])
def test_netloc_matches_urlsplit(url):
    assert _netloc(url) == urlsplit(url).netloc


def test_ca_bundle_follows_changes(monkeypatch):
    from pywikibot_ext._transport import Transport
    monkeypatch.delenv('REQUESTS_CA_BUNDLE', raising=False)
    monkeypatch.delenv('CURL_CA_BUNDLE', raising=False)
    assert Transport._verify_option(None) is True
    monkeypatch.setenv('CURL_CA_BUNDLE', '/etc/curl.pem')
    assert Transport._verify_option(True) == '/etc/curl.pem'
    monkeypatch.setenv('REQUESTS_CA_BUNDLE', '/etc/requests.pem')
    assert Transport._verify_option(None) == '/etc/requests.pem'
    monkeypatch.setenv('REQUESTS_CA_BUNDLE', '')
    assert Transport._verify_option(None) == '/etc/curl.pem'
    monkeypatch.delenv('CURL_CA_BUNDLE')
    assert Transport._verify_option(None) is True
    assert Transport._verify_option(False) is False
    assert Transport._verify_option('/x.pem') == '/x.pem'


@pytest.mark.parametrize('names, expected', [
    ([], False),
    ([b'PATH', b'NO_PROXY', b'no_proxy', b'ftp_proxy'], False),
    ([b'http_proxy'], True),
    ([b'HTTPS_PROXY'], True),
    ([b'All_Proxy'], True),
    (['hTTp_pRoXy'], True),
    ([b'http_proxyx', b'xhttp_proxy', b'http-proxy'], False),
    (['\u00e9http_proxy', 'http_prox\u00ff'], False),
    ({b'HOME': b'/root', b'Http_Proxy': b'x'}, True),
])
def test_has_proxy_variable(names, expected):
    import _mwcomms
    assert _mwcomms.has_proxy_variable(names) is expected


def test_has_proxy_variable_not_iterable():
    import _mwcomms
    with pytest.raises(TypeError):
        _mwcomms.has_proxy_variable(42)


def test_proxy_check_follows_changes(monkeypatch):
    from pywikibot_ext._proxy import _proxy_environment_set
    for name in list(os.environ):
        if name.lower() in ('http_proxy', 'https_proxy', 'all_proxy'):
            monkeypatch.delenv(name)
    assert _proxy_environment_set() is False
    assert _proxy_environment_set() is False
    monkeypatch.setenv('Https_Proxy', 'http://127.0.0.1:9')
    assert _proxy_environment_set() is True
    monkeypatch.delenv('Https_Proxy')
    assert _proxy_environment_set() is False


def test_dict_version_changes():
    import _mwcomms
    flat = {}
    before = _mwcomms.dict_version(flat)
    if before is None:
        pytest.skip('this interpreter keeps no dict versions')
    assert _mwcomms.dict_version(flat) == before
    flat['a'] = 1
    assert _mwcomms.dict_version(flat) != before


def test_dict_version_nested():
    import _mwcomms
    inner = {}
    tree = {'domain': {'/': inner}}
    before = _mwcomms.dict_version(tree, 2)
    if before is None:
        pytest.skip('this interpreter keeps no dict versions')
    shallow = _mwcomms.dict_version(tree, 1)
    inner['name'] = 'cookie'
    assert _mwcomms.dict_version(tree, 2) != before
    # One level down does not reach the innermost dict.
    assert _mwcomms.dict_version(tree, 1) == shallow
    before = _mwcomms.dict_version(tree, 2)
    del tree['domain']['/']
    assert _mwcomms.dict_version(tree, 2) != before


@pytest.mark.parametrize('args, error', [
    ((), TypeError),
    (([],), TypeError),
    (({}, 'x'), TypeError),
    (({}, -1), ValueError),
    (({}, 9), ValueError),
    (({}, 1, 2), TypeError),
])
def test_dict_version_bad_arguments(args, error):
    import _mwcomms
    with pytest.raises(error):
        _mwcomms.dict_version(*args)
