"""TLS on the listeners (RFC 3207 STARTTLS, RFC 8314 implicit TLS) against
real peers: python ssl/smtplib and `openssl s_client`.

Every server here has three listeners: inbound (tls preferred, the
Server's port), submission (tls required) and smtps (implicit TLS), all
with certificate "default" - which does not exist at first, so the demo
certificate is generated.
"""
import hashlib
import os
import re
import signal
import smtplib
import socket
import ssl
import stat
import subprocess
import time

import pytest

from conftest import BASE_CONFIG, BIN, RawSMTP, _esc, wait_for, wait_port

HOST = "mx.test.example"
TLS13_DEFAULT = "TLS_AES_256_GCM_SHA384"
MSG = "From: a@example.org\r\nTo: bob@example.com\r\nSubject: tls\r\n\r\nhello\r\n"


def three_ports():
    """Three distinct free loopback ports (held open together while
    chosen, so none is handed out twice)."""
    socks = []
    for _ in range(3):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def tls_config(extra_listener="", certificate='"default"', tls_block="",
               relayed=None, limits=""):
    """(config template, inbound port, submission port, smtps port); pass
    the inbound port to server_factory(port=...)."""
    inbound, sub, smtps = three_ports()
    t = BASE_CONFIG.replace(
        '{{ name = "inbound"; address = "127.0.0.1"; port = {port}; }}',
        '{{ name = "inbound"; address = "127.0.0.1"; port = {port}; '
        'tls = "preferred"; certificate = ' + _esc(certificate) + '; }},\n'
        '  {{ name = "submission"; address = "127.0.0.1"; port = %d; '
        'tls = "required"; certificate = %s; }},\n'
        '  {{ name = "smtps"; address = "127.0.0.1"; port = %d; '
        'tls = "implicit"; certificate = %s; }}' % (
            sub, _esc(certificate), smtps, _esc(certificate)) +
        _esc(extra_listener))
    assert "submission" in t, "BASE_CONFIG changed"
    if relayed is not None:
        t = t.replace('relayed  = {{ action = "relay";  max_recipients = 100; }};',
                      "relayed  = {{ " + _esc(relayed) + " }};")
    t += _esc(tls_block) + "\n" + _esc(limits) + "\n"
    return t, inbound, sub, smtps


@pytest.fixture
def tls_server(server_factory):
    conf, inbound, sub, smtps = tls_config()
    s = server_factory(config=conf, port=inbound)
    s.sub, s.smtps = sub, smtps
    start(s)
    assert wait_port("127.0.0.1", sub) and wait_port("127.0.0.1", smtps)
    return s


def start(s, count=1):
    """Start and wait until the master has loaded its certificates (the
    ports accept into the backlog earlier, while the demo certificate is
    still being made)."""
    s.start()
    s.wait_log(r"postern \S+ starting", count=count)
    return s


def insecure_ctx(**kw):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    for k, v in kw.items():
        setattr(ctx, k, v)
    return ctx


def verifying_ctx(cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    return ctx


def openssl(*args, input=None, timeout=30):
    return subprocess.run(["openssl", *args], input=input, capture_output=True,
                          text=True, timeout=timeout)


def make_cert(dirpath, name, cn, days=30):
    cert = os.path.join(dirpath, name + ".pem")
    key = os.path.join(dirpath, name + ".key")
    p = openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                "-out", cert, "-subj", "/CN=" + cn, "-days", str(days),
                "-addext", "subjectAltName=DNS:" + cn)
    assert p.returncode == 0, p.stderr
    return cert, key


def der_of(pem_path):
    with open(pem_path) as fh:
        text = fh.read()
    first = text[:text.index("-----END CERTIFICATE-----") + 25]
    return ssl.PEM_cert_to_DER_cert(first)


def peer_der(port, server_name=None, implicit=True):
    """The certificate a listener presents (implicit TLS listener)."""
    ctx = insecure_ctx()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=server_name) as s:
            return s.getpeercert(binary_form=True)


def icid_of_last(server, event_rx):
    m = re.findall(event_rx, server.log(), re.M)
    return m[-1] if m else None


# ---------------------------------------------------------------- demo cert

def test_demo_certificate_generated_once_and_kept(server_factory):
    conf, inbound, sub, smtps = tls_config()
    s = start(server_factory(config=conf, port=inbound))
    cert = os.path.join(s.data, "certs", "default.pem")
    key = os.path.join(s.data, "certs", "default.key")
    s.wait_log(r"Warning: .*self-signed demo certificate for "
               + re.escape(HOST) + r".*peers cannot verify it")
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    p = openssl("x509", "-in", cert, "-noout", "-subject", "-ext",
                "subjectAltName")
    assert "CN = " + HOST in p.stdout and "DNS:" + HOST in p.stdout, p.stdout
    first = hashlib.sha256(der_of(cert)).hexdigest()
    # The listener serves exactly that certificate.
    assert wait_port("127.0.0.1", smtps)
    assert hashlib.sha256(peer_der(smtps)).hexdigest() == first
    s.stop()
    start(s, count=2)
    assert hashlib.sha256(der_of(cert)).hexdigest() == first
    assert len(re.findall("demo certificate", s.log())) == 1
    # Still self-signed: every later start says peers cannot verify it.
    assert len(re.findall(r"certificate default \(listener inbound\) is self-signed",
                          s.log())) == 1


# ------------------------------------------------------------ STARTTLS

def test_starttls_smtplib_delivers_over_tls(tls_server):
    s = tls_server
    # The demo certificate is its own CA: verify against it, host name too.
    cafile = os.path.join(s.data, "certs", "default.pem")
    with smtplib.SMTP("127.0.0.1", s.port, local_hostname="client.test",
                      timeout=15) as c:
        c._host = HOST  # the name starttls() checks the certificate for
        c.ehlo()
        assert c.has_extn("starttls")
        code, text = c.starttls(context=verifying_ctx(cafile))
        assert code == 220 and text == b"2.0.0 Ready to start TLS"
        code, resp = c.ehlo()
        assert code == 250
        assert not c.has_extn("starttls"), "STARTTLS offered again after TLS"
        c.sendmail("a@example.org", ["bob@example.com"], MSG)
    files = s.wait_maildir("example.com", "bob")
    body = open(files[0], "rb").read()
    assert b"with ESMTPS id" in body
    assert b"(using TLSv1.3 with cipher " + TLS13_DEFAULT.encode() in body
    s.wait_log(r"ICID \d+ TLS success protocol TLSv1\.3 cipher "
               + TLS13_DEFAULT)


def test_openssl_s_client_starttls_verifies_against_demo_cert(tls_server):
    s = tls_server
    cafile = os.path.join(s.data, "certs", "default.pem")
    p = openssl("s_client", "-connect", "127.0.0.1:%d" % s.port, "-starttls",
                "smtp", "-crlf", "-ign_eof", "-CAfile", cafile,
                "-verify_return_error", "-verify_hostname", HOST,
                "-servername", HOST, input="EHLO c.test\nQUIT\n")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Verify return code: 0 (ok)" in p.stdout
    assert "250 CHUNKING" in p.stdout and "221 2.0.0 Bye" in p.stdout
    assert "STARTTLS" not in p.stdout.split("250 CHUNKING")[0].split(
        "Verify return code")[-1], "STARTTLS advertised after TLS"
    # The required and implicit listeners, with the same tool.
    p = openssl("s_client", "-connect", "127.0.0.1:%d" % s.sub, "-starttls",
                "smtp", "-crlf", "-ign_eof", input="EHLO c.test\nQUIT\n")
    assert p.returncode == 0 and "221 2.0.0 Bye" in p.stdout, p.stderr
    p = openssl("s_client", "-connect", "127.0.0.1:%d" % s.smtps, "-crlf",
                "-ign_eof", input="EHLO c.test\nQUIT\n")
    assert p.returncode == 0, p.stderr
    assert "220 %s ESMTP Postern" % HOST in p.stdout
    assert "221 2.0.0 Bye" in p.stdout


def test_starttls_injection_is_discarded(tls_server):
    """STARTTLS\\r\\nNOOP\\r\\n in one write: one plaintext reply, and the
    NOOP is never executed, neither before nor after the handshake."""
    s = tls_server
    with RawSMTP(s.port) as c:
        c.ehlo()
        c.send("STARTTLS\r\nNOOP\r\n")
        assert c.reply() == "220 2.0.0 Ready to start TLS"
        assert c.buf == b""
        tls = insecure_ctx().wrap_socket(c.sock, server_hostname=HOST)
        tls.settimeout(3)
        # A NOOP executed after the handshake would answer unasked.
        try:
            early = tls.recv(4096)
        except socket.timeout:
            early = b""
        assert early == b"", f"reply to injected command: {early!r}"
        tls.sendall(b"EHLO c.test\r\n")
        data = b""
        while not data.endswith(b"250 CHUNKING\r\n"):
            chunk = tls.recv(4096)
            assert chunk, data
            data += chunk
        assert data.startswith(b"250-" + HOST.encode())
        tls.sendall(b"QUIT\r\n")
        assert tls.recv(4096).startswith(b"221")
        tls.close()
    s.wait_log(r"Warning: ICID \d+ STARTTLS: discarded 6 octets sent in "
               r"plaintext after STARTTLS")


def test_required_listener_refuses_mail_before_starttls(tls_server):
    s = tls_server
    with RawSMTP(s.sub) as c:
        r = c.ehlo()
        assert "250-STARTTLS" in r
        assert c.cmd("MAIL FROM:<a@example.org>") == \
            "530 5.7.0 Must issue a STARTTLS command first"
        assert c.cmd("RCPT TO:<bob@example.com>").startswith("530 5.7.0")
        assert c.cmd("AUTH PLAIN").startswith("530 5.7.0 Must issue")
        assert c.cmd("NOOP") == "250 2.0.0 Ok"
        assert c.cmd("QUIT").startswith("221")
    # After STARTTLS the same listener takes mail.
    with smtplib.SMTP("127.0.0.1", s.sub, timeout=15) as c:
        c.starttls(context=insecure_ctx())
        c.sendmail("a@example.org", ["bob@example.com"], MSG)
    s.wait_maildir("example.com", "bob")


def test_policy_tls_required_tightens_preferred_listener(server_factory):
    conf, inbound, sub, smtps = tls_config(
        relayed='action = "relay"; tls = "required";')
    s = start(server_factory(config=conf, port=inbound))
    with RawSMTP(s.port) as c:
        assert "250-STARTTLS" in c.ehlo()
        assert c.cmd("MAIL FROM:<a@example.org>").startswith(
            "530 5.7.0 Must issue a STARTTLS command first")


def test_plain_listener_with_policy_preferred_offers_starttls(server_factory):
    t = BASE_CONFIG.replace(
        'relayed  = {{ action = "relay";  max_recipients = 100; }};',
        'relayed  = {{ action = "relay"; tls = "preferred"; }};')
    s = start(server_factory(config=t))
    with RawSMTP(s.port) as c:
        assert "250-STARTTLS" in c.ehlo()


def test_off_listener_does_not_offer_starttls(server):
    with RawSMTP(server.port) as c:
        assert "STARTTLS" not in c.ehlo()
        assert c.cmd("STARTTLS").startswith("502 5.5.1")
    assert not os.path.exists(os.path.join(server.data, "certs", "default.pem"))


# ------------------------------------------------------------ implicit TLS

def test_implicit_tls_smtplib(tls_server):
    s = tls_server
    with smtplib.SMTP_SSL("127.0.0.1", s.smtps, context=insecure_ctx(),
                          timeout=15) as c:
        code, _ = c.ehlo()
        assert code == 250 and not c.has_extn("starttls")
        code, text = c.docmd("STARTTLS")
        assert code == 554 and b"TLS already active" in text
        c.sendmail("a@example.org", ["bob@example.com"], MSG)
    s.wait_maildir("example.com", "bob")
    s.wait_log(r"ICID \d+ TLS success protocol TLSv1\.3")


def test_plaintext_client_on_implicit_port_fails_cleanly(tls_server):
    s = tls_server
    with socket.create_connection(("127.0.0.1", s.smtps), timeout=10) as c:
        c.sendall(b"EHLO plain.test\r\n")
        c.settimeout(10)
        try:
            data = c.recv(4096)
        except ConnectionResetError:
            data = b""
        # No SMTP reply in plaintext; at most a TLS alert record.
        assert not data.startswith(b"2") and not data.startswith(b"5")
    # Worded for this listener: there is no STARTTLS on an implicit port.
    s.wait_log(r"ICID \d+ TLS failed: not a TLS handshake \(plaintext sent "
               r"to an implicit-TLS port\?\)$")
    assert "plaintext after STARTTLS" not in s.log()


def test_plaintext_after_starttls_220_is_named(tls_server):
    """A client that says STARTTLS, gets the 220, then goes on in
    plaintext: the handshake fails and the log names the likely cause."""
    s = tls_server
    with RawSMTP(s.port) as c:
        c.ehlo()
        assert c.cmd("STARTTLS") == "220 2.0.0 Ready to start TLS"
        c.send("EHLO plain.test\r\n")
        assert c.closed(timeout=10)
    s.wait_log(r"ICID \d+ TLS failed: not a TLS handshake \(plaintext after "
               r"STARTTLS\?\)$")
    assert "implicit-TLS port" not in s.log()


def test_handshake_timeout(server_factory):
    conf, inbound, sub, smtps = tls_config(limits="limits = { command_timeout = 2; };")
    s = start(server_factory(config=conf, port=inbound))
    assert wait_port("127.0.0.1", smtps)
    s.wait_log(r"ICID \d+ close")  # the readiness probes are done
    with socket.create_connection(("127.0.0.1", smtps), timeout=10) as c:
        c.settimeout(10)
        t0 = time.monotonic()
        assert c.recv(100) == b""
        assert time.monotonic() - t0 < 9
    s.wait_log(r"ICID \d+ TLS failed: handshake timeout")


# ------------------------------------------------------------ protocol policy

def test_dhe_only_client_fails_with_no_shared_cipher(tls_server):
    s = tls_server
    p = openssl("s_client", "-connect", "127.0.0.1:%d" % s.smtps, "-tls1_2",
                "-cipher", "DHE-RSA-AES256-GCM-SHA384:DHE-RSA-AES128-GCM-SHA256",
                input="")
    assert p.returncode != 0
    s.wait_log(r"ICID \d+ TLS failed: no shared cipher")
    p = openssl("s_client", "-connect", "127.0.0.1:%d" % s.port, "-starttls",
                "smtp", "-tls1_2", "-cipher", "DHE-RSA-AES256-GCM-SHA384",
                input="")
    assert p.returncode != 0
    s.wait_log(r"ICID \d+ TLS failed: no shared cipher", count=2)


def test_tls11_refused_by_default(tls_server):
    s = tls_server
    ctx = insecure_ctx()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_1
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with socket.create_connection(("127.0.0.1", s.smtps), timeout=10) as raw:
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            ctx.wrap_socket(raw, server_hostname=HOST)
    s.wait_log(r"ICID \d+ TLS failed: unsupported protocol")


def test_tls12_client_gets_ecdhe_aesgcm(tls_server):
    s = tls_server
    ctx = insecure_ctx()
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection(("127.0.0.1", s.smtps), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=HOST) as t:
            assert t.version() == "TLSv1.2"
            name = t.cipher()[0]
            assert name.startswith("ECDHE-") and ("GCM" in name or
                                                  "CHACHA20" in name), name
    s.wait_log(r"ICID \d+ TLS success protocol TLSv1\.2 cipher ECDHE-RSA-")


def test_min_protocol_tls13_setting(server_factory):
    conf, inbound, sub, smtps = tls_config(tls_block='tls = { min_protocol = "TLSv1.3"; };')
    s = start(server_factory(config=conf, port=inbound))
    assert wait_port("127.0.0.1", smtps)
    ctx = insecure_ctx()
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection(("127.0.0.1", smtps), timeout=10) as raw:
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            ctx.wrap_socket(raw, server_hostname=HOST)
    s.wait_log(r"TLS failed: unsupported protocol")


def test_session_resumption_across_connections(tls_server):
    s = tls_server
    ctx = insecure_ctx()
    reused = 0
    sess = None
    for _ in range(6):
        with socket.create_connection(("127.0.0.1", s.smtps), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname=HOST, session=sess) as t:
                t.settimeout(10)
                assert t.recv(4096).startswith(b"220 ")  # ticket arrives too
                t.sendall(b"QUIT\r\n")
                t.recv(4096)
                if sess is not None and t.session_reused:
                    reused += 1
                sess = t.session
    # Several worker processes: resumption works whichever one answers.
    assert reused == 5, reused


# ------------------------------------------------------------ SNI

def test_sni_picks_certificate_by_name(server_factory, tmp_path):
    other, other_key = make_cert(str(tmp_path), "other", "other.test")
    certificate = '( "default", { cert = "%s"; key = "%s"; } )' % (other,
                                                                  other_key)
    conf, inbound, sub, smtps = tls_config(certificate=certificate)
    s = start(server_factory(config=conf, port=inbound))
    assert wait_port("127.0.0.1", smtps)
    default_der = der_of(os.path.join(s.data, "certs", "default.pem"))
    assert peer_der(smtps, "other.test") == der_of(other)
    assert peer_der(smtps, HOST) == default_der
    assert peer_der(smtps, None) == default_der
    assert peer_der(smtps, "unknown.test") == default_der


# ------------------------------------------------------------ reload

def test_reload_certificate_keeps_sessions_and_refuses_bad_cert(server_factory,
                                                               tmp_path):
    d = str(tmp_path)
    a_cert, a_key = make_cert(d, "a", HOST)
    certificate = '{ cert = "%s/live.pem"; key = "%s/live.key"; }' % (d, d)
    os.link(a_cert, os.path.join(d, "live.pem"))
    os.link(a_key, os.path.join(d, "live.key"))
    conf, inbound, sub, smtps = tls_config(certificate=certificate)
    s = start(server_factory(config=conf, port=inbound))
    assert wait_port("127.0.0.1", smtps)
    assert peer_der(smtps, HOST) == der_of(a_cert)
    # An established TLS session, mid-transaction.
    old = smtplib.SMTP_SSL("127.0.0.1", smtps, context=insecure_ctx(),
                           timeout=15)
    old.ehlo()
    assert old.mail("a@example.org")[0] == 250
    # New certificate in place, SIGHUP.
    b_cert, b_key = make_cert(d, "b", HOST)
    os.replace(b_cert, os.path.join(d, "live.pem"))
    os.replace(b_key, os.path.join(d, "live.key"))
    os.kill(s.proc.pid, signal.SIGHUP)
    s.wait_log(r"configuration reloaded")
    b_der = der_of(os.path.join(d, "live.pem"))
    wait_for(lambda: peer_der(smtps, HOST) == b_der, 10, "new certificate")
    # The old session finishes its message.
    assert old.rcpt("bob@example.com")[0] == 250
    assert old.data(MSG)[0] == 250
    old.quit()
    s.wait_maildir("example.com", "bob")
    # A broken certificate: the listener keeps the last good one.
    with open(os.path.join(d, "live.pem"), "w") as fh:
        fh.write("-----BEGIN CERTIFICATE-----\nnot base64\n"
                 "-----END CERTIFICATE-----\n")
    os.kill(s.proc.pid, signal.SIGHUP)
    s.wait_log(r"Critical: reload: listener \w+: .*keeps its previous "
               r"certificate")
    time.sleep(0.5)
    for _ in range(3):
        assert peer_der(smtps, HOST) == b_der


# ------------------------------------------------------------ broken settings

def test_config_check_and_serve_refuse_mismatched_key(server_factory, tmp_path):
    d = str(tmp_path)
    a_cert, _ = make_cert(d, "a", HOST)
    _, b_key = make_cert(d, "b", HOST)
    certificate = '{ cert = "%s"; key = "%s"; }' % (a_cert, b_key)
    conf, inbound, sub, smtps = tls_config(certificate=certificate)
    s = server_factory(config=conf, port=inbound)
    p = s.cli("config", "check")
    assert p.returncode == 1
    assert re.search(r"postern\.conf:\d+: listener inbound: .*(match|mismatch)",
                     p.stderr), p.stderr
    p = subprocess.run([BIN, "serve", "-c", s.conf, "--foreground"],
                       cwd=s.dir, capture_output=True, text=True, timeout=30)
    assert p.returncode == 1
    assert "postern: listener inbound: " in p.stderr, p.stderr


def test_config_check_refuses_bad_cipher_list(server_factory):
    conf, inbound, sub, smtps = tls_config(tls_block='tls = { ciphers = "NOSUCHCIPHER"; };')
    s = server_factory(config=conf, port=inbound)
    p = s.cli("config", "check")
    assert p.returncode == 1
    assert "tls.ciphers 'NOSUCHCIPHER' selects no cipher" in p.stderr, p.stderr


def test_config_check_notes_demo_certificate(server_factory):
    conf, inbound, sub, smtps = tls_config()
    s = server_factory(config=conf, port=inbound)
    p = s.cli("config", "check")
    assert p.returncode == 0, p.stderr
    assert "will make a self-signed demo certificate for " + HOST in p.stdout


def test_server_cipher_preference(tls_server):
    """TLS 1.2 client listing CHACHA20 first still gets the server's first
    choice among what it offers (AES-GCM comes first in tls.ciphers)."""
    s = tls_server
    ctx = insecure_ctx()
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256")
    with socket.create_connection(("127.0.0.1", s.smtps), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=HOST) as t:
            assert t.cipher()[0] == "ECDHE-RSA-AES128-GCM-SHA256", t.cipher()


def test_large_message_and_pipelining_over_tls(tls_server):
    """1 MiB body and a pipelined transaction through the TLS layer."""
    s = tls_server
    body = ("x" * 998 + "\r\n") * 1050
    msg = "Subject: big\r\n\r\n" + body
    with socket.create_connection(("127.0.0.1", s.smtps), timeout=15) as raw:
        t = insecure_ctx().wrap_socket(raw, server_hostname=HOST)
        f = t.makefile("rb")
        assert f.readline().startswith(b"220 ")
        t.sendall(b"EHLO c.test\r\nMAIL FROM:<a@example.org>\r\n"
                  b"RCPT TO:<bob@example.com>\r\nDATA\r\n")
        lines = []
        while not lines or not lines[-1].startswith(b"354"):
            lines.append(f.readline())
        t.sendall(msg.encode() + b".\r\nQUIT\r\n")
        assert f.readline().startswith(b"250 2.0.0 Ok: queued as ")
        assert f.readline().startswith(b"221 ")
        t.close()
    files = s.wait_maildir("example.com", "bob")
    data = open(files[0], "rb").read()
    assert data.count(b"x" * 998) == 1050


def test_config_check_sni_certificate_missing_from_store(server_factory):
    conf, inbound, sub, smtps = tls_config(certificate='( "default", "other" )')
    s = server_factory(config=conf, port=inbound)
    p = s.cli("config", "check")
    assert p.returncode == 1
    assert re.search(r"listener inbound: no certificate 'other'", p.stderr), \
        p.stderr


def test_sigterm_says_421_through_tls(tls_server):
    """Stopping: an established TLS session gets its 421 encrypted."""
    s = tls_server
    with socket.create_connection(("127.0.0.1", s.smtps), timeout=15) as raw:
        t = insecure_ctx().wrap_socket(raw, server_hostname=HOST)
        f = t.makefile("rb")
        assert f.readline().startswith(b"220 ")
        t.sendall(b"EHLO c.test\r\n")
        while not f.readline().startswith(b"250 "):
            pass
        os.killpg(s.proc.pid, signal.SIGTERM)
        assert f.readline().startswith(b"421 4.3.2 " + HOST.encode())
        t.close()
    s.proc.wait(timeout=15)
    s.proc = None
    s.errf.close()
