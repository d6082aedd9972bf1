"""The local MediaWiki scenario: a pywikibot bot, stock against mwcomms.

Starts realwiki (Debian's MediaWiki behind nginx and php-fpm on
127.0.0.1) in its own folder and on its own ports, so that it does not
touch the wiki of the test suite (tests/wiki_fixtures.py uses realwiki's
defaults: /tmp/mwcomms-realwiki, ports 28181 and 28443).  Set
MWCOMMS_BENCH_RW_DIR, MWCOMMS_BENCH_RW_HTTP_PORT and
MWCOMMS_BENCH_RW_TLS_PORT to move it.  The wiki is stopped afterwards
unless it was already running.

Runs demo/bot.py with OAuth through realwiki's OAuth front, alternating
stock pywikibot and mwcomms in a shuffled order, then
bench_preload.py for the opt-in parallel preloading.
"""
from __future__ import annotations

import importlib.util
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import realwiki

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

RW_DIR = os.environ.get('MWCOMMS_BENCH_RW_DIR', '/tmp/mwcomms-bench-wiki')
RW_HTTP_PORT = int(os.environ.get('MWCOMMS_BENCH_RW_HTTP_PORT', '28281'))
RW_TLS_PORT = int(os.environ.get('MWCOMMS_BENCH_RW_TLS_PORT', '28643'))


def _load_demo_runner():
    """Import demo/run.py, which is a script and not a package module."""
    spec = importlib.util.spec_from_file_location(
        'mwcomms_demo_run', ROOT / 'demo' / 'run.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_bot_run(summary: dict, front, pages: int) -> None:
    """Raise RuntimeError unless the bot did what it should have done."""
    problems = []
    if summary['userinfo_name'] != front.username:
        problems.append(f"logged in as {summary['userinfo_name']!r}")
    if summary['edit_author'] != front.username:
        problems.append(f"the edit is by {summary['edit_author']!r}")
    if not summary['edit_comment_matches']:
        problems.append('the edit summary does not match')
    if summary['preloaded'] != pages:
        problems.append(f"{summary['preloaded']} of {pages} pages preloaded")
    if summary['characters_read'] <= 0:
        problems.append('no text read')
    if problems:
        raise RuntimeError('demo/bot.py: ' + '; '.join(problems))


def run_bots(options: dict, wiki, work: Path) -> dict:
    demo = _load_demo_runner()
    front = realwiki.OAuthFront.start(wiki, state_dir=work / 'oauth-front')
    try:
        dirs = {}
        for name in ('mwcomms', 'stock'):
            dirs[name] = realwiki.write_pywikibot_dir(
                work / f'wiki-{name}', wiki, front,
                enable_mwcomms=name == 'mwcomms')
        pages = options['pages']
        # An untimed first run creates missing pages, so that both
        # transports are timed on the same work.
        print('wiki: warm-up bot run (creates missing pages)', flush=True)
        check_bot_run(demo.run_bot(dirs['mwcomms'], 'oauthwiki', pages,
                                   True), front, pages)
        plan = [name for name in ('mwcomms', 'stock')
                for _ in range(options['rounds'])]
        random.Random(options['seed']).shuffle(plan)
        runs = {'mwcomms': [], 'stock': []}
        for number, name in enumerate(plan, 1):
            # mwcomms runs with oauthlib, requests_oauthlib and mwoauth
            # blocked, to show that it needs none of them.
            summary = demo.run_bot(dirs[name], 'oauthwiki', pages,
                                   name == 'mwcomms')
            check_bot_run(summary, front, pages)
            runs[name].append(summary)
            print(f"wiki: [{number}/{len(plan)}] bot, {name}: "
                  f"{summary['total']['cpu'] * 1e3:.0f} ms CPU, "
                  f"{summary['total']['wall'] * 1e3:.0f} ms wall",
                  flush=True)
    finally:
        front.stop()
    medians = {name: demo.median_steps(runs[name]) for name in runs}
    steps = {step: {name: medians[name][step] for name in medians}
             for step in medians['mwcomms']}
    return {'pages': pages, 'rounds': options['rounds'], 'steps': steps,
            'runs': runs}


def run_preload(options: dict) -> dict:
    env = dict(os.environ, RW_DIR=RW_DIR, RW_HTTP_PORT=str(RW_HTTP_PORT),
               RW_TLS_PORT=str(RW_TLS_PORT))
    env['PYTHONPATH'] = str(ROOT) + os.pathsep + env.get('PYTHONPATH', '')
    command = [sys.executable, str(HERE / 'bench_preload.py'), '--json',
               '--pages', str(options['preload_pages']),
               '--rounds', str(options['preload_rounds']),
               '--groupsize', str(options['groupsize']),
               '--concurrency', options['concurrency']]
    print('wiki: parallel preloading', flush=True)
    result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True,
                            text=True, timeout=600, check=False)
    if result.returncode != 0:
        raise RuntimeError('bench_preload.py failed: '
                           + result.stderr.strip()[-2000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def run(options: dict, work: Path) -> dict:
    """Run the bot and preloading measurements; errors go in 'error'."""
    print(f'wiki: starting realwiki in {RW_DIR} on ports {RW_HTTP_PORT} '
          f'and {RW_TLS_PORT}', flush=True)
    wiki = None
    for attempt in (1, 2):
        try:
            wiki = realwiki.Wiki.up(rw_dir=RW_DIR, http_port=RW_HTTP_PORT,
                                    tls_port=RW_TLS_PORT)
            break
        except realwiki.RealWikiError as error:
            # NOTE: right after installing a new wiki, wiki.sh up has
            # reported php-fpm exiting during startup once; the second
            # attempt started it.
            if attempt == 2:
                return {'error': str(error)}
            print(f'wiki: wiki.sh up failed, trying once more: '
                  f'{str(error).splitlines()[-1]}', flush=True)
            time.sleep(1)
    try:
        result = {'bot': run_bots(options, wiki, work)}
        result['preload'] = run_preload(options)
        return result
    except (RuntimeError, SystemExit, subprocess.TimeoutExpired,
            realwiki.RealWikiError) as error:
        # demo/run.py's run_bot exits with a message when the bot fails.
        return {'error': str(error)}
    finally:
        if not wiki.was_running:
            wiki.stop()
            print('wiki: stopped', flush=True)
