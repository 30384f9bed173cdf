"""`postern send`, the injection client (postern(8), docs/send.md), through the
real binary against real peers on loopback:

* Postern itself: its submission listener (STARTTLS + AUTH required) with
  a credential from `postern user add`: plain refused (530 STARTTLS
  first), the self-signed certificate refused with a fix line whose
  commands (`postern cert fetch`, `postern trust add`) then make it work,
  --trust, host name mismatch, STARTTLS + AUTH accepted with the three
  output lines, 535, 530 without credentials, 554 for an unverified From,
  550 relaying denied, implicit TLS on the smtps listener;
* aiosmtpd (Debian python3-aiosmtpd): a message file with LF line ends,
  dot-stuffing, Bcc only in the envelope, --env-from/--env-to;
* the test SMTPPeer (peers.py) for TLS corner cases: a certificate from an
  untrusted CA refused then accepted with --trust, an expired
  certificate, no STARTTLS offered, 454 to STARTTLS, 552;
* smtp-sink (Postfix): bulk mode, every copy counted, each with its own
  Message-ID;
* the message builder's output parsed back with Python's email package.
Every refusal prints the server's reply verbatim and one `fix:` line.
"""
import email
import email.policy
import os
import re
import subprocess
import threading

import pytest
from aiosmtpd.controller import Controller

from conftest import (BASE_CONFIG, BIN, SANITIZER_RE, CRASH_RE, Server,
                      _esc, free_port, wait_for)
from peers import SMTPPeer, pki, reserve_port, sink_factory  # noqa: F401
from test_tls import start, three_ports

PASSWORD_RE = re.compile(r"password: ([A-Za-z0-9]{32})")


def send(*args, env=None, input=None, cwd=None, timeout=60):
    """postern send with a clean SMTP_* environment plus `env`."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("SMTP_")}
    e.update(env or {})
    return subprocess.run([BIN, "send", *args], capture_output=True,
                          text=True, env=e, input=input, cwd=cwd,
                          timeout=timeout)


def fix_line(p):
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("fix: ")]
    assert len(lines) == 1, p.stderr
    return lines[0]


# ---------------------------------------------------------------------------
# Postern as the server (one daemon for the module)

def postern_config():
    inbound, sub, smtps = three_ports()
    t = BASE_CONFIG.replace(
        '{{ name = "inbound"; address = "127.0.0.1"; port = {port}; }}',
        '{{ name = "inbound"; address = "127.0.0.1"; port = {port}; '
        'tls = "preferred"; }},\n'
        '  {{ name = "submission"; address = "127.0.0.1"; port = %d; '
        'tls = "required"; auth = "required"; }},\n'
        '  {{ name = "smtps"; address = "127.0.0.1"; port = %d; '
        'tls = "implicit"; auth = "required"; }}' % (sub, smtps))
    # loopback may not relay without AUTH
    t = t.replace('networks = [ "127.0.0.1/32" ]; policy = "relayed"',
                  'networks = [ "127.0.0.99/32" ]; policy = "relayed"')
    route = '{{ domain = "localhost"; maildir = "data/mail/%d/%u"; }}'
    t = t.replace(route, route + ',\n  {{ domain = "remote.example"; '
                  'hosts = [ "[127.0.0.1]:%d" ]; }}' % free_port())
    assert "127.0.0.99" in t and "remote.example" in t
    t += "delivery = {{ retry_min = 3600; retry_max = 7200; }};\n"
    return t, inbound, sub, smtps


@pytest.fixture(scope="module")
def pn(tmp_path_factory):
    d = tmp_path_factory.mktemp("send-postern")
    conf, inbound, sub, smtps = postern_config()
    s = Server(str(d), config=conf, port=inbound)
    s.sub, s.smtps = sub, smtps
    start(s)
    p = s.cli("user", "add", "alice", "--identity", "example.org")
    assert p.returncode == 0, p.stderr
    s.pw = PASSWORD_RE.search(p.stdout).group(1)
    s.cert = os.path.join(s.data, "certs", "default.pem")
    wait_for(lambda: os.path.exists(s.cert), 15, "demo certificate")
    yield s
    s.stop()
    text = s.stderr() + s.log()
    assert not SANITIZER_RE.search(text) and not CRASH_RE.search(text), \
        text[-4000:]


def pn_env(s, port=None, user=True, password=None):
    env = {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port or s.sub)}
    if user:
        env["SMTP_USER"] = "alice"
        env["SMTP_PASSWORD"] = password or s.pw
    return env


MSG = ("From: Alice <alice@example.org>\nTo: Bob <bob@example.com>\n"
       "Subject: hello from send\n\nhello\n")


@pytest.fixture
def msgfile(tmp_path):
    p = tmp_path / "report.eml"
    p.write_text(MSG)
    return str(p)


def test_help_lists_send_and_every_option():
    p = subprocess.run([BIN, "help"], capture_output=True, text=True)
    assert re.search(r"^  send ", p.stdout, re.M), p.stdout
    p = send("--help")
    assert p.returncode == 0
    for opt in ("--host", "--port", "--user", "--password-env",
                "--password-file", "--starttls", "--tls", "--plain",
                "--trust", "--servername", "--insecure", "-c FILE",
                "--from", "--to", "--cc", "--bcc", "--subject", "--body",
                "--body-file", "--html", "--attach", "--env-from",
                "--env-to", "--sign", "--encrypt", "--keys", "--cipher",
                "--dry-run", "--output", "--quiet", "--count",
                "--concurrency"):
        assert opt in p.stdout, opt
    p2 = subprocess.run([BIN, "help", "send"], capture_output=True,
                        text=True)
    assert p2.stdout == p.stdout


def test_usage_errors(msgfile):
    p = send(msgfile)
    assert p.returncode == 2
    assert p.stderr == "Environment var SMTP_HOST not set - stopping\n"
    for args in (["--no-such-option", msgfile], [],
                 [msgfile, "--to", "x@y.example"], ["--tls", "--plain",
                                                    msgfile],
                 ["--count", "0", msgfile], ["--sign", msgfile],
                 ["--password", "secret", msgfile]):
        p = send(*args, env={"SMTP_HOST": "127.0.0.1"})
        assert p.returncode == 2, (args, p.stderr)
        assert p.stderr.startswith("postern: send: "), p.stderr
        assert "postern send --help" in p.stderr
    # a user without any password source
    p = send(msgfile, env={"SMTP_HOST": "127.0.0.1", "SMTP_USER": "u"})
    assert p.returncode == 2 and "SMTP_PASSWORD" in p.stderr


def test_plain_refused_by_submission(pn, msgfile):
    p = send(msgfile, "--plain", env=pn_env(pn, user=False))
    assert p.returncode == 1
    assert "530 5.7.0 Must issue a STARTTLS command first" in \
        p.stderr.splitlines()
    assert "drop --plain" in fix_line(p)


def test_self_signed_refused_then_the_fix_works(pn, msgfile, tmp_path):
    p = send(msgfile, "--servername", "mx.test.example",
             env=pn_env(pn), cwd=str(tmp_path))
    assert p.returncode == 1, p.stdout
    assert "not trusted" in p.stderr
    fix = fix_line(p)
    fetch = f"postern cert fetch 127.0.0.1:{pn.sub} --starttls --out certs"
    trust = ("postern trust add certs/mx.test.example.pem "
             "--name mx.test.example")
    assert fetch in fix and trust in fix, fix
    assert "AUTH" not in "".join(pn.log().splitlines()[-3:])
    # run the fix as written, against this server's data dir
    cmd = fetch.split()[1:] + ["-c", pn.conf]
    subprocess.run([BIN, *cmd], cwd=str(tmp_path), check=True,
                   capture_output=True)
    cmd = trust.split()[1:] + ["-c", pn.conf]
    subprocess.run([BIN, *cmd], cwd=str(tmp_path), check=True,
                   capture_output=True)
    try:
        p = send(msgfile, "--servername", "mx.test.example", "-c", pn.conf,
                 env=pn_env(pn), cwd=str(tmp_path))
        assert p.returncode == 0, p.stderr
    finally:
        pn.cli("trust", "remove", "mx.test.example", check=True)


def test_starttls_auth_accepted_three_lines(pn, msgfile):
    p = send(msgfile, "--trust", pn.cert, "--servername", "mx.test.example",
             env=pn_env(pn))
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == ("Opened SMTP connection (STARTTLS) to 127.0.0.1, "
                        f"port {pn.sub}, user=\"alice\", "
                        "password=\"****\""), p.stdout
    assert lines[1] == (f"Sending {msgfile} From: Alice <alice@example.org> "
                        "To: Bob <bob@example.com>")
    assert re.fullmatch(r"OK - in \d+\.\d{3} seconds", lines[2])
    assert len(lines) == 3 and p.stderr == ""
    assert pn.pw not in p.stdout + p.stderr
    pn.wait_log(r"AUTH success user alice mechanism PLAIN")


def test_host_name_mismatch(pn, msgfile):
    p = send(msgfile, "--trust", pn.cert, env=pn_env(pn))
    assert p.returncode == 1
    assert "--servername NAME" in fix_line(p)
    assert "127.0.0.1" in fix_line(p)


def test_implicit_tls_on_smtps(pn, msgfile):
    p = send(msgfile, "--tls", "--trust", pn.cert, "--servername",
             "mx.test.example", env=pn_env(pn, port=pn.smtps))
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("Opened SMTP connection (TLS) to 127.0.0.1")


def test_refusals_and_fixes(pn, msgfile, tmp_path):
    tls = ["--trust", pn.cert, "--servername", "mx.test.example"]
    # 535
    p = send(msgfile, *tls, env=pn_env(pn, password="x" * 32))
    assert p.returncode == 1
    assert "535 5.7.8 Authentication credentials invalid" in p.stderr
    assert "`postern user passwd alice`" in fix_line(p)
    assert "x" * 32 not in p.stdout + p.stderr
    # 530 without credentials
    p = send(msgfile, *tls, env=pn_env(pn, user=False))
    assert p.returncode == 1
    assert "530 5.7.0 Authentication required" in p.stderr.splitlines()
    assert "set SMTP_USER and SMTP_PASSWORD" in fix_line(p)
    # 554 for a From that is not a verified identity
    bad = tmp_path / "bad.eml"
    bad.write_text(MSG.replace("alice@example.org", "boss@other.example"))
    p = send(str(bad), *tls, env=pn_env(pn))
    assert p.returncode == 1
    assert ("554 5.7.1 Message rejected: Email address is not verified. "
            "The following identities failed the check: "
            "boss@other.example") in p.stderr.splitlines()
    assert ("`postern user modify alice --add-identity boss@other.example`"
            in fix_line(p))
    # 550 relaying denied on the inbound listener without AUTH
    rem = tmp_path / "remote.eml"
    rem.write_text(MSG.replace("bob@example.com", "bob@remote.example"))
    p = send(str(rem), "--insecure", env=pn_env(pn, port=pn.port,
                                                user=False))
    assert p.returncode == 1
    assert "550 5.7.1 Relaying denied" in p.stderr.splitlines()
    assert "relay" in fix_line(p) and "SMTP_USER" in fix_line(p)
    assert "not verified" in p.stderr      # --insecure says so


def test_connection_refused_and_name_not_found(msgfile):
    port = reserve_port()
    p = send(msgfile, env={"SMTP_HOST": "127.0.0.1", "SMTP_PORT":
                           str(port)})
    assert p.returncode == 1
    assert f"nothing listens on 127.0.0.1 port {port}" in fix_line(p)
    p = send(msgfile, "--host", "no-such-host.invalid")
    assert p.returncode == 1
    assert "does not resolve" in fix_line(p)


# ---------------------------------------------------------------------------
# aiosmtpd

class Recorder:
    def __init__(self):
        self.messages = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append((envelope.mail_from,
                                  list(envelope.rcpt_tos),
                                  envelope.original_content))
        return "250 2.0.0 Ok: queued"


@pytest.fixture
def aio():
    rec = Recorder()
    ctl = Controller(rec, hostname="127.0.0.1", port=reserve_port())
    ctl.start()
    rec.port = ctl.port
    yield rec
    ctl.stop()


def test_file_lf_dots_bcc_to_aiosmtpd(aio, tmp_path):
    f = tmp_path / "m.eml"
    f.write_bytes(b"From: a@example.org\nTo: b@example.net\n"
                  b"Bcc: hidden@example.net\nSubject: dots\n\n"
                  b"line\n.leading dot\n.\nend\n")
    p = send(str(f), env={"SMTP_HOST": "127.0.0.1",
                          "SMTP_PORT": str(aio.port)})
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[0] == (
        f"Opened SMTP connection (plain) to 127.0.0.1, port {aio.port}")
    wait_for(lambda: aio.messages, 10, "aiosmtpd message")
    frm, rcpts, data = aio.messages[0]
    assert frm == "a@example.org"
    assert rcpts == ["b@example.net", "hidden@example.net"]
    assert b"Bcc" not in data and b"hidden" not in data
    assert b"\r\n.leading dot\r\n.\r\nend\r\n" in data
    assert b"\n" not in data.replace(b"\r\n", b"")
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert msg["Date"] and msg["Message-ID"].endswith("@example.org>")
    # envelope overrides
    p = send(str(f), "--env-from", "bounce@example.org", "--env-to",
             "x@example.net", env={"SMTP_HOST": "127.0.0.1",
                                   "SMTP_PORT": str(aio.port)})
    assert p.returncode == 0
    wait_for(lambda: len(aio.messages) == 2, 10, "second message")
    assert aio.messages[1][:2] == ("bounce@example.org", ["x@example.net"])


# ---------------------------------------------------------------------------
# the message builder, parsed back

def test_builder_parsed_back(tmp_path):
    html = tmp_path / "b.html"
    html.write_text("<p>Grüße</p>\n")
    att = tmp_path / "Bericht März.pdf"
    att.write_bytes(bytes(range(256)) * 4)
    txt = tmp_path / "notes.txt"
    txt.write_text("plain notes\n")
    out = tmp_path / "out.eml"
    p = send("--from", "Zoë Ärger <zoe@example.org>", "--to",
             "bob@example.net", "--to", "Carl, Jr. <carl@example.net>",
             "--cc", "cc@example.net", "--bcc", "secret@example.net",
             "--subject", "Grüße – a long subject line that needs more "
             "than one encoded word to carry it whole",
             "--body", "Hallo\nzweite Zeile: ä\n", "--html", str(html),
             "--attach", str(att), "--attach", str(txt),
             "--dry-run", "--output", str(out))
    assert p.returncode == 0, p.stderr
    raw = out.read_bytes()
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert max(len(ln) for ln in raw.split(b"\r\n")) <= 78
    assert b"secret" not in raw and b"Bcc" not in raw
    raw.decode("ascii")                    # 7-bit clean
    m = email.message_from_bytes(raw, policy=email.policy.default)
    assert m["Subject"] == ("Grüße – a long subject line that needs more "
                            "than one encoded word to carry it whole")
    assert m["From"].addresses[0].display_name == "Zoë Ärger"
    assert [a.addr_spec for a in m["To"].addresses] == [
        "bob@example.net", "carl@example.net"]
    assert m["To"].addresses[1].display_name == "Carl, Jr."
    assert m["Cc"].addresses[0].addr_spec == "cc@example.net"
    assert m["Date"] and m["Message-ID"].endswith("@example.org>")
    assert m.get_content_type() == "multipart/mixed"
    body, a1, a2 = m.iter_parts()
    assert body.get_content_type() == "multipart/alternative"
    plain, h = body.iter_parts()
    assert plain.get_content().replace("\r\n", "\n") == \
        "Hallo\nzweite Zeile: ä\n"
    assert plain["Content-Transfer-Encoding"] == "quoted-printable"
    assert h.get_content_type() == "text/html"
    assert h.get_content().replace("\r\n", "\n") == "<p>Grüße</p>\n"
    assert a1.get_content_type() == "application/pdf"
    assert a1.get_filename() == "Bericht März.pdf"
    assert a1["Content-Transfer-Encoding"] == "base64"
    assert a1.get_content() == bytes(range(256)) * 4
    assert a2.get_content_type() == "text/plain"
    assert a2.get_filename() == "notes.txt"
    assert a2.get_content().replace("\r\n", "\n") == "plain notes\n"
    # text only: one part, 7bit
    p = send("--from", "a@example.org", "--to", "b@example.net",
             "--body", "just text", "--dry-run")
    m = email.message_from_string(p.stdout.replace("\r\n", "\n"),
                                  policy=email.policy.default)
    assert m.get_content_type() == "text/plain"
    assert m["Content-Transfer-Encoding"] == "7bit"
    assert m.get_content() == "just text\n"


# ---------------------------------------------------------------------------
# TLS corner cases with the test peer

def peer_env(peer):
    return {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(peer.port)}


def test_untrusted_ca_then_trust(pki, msgfile):
    with SMTPPeer(tls="starttls", cert=pki.untrusted) as peer:
        p = send(msgfile, "--servername", "mx.partner.example",
                 env=peer_env(peer))
        assert p.returncode == 1
        fix = fix_line(p)
        assert 'issued by "CN=Untrusted Test CA"' in fix, fix
        assert f"postern cert fetch 127.0.0.1:{peer.port} --starttls" in fix
        assert "postern trust add" in fix
        assert peer.messages == []
        p = send(msgfile, "--servername", "mx.partner.example", "--trust",
                 pki.other_ca, env=peer_env(peer))
        assert p.returncode == 0, p.stderr
        assert peer.wait_messages(1)[0].sni == "mx.partner.example"


def test_expired_certificate(pki, msgfile):
    with SMTPPeer(tls="starttls", cert=pki.expired) as peer:
        p = send(msgfile, "--servername", "mx.partner.example", "--trust",
                 pki.ca, env=peer_env(peer))
        assert p.returncode == 1
        assert "has expired (expired " in fix_line(p)


def test_starttls_not_offered_and_454(pki, msgfile):
    with SMTPPeer() as peer:
        p = send(msgfile, "--starttls", env=peer_env(peer))
        assert p.returncode == 1
        assert "does not offer STARTTLS" in fix_line(p)
        # credentials are never sent in clear: same refusal by default
        p = send(msgfile, env={**peer_env(peer), "SMTP_USER": "u",
                               "SMTP_PASSWORD": "secret-pw"})
        assert p.returncode == 1
        assert "does not offer STARTTLS" in fix_line(p)
        assert b"secret-pw" not in bytes(peer.raw_received())
    with SMTPPeer(tls="starttls", cert=pki.partner, replies={
            "STARTTLS": "454 4.7.0 TLS not available"}) as peer:
        p = send(msgfile, env=peer_env(peer))
        assert p.returncode == 1
        assert "454 4.7.0 TLS not available" in p.stderr.splitlines()
        assert "cannot start TLS now (454)" in fix_line(p)


def test_552_size(msgfile):
    with SMTPPeer(replies={"EOD": "552 5.3.4 Message size exceeds fixed "
                           "maximum message size"}) as peer:
        p = send(msgfile, env=peer_env(peer))
        assert p.returncode == 1
        assert p.stderr.splitlines()[0] == (
            "552 5.3.4 Message size exceeds fixed maximum message size")
        assert "bigger than" in fix_line(p)


# ---------------------------------------------------------------------------
# bulk mode at smtp-sink

def test_bulk_counted_at_the_sink(sink_factory, msgfile):
    sink = sink_factory()
    p = send(msgfile, "--count", "300", "--concurrency", "4",
             env={"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(sink.port)})
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert re.search(r"^Sent 300 of 300 messages in [\d.]+ seconds over 4 "
                     r"connections: [\d.]+ messages/second$", out, re.M), out
    assert "Failures by reply code: none" in out
    assert re.search(r"^Latency p50 [\d.]+ ms, p99 [\d.]+ ms$", out, re.M)
    msgs = sink.wait_messages(300)
    ids = set()
    for m in msgs:
        mid = re.search(rb"^Message-ID: (<[^>]+>)$", m.body, re.M | re.I)
        ids.add(mid.group(1))
    assert len(ids) == 300
    # many messages per connection: 4 connections, RSET between
    assert "\r" not in out


def test_bulk_failures_by_code():
    with SMTPPeer(rcpt_replies={"bob@example.com": "450 4.2.0 try later"}
                  ) as peer:
        p = send("--from", "a@example.org", "--to", "bob@example.com",
                 "--body", "x", "--count", "5", "--concurrency", "2",
                 env=peer_env(peer))
        assert p.returncode == 1
        assert "Failures by reply code: 450 5" in p.stdout
        assert "450 4.2.0 try later" in p.stderr
        assert fix_line(p).startswith("fix: a temporary refusal")


def test_bulk_reconnects_after_421():
    seen = {"n": 0}

    def eod(conn, data):
        seen["n"] += 1
        return "421 4.3.2 closing, try again" if seen["n"] % 5 == 0 \
            else None

    with SMTPPeer(replies={"EOD": eod}) as peer:
        p = send("--from", "a@example.org", "--to", "bob@example.com",
                 "--body", "x", "--count", "20", "--concurrency", "2",
                 env=peer_env(peer))
        assert p.returncode == 1
        m = re.search(r"^Sent (\d+) of 20 messages .* over (\d+) "
                      r"connections", p.stdout, re.M)
        assert m, p.stdout
        sent, conns = int(m.group(1)), int(m.group(2))
        assert sent == 16 and conns > 2, p.stdout
        assert "Failures by reply code: 421 4" in p.stdout
        assert len(peer.messages) == 16
        assert "RSET" in [v for _, v, _ in peer.commands]
        assert "421 4.3.2 closing, try again" in p.stderr


def test_password_file_and_env_options(pn, msgfile, tmp_path):
    tls = ["--trust", pn.cert, "--servername", "mx.test.example"]
    pwf = tmp_path / "pw"
    pwf.write_text(pn.pw + "\n")
    env = pn_env(pn, user=False)
    p = send(msgfile, *tls, "--user", "alice", "--password-file", str(pwf),
             env=env)
    assert p.returncode == 0, p.stderr
    assert 'user="alice", password="****"' in p.stdout
    p = send(msgfile, *tls, "--user", "alice", "--password-env", "MY_PW",
             env={**env, "MY_PW": pn.pw})
    assert p.returncode == 0, p.stderr
    assert pn.pw not in p.stdout + p.stderr
    p = send(msgfile, *tls, "--user", "alice", "--password-env", "NOT_SET",
             env=env)
    assert p.returncode == 2 and "NOT_SET" in p.stderr
