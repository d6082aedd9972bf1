"""Cookies for the tests of the Cookie header cache."""
import http.cookiejar


def make_cookie(name, value='v', domain='wiki.test', path='/',
                expires=None, secure=False, version=0, port=None):
    """Return a Cookie as a server's Set-Cookie would make it.  Without
    expires it is a session cookie."""
    return http.cookiejar.Cookie(
        version, name, value, port, port is not None, domain, False,
        domain.startswith('.'), path, True, secure, expires,
        expires is None, None, None, {})
