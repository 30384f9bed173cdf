"""Outbound delivery to a real third-party peer: Debian's python3-aiosmtpd
(1.4.x) as the next hop (postern.conf(5) routes and destinations, postern-log(7)).

* LMTP (RFC 2033) with aiosmtpd.lmtp.LMTP, over a UNIX socket
  (`lmtp:/path`) and over TCP (`lmtp:[127.0.0.1]:P`): several recipients,
  a temporary failure at the end of data and the retry, per-recipient
  final replies (one delivered, one refused or deferred).
* aiosmtpd as a cloud relay: STARTTLS required and AUTH required (only
  under TLS), certificate for mx.partner.example from the test CA that is
  in Postern's trust store, destination tls required-verify; and the same
  relay refusing the password (535).
* aiosmtpd as a plain MX (127.0.0.5:25, resolver.local_data), and
  refusing one of two recipients at RCPT (DSN to the local sender).

A note on aiosmtpd's LMTP: 1.4.x only replaces EHLO/HELO by LHLO; after
the end of data it sends whatever handle_DATA returns, ONCE, not one reply
per accepted recipient as RFC 2033 4.2 requires.  The handler below
therefore returns one reply line per accepted recipient, joined by CRLF
(aiosmtpd pushes the string as it is), which makes the peer a correct LMTP
server and lets a test give each recipient its own final reply.

Everything listens on 127.0.0.0/8 or on a UNIX socket in a short private
directory below /tmp; every wait is bounded.
"""
import os
import re
import shutil
import ssl
import tempfile
import threading
import time
from dataclasses import dataclass

import pytest
from aiosmtpd.controller import Controller, UnixSocketController
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import AuthResult

from conftest import queue_count, settle
# pki is a fixture
from peers import (EHLO_NAME, bounced_rx, delayed_rx, RELAY_PASSWORD, RELAY_USER,  # noqa: F401
                   dsn_parts, log_lines, make_message, new_smtp_dcid,
                   parse_mail, pki, reserve_port, rids, send,
                   start_delivery_server, strip_trace, wait_done,
                   wait_queued_attempts)

WAIT = 20.0          # bound for anything that needs one delivery attempt
RETRY_WAIT = 30.0    # bound for anything that needs a retry (retry_min 1)

MX_IP = "127.0.0.5"
DOTTY_BODY = ("first line\r\n.leading dot\r\n..two dots\r\n.\r\n"
              ". dot space\r\n...\r\nlast line\r\n")


# ---------------------------------------------------------------------------
# aiosmtpd peer: a recording handler and controllers


@dataclass
class AioMessage:
    """One message the aiosmtpd peer took (a 2xx to the end of data for at
    least one recipient)."""
    mail_from: str
    rcpts: list              # the recipients whose final reply was 2xx
    all_rcpts: list          # every recipient accepted at RCPT
    data: bytes              # after dot-unstuffing, CRLF line ends
    greeting: str            # EHLO / LHLO name
    tls: bool
    tls_version: str
    auth_login: str
    peer: tuple


class Recorder:
    """aiosmtpd handler.  Scripted replies (changeable while running):
      rcpt_replies[addr] -> reply to that RCPT (default: accept)
      data_reply         -> reply to the end of data (default 250); in LMTP
                            mode given for every accepted recipient
      lmtp_replies[addr] -> LMTP: that recipient's own final reply
    Every end of data is recorded in `attempts` (recipients, replies)."""

    OK = "250 2.0.0 Ok: delivered by aiosmtpd"

    def __init__(self, lmtp=False, password=None):
        self.lmtp = lmtp
        self.password = password
        self.cond = threading.Condition()
        self.rcpt_replies = {}
        self.lmtp_replies = {}
        self.data_reply = None
        self.messages = []
        self.attempts = []          # (rcpts, [final replies])
        self.auth = []              # (mechanism, login, ok, tls)

    # -- scripting and results (test thread) --------------------------------

    def set(self, **kw):
        with self.cond:
            for k, v in kw.items():
                assert hasattr(self, k), k
                setattr(self, k, v)

    def wait_messages(self, n=1, timeout=WAIT):
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.messages) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"aiosmtpd got {len(self.messages)} messages, "
                        f"wanted {n}; attempts {self.attempts}, "
                        f"auth {self.auth}")
                self.cond.wait(left)
            return list(self.messages)

    def wait_attempts(self, n=1, timeout=WAIT):
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.attempts) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"aiosmtpd saw {len(self.attempts)} ends of data, "
                        f"wanted {n}")
                self.cond.wait(left)
            return list(self.attempts)

    def wait_auth(self, n=1, timeout=WAIT):
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.auth) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"aiosmtpd saw {len(self.auth)} AUTH, wanted {n}")
                self.cond.wait(left)
            return list(self.auth)

    # -- aiosmtpd hooks (controller thread) ---------------------------------

    async def handle_RCPT(self, server, session, envelope, address,
                          rcpt_options):
        with self.cond:
            reply = self.rcpt_replies.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        rcpts = list(envelope.rcpt_tos)
        with self.cond:
            default = self.data_reply or self.OK
            if self.lmtp:
                replies = [self.lmtp_replies.get(r.lower(), default)
                           for r in rcpts]
            else:
                replies = [default] * len(rcpts)
            took = [r for r, rep in zip(rcpts, replies)
                    if rep.startswith("2")]
            self.attempts.append((rcpts, replies))
            if took:
                ssl_obj = (session.ssl or {}).get("ssl_object")
                login = None
                if session.authenticated and session.auth_data is not None:
                    login = session.auth_data.login.decode()
                self.messages.append(AioMessage(
                    mail_from=envelope.mail_from, rcpts=took,
                    all_rcpts=rcpts, data=bytes(envelope.content),
                    greeting=session.host_name,
                    tls=session.ssl is not None,
                    tls_version=ssl_obj.version() if ssl_obj else None,
                    auth_login=login, peer=session.peer))
            self.cond.notify_all()
        if self.lmtp:
            # RFC 2033 4.2: one reply per recipient accepted at RCPT
            return "\r\n".join(replies)
        return replies[0]

    def authenticator(self, server, session, envelope, mechanism, auth_data):
        login = auth_data.login.decode()
        ok = (login == RELAY_USER and
              auth_data.password.decode() == self.password)
        with self.cond:
            self.auth.append((mechanism, login, ok, session.ssl is not None))
            self.cond.notify_all()
        if ok:
            return AuthResult(success=True, auth_data=auth_data)
        return AuthResult(success=False, handled=False)


class LMTPController(Controller):
    """aiosmtpd's threaded controller serving LMTP on host:port."""

    def factory(self):
        return LMTP(self.handler, **self.SMTP_kwargs)


class LMTPUnixController(UnixSocketController):
    """aiosmtpd 1.4's UNIX socket controller serving LMTP."""

    def factory(self):
        return LMTP(self.handler, **self.SMTP_kwargs)


def _stop_controller(ctl):
    """Controller.stop() joins its thread without a bound: run it in a
    helper thread and wait for that one, bounded."""
    t = threading.Thread(target=ctl.stop, kwargs={"no_assert": True},
                         daemon=True)
    t.start()
    t.join(timeout=10)
    assert not t.is_alive(), "aiosmtpd controller did not stop"


@pytest.fixture
def aio_factory():
    """make(kind, handler, **controller kwargs) -> a started aiosmtpd
    controller (kind: smtp | lmtp | lmtp-unix), stopped at teardown."""
    made = []

    def make(kind, handler, **kw):
        cls = {"smtp": Controller, "lmtp": LMTPController,
               "lmtp-unix": LMTPUnixController}[kind]
        kw.setdefault("ready_timeout", 10.0)
        kw.setdefault("server_hostname", "aiosmtpd.test")
        ctl = cls(handler, **kw)
        ctl.start()
        made.append(ctl)
        return ctl

    yield make
    for ctl in made:
        _stop_controller(ctl)


@pytest.fixture
def sockdir():
    """A short private directory for UNIX sockets (sun_path is 108 bytes;
    pytest's tmp paths can be longer)."""
    d = tempfile.mkdtemp(prefix="pl-", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------------------
# Postern


def route(domain, host, extra=""):
    return f',\n  {{ domain = "{domain}"; hosts = [ "{host}" ]; {extra}}}'


def aio_server(server_factory, pki, local_data=(), **cfg):
    """start_delivery_server() (peers.py) with more resolver.local_data
    records."""
    s = start_delivery_server(server_factory, pki, start=False, **cfg)
    if local_data:
        with open(s.conf) as fh:
            text = fh.read()
        anchor = '"implicit.example. A 127.0.0.4"'
        assert anchor in text, "delivery_config changed: " + anchor
        text = text.replace(anchor, anchor + "".join(
            f', "{r}"' for r in local_data))
        with open(s.conf, "w") as fh:
            fh.write(text)
    return s.start()


def rcpt_state(block, rcpt):
    """The `queue list` text for one recipient: `<addr> STATE attempts N
    ... last error "..."` (up to the next recipient)."""
    m = re.search(rf"<{re.escape(rcpt)}>(.*?)(?=, <[^>]*> \w+ attempts|$)",
                  block, re.M | re.S)
    assert m, (rcpt, block)
    return m.group(1)


def check_dsn(server, rcpt, status_code, subject):
    """The DSN in alice@example.com's maildir names `rcpt` as failed."""
    files = server.wait_maildir("example.com", "alice", 1, timeout=WAIT)
    assert len(files) == 1, files
    dsn = parse_mail(files[0])
    assert "MAILER-DAEMON" in dsn.get("From", ""), dsn.get("From")
    status, headers = dsn_parts(dsn)
    assert re.search(rf"^Final-Recipient:\s*rfc822;\s*<?{re.escape(rcpt)}>?",
                     status, re.M | re.I), status
    assert re.search(r"^Action:\s*failed\s*$", status, re.M | re.I), status
    assert re.search(rf"^Status:\s*{re.escape(status_code)}\s*$", status,
                     re.M), status
    assert f"Subject: {subject}" in (headers or ""), headers
    return status


# ---------------------------------------------------------------------------
# 1. LMTP over a UNIX socket


def lmtp_unix(server_factory, pki, aio_factory, sockdir, handler):
    path = os.path.join(sockdir, "lmtp.sock")
    assert len(path) < 100, path
    aio_factory("lmtp-unix", handler, unix_socket=path)
    s = aio_server(server_factory, pki,
                   extra_routes=route("lmtp.test", f"lmtp:{path}"))
    return s, path


def test_lmtp_unix_two_recipients_delivered(server_factory, pki,
                                            aio_factory, sockdir):
    handler = Recorder(lmtp=True)
    s, path = lmtp_unix(server_factory, pki, aio_factory, sockdir, handler)
    msg = make_message("lmtp-unix", DOTTY_BODY,
                       to="bob@lmtp.test, carol@lmtp.test")
    mid = send(s, ["bob@lmtp.test", "carol@lmtp.test"], msg=msg)

    got = handler.wait_messages(1, WAIT)
    dcid, resp = wait_done(s, mid, "[0, 1]")
    assert resp == Recorder.OK, resp
    s.wait_log(rf"Message finished MID {mid} done", timeout=WAIT)

    assert len(got) == 1
    m = got[0]
    assert m.mail_from == "alice@example.com"
    assert m.all_rcpts == ["bob@lmtp.test", "carol@lmtp.test"]
    assert m.greeting == EHLO_NAME          # LHLO (aiosmtpd's LMTP
    assert not m.tls                        # refuses EHLO with 500)
    strip_trace(m.data, msg.encode())

    assert log_lines(s, rf"Info: Delivery start DCID {dcid} MID {mid} "
                        rf"to RID {rids(0, 1)}$"), s.log()
    assert path in new_smtp_dcid(s, dcid)
    assert not log_lines(s, r"Delayed: |Bounced: |Connection Error: ")
    settle(s, WAIT)


def test_lmtp_unix_data_tempfail_then_delivered_on_retry(
        server_factory, pki, aio_factory, sockdir):
    handler = Recorder(lmtp=True)
    handler.set(data_reply="451 4.3.0 try later")
    s, _path = lmtp_unix(server_factory, pki, aio_factory, sockdir, handler)
    msg = make_message("lmtp-tempfail", "retry me\r\n",
                       to="bob@lmtp.test, carol@lmtp.test")
    mid = send(s, ["bob@lmtp.test", "carol@lmtp.test"], msg=msg)

    reason = s.wait_log(delayed_rx(mid, "[0, 1]"), timeout=WAIT)[0]
    assert reason == "451 4.3.0 try later", reason
    assert log_lines(s, rf"Delayed: DCID \d+ MID {mid} to RID "
                        rf"{rids(0, 1)} - 451 4\.3\.0 try later$"), s.log()
    block = wait_queued_attempts(s, mid, 1, timeout=WAIT)
    for rcpt in ("bob@lmtp.test", "carol@lmtp.test"):
        st = rcpt_state(block, rcpt)
        assert re.match(r" pending attempts [1-9]", st), block
        assert "451 4.3.0 try later" in st, block
    assert handler.messages == []
    first = handler.wait_attempts(1, WAIT)[0]
    assert first == (["bob@lmtp.test", "carol@lmtp.test"],
                     ["451 4.3.0 try later"] * 2), first

    handler.set(data_reply=None)
    dcid, resp = wait_done(s, mid, "[0, 1]", timeout=RETRY_WAIT)
    assert resp == Recorder.OK, resp
    got = handler.wait_messages(1, WAIT)
    assert len(got) == 1
    assert got[0].rcpts == ["bob@lmtp.test", "carol@lmtp.test"]
    strip_trace(got[0].data, msg.encode())
    s.wait_log(rf"Message finished MID {mid} done", timeout=WAIT)
    settle(s, WAIT)


def test_lmtp_unix_per_recipient_final_replies(server_factory, pki,
                                               aio_factory, sockdir):
    """RFC 2033 4.2: each recipient has its own final reply.  bob is
    delivered, carol is refused (5xx: bounced with a DSN), dave is deferred
    (4xx) and delivered on the retry, alone: bob and carol are not sent
    again."""
    handler = Recorder(lmtp=True)
    handler.set(lmtp_replies={
        "carol@lmtp.test": "550 5.2.1 <carol@lmtp.test> mailbox disabled",
        "dave@lmtp.test": "452 4.2.2 <dave@lmtp.test> mailbox full"})
    s, _path = lmtp_unix(server_factory, pki, aio_factory, sockdir, handler)
    rcpts = ["bob@lmtp.test", "carol@lmtp.test", "dave@lmtp.test"]
    msg = make_message("lmtp-per-rcpt", "three\r\n", to=", ".join(rcpts))
    mid = send(s, rcpts, msg=msg)

    dcid, resp = wait_done(s, mid, "[0]")
    assert resp == Recorder.OK, resp
    reason = s.wait_log(bounced_rx(mid, "[1]"), timeout=WAIT)[0]
    assert reason.startswith("550 5.2.1 "), reason
    reason = s.wait_log(delayed_rx(mid, "[2]"), timeout=WAIT)[0]
    assert reason.startswith("452 4.2.2 "), reason
    assert log_lines(s, rf"Bounced: DCID {dcid} MID {mid} to RID \[1\] ")
    assert log_lines(s, rf"Delayed: DCID {dcid} MID {mid} to RID \[2\] ")
    check_dsn(s, "carol@lmtp.test", "5.2.1", "lmtp-per-rcpt")
    first = handler.wait_messages(1, WAIT)[0]
    assert first.all_rcpts == rcpts and first.rcpts == ["bob@lmtp.test"]

    handler.set(lmtp_replies={})
    wait_done(s, mid, "[2]", timeout=RETRY_WAIT)
    got = handler.wait_messages(2, WAIT)
    assert got[1].all_rcpts == ["dave@lmtp.test"], got[1]
    strip_trace(got[1].data, msg.encode())
    s.wait_log(rf"Message finished MID {mid}\b", timeout=WAIT)
    settle(s, WAIT)
    assert len(handler.attempts) == 2, handler.attempts


def test_lmtp_unix_socket_missing_then_present(server_factory, pki,
                                               aio_factory, sockdir):
    """Nothing listening on the socket path yet: the message is deferred
    with the reason; once the LMTP server is up, the retry delivers."""
    path = os.path.join(sockdir, "late.sock")
    s = aio_server(server_factory, pki,
                   extra_routes=route("lmtp.test", f"lmtp:{path}"))
    mid = send(s, "bob@lmtp.test", subject="lmtp-late")
    reason = s.wait_log(delayed_rx(mid), timeout=WAIT)[0]
    assert path in reason, reason
    assert log_lines(s, r"Connection Error: DCID \d+ domain: lmtp\.test "), \
        s.log()
    wait_queued_attempts(s, mid, 1, timeout=WAIT)

    handler = Recorder(lmtp=True)
    aio_factory("lmtp-unix", handler, unix_socket=path)
    wait_done(s, mid, timeout=RETRY_WAIT)
    assert handler.wait_messages(1, WAIT)[0].rcpts == ["bob@lmtp.test"]
    settle(s, WAIT)


# ---------------------------------------------------------------------------
# 2. LMTP over TCP


def test_lmtp_tcp_delivered(server_factory, pki, aio_factory):
    handler = Recorder(lmtp=True)
    port = reserve_port()
    aio_factory("lmtp", handler, hostname="127.0.0.1", port=port)
    s = aio_server(server_factory, pki, extra_routes=route(
        "lmtp.test", f"lmtp:[127.0.0.1]:{port}"))
    msg = make_message("lmtp-tcp", DOTTY_BODY,
                       to="bob@lmtp.test, carol@lmtp.test")
    mid = send(s, ["bob@lmtp.test", "carol@lmtp.test"], msg=msg)

    got = handler.wait_messages(1, WAIT)[0]
    dcid, resp = wait_done(s, mid, "[0, 1]")
    assert resp == Recorder.OK, resp
    assert got.greeting == EHLO_NAME
    assert got.all_rcpts == ["bob@lmtp.test", "carol@lmtp.test"]
    assert got.mail_from == "alice@example.com"
    strip_trace(got.data, msg.encode())
    ln = new_smtp_dcid(s, dcid)
    assert re.search(rf"New SMTP DCID {dcid} interface 127\.0\.0\.1 "
                     rf"address 127\.0\.0\.1 port {port}$", ln), ln
    assert log_lines(s, rf"Delivery start DCID {dcid} MID {mid} to RID "
                        rf"{rids(0, 1)}$"), s.log()
    s.wait_log(rf"Message finished MID {mid} done", timeout=WAIT)
    settle(s, WAIT)


def test_lmtp_tcp_several_messages(server_factory, pki, aio_factory):
    """Several messages queued at once for an LMTP server: all delivered,
    each exactly once (several transactions on one LMTP session)."""
    handler = Recorder(lmtp=True)
    port = reserve_port()
    aio_factory("lmtp", handler, hostname="127.0.0.1", port=port)
    s = aio_server(server_factory, pki, extra_routes=route(
        "lmtp.test", f"lmtp:[127.0.0.1]:{port}"))
    assert s.cli("queue", "pause").returncode == 0
    n = 5
    mids = [send(s, "bob@lmtp.test", subject=f"lmtp-batch-{i}")
            for i in range(n)]
    assert queue_count(s) == n
    assert s.cli("queue", "resume").returncode == 0
    got = handler.wait_messages(n, RETRY_WAIT)
    for mid in mids:
        wait_done(s, mid)
    subjects = sorted(re.search(rb"Subject: (lmtp-batch-\d+)", m.data)
                      .group(1) for m in got)
    assert subjects == sorted(f"lmtp-batch-{i}".encode() for i in range(n))
    settle(s, WAIT)
    assert len(handler.messages) == n


# ---------------------------------------------------------------------------
# 3. aiosmtpd as a STARTTLS + AUTH relay (a cloud relay on 587)


def cloud_relay(server_factory, pki, aio_factory, password=RELAY_PASSWORD):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.partner.cert, pki.partner.key)
    handler = Recorder(password=RELAY_PASSWORD)
    port = reserve_port()
    aio_factory("smtp", handler, hostname="127.0.0.1", port=port,
                tls_context=ctx, require_starttls=True, auth_required=True,
                auth_require_tls=True, authenticator=handler.authenticator)
    s = start_delivery_server(
        server_factory, pki, password=password, cloud_port=port,
        destinations=('{ domain = "cloud.test"; tls = "required-verify"; },'
                      ' { domain = "*"; tls = "preferred"; }'))
    return s, handler, port


def test_starttls_auth_relay_delivered(server_factory, pki, aio_factory):
    s, handler, port = cloud_relay(server_factory, pki, aio_factory)
    msg = make_message("cloud-aio", DOTTY_BODY, to="bob@cloud.test")
    mid = send(s, "bob@cloud.test", msg=msg)

    got = handler.wait_messages(1, WAIT)[0]
    dcid, resp = wait_done(s, mid)
    assert resp == Recorder.OK, resp
    assert got.tls, got
    assert got.tls_version in ("TLSv1.2", "TLSv1.3"), got.tls_version
    assert got.auth_login == RELAY_USER
    assert got.greeting == EHLO_NAME
    assert got.rcpts == ["bob@cloud.test"]
    strip_trace(got.data, msg.encode())
    auth = handler.wait_auth(1, WAIT)
    assert [(a[1], a[2], a[3]) for a in auth] == [(RELAY_USER, True, True)], \
        auth
    assert auth[0][0] in ("PLAIN", "LOGIN"), auth

    assert re.search(rf"address 127\.0\.0\.1 port {port}$",
                     new_smtp_dcid(s, dcid))
    assert log_lines(s, rf"Info: DCID {dcid} TLS success protocol TLSv1\.[23] "
                        rf"cipher \S+$"), s.log()
    assert not log_lines(s, r"TLS failed|not verified|Connection Error"), \
        s.log()
    assert RELAY_PASSWORD not in s.log()
    s.wait_log(rf"Message finished MID {mid} done", timeout=WAIT)
    settle(s, WAIT)


def test_starttls_auth_relay_wrong_password(server_factory, pki,
                                            aio_factory):
    s, handler, port = cloud_relay(server_factory, pki, aio_factory,
                                   password="not-the-password")
    mid = send(s, "bob@cloud.test", subject="cloud-badpw")

    reason = s.wait_log(delayed_rx(mid), timeout=WAIT)[0]
    assert "535 5.7.8 Authentication credentials invalid" in reason, reason
    assert RELAY_USER in reason, reason
    assert log_lines(s, rf"Connection Error: DCID \d+ domain: cloud\.test "
                        rf"IP: 127\.0\.0\.1 port: {port} details: AUTH "
                        rf"reason: 535 5\.7\.8 "), s.log()
    assert log_lines(s, r"DCID \d+ TLS success protocol "), s.log()
    block = wait_queued_attempts(s, mid, 1, timeout=WAIT)
    st = rcpt_state(block, "bob@cloud.test")
    assert re.match(r" pending attempts [1-9]", st), block
    assert "535 5.7.8" in st and "last error" in st, block
    auth = handler.wait_auth(1, WAIT)
    assert auth[0][1:] == (RELAY_USER, False, True), auth
    assert handler.messages == []
    assert "not-the-password" not in s.log()
    assert "not-the-password" not in s.cli("queue", "list").stdout

    # the administrator fixes the password file: the retry delivers
    with open(os.path.join(s.dir, "relay.pass"), "w") as fh:
        fh.write(RELAY_PASSWORD + "\n")
    wait_done(s, mid, timeout=RETRY_WAIT)
    got = handler.wait_messages(1, WAIT)[0]
    assert got.auth_login == RELAY_USER and got.tls
    settle(s, WAIT)


# ---------------------------------------------------------------------------
# 4. aiosmtpd as a plain MX


MX_DATA = ("aio.example. MX 10 mx.aio.example.",
           f"mx.aio.example. A {MX_IP}")


def test_mx_delivered(server_factory, pki, aio_factory):
    handler = Recorder()
    aio_factory("smtp", handler, hostname=MX_IP, port=25)
    s = aio_server(server_factory, pki, local_data=MX_DATA)
    msg = make_message("aio-mx", DOTTY_BODY, to="x@aio.example")
    mid = send(s, "x@aio.example", msg=msg)

    got = handler.wait_messages(1, WAIT)[0]
    dcid, resp = wait_done(s, mid)
    assert resp == Recorder.OK, resp
    assert got.rcpts == ["x@aio.example"]
    assert got.mail_from == "alice@example.com"
    assert got.greeting == EHLO_NAME
    assert not got.tls                      # no STARTTLS offered
    strip_trace(got.data, msg.encode())
    ln = new_smtp_dcid(s, dcid)
    assert re.search(rf"address {re.escape(MX_IP)} port 25$", ln), ln
    s.wait_log(rf"Message finished MID {mid} done", timeout=WAIT)
    settle(s, WAIT)


def test_mx_one_recipient_refused_bounces_with_dsn(server_factory, pki,
                                                   aio_factory):
    handler = Recorder()
    handler.set(rcpt_replies={"nobody@aio.example": "550 5.1.1 no such user"})
    aio_factory("smtp", handler, hostname=MX_IP, port=25)
    s = aio_server(server_factory, pki, local_data=MX_DATA)
    msg = make_message("aio-bounce", "the original body\r\n",
                       to="x@aio.example, nobody@aio.example")
    mid = send(s, ["x@aio.example", "nobody@aio.example"], msg=msg)

    dcid, _resp = wait_done(s, mid, "[0]")
    reason = s.wait_log(bounced_rx(mid, "[1]"), timeout=WAIT)[0]
    assert reason == "550 5.1.1 no such user", reason
    assert log_lines(s, rf"Bounced: DCID {dcid} MID {mid} to RID \[1\] - "
                        rf"550 5\.1\.1 no such user$"), s.log()
    got = handler.wait_messages(1, WAIT)
    assert len(got) == 1 and got[0].rcpts == ["x@aio.example"]
    strip_trace(got[0].data, msg.encode())

    s.wait_log(rf"Bounce MID (\d+) for MID {mid} to <alice@example\.com>",
               timeout=WAIT)
    status = check_dsn(s, "nobody@aio.example", "5.1.1", "aio-bounce")
    assert "x@aio.example" not in status, status
    assert re.search(r"^Diagnostic-Code:\s*smtp;\s*550 5\.1\.1 no such user",
                     status, re.M | re.I), status
    assert re.search(r"^Remote-MTA:\s*dns;\s*mx\.aio\.example", status,
                     re.M | re.I), status
    s.wait_log(rf"Message finished MID {mid}\b", timeout=WAIT)
    settle(s, WAIT)
    assert len(handler.messages) == 1
