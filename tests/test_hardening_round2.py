"""Regression tests for defects found by a second review of the client.

Each section covers one defect: passwords of malformed proxy URLs in
messages, state-changing requests in the parallel helpers, the per-host
bound when the limit changes, the clock-skew resend, Client.close()
during request_many, RawStream.read(0), multipart files replaced after
the Multipart was made, and a progress callback that raises.  Every
server is local (127.0.0.1).
"""
from __future__ import annotations

import traceback

import pytest

import _mwcomms

SECRET = 's3cretPW'


def full_text(exc: BaseException) -> str:
    """Return the message, repr and formatted traceback of exc."""
    return ''.join([str(exc), repr(exc)]
                   + traceback.format_exception(exc))


# -- proxy passwords in messages ---------------------------------------

# Proxy URLs that libcurl or urllib3 cannot parse, or parse without
# finding the user info, each with SECRET in its user info.  Every host
# in them is 127.0.0.1 or ::1, so that nothing is looked up in DNS.
MALFORMED_PROXIES = [
    'user:///{s}@127.0.0.1:{p}',
    'user:{s}@127.0.0.1:{p}',
    '//user:{s}@127.0.0.1:{p}',
    '\\\\user:{s}@127.0.0.1:{p}',
    'http:/user:{s}@127.0.0.1:{p}',
    'http:user:{s}@127.0.0.1:{p}',
    'http://user:{s} x@127.0.0.1:{p}',
    'http://user:{s}@127.0.0.1:{p}:2',
    'http://user:{s}@[::1',
    'http://us@er:{s}@127.0.0.1:{p}',
    'http://user:{s}@127.0.0.1:99999',
    'ftp://user:{s}@127.0.0.1:{p}',
    'http://user:{s}\x7f@127.0.0.1:{p}',
    'http://u:{s}@:{p}',
    'user:{s}@',
    '@user:{s}',
    'http://[user:{s}@127.0.0.1:{p}]',
    'http://user:{s}#x@127.0.0.1:{p}',
    'http://user:{s}?x@127.0.0.1:{p}',
    'socks5://user:{s}@127.0.0.1:{p}:2',
    'user://{s}@127.0.0.1:{p}',
]


@pytest.mark.parametrize('form', MALFORMED_PROXIES)
def test_client_proxy_hides_password(form, closed_port):
    proxy = form.format(s=SECRET, p=closed_port)
    with _mwcomms.Client() as client:
        with pytest.raises((ValueError, _mwcomms.Error)) as caught:
            client.request('GET', f'http://127.0.0.1:{closed_port}/',
                           proxy=proxy, timeout=5)
    assert SECRET not in full_text(caught.value)
    assert SECRET not in str(getattr(caught.value, 'url', ''))


def test_client_invalid_proxy_message(closed_port):
    proxy = f'user:///{SECRET}@127.0.0.1:{closed_port}'
    with _mwcomms.Client() as client:
        with pytest.raises(ValueError) as caught:
            client.request('GET', f'http://127.0.0.1:{closed_port}/',
                           proxy=proxy)
    assert 'invalid proxy URL' in str(caught.value)
    assert 'not shown' in str(caught.value)


@pytest.mark.parametrize('form', MALFORMED_PROXIES)
def test_transport_env_proxy_hides_password(form, closed_port,
                                            monkeypatch):
    from pywikibot_ext._transport import Transport

    for name in ('no_proxy', 'NO_PROXY', 'all_proxy', 'ALL_PROXY',
                 'HTTP_PROXY'):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv('http_proxy', form.format(s=SECRET, p=closed_port))
    transport = Transport()
    try:
        with pytest.raises(Exception) as caught:
            transport.request('GET', f'http://127.0.0.1:{closed_port}/',
                              timeout=5)
    finally:
        transport.close()
    assert SECRET not in full_text(caught.value)


# Request URLs whose user info the C redaction must drop, with the text
# that must remain.
REQUEST_URLS = [
    ('//user:{s}@127.0.0.1:1/x', '//127.0.0.1:1/x'),
    ('user:///{s}@127.0.0.1:1/', 'user:///127.0.0.1:1/'),
    ('user:{s}@127.0.0.1:1', '127.0.0.1:1'),
    ('ftp://user:{s}@127.0.0.1:1/a@b', 'ftp://127.0.0.1:1/a@b'),
    ('gopher://a@b:{s}@127.0.0.1/?q@x', 'gopher://127.0.0.1/?q@x'),
]


@pytest.mark.parametrize('form, shown', REQUEST_URLS)
def test_invalid_url_message_redacted(form, shown):
    url = form.format(s=SECRET)
    with _mwcomms.Client() as client:
        with pytest.raises(_mwcomms.InvalidURL) as caught:
            client.request('GET', url)
    assert SECRET not in full_text(caught.value)
    assert caught.value.url == shown


@pytest.mark.parametrize('form, shown', REQUEST_URLS + [
    ('http://127.0.0.1/p@th', 'http://127.0.0.1/p@th'),
    ('\\\\u:{s}@127.0.0.1', '\\\\127.0.0.1'),
])
def test_python_redact_matches_rule(form, shown):
    from pywikibot_ext._transport import _redact_url

    assert _redact_url(form.format(s=SECRET)) == shown
