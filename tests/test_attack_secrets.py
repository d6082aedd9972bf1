"""Passwords in malformed URLs must stay out of exception messages.

libcurl rejects a URL whose scheme is not a valid scheme, such as one
with a leading space or a typo, and the InvalidURL message shows the
URL.  Its user information must be dropped all the same.
"""
import traceback

import pytest
import requests

import _mwcomms
from pywikibot_ext._transport import Transport, _redact_url

SECRET = 'hunter2-SENTINEL'

# URLs with a scheme that libcurl rejects, and what messages may show.
MALFORMED_SCHEME_URLS = [
    (' http://u:{s}@127.0.0.1:1/', ' http://127.0.0.1:1/'),
    ('\thttp://u:{s}@127.0.0.1:1/x', '\thttp://127.0.0.1:1/x'),
    ('h ttp://u:{s}@127.0.0.1:1/', 'h ttp://127.0.0.1:1/'),
    ('ht\ntp://u:{s}@127.0.0.1:1/', 'ht\ntp://127.0.0.1:1/'),
    ('1http://u:{s}@127.0.0.1:1/', '1http://127.0.0.1:1/'),
    ('ht_tp:\\\\u:{s}@127.0.0.1:1/', 'ht_tp:\\\\127.0.0.1:1/'),
    ('\u00e9://u:{s}@127.0.0.1:1/', '\u00e9://127.0.0.1:1/'),
    ('a:b://u:{s}@127.0.0.1:1/', 'a:b://127.0.0.1:1/'),
    ('://u:{s}@127.0.0.1:1/', '://127.0.0.1:1/'),
]


def full_text(exc):
    return ''.join(traceback.format_exception(exc))


@pytest.fixture
def client():
    with _mwcomms.Client(cookies=False) as instance:
        yield instance


@pytest.mark.parametrize('form, shown', MALFORMED_SCHEME_URLS)
def test_bad_scheme_request(client, form, shown):
    with pytest.raises(_mwcomms.InvalidURL) as caught:
        client.request('GET', form.format(s=SECRET))
    assert SECRET not in full_text(caught.value)
    assert caught.value.url == shown


@pytest.mark.parametrize('form, shown', MALFORMED_SCHEME_URLS)
def test_bad_scheme_stream(client, form, shown):
    with pytest.raises(_mwcomms.InvalidURL) as caught:
        client.stream('GET', form.format(s=SECRET))
    assert SECRET not in full_text(caught.value)


@pytest.mark.parametrize('form, shown', MALFORMED_SCHEME_URLS)
def test_bad_scheme_request_many(client, form, shown):
    result, = client.request_many([('GET', form.format(s=SECRET))])
    assert isinstance(result, _mwcomms.InvalidURL)
    assert SECRET not in full_text(result)
    assert result.url == shown


@pytest.mark.parametrize('form, shown', MALFORMED_SCHEME_URLS)
def test_bad_scheme_python_rule(form, shown):
    assert _redact_url(form.format(s=SECRET)) == shown


def test_bad_scheme_transport():
    transport = Transport()
    try:
        with pytest.raises(requests.exceptions.RequestException) as caught:
            transport.request('GET', f' http://u:{SECRET}@127.0.0.1:1/',
                              timeout=5)
    finally:
        transport.close()
    assert SECRET not in full_text(caught.value)
