"""Run pywikibot's HTTP traffic and OAuth signing through ``_mwcomms``.

Enable it with one line in ``user-config.py``::

    import pywikibot_ext as _mwcomms_ext; _mwcomms_ext.install()

The leading underscore keeps pywikibot from warning about an unknown
configuration variable.  ``install()`` may run while pywikibot is still
importing (user-config.py runs inside ``import pywikibot``), so the
modules it changes are patched as soon as they are imported.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import sys
import threading

import _mwcomms

__all__ = ['install', 'installed', 'uninstall']
__version__ = '0.1.0'

logging.getLogger('pywikibot_ext').addHandler(logging.NullHandler())

_lock = threading.RLock()
_installed = False
# (module name, attribute) -> original value, for uninstall()
_originals: dict[tuple[str, str], object] = {}


def _patch_http(module) -> None:
    from pywikibot_ext import _pywikibot

    replacements = {
        'fetch': _pywikibot.fetch,
        'request': _pywikibot.request,
        'session': _pywikibot.MwcommsSession(module.cookie_jar),
    }
    for name, value in replacements.items():
        _originals.setdefault((module.__name__, name), getattr(module, name))
        setattr(module, name, value)


def _patch_site_detect(module) -> None:
    # site_detect imports fetch by name, so its binding is patched too.
    from pywikibot_ext import _pywikibot

    _originals.setdefault((module.__name__, 'fetch'), module.fetch)
    module.fetch = _pywikibot.fetch


_PATCHES = {
    'pywikibot.comms.http': _patch_http,
    'pywikibot.site_detect': _patch_site_detect,
}


class _PatchingLoader(importlib.abc.Loader):

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


class _PatchingFinder(importlib.abc.MetaPathFinder):

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
    """Route pywikibot's HTTP requests through mwcomms.

    Patches ``pywikibot.comms.http`` (``fetch``, ``request``, ``session``)
    and ``pywikibot.site_detect.fetch``, now if they are imported, else
    when they are.  Calling it again does nothing.
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
        for (module_name, attribute), value in _originals.items():
            module = sys.modules.get(module_name)
            if module is not None:
                setattr(module, attribute, value)
        _originals.clear()


def installed() -> bool:
    """Return True while pywikibot's requests go through mwcomms."""
    return _installed
