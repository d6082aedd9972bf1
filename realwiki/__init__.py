"""Python API for the local test wiki and its OAuth 1.0a front.

::

    wiki = realwiki.Wiki.up()                  # bash realwiki/wiki.sh up
    front = realwiki.OAuthFront.start(wiki, state_dir=tmp_path)
    realwiki.write_pywikibot_dir(tmp_path / 'pwb', wiki, front)
    ...
    front.stop()
    wiki.stop()

Everything listens on 127.0.0.1 only.  Passwords and OAuth secrets are test
fixtures, but they are still kept out of reprs and logs.
"""

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

__all__ = ['Wiki', 'OAuthFront', 'write_pywikibot_dir', 'RealWikiError']

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
WIKI_SH = PACKAGE_DIR / 'wiki.sh'
FRONT_PY = PACKAGE_DIR / 'oauth_front.py'

# Defaults shared with wiki.sh, which reads the same environment variables.
BOT_USER = 'PwbBot'
BOTPASSWORD_APPID = 'ci'
DEFAULT_BOT_PASSWORD = 'PwbBot-pass-0123456789'
DEFAULT_BOTPASSWORD = '0123456789abcdefghijklmnopqrstuv'

UP_TIMEOUT_S = 600      # covers apt-get install on a fresh machine
STOP_TIMEOUT_S = 30
FRONT_START_TIMEOUT_S = 30
FRONT_STOP_TIMEOUT_S = 10


class _Environment(dict):
    """Environment variables for a child process, with a quiet repr.

    The process environment can hold secrets (OAuth tokens for the remote
    tests, passwords); pytest prints local variables of failing frames.
    """

    def __repr__(self):
        return '<environment: %d variables>' % len(self)


class RealWikiError(RuntimeError):
    """The wiki or the front could not be started or stopped."""


def _run_wiki_sh(command, env, timeout):
    try:
        proc = subprocess.run(
            ['bash', str(WIKI_SH), command], env=env, timeout=timeout,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    except subprocess.TimeoutExpired:
        raise RealWikiError(
            'wiki.sh %s did not finish within %d s' % (command, timeout))
    if proc.returncode != 0:
        raise RealWikiError('wiki.sh %s failed (exit %d):\n%s' % (
            command, proc.returncode, proc.stderr.strip()[-2000:]))
    return proc.stdout


def _parse_exports(text):
    values = {}
    for line in text.splitlines():
        if line.startswith('export '):
            name, _, value = line[len('export '):].partition('=')
            values[name] = shlex.split(value)[0] if value else ''
    return values


class Wiki:
    """The local MediaWiki started by realwiki/wiki.sh."""

    def __init__(self, env):
        self._env = env
        exports = _parse_exports(_run_wiki_sh('env', env, 30))
        self.rw_dir = exports['RW_DIR']
        self.http_port = int(exports['RW_HTTP_PORT'])
        self.tls_port = int(exports['RW_TLS_PORT'])
        self.http_url = exports['RW_HTTP_URL']
        self.https_url = exports['RW_HTTPS_URL']
        self.api_url = exports['RW_API_URL']
        self.ca_file = exports['RW_CA_FILE']
        self.bot_user = BOT_USER
        self.bot_password = env.get('RW_BOT_PASS', DEFAULT_BOT_PASSWORD)
        self.botpassword_appid = BOTPASSWORD_APPID
        self.botpassword = env.get('RW_BOTPW_PASS', DEFAULT_BOTPASSWORD)

    @classmethod
    def up(cls, rw_dir=None, http_port=None, tls_port=None,
           timeout=UP_TIMEOUT_S):
        """Run ``wiki.sh up`` and return the running wiki.

        Arguments left as None come from RW_DIR, RW_HTTP_PORT and
        RW_TLS_PORT in the environment, then wiki.sh's defaults.
        """
        env = _Environment(os.environ)
        for name, value in (('RW_DIR', rw_dir), ('RW_HTTP_PORT', http_port),
                            ('RW_TLS_PORT', tls_port)):
            if value is not None:
                env[name] = str(value)
        status = subprocess.run(['bash', str(WIKI_SH), 'status'], env=env,
                                stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, timeout=30)
        _run_wiki_sh('up', env, timeout)
        wiki = cls(env)
        # wiki.sh status exits 0 only when nginx and php-fpm both run.
        wiki.was_running = status.returncode == 0
        return wiki

    @property
    def https_api_url(self):
        return self.https_url + '/w/api.php'

    was_running = False  # True when up() found the wiki already serving

    def stop(self):
        """Stop nginx and php-fpm (the data in rw_dir stays)."""
        _run_wiki_sh('stop', self._env, STOP_TIMEOUT_S)

    def __repr__(self):
        return '<realwiki.Wiki %s rw_dir=%s>' % (self.http_url, self.rw_dir)


class OAuthFront:
    """A running realwiki/oauth_front.py process."""

    def __init__(self, process, state, state_file, log_file, wiki):
        self.process = process
        self.pid = state['pid']
        self.port = state['port']
        self.url = 'http://127.0.0.1:%d' % self.port
        self.api_url = self.url + '/w/api.php'
        self.consumer_key = state['consumer_key']
        self.consumer_secret = state['consumer_secret']
        self.access_key = state['access_key']
        self.access_secret = state['access_secret']
        self.username = state['username']
        self.state_file = state_file
        self.log_file = log_file
        self.wiki = wiki

    @classmethod
    def start(cls, wiki, state_dir, consumer_key=None, consumer_secret=None,
              access_key=None, access_secret=None, rsa_public_key=None,
              port=0, timeout=FRONT_START_TIMEOUT_S):
        """Start the front for wiki and wait until it serves.

        Credentials left as None are random.  rsa_public_key is a path to a
        PEM file registered for RSA-SHA1.  The front's log is
        ``state_dir/oauth_front.log``.
        """
        state_dir = Path(state_dir)
        state_dir.mkdir(parents=True, exist_ok=True)
        state_file = state_dir / 'oauth_front.json'
        log_file = state_dir / 'oauth_front.log'
        if state_file.exists():
            state_file.unlink()
        env = _Environment(os.environ)
        env['RW_BOTPW_PASS'] = wiki.botpassword
        # Secrets go through the environment, never the command line.
        for name, value in (('RW_OAUTH_CONSUMER_KEY', consumer_key),
                            ('RW_OAUTH_CONSUMER_SECRET', consumer_secret),
                            ('RW_OAUTH_ACCESS_KEY', access_key),
                            ('RW_OAUTH_ACCESS_SECRET', access_secret)):
            env.pop(name, None)
            if value is not None:
                env[name] = value
        command = [sys.executable, str(FRONT_PY), '--upstream', wiki.http_url,
                   '--port', str(port), '--state', str(state_file),
                   '--bot-user', wiki.bot_user,
                   '--bot-appid', wiki.botpassword_appid]
        if rsa_public_key is not None:
            command += ['--rsa-public-key', str(rsa_public_key)]
        with open(log_file, 'ab') as log:
            process = subprocess.Popen(
                command, env=env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=log, close_fds=True)
        deadline = time.monotonic() + timeout
        while not state_file.exists():
            if process.poll() is not None:
                raise RealWikiError('oauth_front.py exited with %d:\n%s' % (
                    process.returncode, _tail(log_file)))
            if time.monotonic() > deadline:
                _terminate(process)
                raise RealWikiError(
                    'oauth_front.py did not start within %d s:\n%s'
                    % (timeout, _tail(log_file)))
            time.sleep(0.05)
        state = json.loads(state_file.read_text())
        return cls(process, state, state_file, log_file, wiki)

    def stop(self):
        """Send SIGTERM, wait up to 10 s, then SIGKILL."""
        _terminate(self.process)

    def __repr__(self):
        return '<realwiki.OAuthFront %s consumer_key=%s>' % (
            self.url, self.consumer_key)


def _terminate(process):
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(FRONT_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(FRONT_STOP_TIMEOUT_S)


def _tail(path, size=2000):
    try:
        return Path(path).read_text(errors='replace')[-size:]
    except OSError:
        return ''


# ---- pywikibot configuration -----------------------------------------------

_FAMILY_TEMPLATE = '''\
"""Pywikibot family {name!r}: {description}."""
from pywikibot import family


class Family(family.SingleSiteFamily):

    name = {name!r}
    code = 'en'
    domain = {domain!r}

    def protocol(self, code):
        # Family.protocol() returns 'https' since pywikibot 8.2.
        return 'http'

    def scriptpath(self, code):
        return '/w'
'''

_USER_CONFIG_HEAD = '''\
# pywikibot user-config for the local test wiki (written by realwiki).
family = 'realwiki'
mylang = 'en'
usernames['realwiki']['en'] = {bot!r}
password_file = 'user-password.py'   # relative to this directory

# A local server needs no politeness delays, and a broken one should fail
# fast instead of being retried for minutes.
put_throttle = 0
minthrottle = 0
write_maxlag = 5     # pywikibot 11.8 renamed maxlag
max_retries = 2
retry_wait = 1
retry_max = 2
socket_timeout = (3, 30)
'''

_USER_CONFIG_OAUTH = '''
# OAuth 1.0a through the front: (consumer key, consumer secret, access key,
# access secret) for the front's host:port.
usernames['oauthwiki']['en'] = {bot!r}
authenticate[{domain!r}] = ({ck!r}, {cs!r}, {ak!r}, {asec!r})
'''

# The line that README.rst instructs operators to add.  pywikibot_ext must be
# importable: installed with pip, or the repository root on PYTHONPATH.
MWCOMMS_LINE = 'import pywikibot_ext as _mwcomms_ext; _mwcomms_ext.install()'
_USER_CONFIG_MWCOMMS = '''
# Send pywikibot's requests through mwcomms.
''' + MWCOMMS_LINE + '\n'


def _write_private(path, text):
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w') as f:
        f.write(text)
    os.chmod(str(path), 0o600)


def write_pywikibot_dir(path, wiki, front=None, enable_mwcomms=True,
                        extra=''):
    """Write families/, user-config.py and user-password.py into path.

    Family 'realwiki' is the wiki over plain http with a BotPassword login.
    With front, family 'oauthwiki' reaches the wiki through the OAuth front
    with the front's credentials.  extra is appended to user-config.py.
    Returns path as a Path.
    """
    path = Path(path)
    families = path / 'families'
    families.mkdir(parents=True, exist_ok=True)
    (families / 'realwiki_family.py').write_text(_FAMILY_TEMPLATE.format(
        name='realwiki', domain='127.0.0.1:%d' % wiki.http_port,
        description='the local MediaWiki over plain http'))
    config = _USER_CONFIG_HEAD.format(bot=wiki.bot_user)
    if front is not None:
        domain = '127.0.0.1:%d' % front.port
        (families / 'oauthwiki_family.py').write_text(_FAMILY_TEMPLATE.format(
            name='oauthwiki', domain=domain,
            description='the local MediaWiki behind the OAuth 1.0a front'))
        config += _USER_CONFIG_OAUTH.format(
            bot=front.username, domain=domain, ck=front.consumer_key,
            cs=front.consumer_secret, ak=front.access_key,
            asec=front.access_secret)
    if enable_mwcomms:
        config += _USER_CONFIG_MWCOMMS
    if extra:
        config += '\n' + extra
        if not extra.endswith('\n'):
            config += '\n'
    # user-config.py contains the OAuth secrets: owner-only like the password file.
    _write_private(path / 'user-config.py', config)
    # For the realwiki family only: a bare (user, password) entry would
    # also apply to oauthwiki, and pywikibot warns about a password for an
    # OAuth login.
    _write_private(path / 'user-password.py',
                   "('realwiki', %r, BotPassword(%r, %r))\n" % (
                       wiki.bot_user, wiki.botpassword_appid,
                       wiki.botpassword))
    return path
