"""Tables, JSON and the ratio plot of a benchmark run."""
from __future__ import annotations

import json
import statistics
from pathlib import Path

RAW = 'raw libcurl'
STOCK = 'fetch-stock'


def describe_meta(meta: dict) -> str:
    found = meta['versions']
    return (f"{meta['date']}, {meta['mode']} run: {found['os']}, "
            f"{found['cores']} cores ({found['machine']}), Python "
            f"{found['python']}, libcurl {found['libcurl']}, nginx "
            f"{found['nginx']}, pywikibot {found['pywikibot']}, requests "
            f"{found['requests']}, requests_oauthlib "
            f"{found['requests_oauthlib']}, oauthlib {found['oauthlib']}, "
            f"httpx {found['httpx']}, pycurl {found['pycurl']}; "
            f"{meta['repetitions']} "
            f"{'repetition' if meta['repetitions'] == 1 else 'repetitions'} "
            f"of {meta['seconds']} s loops")


def describe_run(record: dict) -> str:
    head = f"{record['scenario']:10} {record['label']:38} " \
           f"#{record['repetition'] + 1}"
    if 'error' in record:
        return f'{head} FAILED: {record["error"]}'
    text = (f"{head} {record['rate']:9.0f} req/s "
            f"{record['cpu_per_request'] * 1e6:8.1f} us CPU/req "
            f"{record['maxrss_kib'] / 1024:6.1f} MiB")
    if 'invalid' in record:
        text += f" INVALID: {record['invalid']}"
    return text


def aggregate(runs: list) -> list:
    """Summarize the repetitions of each (scenario, client)."""
    groups = {}
    for record in runs:
        groups.setdefault((record['scenario'], record['client']),
                          []).append(record)
    rows = []
    for (scenario, client), records in groups.items():
        row = {'scenario': scenario, 'client': client,
               'label': records[0]['label'], 'runs': len(records)}
        errors = [r['error'] for r in records if 'error' in r]
        invalid = [r['invalid'] for r in records if 'invalid' in r]
        if errors:
            row['error'] = errors[0]
        elif invalid:
            row['invalid'] = invalid[0]
        else:
            rates = [r['rate'] for r in records]
            cpus = [r['cpu_per_request'] for r in records]
            row.update({
                'rate': statistics.median(rates),
                'rate_min': min(rates), 'rate_max': max(rates),
                'cpu_us': statistics.median(cpus) * 1e6,
                'cpu_us_min': min(cpus) * 1e6,
                'cpu_us_max': max(cpus) * 1e6,
                'maxrss_mib': statistics.median(
                    r['maxrss_kib'] for r in records) / 1024,
                'requests': sum(r['requests'] for r in records),
            })
        rows.append(row)
    add_ratios(rows)
    return rows


def add_ratios(rows: list) -> None:
    """Add this / reference for requests/s and CPU per request."""
    by_key = {(row['scenario'], row['client']): row for row in rows}
    for row in rows:
        if 'rate' not in row:
            continue
        for name, client in (('raw', RAW), ('stock', STOCK)):
            reference = by_key.get((row['scenario'], client))
            if reference is None or 'rate' not in reference:
                continue
            row[f'rate_vs_{name}'] = row['rate'] / reference['rate']
            row[f'cpu_vs_{name}'] = row['cpu_us'] / reference['cpu_us']


def _ratio(row: dict, key: str) -> str:
    return f'{row[key]:.2f}' if key in row else '-'


def _spread(row: dict, key: str, digits: int) -> str:
    """Return the median, and the min-max range when there were several runs."""
    text = f'{row[key]:,.{digits}f}'
    if row['runs'] > 1:
        text += (f" ({row[key + '_min']:,.{digits}f}-"
                 f"{row[key + '_max']:,.{digits}f})")
    return text


def scenario_table(rows: list, title: str) -> list:
    lines = [f'### {title}', '',
             '| client | req/s median (min-max) | CPU us/req median '
             '(min-max) | peak RSS MiB | req/s / raw (higher is faster) | '
             'CPU / raw (lower is cheaper) | req/s / stock | CPU / stock |',
             '|---|---:|---:|---:|---:|---:|---:|---:|']
    for row in rows:
        if 'error' in row:
            lines.append(f"| {row['label']} | FAILED: "
                         f"{_one_line(row['error'])} | | | | | | |")
            continue
        if 'invalid' in row:
            lines.append(f"| {row['label']} | INVALID: {row['invalid']} "
                         '| | | | | | |')
            continue
        lines.append(
            f"| {row['label']} | {_spread(row, 'rate', 0)} | "
            f"{_spread(row, 'cpu_us', 1)} | {row['maxrss_mib']:.1f} | "
            f"{_ratio(row, 'rate_vs_raw')} | {_ratio(row, 'cpu_vs_raw')} | "
            f"{_ratio(row, 'rate_vs_stock')} | "
            f"{_ratio(row, 'cpu_vs_stock')} |")
    return lines + ['']


def _one_line(text: str) -> str:
    return ' '.join(text.split())[:300].replace('|', '/')


NOTES = {
    'get': 'nginx sends the reply without compression; every libcurl '
           'client (raw, pycurl, _mwcomms) sends Accept-Encoding as '
           '_mwcomms does by default.',
    'gzip': 'nginx sends a pre-compressed reply (gzip_static) to clients '
            'that accept gzip; every body is checked after decoding and '
            'every logged reply was gzip-encoded.',
    'oauth': 'The raw libcurl row sends a fixed, pre-computed '
             'Authorization header: it does no signing.',
    'big': 'The raw libcurl row keeps each body in a buffer of its '
           'Content-Length with a 128 KiB receive buffer, as _mwcomms '
           'does.  Peak RSS is the whole process: interpreter and imports '
           'included.',
    'concurrent': 'Requests/s is wall time with 8 transfers in flight; '
                  'CPU counts all threads of the process.',
}


def markdown(results: dict, scenarios: dict) -> str:
    meta = results['meta']
    lines = ['# mwcomms benchmarks', '', describe_meta(meta) + '.', '',
             f"{meta.get('pinning', '')}.  Run order shuffled with seed "
             f"{meta['seed']}.  CPU is user+system time of the client "
             'process in the timed loop, after a warm-up.  Ratios are '
             'this client / raw libcurl and this client / stock pywikibot '
             'fetch: a CPU ratio of 0.10 means a tenth of the CPU time.', '']
    if meta['mode'] == 'smoke':
        lines += ['Smoke run: one very short loop per client, which checks '
                  'that every client and every check still works.  Its '
                  'rates and ratios are not measurements; run without '
                  '--smoke for figures to compare.', '']
    for name, scenario in scenarios.items():
        rows = [row for row in results['rows'] if row['scenario'] == name]
        if not rows:
            continue
        order = {client: index for index, client
                 in enumerate(scenario.clients)}
        rows.sort(key=lambda row: order[row['client']])
        lines += scenario_table(rows, scenario.title)
        if name in NOTES:
            lines += [NOTES[name], '']
    lines += stream_lines(results.get('stream'))
    lines += signing_lines(results.get('signing'))
    lines += import_lines(results.get('import'))
    if 'wiki' in results:
        lines += wiki_lines(results['wiki'])
    return '\n'.join(lines)


def stream_lines(stream) -> list:
    if not stream:
        return []
    size_mib = stream['bytes'] / 2 ** 20
    lines = [f'### Streamed download of {size_mib:,.0f} MiB', '',
             '| client | MiB/s | CPU s per GiB | peak RSS MiB |',
             '|---|---:|---:|---:|']
    for row in stream['rows']:
        if 'error' in row:
            lines.append(f"| {row['label']} | FAILED: "
                         f"{_one_line(row['error'])} | | |")
            continue
        gib = stream['bytes'] / 2 ** 30
        cpu = (row['user'] + row['system']) / gib
        lines.append(f"| {row['label']} | {size_mib / row['wall']:,.0f} | "
                     f"{cpu:.2f} | {row['maxrss_kib'] / 1024:.1f} |")
    return lines + ['', 'One download per client, read in 1 MiB pieces and '
                    'dropped; a peak RSS close to the small-request figures '
                    'means the body was never held whole.', '']


def signing_lines(signing) -> list:
    lines = ['### OAuth signing alone', '']
    if not signing or 'error' in signing:
        return lines + [f"FAILED: {_one_line((signing or {}).get('error', 'not run'))}", '']
    return lines + [
        '| signer | us per signature |', '|---|---:|',
        f"| _mwcomms.OAuth1.sign | {signing['mwcomms_us']:.2f} |",
        f"| oauthlib Client.sign | {signing['oauthlib_us']:.2f} |", '',
        f"oauthlib / mwcomms: {signing['oauthlib_us'] / signing['mwcomms_us']:.0f}x "
        f"(median of {signing['repeat']} repeats; an edit POST with 8 "
        'parameters, HMAC-SHA1).', '']


def import_lines(imported) -> list:
    lines = ['### Import time', '']
    if not imported or 'error' in imported:
        return lines + [f"FAILED: {_one_line((imported or {}).get('error', 'not run'))}", '']
    return lines + [
        f"`import pywikibot`: {imported['plain_ms']:.0f} ms; with "
        f"`import pywikibot_ext; pywikibot_ext.install()` first: "
        f"{imported['with_ext_ms']:.0f} ms ({imported['added_ms']:+.0f} ms), "
        f"median of {imported['runs']} processes each.", '']


def wiki_lines(wiki: dict) -> list:
    lines = ['### Local MediaWiki: a pywikibot bot', '']
    if 'error' in wiki:
        return lines + [f"FAILED: {_one_line(wiki['error'])}", '']
    bot = wiki['bot']
    lines += [
        f"demo/bot.py with OAuth on the local wiki ({bot['pages']} pages "
        'read one by one and preloaded, one edit), median of '
        f"{bot['rounds']} runs per transport in shuffled order.  CPU is "
        'the bot process; wall time is mostly PHP.', '',
        '| step | mwcomms wall ms | stock wall ms | mwcomms CPU ms | '
        'stock CPU ms | stock / mwcomms CPU (higher: mwcomms cheaper) |',
        '|---|---:|---:|---:|---:|---:|']
    for step, values in bot['steps'].items():
        mw, stock = values['mwcomms'], values['stock']
        ratio = stock['cpu'] / mw['cpu'] if mw['cpu'] else float('nan')
        lines.append(f"| {step} | {mw['wall'] * 1e3:.1f} | "
                     f"{stock['wall'] * 1e3:.1f} | {mw['cpu'] * 1e3:.1f} | "
                     f"{stock['cpu'] * 1e3:.1f} | {ratio:.2f} |")
    lines.append('')
    preload = wiki.get('preload')
    if preload:
        lines += [
            f"Opt-in parallel preloading (pywikibot_ext.parallel, mwcomms): "
            f"{preload['pages']} pages, {preload['groupsize']} per request, "
            f"median of {preload['rounds']} runs:", '',
            '| max_read_concurrency | wall s | speed-up |', '|---:|---:|---:|']
        for row in preload['results']:
            lines.append(f"| {row['concurrency']} | {row['wall']:.3f} | "
                         f"{row['speedup']:.2f} |")
        lines += ['', 'Speed-up is the wall time at concurrency 1 divided by '
                  "this row's.  The wiki's PHP workers share the machine's "
                  'cores with the client, so on a 2-core machine a speed-up '
                  'near or below 1 means the wiki, not the client, is the '
                  'limit.']
        lines.append('')
    return lines


def plot(results: dict, scenarios: dict, path: Path) -> None:
    """Draw CPU / raw libcurl and req/s / raw libcurl per scenario."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    names = [name for name in scenarios
             if any(row['scenario'] == name and 'rate_vs_raw' in row
                    for row in results['rows'])]
    if not names:
        return
    figure, axes = plt.subplots(len(names), 2, squeeze=False,
                                figsize=(13, 2.2 + 0.45 * 9 * len(names)
                                         / 2))
    for line, name in zip(axes, names):
        rows = [row for row in results['rows']
                if row['scenario'] == name and 'rate_vs_raw' in row]
        order = {client: index
                 for index, client in enumerate(scenarios[name].clients)}
        rows.sort(key=lambda row: -order[row['client']])
        labels = [row['label'] for row in rows]
        for axis, key, title in (
                (line[0], 'cpu_vs_raw', 'CPU per request / raw libcurl'),
                (line[1], 'rate_vs_raw', 'requests/s / raw libcurl')):
            values = [row[key] for row in rows]
            colors = ['tab:green' if 'mwcomms' in row['client']
                      else 'tab:gray' if row['client'] == RAW
                      else 'tab:blue' for row in rows]
            axis.barh(labels, values, color=colors)
            axis.set_xscale('log')
            axis.xaxis.set_major_formatter(ticker.FormatStrFormatter('%g'))
            axis.xaxis.set_minor_formatter(ticker.NullFormatter())
            axis.axvline(1.0, color='black', linewidth=0.8)
            axis.set_title(f'{scenarios[name].title}: {title}',
                           fontsize=9)
            axis.tick_params(labelsize=8)
            for index, value in enumerate(values):
                axis.text(value, index, f' {value:.2f}', va='center',
                          fontsize=7)
    title = ('mwcomms benchmarks: ratios to raw libcurl (log scale; '
             'green = mwcomms)')
    if results['meta'].get('mode') == 'smoke':
        title += '\nSMOKE RUN: a check that the suite works, not figures'
    figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def write_all(results: dict, out: Path, scenarios: dict) -> str:
    text = markdown(results, scenarios)
    (out / 'results.md').write_text(text + '\n')
    (out / 'results.json').write_text(json.dumps(results, indent=1) + '\n')
    plot(results, scenarios, out / 'ratios.png')
    return text


def failures(results: dict) -> list:
    found = [f"{run['scenario']} / {run['label']}: {run['error']}"
             for run in results['runs'] if 'error' in run]
    for name in ('signing', 'import', 'wiki'):
        part = results.get(name)
        if part and 'error' in part:
            found.append(f"{name}: {part['error']}")
    for row in (results.get('stream') or {}).get('rows', []):
        if 'error' in row:
            found.append(f"stream / {row['label']}: {row['error']}")
    return found
