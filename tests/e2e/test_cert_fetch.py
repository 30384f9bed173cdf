"""`postern cert fetch`: save the certificates an SMTP server presents.

Peers (all on 127.0.0.1, every wait bounded):
  - `openssl s_server` as an implicit-TLS server presenting leaf + intermediate
  - aiosmtpd (python3-aiosmtpd) with STARTTLS, or without it
  - a closed port
The test CA (root -> intermediate -> leaf for localhost/127.0.0.1) is made
with the openssl CLI once per module.
"""
import os
import subprocess
import time

import pytest

from conftest import free_port, run, wait_port

PY = "/usr/bin/python3"

ROOT_CN = "Test Root CA"
INT_CN = "Test Intermediate CA"


def _openssl(*args, cwd):
    p = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, (args, p.stderr)
    return p


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("ca"))
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "root.key", "-out", "root.pem",
             "-subj", "/CN=" + ROOT_CN, "-days", "30",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    with open(os.path.join(d, "int.ext"), "w") as fh:
        fh.write("basicConstraints=critical,CA:TRUE,pathlen:0\n"
                 "keyUsage=critical,keyCertSign,cRLSign\n")
    with open(os.path.join(d, "leaf.ext"), "w") as fh:
        fh.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                 "extendedKeyUsage=serverAuth\n")
    _openssl("req", *ec, "-keyout", "int.key", "-out", "int.csr",
             "-subj", "/CN=" + INT_CN, cwd=d)
    _openssl("x509", "-req", "-in", "int.csr", "-CA", "root.pem",
             "-CAkey", "root.key", "-CAcreateserial", "-out", "int.pem",
             "-days", "30", "-extfile", "int.ext", cwd=d)
    _openssl("req", *ec, "-keyout", "leaf.key", "-out", "leaf.csr",
             "-subj", "/CN=localhost", cwd=d)
    _openssl("x509", "-req", "-in", "leaf.csr", "-CA", "int.pem",
             "-CAkey", "int.key", "-CAcreateserial", "-out", "leaf.pem",
             "-days", "30", "-extfile", "leaf.ext", cwd=d)
    with open(os.path.join(d, "fullchain.pem"), "w") as out:
        for f in ("leaf.pem", "int.pem"):
            with open(os.path.join(d, f)) as fh:
                out.write(fh.read())
    return d


class Peer:
    """A subprocess server on 127.0.0.1:port, stopped at teardown."""

    def __init__(self, argv, port, cwd, log):
        self.port = port
        self.logf = open(log, "w")
        self.log = log
        self.proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL,
                                     stdout=self.logf, stderr=self.logf,
                                     start_new_session=True)
        if not wait_port("127.0.0.1", port, timeout=15):
            self.stop()
            raise AssertionError("peer did not start: " + self.output())

    def output(self):
        with open(self.log, errors="replace") as fh:
            return fh.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.logf.close()


@pytest.fixture
def peers():
    started = []
    yield started
    for p in started:
        p.stop()


def s_server(ca, tmp_path, peers):
    """Implicit-TLS peer: leaf + intermediate.  wait_port's probe uses up
    one accept, so no -naccept limit."""
    port = free_port()
    p = Peer(["openssl", "s_server", "-accept", "127.0.0.1:%d" % port,
              "-cert", os.path.join(ca, "leaf.pem"),
              "-key", os.path.join(ca, "leaf.key"),
              "-cert_chain", os.path.join(ca, "int.pem"), "-quiet"],
             port, str(tmp_path), str(tmp_path / "s_server.log"))
    peers.append(p)
    return p


AIOSMTPD_SCRIPT = r'''
import asyncio, ssl, sys
from aiosmtpd.smtp import SMTP

port = int(sys.argv[1])
cert, key = sys.argv[2], sys.argv[3]
ctx = None
if cert != "-":
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)

class Handler:
    async def handle_DATA(self, server, session, envelope):
        return "250 2.0.0 Ok"

async def main():
    loop = asyncio.get_running_loop()
    if ctx is not None:
        factory = lambda: SMTP(Handler(), tls_context=ctx,
                               require_starttls=True, hostname="aio.test")
    else:
        factory = lambda: SMTP(Handler(), hostname="aio.test")
    srv = await loop.create_server(factory, "127.0.0.1", port)
    async with srv:
        await srv.serve_forever()

asyncio.run(main())
'''


def aiosmtpd(ca, tmp_path, peers, starttls=True):
    port = free_port()
    script = tmp_path / "aiosmtpd_peer.py"
    script.write_text(AIOSMTPD_SCRIPT)
    args = [PY, str(script), str(port)]
    if starttls:
        args += [os.path.join(ca, "fullchain.pem"),
                 os.path.join(ca, "leaf.key")]
    else:
        args += ["-", "-"]
    p = Peer(args, port, str(tmp_path), str(tmp_path / "aiosmtpd.log"))
    peers.append(p)
    return p


def fetch(*args, cwd):
    return run("cert", "fetch", *args, cwd=cwd, timeout=60)


def verify_chain(ca, out):
    p = subprocess.run(
        ["openssl", "verify", "-CAfile", os.path.join(ca, "root.pem"),
         "-untrusted", os.path.join(out, INT_CN.replace(" ", "_") + ".pem"),
         os.path.join(out, "localhost.pem")],
        capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and ": OK" in p.stdout, p.stdout + p.stderr


def check_output(p, out):
    assert p.returncode == 0, p.stdout + p.stderr
    assert sorted(os.listdir(out)) == ["Test_Intermediate_CA.pem",
                                       "localhost.pem"]
    lines = p.stdout.strip().splitlines()
    assert len(lines) == 3, p.stdout
    assert lines[0].startswith(os.path.join(out, "localhost.pem"))
    assert 'subject "CN=localhost"' in lines[0]
    assert 'issuer "CN=%s"' % INT_CN in lines[0]
    assert "not-after 20" in lines[0]
    assert lines[1].startswith(os.path.join(out, "Test_Intermediate_CA.pem"))
    assert "postern trust add %s --name" % os.path.join(
        out, "Test_Intermediate_CA.pem") in lines[2]


def test_implicit_tls(ca, tmp_path, peers):
    srv = s_server(ca, tmp_path, peers)
    out = str(tmp_path / "out")
    p = fetch("127.0.0.1:%d" % srv.port, "--out", out, cwd=str(tmp_path))
    check_output(p, out)
    verify_chain(ca, out)
    st = os.stat(os.path.join(out, "localhost.pem"))
    assert st.st_mode & 0o777 == 0o644


def test_implicit_tls_servername_and_refetch(ca, tmp_path, peers):
    """--servername is accepted; fetching twice into the same DIR
    overwrites (same names, no -2 suffixes)."""
    srv = s_server(ca, tmp_path, peers)
    out = str(tmp_path / "out")
    for _ in range(2):
        p = fetch("127.0.0.1:%d" % srv.port, "--out", out,
                  "--servername", "localhost", "--timeout", "20",
                  cwd=str(tmp_path))
        check_output(p, out)


def test_starttls_aiosmtpd(ca, tmp_path, peers):
    srv = aiosmtpd(ca, tmp_path, peers, starttls=True)
    out = str(tmp_path / "out")
    p = fetch("localhost:%d" % srv.port, "--starttls", "--out", out,
              cwd=str(tmp_path))
    check_output(p, out)
    verify_chain(ca, out)


def test_starttls_not_offered(ca, tmp_path, peers):
    srv = aiosmtpd(ca, tmp_path, peers, starttls=False)
    out = str(tmp_path / "out")
    p = fetch("127.0.0.1:%d" % srv.port, "--starttls", "--out", out,
              cwd=str(tmp_path))
    assert p.returncode == 1, p.stdout + p.stderr
    assert ("postern: 127.0.0.1:%d does not offer STARTTLS (" % srv.port
            in p.stderr), p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not os.path.exists(out) or os.listdir(out) == []


def test_implicit_tls_against_plain_smtp(ca, tmp_path, peers):
    """Implicit TLS to a plain SMTP port: the handshake fails, and the
    message says so and suggests --starttls."""
    srv = aiosmtpd(ca, tmp_path, peers, starttls=False)
    p = fetch("127.0.0.1:%d" % srv.port, "--out", str(tmp_path / "o"),
              "--timeout", "10", cwd=str(tmp_path))
    assert p.returncode == 1, p.stdout + p.stderr
    assert "TLS handshake failed" in p.stderr, p.stderr
    assert "--starttls" in p.stderr


def test_connection_refused(tmp_path):
    port = free_port()          # nothing listens there
    for extra in ([], ["--starttls"]):
        p = fetch("127.0.0.1:%d" % port, *extra, "--out",
                  str(tmp_path / "o"), cwd=str(tmp_path))
        assert p.returncode == 1, p.stdout + p.stderr
        assert "connection refused" in p.stderr, p.stderr
        assert "port" in p.stderr
        assert len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_timeout(tmp_path):
    """A peer that accepts but never speaks: the greeting deadline."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(4)
        port = s.getsockname()[1]
        t0 = time.monotonic()
        p = fetch("127.0.0.1:%d" % port, "--starttls", "--timeout", "1",
                  "--out", str(tmp_path / "o"), cwd=str(tmp_path))
        assert time.monotonic() - t0 < 15
    assert p.returncode == 1
    assert "timeout" in p.stderr, p.stderr


@pytest.mark.parametrize("args", [
    [],                                       # no target, no --out
    ["127.0.0.1:465"],                        # no --out
    ["--out", "x"],                           # no target
    ["127.0.0.1:0", "--out", "x"],            # bad port
    ["127.0.0.1:99999", "--out", "x"],
    ["[::1", "--out", "x"],
    ["a", "b", "--out", "x"],                 # two targets
    ["127.0.0.1", "--out", "x", "--timeout", "abc"],
    ["127.0.0.1", "--out", "x", "--bogus"],
    ["127.0.0.1", "--out"],                   # option without value
])
def test_usage_errors(tmp_path, args):
    p = fetch(*args, cwd=str(tmp_path))
    assert p.returncode == 2, (args, p.stdout, p.stderr)
    assert p.stderr.strip(), args
    assert not os.path.exists(tmp_path / "x")


def test_help(tmp_path):
    p = fetch("--help", cwd=str(tmp_path))
    assert p.returncode == 0
    assert "usage: postern cert fetch" in p.stdout


def test_file_names_wildcard_nocn_duplicate(tmp_path, peers):
    """'*' -> '_wildcard', no CN -> subject hash, same CN twice -> -2."""
    d = str(tmp_path)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
          "-days", "3"]
    _openssl("req", "-x509", *ec, "-keyout", "wild.key", "-out", "wild.pem",
             "-subj", "/CN=*.wild.test", cwd=d)
    _openssl("req", "-x509", *ec, "-keyout", "nocn.key", "-out", "nocn.pem",
             "-subj", "/O=No CN Org", cwd=d)
    h = _openssl("x509", "-in", "nocn.pem", "-noout", "-subject_hash",
                 cwd=d).stdout.strip()
    with open(os.path.join(d, "chain.pem"), "w") as out:
        for f in ("nocn.pem", "wild.pem"):
            with open(os.path.join(d, f)) as fh:
                out.write(fh.read())
    port = free_port()
    peers.append(Peer(["openssl", "s_server", "-accept", "127.0.0.1:%d" % port,
                       "-cert", "wild.pem", "-key", "wild.key",
                       "-cert_chain", "chain.pem", "-quiet"],
                      port, d, os.path.join(d, "s_server.log")))
    out = os.path.join(d, "out")
    p = fetch("127.0.0.1:%d" % port, "--out", out, cwd=d)
    assert p.returncode == 0, p.stdout + p.stderr
    assert sorted(os.listdir(out)) == sorted([
        "_wildcard.wild.test.pem", h + ".pem", "_wildcard.wild.test-2.pem"])
    # the last one is self-signed: a plain hint
    assert p.stdout.strip().splitlines()[-1] == (
        "to trust the root: postern trust add %s --name %s" % (
            os.path.join(out, "_wildcard.wild.test-2.pem"),
            "_wildcard.wild.test-2"))
