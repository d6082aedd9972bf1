"""Serve the local wiki and its OAuth front for trying pywikibot by hand.

    python -m realwiki PYWIKIBOT_DIR [--stock]

Starts the wiki (if it is not running) and an OAuth front.  Writes a
pywikibot configuration into PYWIKIBOT_DIR: the families realwiki and
oauthwiki, and the mwcomms enabling line unless --stock is given.  Then
prints how to use it and serves until Enter or Ctrl-C.  Then it stops the front, and the
wiki too if this command started it.
"""
import argparse
import sys
from pathlib import Path

import realwiki


def main():
    parser = argparse.ArgumentParser(
        prog='python -m realwiki',
        description='Serve the local wiki and its OAuth front.',
        epilog='The wiki lives in RW_DIR (default /tmp/mwcomms-realwiki) '
               'on ports RW_HTTP_PORT and RW_TLS_PORT; see README.rst.')
    parser.add_argument('pywikibot_dir', type=Path,
                        help='folder to write the pywikibot configuration to')
    parser.add_argument('--stock', action='store_true',
                        help='leave mwcomms out of user-config.py')
    args = parser.parse_args()

    wiki = realwiki.Wiki.up()
    front = None
    try:
        front = realwiki.OAuthFront.start(
            wiki, state_dir=args.pywikibot_dir / 'oauth-front')
        realwiki.write_pywikibot_dir(args.pywikibot_dir, wiki, front,
                                     enable_mwcomms=not args.stock)
        print(f'wiki:        {wiki.http_url}/w/ (BotPassword login: family '
              f'realwiki)')
        print(f'OAuth front: {front.url}/w/ (OAuth: family oauthwiki)')
        print(f'pywikibot:   PYWIKIBOT_DIR={args.pywikibot_dir} '
              f'(mwcomms {"off" if args.stock else "on"})')
        print('The front approves a handshake request without a browser '
              'when approve=1 is added to the authorize URL.')
        try:
            input('Press Enter to stop.\n')
        except (EOFError, KeyboardInterrupt):
            pass
    finally:
        if front is not None:
            front.stop()
        if not wiki.was_running:
            wiki.stop()
    return 0


if __name__ == '__main__':
    sys.exit(main())
