"""Authenticated submission (RFC 4954 AUTH PLAIN / LOGIN) through the real
binary: python smtplib login() on 587-style STARTTLS and 465-style implicit
TLS listeners, credentials made with `postern user`, verified identities,
brute-force defence, sending quotas, and a daemon that sees `user`
changes without a restart.

The client (127.0.0.1) is in a sender group whose policy is "accept": it
may not relay unless it authenticates.
"""
import base64
import re
import smtplib
import socket
import ssl
import time

import pytest

from conftest import BASE_CONFIG, RawSMTP, _esc, free_port, queue_count, wait_for
from test_tls import insecure_ctx, start, three_ports

MSG = ("From: Alice <alice@example.org>\r\nTo: bob@remote.example\r\n"
       "Subject: auth\r\n\r\nhello\r\n")


def auth_config(limits="", accepted_extra="", plain_listener=False):
    """Config with inbound (tls preferred, auth optional), submission
    (tls required, auth required), smtps (implicit, auth required); the
    loopback client falls into the non-relaying "accepted" policy."""
    inbound, sub, smtps = three_ports()
    t = BASE_CONFIG.replace(
        '{{ name = "inbound"; address = "127.0.0.1"; port = {port}; }}',
        '{{ name = "inbound"; address = "127.0.0.1"; port = {port}; '
        'tls = "preferred"; auth = "optional"; }},\n'
        '  {{ name = "submission"; address = "127.0.0.1"; port = %d; '
        'tls = "required"; auth = "required"; }},\n'
        '  {{ name = "smtps"; address = "127.0.0.1"; port = %d; '
        'tls = "implicit"; auth = "required"; }}' % (sub, smtps))
    t = t.replace('networks = [ "127.0.0.1/32" ]; policy = "relayed"',
                  'networks = [ "127.0.0.99/32" ]; policy = "relayed"')
    t = t.replace('accepted = {{ action = "accept"; }};',
                  'accepted = {{ action = "accept"; ' + _esc(accepted_extra) +
                  ' }};')
    # relayed mail for remote.example waits in the queue: its next hop is
    # a loopback port nobody listens on, and the retry is an hour away
    route = '{{ domain = "localhost"; maildir = "data/mail/%d/%u"; }}'
    t = t.replace(route, route + ',\n  {{ domain = "remote.example"; '
                  'hosts = [ "[127.0.0.1]:%d" ]; }}' % free_port())
    assert "remote.example" in t and "127.0.0.99" in t and \
        "submission" in t, "BASE_CONFIG changed"
    t += "delivery = {{ retry_min = 3600; retry_max = 7200; }};\n"
    t += _esc(limits) + "\n"
    return t, inbound, sub, smtps


def add_user(s, name, *args):
    p = s.cli("user", "add", name, *args)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == f"username: {name}", p.stdout
    m = re.fullmatch(r"password: ([A-Za-z0-9]{32})", lines[1])
    assert m, p.stdout
    return m.group(1)


@pytest.fixture
def auth_server(server_factory):
    conf, inbound, sub, smtps = auth_config(
        limits="limits = { auth_failures = 3; auth_failure_delay = 1; };")
    s = server_factory(config=conf, port=inbound)
    s.sub, s.smtps = sub, smtps
    start(s)
    s.pw = add_user(s, "alice", "--identity", "example.org",
                    "--identity", "boss@corp.example")
    return s


def submission(s, user="alice", password=None, mech=None):
    """smtplib over STARTTLS on the submission listener, logged in."""
    c = smtplib.SMTP("127.0.0.1", s.sub, local_hostname="client.test",
                     timeout=20)
    c.starttls(context=insecure_ctx())
    c.ehlo()
    if password is not None:
        login(c, user, password, mech)
    return c


def login(c, user, password, mech=None):
    if mech is None:
        return c.login(user, password)
    c.user, c.password = user, password
    fn = {"PLAIN": c.auth_plain, "LOGIN": c.auth_login}[mech]
    return c.auth(mech, fn, initial_response_ok=(mech == "PLAIN"))


def b64(s):
    return base64.b64encode(s.encode()).decode()


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_login_and_relay_on_submission_starttls(auth_server, mech):
    s = auth_server
    with submission(s) as c:
        assert "PLAIN" in c.esmtp_features["auth"]
        assert "LOGIN" in c.esmtp_features["auth"]
        code, text = login(c, "alice", s.pw, mech)
        assert (code, text) == (235, b"2.7.0 Authentication successful")
        # an authenticated session may relay
        c.sendmail("alice@example.org", ["bob@remote.example"], MSG)
        c.sendmail("alice@example.org", ["bob@example.com"], MSG)
    s.wait_log(rf"ICID \d+ AUTH success user alice mechanism {mech}$")
    s.wait_maildir("example.com", "bob")
    wait_for(lambda: queue_count(s) >= 1, what="relayed message queued")
    # the spool records who submitted the waiting message
    mid = s.cli("queue", "list").stdout.split()[0]
    shown = s.cli("queue", "show", mid).stdout
    assert re.search(r"^AUTH:\s+alice$", shown, re.M), shown
    log = s.log()
    assert "with ESMTPSA" in open(s.maildir_files("example.com", "bob")[0]).read()
    assert s.pw not in log and s.pw not in s.stderr()


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_login_on_implicit_tls(auth_server, mech):
    s = auth_server
    with smtplib.SMTP_SSL("127.0.0.1", s.smtps, local_hostname="client.test",
                          timeout=20, context=insecure_ctx()) as c:
        c.ehlo()
        assert login(c, "alice", s.pw, mech)[0] == 235
        c.sendmail("boss@corp.example", ["bob@example.com"],
                   MSG.replace("alice@example.org", "boss@corp.example"))
    s.wait_maildir("example.com", "bob")
    s.wait_log(rf"AUTH success user alice mechanism {mech}$")


def test_no_auth_before_tls_on_submission(auth_server):
    s = auth_server
    with RawSMTP(s.sub) as r:
        ehlo = r.ehlo()
        assert "AUTH" not in ehlo and "STARTTLS" in ehlo
        r.cmd("AUTH PLAIN " + b64("\0alice\0" + s.pw),
              expect="530 5.7.0 Must issue a STARTTLS command first")
    with submission(s) as c:
        code, text = c.mail("alice@example.org")
        assert (code, text) == (530, b"5.7.0 Authentication required")


def test_plaintext_auth_refused_unless_policy_allows(server_factory):
    conf, inbound, sub, smtps = auth_config()
    s = server_factory(config=conf, port=inbound)
    start(s)
    pw = add_user(s, "alice", "--identity", "example.org")
    with RawSMTP(s.port) as r:
        assert "AUTH" not in r.ehlo()
        r.cmd("AUTH PLAIN " + b64("\0alice\0" + pw),
              expect="538 5.7.11 Encryption required for requested "
                     "authentication mechanism")
        # and unauthenticated, no relaying (accept policy)
        r.cmd("MAIL FROM:<alice@example.org>", expect="250")
        r.cmd("RCPT TO:<bob@remote.example>", expect="550 5.7.1 Relaying denied")
    assert pw not in s.log()

    conf, inbound, sub, smtps = auth_config(
        accepted_extra="allow_plaintext_auth = true;")
    s2 = server_factory(config=conf, port=inbound)
    start(s2)
    pw2 = add_user(s2, "alice", "--identity", "example.org")
    with smtplib.SMTP("127.0.0.1", s2.port, local_hostname="client.test",
                      timeout=20) as c:
        c.ehlo()
        assert "PLAIN LOGIN" in c.esmtp_features["auth"]
        assert c.login("alice", pw2)[0] == 235
        # the session may relay now
        c.mail("alice@example.org")
        assert c.rcpt("bob@remote.example")[0] == 250


def test_bad_credentials_and_log_hygiene(server_factory):
    conf, inbound, sub, smtps = auth_config()
    s = server_factory(config=conf, port=inbound, debug=True)
    s.sub = sub
    start(s)
    pw = add_user(s, "alice", "--identity", "example.org")
    wrong = "Wr0ngPassw0rdWr0ngPassw0rdWr0ngP"
    with submission(s) as c:
        with pytest.raises(smtplib.SMTPAuthenticationError) as ei:
            login(c, "alice", wrong, "PLAIN")
        assert ei.value.smtp_code == 535
        assert ei.value.smtp_error == b"5.7.8 Authentication credentials invalid"
        with pytest.raises(smtplib.SMTPAuthenticationError):
            login(c, "nobody", pw, "LOGIN")
        assert login(c, "alice", pw, "LOGIN")[0] == 235
    s.wait_log(r"ICID \d+ AUTH failed user alice mechanism PLAIN$")
    s.wait_log(r"ICID \d+ AUTH failed user nobody mechanism LOGIN$")
    s.wait_log(r"ICID \d+ AUTH success user alice mechanism LOGIN$")
    text = s.log() + s.stderr()
    for secret in (pw, wrong, b64(pw), b64(wrong), b64("\0alice\0" + wrong)):
        assert secret not in text, "a secret or AUTH payload was logged"


def test_sasl_dialog_errors(auth_server):
    s = auth_server
    ctx = insecure_ctx()
    with socket.create_connection(("127.0.0.1", s.smtps), timeout=10) as raw:
        t = ctx.wrap_socket(raw)
        f = t.makefile("rwb")

        def cmd(line):
            f.write(line.encode() + b"\r\n")
            f.flush()
            out = []
            while True:
                ln = f.readline().decode().rstrip("\r\n")
                out.append(ln)
                if ln[3:4] != "-":
                    return "\n".join(out)
        assert f.readline().startswith(b"220 ")
        assert cmd("AUTH PLAIN").startswith("503 5.5.1")      # no EHLO yet
        assert "AUTH PLAIN LOGIN" in cmd("EHLO client.test")
        assert cmd("AUTH CRAM-MD5").startswith("504 5.5.4")
        assert cmd("AUTH LOGIN") == "334 VXNlcm5hbWU6"
        assert cmd("*") == "501 5.7.0 Authentication aborted"
        assert cmd("AUTH PLAIN") == "334 "
        assert cmd("not base64!") == "501 5.5.2 Cannot decode response"
        assert cmd("AUTH LOGIN " + b64("alice")) == "334 UGFzc3dvcmQ6"
        assert cmd(b64(s.pw)) == "235 2.7.0 Authentication successful"
        assert cmd("AUTH PLAIN " + b64("\0alice\0" + s.pw)).startswith("503 5.5.1")
        assert cmd("QUIT").startswith("221")


def test_envelope_identity_rejected(auth_server):
    s = auth_server
    with submission(s, password=auth_server.pw) as c:
        for bad in ("mallory@evil.example", "alice@sub.example.org",
                    "other@corp.example", "alice@example.org.evil.example"):
            code, text = c.mail(bad)
            assert code == 554, (bad, code, text)
            assert text.decode() == (
                "5.7.1 Message rejected: Email address is not verified. The "
                "following identities failed the check: " + bad)
        # verified domain (any case) and verified address pass
        for good in ("ALICE@Example.ORG", "boss@corp.example"):
            assert c.mail(good)[0] == 250, good
            c.rset()
    assert queue_count(s) == 0


def test_header_from_identity_rejected(auth_server):
    s = auth_server
    cases = [
        ("From: Mallory <mallory@evil.example>", "mallory@evil.example"),
        ('From: "alice@example.org" <ceo@evil.example>', "ceo@evil.example"),
        ("From: alice@example.org, x@evil.example", "x@evil.example"),
        ("From: alice@example.org\r\nFrom: y@evil.example", "y@evil.example"),
    ]
    with submission(s, password=s.pw) as c:
        for header, bad in cases:
            msg = header + "\r\nTo: bob@example.com\r\nSubject: x\r\n\r\nbody\r\n"
            with pytest.raises(smtplib.SMTPDataError) as ei:
                c.sendmail("alice@example.org", ["bob@example.com"], msg)
            assert ei.value.smtp_code == 554
            assert ei.value.smtp_error.decode() == (
                "5.7.1 Message rejected: Email address is not verified. The "
                "following identities failed the check: " + bad), header
        # display name, comments and case do not matter for a good one
        c.sendmail("alice@example.org", ["bob@example.com"],
                   "From: \"Alice (CEO)\" <Alice@EXAMPLE.org> (work)\r\n"
                   "Subject: ok\r\n\r\nbody\r\n")
    s.wait_maildir("example.com", "bob", count=1)
    time.sleep(0.3)
    assert len(s.maildir_files("example.com", "bob")) == 1
    assert queue_count(s) == 0


def test_unauthenticated_relay_denied_authenticated_allowed(auth_server):
    s = auth_server
    with smtplib.SMTP("127.0.0.1", s.port, local_hostname="client.test",
                      timeout=20) as c:
        c.starttls(context=insecure_ctx())
        c.ehlo()
        c.mail("alice@example.org")
        code, text = c.rcpt("bob@remote.example")
        assert (code, text) == (550, b"5.7.1 Relaying denied")
        c.rset()
        assert c.login("alice", s.pw)[0] == 235
        c.mail("alice@example.org")
        assert c.rcpt("bob@remote.example")[0] == 250


def test_brute_force_blocked(auth_server):
    s = auth_server            # auth_failures = 3, auth_failure_delay = 1
    with submission(s) as c:
        for _ in range(3):
            with pytest.raises(smtplib.SMTPAuthenticationError):
                login(c, "alice", "x" * 32, "PLAIN")
        # the fourth attempt, even with the right password: 454 after the
        # delay, then the server closes the connection
        t0 = time.monotonic()
        with pytest.raises((smtplib.SMTPAuthenticationError,
                            smtplib.SMTPServerDisconnected)) as ei:
            login(c, "alice", s.pw, "PLAIN")
        assert time.monotonic() - t0 >= 0.9
        if isinstance(ei.value, smtplib.SMTPAuthenticationError):
            assert ei.value.smtp_code == 454
            assert ei.value.smtp_error == b"4.7.0 Temporary authentication failure"
        with pytest.raises(smtplib.SMTPServerDisconnected):
            c.noop()
    # a new connection from the same address is still blocked
    with submission(s) as c:
        with pytest.raises(smtplib.SMTPAuthenticationError) as ei:
            login(c, "alice", s.pw, "LOGIN")
        assert ei.value.smtp_code == 454
    s.wait_log(r"Warning: ICID \d+ AUTH blocked: address 127\.0\.0\.1 had 3 "
               r"failed AUTH attempts within 600 s")
    assert len(re.findall(r"AUTH blocked", s.log())) == 1, "logged once per episode"


def test_sending_rate_quota(auth_server):
    s = auth_server
    pw = add_user(s, "fast", "--identity", "example.org", "--max-send-rate", "2")
    replies = []
    t0 = time.monotonic()
    with submission(s, "fast", pw) as c:
        for _ in range(8):
            code, text = c.mail("fast@example.org")
            replies.append((code, text.decode()))
            c.rset()
    elapsed = time.monotonic() - t0
    ok = [r for r in replies if r[0] == 250]
    refused = [r for r in replies if r[0] != 250]
    # at most 2 per second: 8 MAILs in `elapsed` seconds touch at most
    # ceil(elapsed) + 1 distinct seconds
    assert len(ok) <= 2 * (int(elapsed) + 2), (elapsed, replies)
    assert refused, replies
    assert all(r == (454, "4.7.0 Throttling failure: Maximum sending rate "
                     "exceeded.") for r in refused), refused
    s.wait_log(r"ICID \d+ user fast refused: 454 4\.7\.0 Throttling failure")


def test_daily_quota(auth_server):
    s = auth_server
    pw = add_user(s, "daily", "--identity", "example.org",
                  "--max-24-hour-send", "2")
    with submission(s, "daily", pw) as c:
        for _ in range(2):
            c.sendmail("daily@example.org", ["bob@example.com"], MSG.replace(
                "alice@example.org", "daily@example.org"))
        code, text = c.mail("daily@example.org")
        assert (code, text.decode()) == (
            554, "5.7.0 Throttling failure: Daily message quota exceeded.")
    # other users are not affected
    with submission(s, "alice", s.pw) as c:
        assert c.mail("alice@example.org")[0] == 250


def test_daemon_sees_user_changes_without_restart(auth_server):
    s = auth_server
    pid_before = s.proc.pid
    pw = add_user(s, "carol", "--identity", "carol@example.org")
    with submission(s, "carol", pw) as c:
        c.sendmail("carol@example.org", ["bob@example.com"],
                   MSG.replace("alice@example.org", "carol@example.org"))
    # new password: the old one stops working at once
    p = s.cli("user", "passwd", "carol")
    assert p.returncode == 0, p.stderr
    pw2 = re.search(r"^password: (\S+)$", p.stdout, re.M).group(1)
    with submission(s) as c:
        with pytest.raises(smtplib.SMTPAuthenticationError):
            login(c, "carol", pw, "PLAIN")
    with submission(s, "carol", pw2, "PLAIN") as c:
        # identity added while the session is open counts at once
        assert c.mail("carol2@example.org")[0] == 554
        c.rset()
        p = s.cli("user", "modify", "carol", "--add-identity", "carol2@example.org")
        assert p.returncode == 0, p.stderr
        assert c.mail("carol2@example.org")[0] == 250
        c.rset()
        # removed while logged in: the session loses its rights
        assert s.cli("user", "remove", "carol").returncode == 0
        code, text = c.mail("carol@example.org")
        assert (code, text) == (530, b"5.7.0 Authentication required")
    with submission(s) as c:
        with pytest.raises(smtplib.SMTPAuthenticationError):
            login(c, "carol", pw2, "LOGIN")
    assert s.proc.pid == pid_before and s.proc.poll() is None
    s.wait_log(r"AUTH user carol no longer exists")
    listing = s.cli("user", "list")
    assert "carol" not in listing.stdout
    assert re.search(r"^alice\s", listing.stdout, re.M)


def test_last_used_recorded(auth_server):
    s = auth_server
    before = s.cli("user", "list").stdout
    assert re.search(r"^alice\s.*never", before, re.M), before
    with submission(s, "alice", s.pw):
        pass
    wait_for(lambda: "never" not in [ln for ln in s.cli("user", "list").stdout
                                     .splitlines() if ln.startswith("alice")][0],
             what="last used recorded")
