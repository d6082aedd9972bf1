"""Messages of mwcomms, through pywikibot's logging once it is loaded.

pywikibot's handlers format records with fields that only its own
logging functions add, so a plain ``logging`` call on a ``pywiki.*``
logger fails inside them.  Before pywikibot is imported, messages go to
the standard ``pywikibot_ext`` logger.
"""
from __future__ import annotations

import logging
import sys

_logger = logging.getLogger('pywikibot_ext')


def warning(message: str, *args) -> None:
    _emit('warning', logging.WARNING, message, args)


def debug(message: str, *args) -> None:
    _emit('debug', logging.DEBUG, message, args)


def _emit(function: str, level: int, message: str, args) -> None:
    text = message % args if args else message
    pywikibot_logging = sys.modules.get('pywikibot.logging')
    if pywikibot_logging is not None:
        getattr(pywikibot_logging, function)(text, layer='mwcomms')
    else:
        _logger.log(level, '%s', text)
