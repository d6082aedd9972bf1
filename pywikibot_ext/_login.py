"""``OauthLoginManager`` of pywikibot, built on :mod:`pywikibot_ext.oauth`.

pywikibot 11.9's class runs the handshake with mwoauth, requests_oauthlib
and oauthlib, and raises ImportError when mwoauth is missing.  This one
has the same constructor, methods and properties and needs none of them.
"""
from __future__ import annotations

import webbrowser
from typing import Any
from warnings import warn

import pywikibot
from pywikibot import config, login

from pywikibot_ext._pywikibot import cached_user_agent, transport
from pywikibot_ext.errors import OAuthError
from pywikibot_ext.oauth import AccessToken, Handshaker

__all__ = ['OauthLoginManager']

# pywikibot retries login(retry=True) without a limit; this bounds it.
MAX_LOGIN_ATTEMPTS = 3
IDENTIFY_LEEWAY_S = 30.0   # pywikibot 9.6 and later pass this to mwoauth


class OauthLoginManager(login.OauthLoginManager):

    """Site login manager using OAuth, without mwoauth.

    :param password: consumer secret
    :param site: the site to log in to (default: the configured site)
    :param user: consumer key

    It subclasses pywikibot's class, so isinstance checks still hold, but
    calls none of its methods.
    """

    def __init__(self, password: str | None = None,
                 site: pywikibot.site.BaseSite | None = None,
                 user: str | None = None) -> None:
        if password is None or user is None:
            raise ValueError('OauthLoginManager needs the consumer key '
                             '(user) and the consumer secret (password)')
        login.LoginManager.__init__(self, password=None, site=site,
                                    user=None)
        if self.password:
            warn(f'Password exists in password file for {self.site}: '
                 f'{self.username}. Password is unnecessary and should be '
                 'removed if OAuth enabled.',
                 login._PasswordFileWarning, stacklevel=2)
        self._consumer_token = (user, password)
        self._access_token: tuple[str, str] | None = None

    def _handshaker(self) -> Handshaker:
        return Handshaker(
            self.site.base_url(self.site.path()), *self.consumer_token,
            client=transport().client,
            user_agent=cached_user_agent(self.site),
            timeout=config.socket_timeout,
            verify=self.site.verify_SSL_certificate())

    def login(self, retry: bool = False, force: bool = False) -> bool:
        """Run the OAuth handshake unless an access token is set.

        The user opens the authorize URL, approves, and pastes the address
        the wiki redirects to (or the verifier).  Returns True when an
        access token was obtained or was already set.

        :param retry: try again after a failed handshake, up to
            MAX_LOGIN_ATTEMPTS attempts in all
        :param force: run the handshake even if an access token is set
        """
        if self.access_token is not None and not force:
            pywikibot.info(f'Logged in to {self.site} via consumer '
                           f'{self.consumer_token[0]}')
            return True

        pywikibot.info(f'Logging in to {self.site} via OAuth consumer '
                       f'{self.consumer_token[0]}')
        attempts = MAX_LOGIN_ATTEMPTS if retry else 1
        for _ in range(attempts):
            try:
                access_token = self._run_handshake()
            except OAuthError as exc:
                pywikibot.error(exc)
                continue
            self._access_token = (access_token.key, access_token.secret)
            return True
        return False

    def _run_handshake(self) -> AccessToken:
        handshaker = self._handshaker()
        request_token, authorize_url = handshaker.initiate()
        pywikibot.stdout('Authenticate via web browser..')
        webbrowser.open(authorize_url)
        pywikibot.stdout('If your web browser does not open automatically, '
                         f'please point it to: {authorize_url}')
        response = pywikibot.input('Response query string: ')
        return handshaker.complete(request_token, response)

    @property
    def identity(self) -> dict[str, Any] | None:
        """Identity claims of the access token's user, or None on failure.

        Verified as described in :meth:`Handshaker.identify
        <pywikibot_ext.oauth.Handshaker.identify>`, with 30 s leeway.
        An integer ``sub`` claim, which MediaWiki sends, is accepted.
        """
        if self.access_token is None:
            pywikibot.error('Access token not set')
            return None
        try:
            return self._handshaker().identify(
                AccessToken(*self.access_token), leeway=IDENTIFY_LEEWAY_S)
        except OAuthError as exc:
            pywikibot.error(exc)
            return None
