"""The Cookie header cache against http.cookiejar's own header.

Every check compares jar_cookie_header with add_cookie_header on a second
jar that received the same changes, so that computing the expected
header does not touch the jar under test.
"""
import http.cookiejar
import threading
import time
import urllib.request

import pytest
from hypothesis import given, settings, strategies as st

import _mwcomms
from cookie_helpers import make_cookie
from pywikibot_ext import _cookies
from pywikibot_ext._cookies import jar_cookie_header

pytestmark = pytest.mark.skipif(
    _mwcomms.dict_version({}) is None,
    reason='this interpreter keeps no dict versions: nothing is cached')

URL = 'http://wiki.test/w/api.php'
HTTPS_URL = 'https://wiki.test/w/api.php'


def stock_header(jar, url=URL):
    request = urllib.request.Request(url)
    jar.add_cookie_header(request)
    return request.unredirected_hdrs.get('Cookie')


class Pair:

    """A jar under test and a twin whose header comes from the stock
    method."""

    def __init__(self, cls=http.cookiejar.CookieJar):
        self.jar = cls()
        self.twin = cls()

    def do(self, action, *args):
        getattr(self.jar, action)(*args)
        getattr(self.twin, action)(*args)

    def check(self, url=URL):
        got = jar_cookie_header(self.jar, url)[1]
        assert got == stock_header(self.twin, url)
        return got


@pytest.fixture(autouse=True)
def empty_cache():
    _cookies._headers.clear()
    yield
    _cookies._headers.clear()


def test_hit_skips_request():
    pair = Pair()
    pair.do('set_cookie', make_cookie('session', 'abc'))
    first = jar_cookie_header(pair.jar, URL)
    second = jar_cookie_header(pair.jar, URL)
    assert first[0] is not None
    assert second[0] is None
    assert second[1] == first[1] == 'session=abc'


def test_new_cookie_seen():
    pair = Pair()
    pair.do('set_cookie', make_cookie('a', '1'))
    assert pair.check() == 'a=1'
    pair.do('set_cookie', make_cookie('b', '2'))
    assert pair.check() == 'a=1; b=2'


def test_replaced_value_seen():
    pair = Pair()
    pair.do('set_cookie', make_cookie('a', '1'))
    pair.check()
    pair.do('set_cookie', make_cookie('a', '2'))
    assert pair.check() == 'a=2'


def test_clear_seen():
    pair = Pair()
    pair.do('set_cookie', make_cookie('a', '1'))
    pair.check()
    pair.do('clear', 'wiki.test', '/', 'a')
    assert pair.check() is None
    pair.do('set_cookie', make_cookie('a', '3'))
    pair.check()
    pair.do('clear')
    assert pair.check() is None


def test_new_path_seen():
    pair = Pair()
    pair.do('set_cookie', make_cookie('a', '1'))
    pair.check()
    pair.do('set_cookie', make_cookie('b', '2', path='/w'))
    assert pair.check() == 'b=2; a=1'


def test_expiry_seen(monkeypatch):
    now = time.time()
    pair = Pair()
    pair.do('set_cookie', make_cookie('short', '1', expires=int(now) + 10))
    pair.do('set_cookie', make_cookie('long', '2', expires=int(now) + 1000))
    assert pair.check() == 'short=1; long=2'
    monkeypatch.setattr(time, 'time', lambda: now + 11)
    assert pair.check() == 'long=2'


def test_policy_replaced():
    pair = Pair()
    pair.do('set_cookie', make_cookie('a', '1'))
    pair.check()
    pair.do('set_policy',
            http.cookiejar.DefaultCookiePolicy(blocked_domains=['wiki.test']))
    assert pair.check() is None


def test_policy_changed():
    pair = Pair()
    pair.do('set_cookie', make_cookie('a', '1'))
    pair.check()
    pair.jar._policy.set_blocked_domains(['wiki.test'])
    pair.twin._policy.set_blocked_domains(['wiki.test'])
    assert pair.check() is None


def test_cookies_dict_swapped():
    pair = Pair()
    pair.do('set_cookie', make_cookie('a', '1'))
    pair.check()
    pair.jar._cookies = {}
    pair.twin._cookies = {}
    assert pair.check() is None


def test_secure_per_url():
    pair = Pair()
    pair.do('set_cookie', make_cookie('s', '1', secure=True))
    assert pair.check(URL) is None
    assert pair.check(HTTPS_URL) == 's=1'
    assert pair.check(URL) is None


def test_jars_kept_apart():
    first = Pair()
    second = Pair()
    first.do('set_cookie', make_cookie('a', '1'))
    second.do('set_cookie', make_cookie('b', '2'))
    assert first.check() == 'a=1'
    assert second.check() == 'b=2'
    assert first.check() == 'a=1'


def test_load_seen(tmp_path):
    path = str(tmp_path / 'jar.lwp')
    saved = http.cookiejar.LWPCookieJar(path)
    saved.set_cookie(make_cookie('loaded', 'x', expires=int(time.time())
                                 + 3600))
    saved.save()
    pair = Pair(http.cookiejar.LWPCookieJar)
    pair.do('set_cookie', make_cookie('a', '1'))
    pair.check()
    pair.do('load', path)
    assert pair.check() == 'a=1; loaded=x'


class OwnHeaderJar(http.cookiejar.CookieJar):

    def add_cookie_header(self, request):
        request.add_unredirected_header('Cookie', 'own=1')


def test_subclass_not_cached():
    jar = OwnHeaderJar()
    first = jar_cookie_header(jar, URL)
    second = jar_cookie_header(jar, URL)
    assert first[1] == 'own=1'
    assert second[0] is not None
    assert URL not in _cookies._headers


def test_odd_expiry_not_cached():
    jar = http.cookiejar.CookieJar()
    cookie = make_cookie('a', '1')
    jar.set_cookie(cookie)
    cookie.expires = 'never'
    with pytest.raises(TypeError):
        # The stock method itself cannot compare such a cookie.
        stock_header(jar)
    assert URL not in _cookies._headers


def test_thread_sets_cookie():
    pair = Pair()
    pair.do('set_cookie', make_cookie('a', '1'))
    pair.check()
    worker = threading.Thread(
        target=pair.do, args=('set_cookie', make_cookie('t', '2')))
    worker.start()
    worker.join()
    assert pair.check() == 'a=1; t=2'


names = st.sampled_from(['a', 'b', 'c'])
domains = st.sampled_from(['wiki.test', '.wiki.test', 'other.test'])
paths = st.sampled_from(['/', '/w', '/wiki'])
actions = st.one_of(
    st.tuples(st.just('set'), names, st.text('xyz', max_size=3), domains,
              paths, st.sampled_from([None, -5, 5, 50]), st.booleans()),
    st.tuples(st.just('clear_domain'), domains),
    st.tuples(st.just('clear_all')),
    st.tuples(st.just('wait'), st.integers(1, 30)),
    st.tuples(st.just('check'), st.sampled_from([URL, HTTPS_URL])),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(actions, max_size=25))
def test_random_changes(steps):
    _cookies._headers.clear()
    clock = [1_900_000_000.0]
    real_time = time.time
    time.time = lambda: clock[0]
    try:
        pair = Pair()
        for step in steps:
            kind = step[0]
            if kind == 'set':
                _, name, value, domain, path, lifetime, secure = step
                expires = None if lifetime is None else int(clock[0]) + lifetime
                pair.do('set_cookie', make_cookie(
                    name, value or '-', domain, path, expires, secure))
            elif kind == 'clear_domain':
                try:
                    pair.do('clear', step[1])
                except KeyError:
                    pass
            elif kind == 'clear_all':
                pair.do('clear')
            elif kind == 'wait':
                clock[0] += step[1]
            else:
                pair.check(step[1])
        pair.check(URL)
        pair.check(HTTPS_URL)
    finally:
        time.time = real_time
