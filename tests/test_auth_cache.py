"""The cached lookup of config.authenticate follows changes at run time."""
from __future__ import annotations

import pytest

CREDENTIALS = ('ck', 'cs', 'ak', 'as')
OTHER = ('ck2', 'cs2', 'ak2', 'as2')


@pytest.mark.realwiki
def test_follows_config_changes(pwb):
    from pywikibot import config
    from pywikibot.comms import http

    from pywikibot_ext._pywikibot import get_authentication

    saved = config.authenticate
    uri = 'https://auth-cache.example.org/w/api.php'
    try:
        config.authenticate = {}
        for _ in range(2):
            assert get_authentication(uri) is None
        config.authenticate['auth-cache.example.org'] = CREDENTIALS
        for _ in range(2):
            assert get_authentication(uri) == CREDENTIALS
        config.authenticate['auth-cache.example.org'] = OTHER
        assert get_authentication(uri) == OTHER
        assert get_authentication(uri + '?action=query') == OTHER
        config.authenticate = {'*.example.org': CREDENTIALS}
        assert get_authentication(uri) == CREDENTIALS
        for text in (uri, uri + '?x=1', 'https://u@auth-cache.example.org/',
                     'https://other.example.com/w/api.php', 'no-scheme'):
            assert get_authentication(text) == http.get_authentication(text)
        del config.authenticate['*.example.org']
        assert get_authentication(uri) is None
    finally:
        config.authenticate = saved
