"""Serial against parallel preloading of pages from the local wiki.

Starts (or reuses) realwiki, creates the pages once, then loads them with
``pywikibot_ext.parallel.preload_pages`` at each concurrency and prints
the wall time side by side.  Usage::

    python benchmarks/bench_preload.py [--pages N] [--groupsize G] [--rounds R]
"""
from __future__ import annotations

import argparse
import os
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
    args = parser.parse_args()

    wiki = realwiki.Wiki.up()
    directory = Path(tempfile.mkdtemp(prefix='bench-preload-'))
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

    print(f'{args.pages} pages, {args.groupsize} per request, '
          f'median of {args.rounds} runs')
    print(f'{"concurrency":>12} {"wall s":>8} {"speed-up":>9}')
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
            assert len(loaded) == len(titles)
        wall = statistics.median(samples)
        baseline = baseline or wall
        print(f'{concurrency:>12} {wall:>8.3f} {baseline / wall:>8.2f}x')


if __name__ == '__main__':
    main()
