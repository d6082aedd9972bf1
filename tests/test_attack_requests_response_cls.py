"""requests_response must only set the __dict__ of an instance of cls."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import _mwcomms
import servers
from pywikibot_ext._response import Headers


def serve(server, connection, index):
    for _ in servers.request_heads(connection):
        connection.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')


@pytest.fixture
def result(raw_servers):
    server = raw_servers(serve)
    with _mwcomms.Client() as client:
        yield client.request('GET', server.url('/'), timeout=10)


def test_new_returns_class(result):
    class Victim:
        def method(self):
            return 'victim'

    class Evil:
        def __new__(cls):
            return Victim

    with pytest.raises(TypeError):
        result.requests_response(Evil, Headers, None, None)
    assert Victim().method() == 'victim'


def test_new_returns_other_instance(result):
    class Other:
        pass

    other = Other()
    other.marker = 1

    class Evil:
        def __new__(cls):
            return other

    with pytest.raises(TypeError):
        result.requests_response(Evil, Headers, None, None)
    assert other.__dict__ == {'marker': 1}


SCRIPT = textwrap.dedent('''
    import sys
    sys.path.insert(0, {tests!r})
    sys.path.insert(0, {root!r})
    import servers, _mwcomms
    from pywikibot_ext._response import Headers
    from test_attack_requests_response_cls import serve

    server = servers.RawServer(serve)
    with _mwcomms.Client() as client:
        result = client.request('GET', server.url('/'), timeout=10)

    def make():
        class Victim:
            pass
        Victim.method = eval("lambda self: 'v' + 'x' * 3")
        return Victim

    Victim = make()
    victim = Victim()
    for _ in range(3):
        victim.method()

    class Evil:
        def __new__(cls):
            return Victim

    try:
        result.requests_response(Evil, Headers, None, None)
    except TypeError:
        pass
    print(victim.method())
''')


def test_new_returns_class_no_crash(tmp_path):
    # The type's attribute cache still points into the replaced dict.
    tests = Path(__file__).resolve().parent
    script = tmp_path / 'victim.py'
    script.write_text(SCRIPT.format(tests=str(tests),
                                    root=str(tests.parent)))
    done = subprocess.run([sys.executable, str(script)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == 'vxxx'


def test_metaclass_instances_refused(result):
    class Meta(type):
        pass

    # type.__new__ refuses the empty arguments, and no class ever gets
    # its dict replaced.
    with pytest.raises(TypeError):
        result.requests_response(Meta, Headers, None, None)

    class Builds(type):
        def __new__(cls):
            return type.__new__(cls, 'Built', (), {'marker': 1})

    with pytest.raises(TypeError, match='not an instance of the class'):
        result.requests_response(Builds, Headers, None, None)
