"""Tests of realwiki/oauth_front.py against the local MediaWiki.

The requests are signed by oauthlib's Client, independent of mwcomms.
The expected error texts are those of Extension:OAuth (REL1_39) as seen on a
real wiki.
"""

import re
import secrets
import time
import urllib.parse

import jwt
import pytest
import requests
from oauthlib import oauth1

import realwiki

pytestmark = pytest.mark.realwiki

INVALID_AUTH = 'mwoauth-invalid-authorization'
INFO_PREFIX = 'The authorization headers in your request are not valid: '
BAD_METHOD = ("Signature method '%s' not supported try one of the "
              "following: HMAC-SHA1, RSA-SHA1")
CANNOT_LOGOUT = ('Logging out is not possible when using '
                 'MediaWiki\\Extension\\OAuth\\SessionProvider sessions.')
TIMEOUT = (5, 60)


@pytest.fixture(scope='module')
def front(wiki, tmp_path_factory):
    front = realwiki.OAuthFront.start(
        wiki, state_dir=tmp_path_factory.mktemp('oauth_front'))
    yield front
    front.stop()


@pytest.fixture(scope='module')
def rsa_key(tmp_path_factory):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()
    public_file = tmp_path_factory.mktemp('rsa') / 'consumer.pub.pem'
    public_file.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo))
    return private_pem, public_file


@pytest.fixture(scope='module')
def rsa_front(wiki, rsa_key, tmp_path_factory):
    front = realwiki.OAuthFront.start(
        wiki, state_dir=tmp_path_factory.mktemp('oauth_front_rsa'),
        rsa_public_key=rsa_key[1])
    yield front
    front.stop()


def send_signed(front, method='GET', params=None, data=None, path='api.php',
                consumer_key=None, consumer_secret=None, token=None,
                token_secret=None, nonce=None, timestamp=None,
                signature_method=oauth1.SIGNATURE_HMAC_SHA1, rsa_key=None,
                tamper=None, session=None):
    """Sign a request with oauthlib's Client and send it to the front.

    Credentials default to the front's.  tamper(header) may rewrite the
    Authorization header after signing.
    """
    uri = '%s/w/%s' % (front.url, path)
    if params:
        uri += '?' + urllib.parse.urlencode(params)
    client = oauth1.Client(
        consumer_key or front.consumer_key,
        client_secret=(front.consumer_secret if consumer_secret is None
                       else consumer_secret),
        resource_owner_key=front.access_key if token is None else token,
        resource_owner_secret=(front.access_secret if token_secret is None
                               else token_secret),
        signature_method=signature_method, rsa_key=rsa_key,
        nonce=nonce, timestamp=timestamp)
    headers = {}
    body = None
    if data is not None:
        headers['Content-Type'] = 'application/x-www-form-urlencoded'
        body = urllib.parse.urlencode(data)
    uri, headers, body = client.sign(uri, method, body, headers)
    if tamper:
        headers['Authorization'] = tamper(headers['Authorization'])
    return (session or requests).request(
        method, uri, data=body, headers=headers, timeout=TIMEOUT)


def userinfo(front, **kwargs):
    return send_signed(front, params={
        'action': 'query', 'meta': 'userinfo', 'format': 'json'}, **kwargs)


def csrf_token(front):
    response = send_signed(front, 'POST', data={
        'action': 'query', 'meta': 'tokens', 'format': 'json'})
    return response.json()['query']['tokens']['csrftoken']


def old_timestamp(seconds):
    return str(int(time.time()) - seconds)


def assert_api_failure(front, response, reason, docref_key='*'):
    assert response.status_code == 200
    assert response.headers['MediaWiki-API-Error'] == INVALID_AUTH
    assert 'WWW-Authenticate' not in response.headers
    assert response.headers['Content-Type'] == \
        'application/json; charset=utf-8'
    error = response.json()['error']
    assert error['code'] == INVALID_AUTH
    assert error['info'] == INFO_PREFIX + reason
    assert error[docref_key].startswith(
        'See %s/w/api.php for API usage. ' % front.url)


# ---- accepted requests -----------------------------------------------------

def test_userinfo_is_bot(front):
    response = userinfo(front)
    assert response.status_code == 200
    assert 'MediaWiki-API-Error' not in response.headers
    info = response.json()['query']['userinfo']
    assert info['name'] == 'PwbBot'
    assert 'anon' not in info


def test_signed_response_sets_no_cookie(front):
    response = userinfo(front)
    assert 'Set-Cookie' not in response.headers


def test_edit_attributed_to_bot(front, wiki):
    text = 'oauth front edit %s' % secrets.token_hex(8)
    response = send_signed(front, 'POST', data={
        'action': 'edit', 'title': 'User:PwbBot/oauth-front',
        'text': text, 'summary': 'oauth front test',
        'token': csrf_token(front), 'format': 'json'})
    assert response.json()['edit']['result'] == 'Success'

    history = requests.get(wiki.api_url, params={
        'action': 'query', 'prop': 'revisions',
        'titles': 'User:PwbBot/oauth-front', 'rvprop': 'user|content',
        'rvslots': 'main', 'format': 'json', 'formatversion': '2'},
        timeout=TIMEOUT).json()
    revision = history['query']['pages'][0]['revisions'][0]
    assert revision['user'] == 'PwbBot'
    assert revision['slots']['main']['content'] == text


def test_timestamp_four_minutes_old_accepted(front):
    response = userinfo(front, timestamp=old_timestamp(240))
    assert response.json()['query']['userinfo']['name'] == 'PwbBot'


def test_rsa_sha1_accepted(rsa_front, rsa_key):
    response = userinfo(rsa_front, signature_method=oauth1.SIGNATURE_RSA,
                        rsa_key=rsa_key[0])
    assert response.json()['query']['userinfo']['name'] == 'PwbBot'


def test_rsa_sha1_unregistered_key_rejected(rsa_key, front):
    # The main front has no RSA key registered for its consumer.
    response = userinfo(front, signature_method=oauth1.SIGNATURE_RSA,
                        rsa_key=rsa_key[0])
    assert_api_failure(front, response, 'Invalid signature')


def test_signed_upload_as_bot(front, wiki):
    name = 'Oauth-front-%s.txt' % secrets.token_hex(4)
    uri = front.api_url
    fields = {'action': 'upload', 'filename': name, 'format': 'json',
              'ignorewarnings': '1', 'token': csrf_token(front),
              'comment': 'oauth front upload'}
    client = oauth1.Client(
        front.consumer_key, client_secret=front.consumer_secret,
        resource_owner_key=front.access_key,
        resource_owner_secret=front.access_secret)
    # A multipart body is not part of the OAuth signature.
    _, headers, _ = client.sign(uri, 'POST')
    response = requests.post(
        uri, data=fields, headers=headers, timeout=TIMEOUT,
        files={'file': (name, b'plain text upload\n', 'text/plain')})
    assert response.json()['upload']['result'] == 'Success'

    info = requests.get(wiki.api_url, params={
        'action': 'query', 'prop': 'imageinfo', 'titles': 'File:' + name,
        'iiprop': 'user', 'format': 'json', 'formatversion': '2'},
        timeout=TIMEOUT).json()
    assert info['query']['pages'][0]['imageinfo'][0]['user'] == 'PwbBot'


# ---- rejected requests -----------------------------------------------------

def tamper_signature(header):
    match = re.search(r'oauth_signature="([^"]+)"', header)
    signature = urllib.parse.unquote(match.group(1))
    flipped = ('B' if signature[0] == 'A' else 'A') + signature[1:]
    return header.replace(match.group(1), urllib.parse.quote(flipped, safe=''))


def test_tampered_signature_rejected(front):
    response = userinfo(front, tamper=tamper_signature)
    assert_api_failure(front, response, 'Invalid signature')


def test_wrong_consumer_secret_rejected(front):
    response = userinfo(front, consumer_secret='0' * 32)
    assert_api_failure(front, response, 'Invalid signature')


def test_wrong_access_secret_rejected(front):
    response = userinfo(front, token_secret='0' * 32)
    assert_api_failure(front, response, 'Invalid signature')


def test_unknown_consumer_rejected(front):
    response = userinfo(front, consumer_key=secrets.token_hex(16))
    assert_api_failure(front, response, 'Invalid consumer')


def test_unknown_token_rejected(front):
    response = userinfo(front, token=secrets.token_hex(16))
    assert_api_failure(
        front, response,
        'No approved grant was found for that authorization token.')


def test_reused_nonce_rejected(front):
    nonce = secrets.token_hex(12)
    first = userinfo(front, nonce=nonce)
    assert first.json()['query']['userinfo']['name'] == 'PwbBot'
    second = userinfo(front, nonce=nonce)
    assert_api_failure(front, second, 'Nonce already used: %s' % nonce)


def test_nonce_burned_by_failed_request(front):
    nonce = secrets.token_hex(12)
    failed = userinfo(front, nonce=nonce, consumer_secret='0' * 32)
    assert_api_failure(front, failed, 'Invalid signature')
    retried = userinfo(front, nonce=nonce)
    assert_api_failure(front, retried, 'Nonce already used: %s' % nonce)


def test_nonce_is_per_token(front, wiki, tmp_path):
    nonce = secrets.token_hex(12)
    first = userinfo(front, nonce=nonce)
    assert first.json()['query']['userinfo']['name'] == 'PwbBot'
    # Same nonce, other token of the same consumer: a different nonce key.
    other = realwiki.OAuthFront.start(
        wiki, state_dir=tmp_path, consumer_key=front.consumer_key,
        consumer_secret=front.consumer_secret)
    try:
        response = userinfo(other, nonce=nonce)
        assert response.json()['query']['userinfo']['name'] == 'PwbBot'
    finally:
        other.stop()


@pytest.mark.parametrize('offset', [400, -400], ids=['past', 'future'])
def test_timestamp_outside_window_rejected(front, offset):
    client_ts = old_timestamp(offset)
    response = userinfo(front, timestamp=client_ts)
    info = response.json()['error']['info']
    match = re.fullmatch(
        re.escape(INFO_PREFIX + 'Expired timestamp, yours %s, ours ' % client_ts)
        + r'(\d+)', info)
    assert match, info
    assert abs(int(match.group(1)) - time.time()) < 30
    assert_api_failure(
        front, response,
        'Expired timestamp, yours %s, ours %s' % (client_ts, match.group(1)))


@pytest.mark.parametrize('method', ['HMAC-SHA256', 'PLAINTEXT'])
def test_signature_method_rejected(front, method):
    response = userinfo(front, signature_method=method)
    assert_api_failure(front, response, BAD_METHOD % method)


def test_consumer_checked_before_timestamp(front):
    response = userinfo(front, consumer_key=secrets.token_hex(16),
                        timestamp=old_timestamp(1000))
    assert_api_failure(front, response, 'Invalid consumer')


def test_token_checked_before_timestamp(front):
    response = userinfo(front, token=secrets.token_hex(16),
                        timestamp=old_timestamp(1000))
    assert_api_failure(
        front, response,
        'No approved grant was found for that authorization token.')


def test_timestamp_checked_before_signature(front):
    client_ts = old_timestamp(1000)
    response = userinfo(front, timestamp=client_ts, consumer_secret='0' * 32)
    info = response.json()['error']['info']
    assert info.startswith(
        INFO_PREFIX + 'Expired timestamp, yours %s, ours ' % client_ts)


def test_nonce_checked_before_method(front):
    nonce = secrets.token_hex(12)
    first = userinfo(front, nonce=nonce)
    assert first.json()['query']['userinfo']['name'] == 'PwbBot'
    response = userinfo(front, nonce=nonce, signature_method='PLAINTEXT')
    assert_api_failure(front, response, 'Nonce already used: %s' % nonce)


def test_formatversion2_uses_docref(front):
    response = send_signed(front, params={
        'action': 'query', 'meta': 'userinfo', 'format': 'json',
        'formatversion': '2'}, consumer_secret='0' * 32)
    assert_api_failure(front, response, 'Invalid signature',
                       docref_key='docref')
    assert '*' not in response.json()['error']


def test_formatversion2_in_body_uses_docref(front):
    response = send_signed(front, 'POST', data={
        'action': 'query', 'meta': 'userinfo', 'format': 'json',
        'formatversion': '2'}, consumer_secret='0' * 32)
    assert_api_failure(front, response, 'Invalid signature',
                       docref_key='docref')


def test_form_body_is_signed(front):
    # Changing a form value after signing breaks the signature.
    uri = front.api_url
    client = oauth1.Client(
        front.consumer_key, client_secret=front.consumer_secret,
        resource_owner_key=front.access_key,
        resource_owner_secret=front.access_secret)
    headers = {'Content-Type': 'application/x-www-form-urlencoded'}
    _, headers, _ = client.sign(
        uri, 'POST', 'action=query&meta=userinfo&format=json', headers)
    response = requests.post(
        uri, data='action=query&meta=siteinfo&format=json', headers=headers,
        timeout=TIMEOUT)
    assert_api_failure(front, response, 'Invalid signature')


def test_index_php_error_format(front):
    response = send_signed(front, path='index.php', params={
        'title': 'Main_Page', 'action': 'raw'}, consumer_secret='0' * 32)
    assert response.status_code == 200
    assert response.headers['Content-Type'].startswith('application/json')
    assert 'MediaWiki-API-Error' not in response.headers
    assert response.json() == {
        'error': 'mwoauth-oauth-exception',
        'message': 'An error occurred in the OAuth protocol: '
                   'Invalid signature'}


def test_index_php_signed_request_forwarded(front):
    response = send_signed(front, path='index.php', params={
        'title': 'User:PwbBot/oauth-front', 'action': 'raw'})
    assert response.status_code == 200
    assert response.text.startswith('oauth front edit ')


# ---- login and logout under OAuth ------------------------------------------

def test_signed_logout_refused(front):
    response = send_signed(front, 'POST', data={
        'action': 'logout', 'token': csrf_token(front), 'format': 'json'})
    assert response.status_code == 200
    assert response.headers['MediaWiki-API-Error'] == 'cannotlogout'
    error = response.json()['error']
    assert error['code'] == 'cannotlogout'
    assert error['info'] == CANNOT_LOGOUT

    after = userinfo(front).json()['query']['userinfo']
    assert after['name'] == 'PwbBot'


def test_signed_logout_bad_token(front):
    response = send_signed(front, 'POST', data={
        'action': 'logout', 'token': '0' * 40 + '+\\', 'format': 'json'})
    assert response.headers['MediaWiki-API-Error'] == 'badtoken'
    after = userinfo(front).json()['query']['userinfo']
    assert after['name'] == 'PwbBot'


def test_signed_login_aborted(front):
    response = send_signed(front, 'POST', data={
        'action': 'login', 'lgname': 'PwbBot@ci', 'lgpassword': 'x' * 32,
        'lgtoken': '+\\', 'format': 'json'})
    login = response.json()['login']
    assert login['result'] == 'Aborted'
    assert login['reason'] == ('Cannot log in when using '
                               'MediaWiki\\Extension\\OAuth\\SessionProvider.')


def test_unsigned_botpassword_login(front, wiki):
    session = requests.Session()
    tokens = session.get(front.api_url, params={
        'action': 'query', 'meta': 'tokens', 'type': 'login',
        'format': 'json'}, timeout=TIMEOUT)
    assert 'Set-Cookie' in tokens.headers
    login = session.post(front.api_url, data={
        'action': 'login', 'lgname': 'PwbBot@ci',
        'lgpassword': wiki.botpassword,
        'lgtoken': tokens.json()['query']['tokens']['logintoken'],
        'format': 'json'}, timeout=TIMEOUT)
    assert login.json()['login']['result'] == 'Success'
    assert 'Set-Cookie' in login.headers

    info = session.get(front.api_url, params={
        'action': 'query', 'meta': 'userinfo', 'format': 'json'},
        timeout=TIMEOUT).json()['query']['userinfo']
    assert info['name'] == 'PwbBot'


def test_unsigned_request_is_anonymous(front):
    info = requests.get(front.api_url, params={
        'action': 'query', 'meta': 'userinfo', 'format': 'json'},
        timeout=TIMEOUT).json()['query']['userinfo']
    assert 'anon' in info


def test_keep_alive_connection_reused(front):
    with requests.Session() as session:
        first = userinfo(front, session=session)
        second = userinfo(front, session=session)
    assert first.headers['Content-Length'] == str(len(first.content))
    assert second.json()['query']['userinfo']['name'] == 'PwbBot'
    assert 'close' not in second.headers.get('Connection', '')


def test_log_has_no_secrets(front, wiki):
    userinfo(front)
    log = front.log_file.read_text()
    assert 'forwarded as PwbBot' in log
    assert front.consumer_secret not in log
    assert front.access_secret not in log
    assert wiki.botpassword not in log


# ---- handshake and identify ------------------------------------------------

def special(front, step):
    return '%s/w/index.php?title=Special:OAuth/%s' % (front.url, step)


def initiate(front, callback='oob'):
    client = oauth1.Client(front.consumer_key,
                           client_secret=front.consumer_secret,
                           callback_uri=callback)
    uri, headers, _ = client.sign(special(front, 'initiate'), 'POST')
    return requests.post(uri, headers=headers, timeout=TIMEOUT)


def test_handshake_grants_access_token(front):
    started = initiate(front)
    request_token = dict(urllib.parse.parse_qsl(started.text))
    assert request_token['oauth_callback_confirmed'] == 'true'

    approved = requests.get(front.url + '/w/index.php', params={
        'title': 'Special:OAuth/authorize',
        'oauth_token': request_token['oauth_token'],
        'oauth_consumer_key': front.consumer_key, 'approve': '1'},
        allow_redirects=False, timeout=TIMEOUT)
    assert approved.status_code == 302
    query = dict(urllib.parse.parse_qsl(
        urllib.parse.urlsplit(approved.headers['Location']).query))
    assert query['oauth_token'] == request_token['oauth_token']
    verifier = query['oauth_verifier']

    client = oauth1.Client(
        front.consumer_key, client_secret=front.consumer_secret,
        resource_owner_key=request_token['oauth_token'],
        resource_owner_secret=request_token['oauth_token_secret'],
        verifier=verifier)
    uri, headers, _ = client.sign(special(front, 'token'), 'POST')
    access = dict(urllib.parse.parse_qsl(
        requests.post(uri, headers=headers, timeout=TIMEOUT).text))
    assert set(access) == {'oauth_token', 'oauth_token_secret'}

    response = userinfo(front, token=access['oauth_token'],
                        token_secret=access['oauth_token_secret'])
    assert response.json()['query']['userinfo']['name'] == 'PwbBot'

    # The request token is used up.
    uri, headers, _ = client.sign(special(front, 'token'), 'POST')
    reused = requests.post(uri, headers=headers, timeout=TIMEOUT).json()
    assert reused['error'] == 'mwoauth-oauth-exception'


@pytest.mark.parametrize('callback', ['OOB', 'http://127.0.0.1/cb'])
def test_initiate_requires_oob(front, callback):
    response = initiate(front, callback)
    assert response.json() == {
        'error': 'mwoauth-oauth-exception',
        'message': 'An error occurred in the OAuth protocol: oauth_callback '
                   'must be set, and must be set to "oob" (case-sensitive)'}


def test_initiate_wrong_secret(front):
    client = oauth1.Client(front.consumer_key, client_secret='0' * 32,
                           callback_uri='oob')
    uri, headers, _ = client.sign(special(front, 'initiate'), 'POST')
    response = requests.post(uri, headers=headers, timeout=TIMEOUT)
    assert response.json()['message'] == \
        'An error occurred in the OAuth protocol: Invalid signature'


def test_identify_returns_jwt(front):
    nonce = secrets.token_hex(12)
    response = send_signed(front, 'POST', path='index.php',
                           params={'title': 'Special:OAuth/identify'},
                           nonce=nonce)
    assert response.headers['Content-Type'].startswith('application/json')
    # MediaWiki's sub is an integer; PyJWT >= 2.10 expects a string.
    claims = jwt.decode(response.text, front.consumer_secret,
                        algorithms=['HS256'], audience=front.consumer_key,
                        options={'verify_sub': False})
    assert claims['iss'] == front.url
    assert claims['username'] == 'PwbBot'
    assert isinstance(claims['sub'], int)
    assert claims['nonce'] == nonce
    assert claims['exp'] - claims['iat'] == 100
    assert 'bot' in claims['groups']
    assert 'editpage' in claims['grants']
    assert claims['blocked'] is False


def test_identify_wrong_key_rejected(front):
    response = send_signed(front, 'POST', path='index.php',
                           params={'title': 'Special:OAuth/identify'},
                           token_secret='0' * 32)
    assert response.json()['message'] == \
        'An error occurred in the OAuth protocol: Invalid signature'


# ---- bot session recovery --------------------------------------------------

def test_relogin_after_session_loss(tmp_path):
    # A private wiki, because restarting php-fpm ends every session on it.
    private = realwiki.Wiki.up(rw_dir=tmp_path / 'wiki', http_port=28195,
                               tls_port=28455)
    front = realwiki.OAuthFront.start(private, state_dir=tmp_path / 'front')
    try:
        assert userinfo(front).json()['query']['userinfo']['name'] == 'PwbBot'
        private.stop()
        private = realwiki.Wiki.up(rw_dir=tmp_path / 'wiki', http_port=28195,
                                   tls_port=28455)
        info = userinfo(front).json()['query']['userinfo']
        assert info['name'] == 'PwbBot'
        assert 'bot session lost' in front.log_file.read_text()
    finally:
        front.stop()
        private.stop()
