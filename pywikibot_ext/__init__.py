"""Run pywikibot's HTTP traffic and OAuth signing through ``_mwcomms``.

Enable it with one line in ``user-config.py``::

    import pywikibot_ext as _mwcomms_ext; _mwcomms_ext.install()

The leading underscore keeps pywikibot from warning about an unknown
configuration variable.  ``install()`` may run while pywikibot is still
importing (user-config.py runs inside ``import pywikibot``), so the
modules it changes are patched as soon as they are imported.

Settings live in :data:`options`, for example in user-config.py::

    _mwcomms_ext.options.signed_get = False   # POST every OAuth request
"""
from __future__ import annotations

import importlib.machinery
import sys
import threading

__all__ = ['Options', 'install', 'installed', 'options', 'uninstall']
__version__ = '0.1.0'


class Options:

    """Settings of the pywikibot integration, read on every use.

    :ivar signed_get: let pywikibot send API reads as GET when OAuth is
        on, as it does without OAuth; False restores pywikibot's rule that
        every OAuth request is a POST.  Either way pywikibot still needs
        https or ``enable_GET_without_SSL`` for GET.
    :ivar correct_clock_skew: when a wiki rejects the OAuth timestamp,
        store its clock offset on the host's signer and send the request
        once more
    :ivar max_nonce_retries: how many times a request that the wiki
        rejects with "Nonce already used" is sent again with a new nonce
    :ivar download_progress: None, or a callable run as
        ``progress(bytes_read, total)`` while the body of a ``stream=True``
        response is read (``FilePage.download()`` streams); *total* is the
        Content-Length or None.  A ``progress=`` argument of ``fetch()``
        takes precedence for one request.
    :ivar max_read_concurrency: how many read requests the opt-in parallel
        helpers of :mod:`pywikibot_ext.parallel` send at once to one host;
        1 (the default) keeps them serial, as Wikimedia's API etiquette
        calls for unless a wiki allows more.  Writes are always serial.
    """

    # A plain class instead of a dataclass: importing dataclasses costs
    # several milliseconds at every start.
    _names = ('signed_get', 'correct_clock_skew', 'max_nonce_retries',
              'download_progress', 'max_read_concurrency')

    def __init__(self, signed_get: bool = True,
                 correct_clock_skew: bool = True,
                 max_nonce_retries: int = 2,
                 download_progress=None,
                 max_read_concurrency: int = 1) -> None:
        self.signed_get = signed_get
        self.correct_clock_skew = correct_clock_skew
        self.max_nonce_retries = max_nonce_retries
        self.download_progress = download_progress
        self.max_read_concurrency = max_read_concurrency

    def __repr__(self) -> str:
        values = ', '.join(f'{name}={getattr(self, name)!r}'
                           for name in self._names)
        return f'Options({values})'

    def __eq__(self, other) -> bool:
        if not isinstance(other, Options):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name)
                   for name in self._names)


options = Options()

_lock = threading.RLock()
_installed = False
# (module name, attribute) -> original value, for uninstall()
_originals: dict[tuple[str, str], object] = {}


# pywikibot releases whose internals the patches were tested against.
TESTED_PYWIKIBOT = ((11, 9), (11, 9))


def _check_pywikibot_version() -> None:
    import pywikibot

    from pywikibot_ext import _log

    version = pywikibot.__version__
    try:
        major_minor = tuple(int(part) for part in version.split('.')[:2])
    except ValueError:
        major_minor = None
    low, high = TESTED_PYWIKIBOT
    if major_minor is None or not low <= major_minor <= high:
        _log.warning(
            'mwcomms %s was tested with pywikibot %d.%d only, not %s; '
            'if a bot misbehaves, remove the mwcomms line from '
            'user-config.py and report it', __version__, *low, version)


def _patch_http(module) -> None:
    from pywikibot_ext import _log, _pywikibot

    replacements = {
        'fetch': _pywikibot.fetch,
        'request': _pywikibot.request,
        'session': _pywikibot.MwcommsSession(module.cookie_jar),
    }
    for name, value in replacements.items():
        _originals.setdefault((module.__name__, name), getattr(module, name))
        setattr(module, name, value)
    # The user agent names the transport that actually sends, as stock
    # pywikibot names requests.
    products = module.USER_AGENT_PRODUCTS
    _originals.setdefault((module.__name__, 'USER_AGENT_PRODUCTS'),
                          dict(products))
    import _mwcomms
    products['http_backend'] = (f'mwcomms/{__version__} '
                                f'{_mwcomms.curl_version().split()[0]}')
    _check_pywikibot_version()
    _log.debug(
        'mwcomms %s installed: pywikibot HTTP requests go through %s',
        __version__, _mwcomms.curl_version())


def _patch_site_detect(module) -> None:
    # site_detect imports fetch by name, so its binding is patched too.
    from pywikibot_ext import _pywikibot

    _originals.setdefault((module.__name__, 'fetch'), module.fetch)
    module.fetch = _pywikibot.fetch


def _replace(module, path: str, value) -> None:
    """Set module.<path> (e.g. 'Request._use_get'), keeping the original."""
    owner_path, _, attribute = path.rpartition('.')
    owner = module
    for name in owner_path.split('.') if owner_path else ():
        owner = getattr(owner, name)
    _originals.setdefault((module.__name__, path), getattr(owner, attribute))
    setattr(owner, attribute, value)


def _patch_api_requests(module) -> None:
    # OAuth errors become typed exceptions, and GET stays GET under OAuth.
    from pywikibot_ext import _api

    request = module.Request
    _replace(module, 'Request._internal_api_error',
             _api.wrap_internal_api_error(
                 request.__dict__['_internal_api_error']))
    _replace(module, 'Request._use_get',
             _api.wrap_use_get(request.__dict__['_use_get']))


def _patch_login(module) -> None:
    # pywikibot.login and pywikibot.scripts.login both bind the name.
    from pywikibot_ext import _login

    _replace(module, 'OauthLoginManager', _login.OauthLoginManager)


_PATCHES = {
    'pywikibot.comms.http': _patch_http,
    'pywikibot.site_detect': _patch_site_detect,
    'pywikibot.data.api._requests': _patch_api_requests,
    'pywikibot.login': _patch_login,
    'pywikibot.scripts.login': _patch_login,
}


# The finder and loader follow the importlib protocols by duck typing:
# importing importlib.abc would load importlib.resources (about 20 ms).
class _PatchingLoader:

    """Run the real loader, then patch the module it executed."""

    def __init__(self, loader, patch) -> None:
        self._loader = loader
        self._patch = patch

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        self._loader.exec_module(module)
        with _lock:
            if _installed:
                self._patch(module)


class _PatchingFinder:

    """Wrap the loader of the pywikibot modules that install() patches."""

    def find_spec(self, fullname, path, target=None):
        patch = _PATCHES.get(fullname)
        if patch is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path,
                                                        target)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _PatchingLoader(spec.loader, patch)
        return spec


_finder = _PatchingFinder()


def install() -> None:
    """Route pywikibot's HTTP requests and OAuth through mwcomms.

    Patches ``pywikibot.comms.http`` (``fetch``, ``request``, ``session``),
    ``pywikibot.site_detect.fetch``, ``api.Request._internal_api_error``
    and ``_use_get`` (see :mod:`pywikibot_ext._api`), and
    ``OauthLoginManager`` in ``pywikibot.login`` and
    ``pywikibot.scripts.login``; now if they are imported, else when
    they are.  Calling it again does nothing.
    """
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
        for name, patch in _PATCHES.items():
            module = sys.modules.get(name)
            if module is not None:
                patch(module)
        if _finder not in sys.meta_path:
            sys.meta_path.insert(0, _finder)


def uninstall() -> None:
    """Restore what install() replaced."""
    global _installed
    with _lock:
        _installed = False
        if _finder in sys.meta_path:
            sys.meta_path.remove(_finder)
        for (module_name, path), value in _originals.items():
            owner = sys.modules.get(module_name)
            if owner is None:
                continue
            owner_path, _, attribute = path.rpartition('.')
            for name in owner_path.split('.') if owner_path else ():
                owner = getattr(owner, name)
            setattr(owner, attribute, value)
        _originals.clear()


def installed() -> bool:
    """Return True while pywikibot's requests go through mwcomms."""
    return _installed
