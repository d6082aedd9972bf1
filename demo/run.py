"""The mwcomms demo: one bot, two transports, one real local wiki.

Starts the local MediaWiki (realwiki/wiki.sh) and its OAuth 1.0a front.
Then it runs demo/bot.py several times with OAuth, alternating between
mwcomms and stock pywikibot (requests + requests_oauthlib).  It prints
what the bot did and the median wall and CPU time of each step.

    python demo/run.py [--rounds 3] [--pages 20] [--keep-wiki]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import realwiki  # noqa: E402

# Imports blocked in the mwcomms run, to show that OAuth needs neither.
BLOCK_OAUTH_LIBRARIES = (
    "import sys; sys.modules.update(dict.fromkeys("
    "['requests_oauthlib', 'mwoauth', 'oauthlib'])); "
    "import runpy; sys.argv = sys.argv[1:]; "
    "runpy.run_path(sys.argv[0], run_name='__main__')")


def run_bot(pywikibot_dir: Path, family: str, pages: int,
            block_oauth_libraries: bool) -> dict:
    env = dict(os.environ, PYWIKIBOT_DIR=str(pywikibot_dir),
               PYTHONPATH=str(ROOT))
    bot = [str(ROOT / 'demo' / 'bot.py'), f'-family:{family}', '-lang:en',
           f'-pages:{pages}']
    if block_oauth_libraries:
        command = [sys.executable, '-c', BLOCK_OAUTH_LIBRARIES, *bot]
    else:
        command = [sys.executable, *bot]
    result = subprocess.run(command, env=env, capture_output=True,
                            text=True, timeout=600, check=False)
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-4000:] + result.stderr[-4000:])
        sys.exit(f'the bot failed with exit status {result.returncode}')
    return json.loads(result.stdout.strip().splitlines()[-1])


def median_steps(runs: list[dict]) -> dict:
    steps = {}
    for name in runs[0]['steps']:
        steps[name] = {
            key: statistics.median(run['steps'][name][key] for run in runs)
            for key in ('wall', 'cpu')}
    steps['whole run'] = {
        key: statistics.median(run['total'][key] for run in runs)
        for key in ('wall', 'cpu')}
    return steps


def describe_logout(run: dict) -> str:
    if run['logout'] == 'cannotlogout':
        return ('not possible under OAuth: the wiki answered cannotlogout, '
                'as MediaWiki does, and the bot stays logged in')
    return f"{run['logout']} (still logged in: {run['logged_in_after_logout']})"


def print_report(warmup, mwcomms_runs, stock_runs, rounds) -> None:
    last = mwcomms_runs[-1]
    print()
    print(f"What the bot did ({last['site']}, OAuth, mwcomms):")
    print(f"  logged in as {last['userinfo_name']}; read "
          f"{last['characters_read']} characters from its sandbox pages "
          f"(the warm-up run created {warmup['created']} missing ones); "
          f"preloaded {last['preloaded']} pages")
    print(f"  edited its user page; the history names "
          f"{last['edit_author']} (comment matches: "
          f"{last['edit_comment_matches']})")
    print(f'  logout: {describe_logout(last)}')
    print()
    mw = median_steps(mwcomms_runs)
    stock = median_steps(stock_runs)
    runs = 'run' if rounds == 1 else 'runs'
    print(f'Median of {rounds} {runs} each; wall = elapsed, CPU = the bot '
          'process (client side only):')
    header = (f"{'step':38}{'mwcomms wall':>14}{'stock wall':>12}"
              f"{'mwcomms CPU':>13}{'stock CPU':>11}{'CPU ratio':>11}")
    print(header)
    for name in mw:
        a, b = mw[name], stock[name]
        ratio = b['cpu'] / a['cpu'] if a['cpu'] else float('nan')
        print(f"{name:38}{a['wall'] * 1e3:11.1f} ms{b['wall'] * 1e3:9.1f} ms"
              f"{a['cpu'] * 1e3:10.1f} ms{b['cpu'] * 1e3:8.1f} ms"
              f"{ratio:10.2f}x")
    print()
    print('CPU ratio = stock CPU / mwcomms CPU. Wall time is mostly PHP on '
          'the local wiki; the client share is what mwcomms changes.')


def main() -> None:
    parser = argparse.ArgumentParser(
        prog='bash scripts/demo.sh', description=__doc__.split('\n')[0],
        epilog='The wiki lives in RW_DIR (default /tmp/mwcomms-realwiki) '
               'on ports RW_HTTP_PORT and RW_TLS_PORT; see README.rst.')
    parser.add_argument('--rounds', type=int, default=3,
                        help='runs per transport (default 3)')
    parser.add_argument('--pages', type=int, default=20,
                        help='sandbox pages to read (default 20)')
    parser.add_argument('--keep-wiki', action='store_true',
                        help='leave the wiki running afterwards')
    args = parser.parse_args()

    wiki = realwiki.Wiki.up()
    try:
        with tempfile.TemporaryDirectory(prefix='mwcomms-demo-') as tmp:
            tmp = Path(tmp)
            front = realwiki.OAuthFront.start(wiki, state_dir=tmp / 'front')
            try:
                mwcomms_dir = tmp / 'pwb-mwcomms'
                stock_dir = tmp / 'pwb-stock'
                realwiki.write_pywikibot_dir(mwcomms_dir, wiki, front,
                                             enable_mwcomms=True)
                realwiki.write_pywikibot_dir(stock_dir, wiki, front,
                                             enable_mwcomms=False)
                # An untimed first run creates the sandbox pages, so that
                # both transports are timed on the same work.
                print('warm-up run (creates missing pages, not timed)',
                      flush=True)
                warmup = run_bot(mwcomms_dir, 'oauthwiki', args.pages, True)
                mwcomms_runs, stock_runs = [], []
                for number in range(args.rounds):
                    print(f'round {number + 1}/{args.rounds}: mwcomms, '
                          'then stock pywikibot', flush=True)
                    mwcomms_runs.append(run_bot(mwcomms_dir, 'oauthwiki',
                                                args.pages, True))
                    stock_runs.append(run_bot(stock_dir, 'oauthwiki',
                                              args.pages, False))
            finally:
                front.stop()
    finally:
        if not args.keep_wiki and not wiki.was_running:
            wiki.stop()
    print_report(warmup, mwcomms_runs, stock_runs, args.rounds)


if __name__ == '__main__':
    main()
