"""A str body goes out as requests 2.34 with urllib3 2.8 sends it."""
from __future__ import annotations

import pytest
import requests

from pywikibot_ext._transport import Transport
from test_attack_fastpath_transport import compare, echo  # noqa: F401


@pytest.fixture
def transport():
    instance = Transport()
    yield instance
    instance.close()


@pytest.mark.parametrize('body', ['caf\u00e9', '\u20acuro'])
def test_str_body_like_requests(echo, transport, body):  # noqa: F811
    ours, stock = compare(transport, 'POST', f'http://{echo}/b', data=body)
    assert ours['body'] == stock['body']
    assert ours['headers']['content-length'] == stock['headers'][
        'content-length']
