"""Serial against parallel preloading of pages from the local wiki.

Starts (or reuses) realwiki, creates the pages once, then loads them with
``pywikibot_ext.parallel.preload_pages`` at each concurrency and prints
the wall time side by side.  The benchmark suite (``python -m
benchmarks``) runs it with --json on its own wiki.  Usage::

    python benchmarks/bench_preload.py [--pages N] [--groupsize G]
        [--rounds R] [--concurrency 1,2,4] [--json]

The wiki is realwiki's, moved by RW_DIR, RW_HTTP_PORT and RW_TLS_PORT.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import realwiki  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--pages', type=int, default=120,
                        help='number of pages to load (default 120)')
    parser.add_argument('--groupsize', type=int, default=10,
                        help='pages per API request (default 10)')
    parser.add_argument('--rounds', type=int, default=3,
                        help='runs per concurrency; the median is shown')
    parser.add_argument('--concurrency', default='1,2,4',
                        help='comma-separated values of '
                        'max_read_concurrency (default 1,2,4)')
    parser.add_argument('--json', action='store_true',
                        help='print the results as one JSON line')
    args = parser.parse_args()

    wiki = realwiki.Wiki.up()
    directory = Path(tempfile.mkdtemp(prefix='bench-preload-'))
    try:
        results = measure(args, wiki, directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    if args.json:
        print(json.dumps({'pages': args.pages, 'groupsize': args.groupsize,
                          'rounds': args.rounds, 'results': results}))
        return
    print(f'{args.pages} pages, {args.groupsize} per request, '
          f'median of {args.rounds} runs')
    print(f'{"concurrency":>12} {"wall s":>8} {"speed-up":>9}')
    for row in results:
        print(f"{row['concurrency']:>12} {row['wall']:>8.3f} "
              f"{row['speedup']:>8.2f}x")


def measure(args, wiki, directory: Path) -> list:
    """Preload the pages at each concurrency; return the median walls."""
    realwiki.write_pywikibot_dir(directory, wiki, enable_mwcomms=True)
    os.environ['PYWIKIBOT_DIR'] = str(directory)
    import pywikibot

    import pywikibot_ext
    from pywikibot_ext.parallel import preload_pages

    site = pywikibot.Site('en', 'realwiki')
    site.login()
    titles = [f'Bench preload {number}' for number in range(args.pages)]
    for title in titles:
        page = pywikibot.Page(site, title)
        if not page.exists():
            page.text = f'{title}\n' + 'Benchmark text. ' * 200
            page.save('benchmark page')

    # One untimed pass, so that the first concurrency is not the only
    # one to meet cold caches in PHP and SQLite.
    list(preload_pages(site, [pywikibot.Page(site, title) for title in titles],
                       groupsize=args.groupsize))
    results = []
    baseline = None
    for concurrency in (int(value) for value in args.concurrency.split(',')):
        pywikibot_ext.options.max_read_concurrency = concurrency
        samples = []
        for _ in range(args.rounds):
            pages = [pywikibot.Page(site, title) for title in titles]
            start = time.perf_counter()
            loaded = list(preload_pages(site, pages,
                                        groupsize=args.groupsize))
            samples.append(time.perf_counter() - start)
            if len(loaded) != len(titles):
                raise SystemExit(f'preloaded {len(loaded)} of '
                                 f'{len(titles)} pages')
            missing = [page.title() for page in loaded
                       if not page.text.startswith(page.title())]
            if missing:
                raise SystemExit(f'wrong text in {len(missing)} preloaded '
                                 f'pages, first {missing[0]}')
        wall = statistics.median(samples)
        baseline = baseline or wall
        results.append({'concurrency': concurrency, 'wall': wall,
                        'speedup': baseline / wall})
    return results


if __name__ == '__main__':
    main()
