"""A small, ordinary pywikibot bot used by the demo and the tests.

It logs in, makes sure some sandbox pages exist, reads them, edits the
account's user page, checks from the page history who made the edit and
logs out.  It does not refer to mwcomms: user-config.py selects the
transport.  The last line of its output is a JSON summary.

    python demo/bot.py -family:oauthwiki -lang:en [-pages:20]
"""
from __future__ import annotations

import json
import sys
import time
import uuid

import pywikibot
from pywikibot import pagegenerators
from pywikibot.exceptions import APIError


class Stopwatch:

    """Wall and CPU seconds per named step."""

    def __init__(self) -> None:
        self.steps = {}

    def __call__(self, name):
        return _Step(self.steps, name)


class _Step:

    def __init__(self, steps, name) -> None:
        self.steps = steps
        self.name = name

    def __enter__(self):
        self.wall = time.perf_counter()
        self.cpu = time.process_time()
        return self

    def __exit__(self, *exc_info) -> None:
        self.steps[self.name] = {
            'wall': time.perf_counter() - self.wall,
            'cpu': time.process_time() - self.cpu,
        }


def run(argv, watch: Stopwatch) -> dict:
    summary = {'steps': watch.steps}

    # pywikibot's argument handling already creates the site and checks
    # the login, so the first step includes it.
    with watch('arguments, site and login'):
        page_count = 20
        for arg in pywikibot.handle_args(argv):
            option, _, value = arg.partition(':')
            if option != '-pages':
                raise SystemExit(f'unknown option {arg}')
            page_count = int(value)
        site = pywikibot.Site()
        site.login()
    summary['site'] = str(site)
    summary['user'] = site.user()
    summary['userinfo_name'] = site.userinfo['name']

    titles = [f'Mwcomms demo/page {number}' for number in range(page_count)]
    with watch('check or create sandbox pages'):
        created = 0
        for title in titles:
            page = pywikibot.Page(site, title)
            if not page.exists():
                page.text = f'Sandbox page {title} for the mwcomms demo.'
                page.save(summary='mwcomms demo: create sandbox page')
                created += 1
    summary['created'] = created

    with watch(f'read {page_count} pages one by one'):
        total = 0
        for title in titles:
            total += len(pywikibot.Page(site, title).text)
    summary['characters_read'] = total

    with watch(f'preload {page_count} pages'):
        pages = [pywikibot.Page(site, title) for title in titles]
        loaded = list(pagegenerators.PreloadingGenerator(pages,
                                                         groupsize=50))
    summary['preloaded'] = len(loaded)

    marker = uuid.uuid4().hex
    user_page = pywikibot.Page(site, f'User:{site.user()}')
    with watch('edit user page'):
        user_page.text = f'Edited by the mwcomms demo bot, run {marker}.'
        user_page.save(summary=f'mwcomms demo run {marker}')

    with watch('check author in history'):
        latest = next(iter(pywikibot.Page(site, user_page.title())
                           .revisions(total=1)))
    summary['edit_author'] = latest.user
    summary['edit_comment_matches'] = latest.comment.endswith(marker)

    with watch('logout'):
        try:
            site.logout()
            summary['logout'] = 'ok'
        except APIError as error:
            summary['logout'] = error.code
    summary['logged_in_after_logout'] = site.logged_in()
    return summary


def main(argv=None) -> int:
    started = time.perf_counter()
    cpu = time.process_time()
    summary = run(argv, Stopwatch())
    summary['total'] = {'wall': time.perf_counter() - started,
                        'cpu': time.process_time() - cpu}
    print(json.dumps(summary))
    return 0


if __name__ == '__main__':
    sys.exit(main())
