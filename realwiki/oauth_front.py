"""OAuth 1.0a front for the local test wiki.

MediaWiki's OAuth extension is not packaged for Debian, so the realwiki tests
put this server between the client and nginx.  It verifies OAuth 1.0a
requests with oauthlib's provider endpoints and responds to failures with
the status, headers and texts of Extension:OAuth (REL1_39) on MediaWiki 1.39.
A verified request is forwarded as the bot account, using the front's own
BotPassword session.  Requests without an ``Authorization: OAuth`` header
pass through unchanged.

Run::

    python realwiki/oauth_front.py --upstream http://127.0.0.1:28181 \\
        --port 0 --state /tmp/front.json

Once it serves, the front writes the state file (mode 0600, JSON with port,
pid, consumer and access credentials, username).  It stops on SIGTERM.
The handshake on ``index.php?title=Special:OAuth/...`` is described in
``handshake.py``.
"""

import argparse
import email.parser
import email.policy
import email.utils
import http.client
import http.cookies
import http.server
import json
import logging
import os
import secrets
import signal
import sys
import threading
import time
import urllib.parse

import jwt
from oauthlib.oauth1 import RequestValidator, ResourceEndpoint
from oauthlib.oauth1.rfc5849 import utils as oauth_utils

log = logging.getLogger('oauth_front')

# MediaWiki's OAuthServer rejects a timestamp more than this many seconds
# away from its clock, and remembers a nonce until timestamp + this.
TIMESTAMP_WINDOW_S = 300
SIGNATURE_METHODS = ('HMAC-SHA1', 'RSA-SHA1')
# SessionProvider::describe() of Extension:OAuth on a wiki without the
# extension's messages prints the class name.
PROVIDER_NAME = 'MediaWiki\\Extension\\OAuth\\SessionProvider'
API_DOCREF = (
    'See {server}/w/api.php for API usage. Subscribe to the '
    'mediawiki-api-announce mailing list at &lt;https://lists.wikimedia.org'
    '/postorius/lists/mediawiki-api-announce.lists.wikimedia.org/&gt; for '
    'notice of API deprecations and breaking changes.')
DEFAULT_GRANTS = (
    'basic', 'highvolume', 'editpage', 'createeditmovepage', 'uploadfile',
    'uploadeditmovefile', 'editmyoptions', 'editmywatchlist', 'delete',
    'protect', 'rollback', 'patrol')
# NOTE: the text for an unknown request token was not observed on a real
# wiki; it is the front's own wording.
UNKNOWN_REQUEST_TOKEN = 'Invalid request token: %s'
HOP_BY_HOP = frozenset((
    'connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization',
    'te', 'trailer', 'trailers', 'transfer-encoding', 'upgrade', 'expect',
    'content-length'))
UPSTREAM_TIMEOUT_S = 90


class OAuthFailure(Exception):
    """A request that Extension:OAuth would reject, with its reason text."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


# ---- credentials, tokens and nonces ----------------------------------------

class Registry:
    """Consumers, tokens and used nonces, shared by all handler threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.consumers = {}        # key -> {'secret', 'rsa_key', 'grants'}
        self.access_tokens = {}    # key -> {'secret', 'consumer'}
        self.request_tokens = {}   # key -> {'secret', 'consumer', 'verifier'}
        self.nonces = {}           # (consumer, token, nonce) -> expiry
        self.next_purge = 0.0

    def add_consumer(self, key, secret, rsa_key=None, grants=DEFAULT_GRANTS):
        self.consumers[key] = {
            'secret': secret, 'rsa_key': rsa_key, 'grants': list(grants)}

    def add_access_token(self, consumer_key, key, secret):
        self.access_tokens[key] = {'secret': secret, 'consumer': consumer_key}

    def access_token(self, consumer_key, key):
        """Return the access token record of the consumer, or None."""
        with self.lock:
            record = self.access_tokens.get(key or '')
        if record is None or record['consumer'] != consumer_key:
            return None
        return record

    def use_nonce(self, consumer_key, token_key, nonce, timestamp):
        """Record the nonce; return False when it was used before.

        Like MWOAuthDataStore::lookup_nonce, the nonce is kept until its
        timestamp + 300 s, per consumer and token.
        """
        now = time.time()
        key = (consumer_key, token_key or '', nonce)
        with self.lock:
            if now >= self.next_purge:
                self.nonces = {
                    k: t for k, t in self.nonces.items() if t > now}
                self.next_purge = now + 60
            expiry = self.nonces.get(key)
            if expiry is not None and expiry > now:
                return False
            self.nonces[key] = timestamp + TIMESTAMP_WINDOW_S
            return True


class FrontValidator(RequestValidator):
    """Request validator that lets oauthlib check only the signature.

    The front checks consumer, token, timestamp, nonce and signature method
    itself first, in MediaWiki's order and with its texts, so the
    corresponding oauthlib hooks accept everything that reached them.
    """

    def __init__(self, registry):
        super().__init__()
        self.registry = registry

    enforce_ssl = False   # the front and the wiki speak plain http
    # MediaWiki accepts keys, tokens and nonces of any length and alphabet.
    safe_characters = frozenset(chr(c) for c in range(0x21, 0x7f))
    client_key_length = (1, 1000)
    access_token_length = (1, 1000)
    request_token_length = (1, 1000)
    nonce_length = (1, 1000)
    verifier_length = (1, 1000)
    allowed_signature_methods = SIGNATURE_METHODS
    # The front has already applied the 300 s window on integer seconds, as
    # MediaWiki does.  oauthlib compares float seconds, so one second of slack
    # keeps it from rejecting a request that sits exactly on the boundary.
    timestamp_lifetime = TIMESTAMP_WINDOW_S + 1

    @property
    def dummy_client(self):
        return 'dummy-consumer'

    @property
    def dummy_access_token(self):
        return 'dummy-token'

    def check_client_key(self, client_key):
        return True

    def check_access_token(self, request_token):
        return True

    def check_nonce(self, nonce):
        return True

    def validate_timestamp_and_nonce(self, client_key, timestamp, nonce,
                                     request, request_token=None,
                                     access_token=None):
        return True

    def validate_client_key(self, client_key, request):
        return client_key in self.registry.consumers

    def validate_access_token(self, client_key, token, request):
        return self.registry.access_token(client_key, token) is not None

    def validate_realms(self, client_key, token, request, uri=None,
                        realms=None):
        return True

    def get_client_secret(self, client_key, request):
        consumer = self.registry.consumers.get(client_key)
        return consumer['secret'] if consumer else 'dummy-secret'

    def get_access_token_secret(self, client_key, token, request):
        record = self.registry.access_token(client_key, token)
        return record['secret'] if record else 'dummy-secret'

    def get_rsa_key(self, client_key, request):
        consumer = self.registry.consumers.get(client_key)
        if not consumer or not consumer['rsa_key']:
            # No key registered: oauthlib fails to load this, which counts
            # as an invalid signature.
            return ''
        return consumer['rsa_key']


def header_oauth_params(authorization):
    """Return the oauth_* parameters of an ``Authorization: OAuth`` header."""
    try:
        params = oauth_utils.parse_authorization_header(authorization)
    except ValueError:
        raise OAuthFailure('Invalid signature')
    return {k: v for k, v in params if k.startswith('oauth_')}


def check_request_parameters(registry, params, token_kind, index_php):
    """Apply MediaWiki's checks that come before the signature.

    The order and texts are those of OAuthServer::verify_request and
    check_signature in Extension:OAuth: version, consumer, token,
    timestamp, nonce (used up even when a later check fails), signature
    method.  ``token_kind`` is 'access', 'request' (Special:OAuth/token)
    or None (no token expected).
    Returns the consumer key.
    """
    version = params.get('oauth_version') or '1.0'
    if version != '1.0':
        raise OAuthFailure("OAuth version '%s' not supported" % version)

    consumer_key = params.get('oauth_consumer_key')
    if not consumer_key:
        raise OAuthFailure('Invalid consumer key')
    if consumer_key not in registry.consumers:
        # NOTE: MediaWiki was seen returning "Invalid consumer" on api.php
        # and "Invalid consumer key" on Special:OAuth pages; the front
        # repeats both as observed.
        raise OAuthFailure(
            'Invalid consumer key' if index_php else 'Invalid consumer')

    token_key = params.get('oauth_token')
    if token_kind == 'access':
        if registry.access_token(consumer_key, token_key) is None:
            raise OAuthFailure(
                'No approved grant was found for that authorization token.')
    elif token_kind == 'request':
        with registry.lock:
            record = registry.request_tokens.get(token_key or '')
        if record is None or record['consumer'] != consumer_key:
            raise OAuthFailure(UNKNOWN_REQUEST_TOKEN % token_key)

    timestamp = params.get('oauth_timestamp')
    if not timestamp:
        raise OAuthFailure(
            'Missing timestamp parameter. The parameter is required')
    now = int(time.time())
    try:
        client_ts = int(timestamp)
    except ValueError:
        client_ts = None
    if client_ts is None or abs(now - client_ts) > TIMESTAMP_WINDOW_S:
        raise OAuthFailure(
            'Expired timestamp, yours %s, ours %d' % (timestamp, now))

    nonce = params.get('oauth_nonce')
    if not nonce:
        raise OAuthFailure(
            'Missing nonce parameter. The parameter is required')
    if not registry.use_nonce(consumer_key, token_key, nonce, client_ts):
        raise OAuthFailure('Nonce already used: %s' % nonce)

    method = params.get('oauth_signature_method')
    if not method:
        raise OAuthFailure(
            'No signature method parameter. This parameter is required')
    if method not in SIGNATURE_METHODS:
        raise OAuthFailure(
            "Signature method '%s' not supported try one of the following: "
            "%s" % (method, ', '.join(SIGNATURE_METHODS)))
    return consumer_key


def oauthlib_headers(headers):
    """Return the headers oauthlib needs, as a plain dict."""
    selected = {}
    for name in ('Authorization', 'Content-Type'):
        value = headers.get(name)
        if value is not None:
            selected[name] = value
    return selected


def body_text(body):
    """Decode a request body for oauthlib, which works on str."""
    try:
        return body.decode('utf-8')
    except UnicodeDecodeError:
        return body.decode('latin-1')


# ---- upstream connections and the bot session ------------------------------

class Upstream:
    """Kept-alive http.client connections to the wiki, one per thread."""

    def __init__(self, url):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != 'http' or not parts.hostname:
            raise ValueError('--upstream must be an http:// URL, not %r' % url)
        self.host = parts.hostname
        self.port = parts.port or 80
        self.netloc = parts.netloc
        self.local = threading.local()

    def _connection(self):
        conn = getattr(self.local, 'conn', None)
        if conn is None:
            conn = http.client.HTTPConnection(
                self.host, self.port, timeout=UPSTREAM_TIMEOUT_S)
            self.local.conn = conn
        return conn

    def _drop(self):
        conn = getattr(self.local, 'conn', None)
        if conn is not None:
            conn.close()
        self.local.conn = None

    def request(self, method, target, body, headers):
        """Send one request; return (status, reason, header list, body).

        A kept-alive connection that the server closed in the meantime is
        reopened once.  Other errors propagate.
        """
        for attempt in (1, 2):
            conn = self._connection()
            fresh = conn.sock is None
            try:
                conn.request(method, target, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            except (http.client.RemoteDisconnected, ConnectionResetError,
                    BrokenPipeError) as exc:
                self._drop()
                if fresh or attempt == 2:
                    raise
                log.info('upstream connection closed (%s), reconnecting',
                         type(exc).__name__)
                continue
            except Exception:
                self._drop()
                raise
            if resp.will_close:
                self._drop()
            return resp.status, resp.reason, resp.getheaders(), data
        raise AssertionError('unreachable')


def parse_set_cookies(header_values):
    """Yield (name, value, deleted) for each cookie in Set-Cookie headers."""
    for value in header_values:
        jar = http.cookies.SimpleCookie()
        try:
            jar.load(value)
        except http.cookies.CookieError:
            log.warning('ignoring a Set-Cookie header that does not parse')
            continue
        for name, morsel in jar.items():
            deleted = morsel.value == 'deleted' or morsel['max-age'] == '0'
            expires = morsel['expires']
            if expires:
                try:
                    parsed = email.utils.parsedate_to_datetime(expires)
                    deleted = deleted or parsed.timestamp() < time.time()
                except (TypeError, ValueError):
                    pass
            yield name, morsel.value, deleted


class BotSession:
    """The front's own MediaWiki session as the bot account.

    Logged in with a BotPassword through action=login, and logged in again
    when MediaWiki has lost the session.
    """

    def __init__(self, upstream, lgname, lgpassword):
        self.upstream = upstream
        self.lgname = lgname
        self.lgpassword = lgpassword
        self.cookies = {}
        self.lock = threading.Lock()
        self.login_lock = threading.Lock()
        self.generation = 0
        self.userinfo = {}

    def cookie_header(self):
        with self.lock:
            return '; '.join('%s=%s' % kv for kv in self.cookies.items())

    def update_cookies(self, headers, jar=None):
        values = [v for k, v in headers if k.lower() == 'set-cookie']
        with self.lock:
            target = self.cookies if jar is None else jar
            for name, value, deleted in parse_set_cookies(values):
                if deleted:
                    target.pop(name, None)
                else:
                    target[name] = value

    def api(self, jar, method, params):
        """Call api.php with the cookies in jar; return the decoded JSON."""
        query = urllib.parse.urlencode(params)
        headers = {'Host': self.upstream.netloc,
                   'User-Agent': 'mwcomms-oauth-front/1'}
        if jar:
            headers['Cookie'] = '; '.join('%s=%s' % kv for kv in jar.items())
        if method == 'GET':
            target, body = '/w/api.php?' + query, None
        else:
            target, body = '/w/api.php', query.encode()
            headers['Content-Type'] = 'application/x-www-form-urlencoded'
        status, _, resp_headers, data = self.upstream.request(
            method, target, body, headers)
        self.update_cookies(resp_headers, jar)
        if status != 200:
            raise RuntimeError('api.php returned HTTP %d' % status)
        return json.loads(data)

    def login(self, seen_generation=None):
        """Log in (again) unless another thread did since seen_generation."""
        with self.login_lock:
            if seen_generation is not None and seen_generation != self.generation:
                return
            jar = {}
            tokens = self.api(jar, 'GET', {
                'action': 'query', 'meta': 'tokens', 'type': 'login',
                'format': 'json'})
            token = tokens['query']['tokens']['logintoken']
            result = self.api(jar, 'POST', {
                'action': 'login', 'lgname': self.lgname,
                'lgpassword': self.lgpassword, 'lgtoken': token,
                'format': 'json'})['login']
            if result.get('result') != 'Success':
                raise RuntimeError('BotPassword login as %s failed: %s' % (
                    self.lgname, result.get('reason', result.get('result'))))
            info = self.api(jar, 'GET', {
                'action': 'query', 'meta': 'userinfo', 'format': 'json',
                'uiprop': 'groups|rights|editcount|registrationdate'
                          '|blockinfo|email'})['query']['userinfo']
            with self.lock:
                self.cookies = jar
                self.userinfo = info
                self.generation += 1
            log.info('logged in to the wiki as %s (user id %s)',
                     info.get('name'), info.get('id'))

    def copy_cookies(self):
        with self.lock:
            return dict(self.cookies)

    def is_logged_in(self):
        jar = self.copy_cookies()
        info = self.api(jar, 'GET', {
            'action': 'query', 'meta': 'userinfo', 'format': 'json'})
        return 'anon' not in info['query']['userinfo']


# ---- request handling ------------------------------------------------------

def parse_multipart_fields(content_type, body, names):
    """Return the given plain (non-file) fields of a multipart body."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b'Content-Type: ' + content_type.encode('latin-1') + b'\r\n\r\n'
        + body)
    fields = {}
    if not message.is_multipart():
        return fields
    for part in message.iter_parts():
        name = part.get_param('name', header='content-disposition')
        if name in names and not part.get_filename():
            fields[name] = part.get_content().strip() \
                if part.get_content_maintype() == 'text' else ''
    return fields


def request_params(query, content_type, body):
    """Return the request's parameters, POST values overriding the query."""
    params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
    content_type = content_type or ''
    if 'application/x-www-form-urlencoded' in content_type:
        params.update(urllib.parse.parse_qsl(
            body_text(body), keep_blank_values=True))
    elif content_type.startswith('multipart/form-data'):
        params.update(parse_multipart_fields(
            content_type, body, ('action', 'formatversion', 'token',
                                 'title')))
    return params


class FrontServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, registry, upstream, bot):
        super().__init__(address, FrontHandler)
        self.registry = registry
        self.upstream = upstream
        self.bot = bot
        self.endpoint = ResourceEndpoint(FrontValidator(registry))
        self.handshake = None   # set by handshake.install() when enabled

    @property
    def origin(self):
        return 'http://127.0.0.1:%d' % self.server_address[1]


class FrontHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    server_version = 'mwcomms-oauth-front'
    timeout = 120   # idle keep-alive connections are closed after this
    # Headers and body go out in two writes; with Nagle's algorithm the
    # second waits for the client's delayed ACK (about 40 ms on Linux).
    disable_nagle_algorithm = True

    # The base class logs every request on its own; the front logs one line
    # per request in handle_any() instead.
    def log_message(self, format, *args):
        log.debug('%s ' + format, self.address_string(), *args)

    def do_GET(self):
        self.handle_any()

    do_POST = do_HEAD = do_PUT = do_DELETE = do_OPTIONS = do_PATCH = do_GET

    # -- helpers --

    def read_body(self):
        if 'chunked' in self.headers.get('Transfer-Encoding', '').lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b';')[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b'\r\n', b'\n', b''):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b''.join(chunks)
        length = int(self.headers.get('Content-Length') or 0)
        return self.rfile.read(length) if length else b''

    def send_reply(self, status, reason, headers, body):
        self.send_response_only(status, reason)
        for name, value in headers:
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        if status >= 200 and status not in (204, 304):
            length = len(body)
            if self.command == 'HEAD':
                upstream_length = [v for k, v in headers
                                   if k.lower() == 'content-length']
                length = upstream_length[0] if upstream_length else 0
            self.send_header('Content-Length', str(length))
        if self.close_connection:
            self.send_header('Connection', 'close')
        self.end_headers()
        if self.command != 'HEAD' and body:
            self.wfile.write(body)

    def send_json(self, payload, api_error=None):
        body = json.dumps(payload, separators=(',', ':')).encode()
        headers = [('Content-Type', 'application/json; charset=utf-8')]
        if api_error:
            headers.append(('MediaWiki-API-Error', api_error))
        headers.append(('Cache-Control', 'private, must-revalidate, max-age=0'))
        self.send_reply(200, 'OK', headers, body)

    def send_oauth_failure(self, entry, params, reason):
        if entry == 'api':
            docref_key = '*'
            if params.get('formatversion') in ('2', 'latest'):
                docref_key = 'docref'
            self.send_json({'error': {
                'code': 'mwoauth-invalid-authorization',
                'info': 'The authorization headers in your request are not '
                        'valid: ' + reason,
                docref_key: API_DOCREF.format(server=self.server.origin),
            }}, api_error='mwoauth-invalid-authorization')
        else:
            self.send_json({
                'error': 'mwoauth-oauth-exception',
                'message': 'An error occurred in the OAuth protocol: '
                           + reason})

    def upstream_headers(self, strip_credentials):
        """Return the client's headers without hop-by-hop headers.

        strip_credentials also drops Authorization and Cookie, for requests
        that the front sends with the bot session.
        """
        headers = {}
        for name, value in self.headers.items():
            lower = name.lower()
            if lower in HOP_BY_HOP:
                continue
            if strip_credentials and lower in ('authorization', 'cookie'):
                continue
            headers[name] = value
        return headers

    # -- dispatch --

    def handle_any(self):
        self.started = time.monotonic()
        try:
            body = self.read_body()
        except (ValueError, OSError) as exc:
            log.warning('%s %s: unreadable request body (%s)',
                        self.command, self.path, exc)
            self.close_connection = True
            self.send_reply(400, 'Bad Request', [], b'')
            return
        path, _, query = self.path.partition('?')
        entry = 'api' if path.endswith('/api.php') else 'index'
        params = request_params(query, self.headers.get('Content-Type'), body)
        authorization = self.headers.get('Authorization', '')
        signed = authorization[:6].lower() == 'oauth '
        try:
            handshake = self.server.handshake
            if handshake and handshake.handles(path, params):
                outcome = handshake.dispatch(self, path, params, body)
            elif not signed:
                outcome = self.pass_through(body)
            else:
                outcome = self.handle_signed(entry, path, query, params, body)
        except (OSError, http.client.HTTPException, RuntimeError,
                ValueError) as exc:
            log.error('%s %s: upstream failure: %s: %s', self.command, path,
                      type(exc).__name__, exc)
            self.close_connection = True
            self.send_reply(502, 'Bad Gateway',
                            [('Content-Type', 'text/plain; charset=utf-8')],
                            b'oauth_front: the wiki did not respond\n')
            return
        except Exception:
            log.exception('%s %s: internal error', self.command, path)
            self.close_connection = True
            self.send_reply(500, 'Internal Server Error',
                            [('Content-Type', 'text/plain; charset=utf-8')],
                            b'oauth_front: internal error, see its log\n')
            return
        log.info('%s %s action=%s %s (%.0f ms)', self.command, path,
                 params.get('action', '-'), outcome,
                 (time.monotonic() - self.started) * 1000)

    def pass_through(self, body):
        status, reason, headers, data = self.server.upstream.request(
            self.command, self.path, body or None,
            self.upstream_headers(strip_credentials=False))
        self.send_reply(status, reason, headers, data)
        return 'unsigned, passed through: HTTP %d' % status

    def verify(self, entry, body, token_kind='access'):
        """Verify the OAuth request; return the consumer key.

        Raises OAuthFailure with MediaWiki's reason text.
        """
        registry = self.server.registry
        params = header_oauth_params(self.headers['Authorization'])
        consumer_key = check_request_parameters(
            registry, params, token_kind, index_php=entry != 'api')
        if params['oauth_signature_method'] == 'RSA-SHA1' and \
                not registry.consumers[consumer_key]['rsa_key']:
            raise OAuthFailure('Invalid signature')
        uri = self.server.origin + self.path
        try:
            valid, _ = self.server.endpoint.validate_protected_resource_request(
                uri, http_method=self.command, body=body_text(body),
                headers=oauthlib_headers(self.headers))
        except (ValueError, jwt.PyJWTError) as exc:
            # oauthlib raises these for a form body that is not valid
            # urlencoding and for an RSA key or signature it cannot load.
            log.info('oauthlib could not check the request: %s', exc)
            valid = False
        if not valid:
            raise OAuthFailure('Invalid signature')
        return consumer_key

    def handle_signed(self, entry, path, query, params, body):
        try:
            self.verify(entry, body)
        except OAuthFailure as failure:
            self.send_oauth_failure(entry, params, failure.reason)
            return 'rejected: %s' % failure.reason

        action = params.get('action') if entry == 'api' else None
        if action == 'logout' and self.command == 'POST' and params.get('token'):
            return self.reject_logout(params)
        if action == 'login' and self.command == 'POST':
            # ApiLogin returns this when the session provider cannot change
            # the user, as under OAuth (MediaWiki 1.39).
            self.send_json({'login': {
                'result': 'Aborted',
                'reason': 'Cannot log in when using %s.' % PROVIDER_NAME}})
            return 'signed login: Aborted'
        if action == 'clientlogin':
            # ApiClientLogin under a session that cannot change the user.
            # MediaWiki 1.39 has no text for the message key, so it prints
            # the key in angle quotes.
            self.send_json({'clientlogin': {
                'status': 'FAIL',
                'message': '\u29fcuserlogin-cannot-login\u29fd',
                'messagecode': 'userlogin-cannot-login',
                'canpreservestate': False}})
            return 'signed clientlogin: FAIL'
        return self.forward_as_bot(entry, path, query, params, body)

    def reject_logout(self, params):
        """Reject a signed logout with a valid CSRF token as MediaWiki does.

        ApiMain checks the token before ApiLogout runs, so an invalid token
        goes to the wiki (which rejects it without logging out).
        """
        bot = self.server.bot
        jar = bot.copy_cookies()
        check = bot.api(jar, 'POST', {
            'action': 'checktoken', 'type': 'csrf', 'token': params['token'],
            'format': 'json'})
        if check.get('checktoken', {}).get('result') != 'valid':
            # Send the logout with an invalid token in place of the client's,
            # so the wiki cannot end the bot session, and relay its error.
            safe = {k: v for k, v in params.items() if k != 'token'}
            safe['token'] = '+\\invalid'
            status, reason, headers, data = self.server.upstream.request(
                'POST', '/w/api.php', urllib.parse.urlencode(safe).encode(),
                {'Host': self.headers.get('Host', self.server.upstream.netloc),
                 'Content-Type': 'application/x-www-form-urlencoded',
                 'Cookie': bot.cookie_header()})
            headers = [(k, v) for k, v in headers if k.lower() != 'set-cookie']
            self.send_reply(status, reason, headers, data)
            return 'signed logout, invalid token: HTTP %d' % status
        error = {
            'code': 'cannotlogout',
            'info': 'Logging out is not possible when using %s sessions.'
                    % PROVIDER_NAME}
        docref_key = 'docref' if params.get('formatversion') in ('2', 'latest') else '*'
        error[docref_key] = API_DOCREF.format(server=self.server.origin)
        self.send_json({'error': error}, api_error='cannotlogout')
        return 'signed logout: cannotlogout'

    def forward_as_bot(self, entry, path, query, params, body):
        bot = self.server.bot
        target = self.path
        added_assert = False
        if entry == 'api' and 'assert' not in urllib.parse.parse_qs(query):
            # assert=user makes a lost bot session visible (assertuserfailed)
            # before the module runs, so the request can be retried safely.
            # POST values override the query, so a client's own assert wins.
            target = path + '?' + (query + '&' if query else '') + 'assert=user'
            added_assert = True
        for attempt in (1, 2):
            generation = bot.generation
            headers = self.upstream_headers(strip_credentials=True)
            headers['Cookie'] = bot.cookie_header()
            status, reason, resp_headers, data = self.server.upstream.request(
                self.command, target, body or None, headers)
            bot.update_cookies(resp_headers)
            api_error = next((v for k, v in resp_headers
                              if k.lower() == 'mediawiki-api-error'), None)
            if api_error == 'assertuserfailed' and added_assert and attempt == 1:
                log.info('bot session lost (assertuserfailed); logging in again')
                bot.login(generation)
                continue
            if api_error == 'badtoken' and not bot.is_logged_in():
                log.info('bot session lost (badtoken); logging in again')
                bot.login(generation)
            break
        resp_headers = [(k, v) for k, v in resp_headers
                        if k.lower() != 'set-cookie']
        self.send_reply(status, reason, resp_headers, data)
        return 'signed, forwarded as %s: HTTP %d%s' % (
            bot.userinfo.get('name'), status,
            ' (%s)' % api_error if api_error else '')


# ---- command line ----------------------------------------------------------

def read_option(value, env_name):
    if value:
        return value
    return os.environ.get(env_name) or secrets.token_hex(16)


def write_state(path, state):
    tmp = '%s.%d.tmp' % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w') as f:
        json.dump(state, f)
    os.replace(tmp, path)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--upstream', required=True,
                        help='the wiki, e.g. http://127.0.0.1:28181')
    parser.add_argument('--port', type=int, default=0,
                        help='TCP port on 127.0.0.1 (0 picks a free port)')
    parser.add_argument('--state', required=True,
                        help='JSON state file written once the front serves')
    parser.add_argument('--log', help='append the request log to this file')
    parser.add_argument('--consumer-key',
                        help='consumer key (default: $RW_OAUTH_CONSUMER_KEY '
                             'or random); secrets come from the environment')
    parser.add_argument('--access-key',
                        help='access token (default: $RW_OAUTH_ACCESS_KEY '
                             'or random)')
    parser.add_argument('--rsa-public-key', metavar='PEM_FILE',
                        help='register this RSA public key for the consumer '
                             '(RSA-SHA1)')
    parser.add_argument('--bot-user', default=os.environ.get('RW_BOT', 'PwbBot'),
                        help='wiki account the front acts as (default PwbBot)')
    parser.add_argument('--bot-appid',
                        default=os.environ.get('RW_BOTPW_APPID', 'ci'),
                        help='BotPassword application id (default ci); the '
                             'password is $RW_BOTPW_PASS')
    parser.add_argument('--no-handshake', action='store_true',
                        help='do not serve Special:OAuth/initiate, authorize, '
                             'token and identify')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr,
        format='%(asctime)s oauth_front[%(process)d] %(levelname)s %(message)s')
    # oauthlib logs each failed check at INFO; the front logs its own line.
    logging.getLogger('oauthlib').setLevel(logging.WARNING)
    if args.log:
        handler = logging.FileHandler(args.log)
        handler.setFormatter(logging.getLogger().handlers[0].formatter)
        logging.getLogger().addHandler(handler)

    consumer_key = read_option(args.consumer_key, 'RW_OAUTH_CONSUMER_KEY')
    consumer_secret = read_option(None, 'RW_OAUTH_CONSUMER_SECRET')
    access_key = read_option(args.access_key, 'RW_OAUTH_ACCESS_KEY')
    access_secret = read_option(None, 'RW_OAUTH_ACCESS_SECRET')
    rsa_key = None
    if args.rsa_public_key:
        with open(args.rsa_public_key) as f:
            rsa_key = f.read()

    registry = Registry()
    registry.add_consumer(consumer_key, consumer_secret, rsa_key)
    registry.add_access_token(consumer_key, access_key, access_secret)

    upstream = Upstream(args.upstream)
    bot = BotSession(upstream, '%s@%s' % (args.bot_user, args.bot_appid),
                     os.environ.get('RW_BOTPW_PASS',
                                    '0123456789abcdefghijklmnopqrstuv'))
    try:
        bot.login()
    except (OSError, http.client.HTTPException, RuntimeError, ValueError,
            KeyError) as exc:
        log.error('cannot log in to %s as %s: %s', args.upstream, bot.lgname,
                  exc)
        return 1

    try:
        server = FrontServer(('127.0.0.1', args.port), registry, upstream, bot)
    except OSError as exc:
        log.error('cannot listen on 127.0.0.1:%d: %s; choose another --port',
                  args.port, exc)
        return 1
    if not args.no_handshake:
        # handshake.py imports this module by name: register the running
        # script under that name so both share one set of classes.
        sys.modules.setdefault('oauth_front', sys.modules[__name__])
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import handshake
        handshake.install(server)

    def stop(signum, frame):
        log.info('signal %d: stopping', signum)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    port = server.server_address[1]
    write_state(args.state, {
        'port': port, 'pid': os.getpid(),
        'consumer_key': consumer_key, 'consumer_secret': consumer_secret,
        'access_key': access_key, 'access_secret': access_secret,
        'username': bot.userinfo.get('name')})
    log.info('serving on http://127.0.0.1:%d, upstream %s, acting as %s',
             port, args.upstream, bot.userinfo.get('name'))
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        try:
            os.unlink(args.state)
        except FileNotFoundError:
            pass
        log.info('stopped')
    return 0


if __name__ == '__main__':
    sys.exit(main())
