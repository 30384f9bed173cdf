"""Limits and deadlines (postern.conf(5), LIMITS)."""
import socket
import time

from conftest import (RawSMTP, all_maildir_files, make_config, queue_count,
                      queued_mid, read_bytes, settle)

TIMEOUT_REPLY = "421 4.4.2 mx.test.example Error: timeout exceeded"
TOO_BIG = "552 5.3.4 Message size exceeds fixed maximum message size"
LINE_TOO_LONG = "500 5.5.2 Line too long"


def start_data(c, rcpts=("bob@example.com",)):
    c.ehlo()
    c.cmd("MAIL FROM:<alice@example.com>", expect="250 2.1.0")
    for r in rcpts:
        c.cmd(f"RCPT TO:<{r}>", expect="250 2.1.5")
    c.cmd("DATA", expect=354)


def wait_reply_timed(c, timeout):
    """Read one reply; returns (reply, seconds it took)."""
    t0 = time.monotonic()
    c.sock.settimeout(timeout)
    r = c.reply()
    return r, time.monotonic() - t0


# --------------------------------------------------------- command lines

def test_command_line_limit_512(server):
    with RawSMTP(server.port) as c:
        c.ehlo()
        # 512 octets including CRLF: accepted
        line = "NOOP " + "x" * (510 - 5)
        assert len(line) + 2 == 512
        assert c.cmd(line) == "250 2.0.0 Ok"
        # 513 octets: refused, the session goes on
        line = "NOOP " + "x" * (511 - 5)
        assert len(line) + 2 == 513
        assert c.cmd(line) == LINE_TOO_LONG
        assert c.cmd("NOOP") == "250 2.0.0 Ok"
        # a long MAIL command is refused too, nothing half-parsed remains
        long_mail = "MAIL FROM:<" + "a" * 600 + "@example.com>"
        assert c.cmd(long_mail) == LINE_TOO_LONG
        r = c.cmd("RCPT TO:<bob@example.com>")
        assert r.startswith("503 5.5.1"), r


def test_long_line_without_lf(server):
    with RawSMTP(server.port) as c:
        c.ehlo()
        c.send(b"A" * 2000)
        assert c.reply() == LINE_TOO_LONG
        # more of the same line is skipped silently, up to its end
        c.send(b"B" * 3000 + b"\r\n")
        assert c.cmd("NOOP") == "250 2.0.0 Ok"
        assert c.cmd("NOOP") == "250 2.0.0 Ok"


def test_bare_lf_command_accepted_bare_cr_refused(server):
    with RawSMTP(server.port) as c:
        c.send(b"EHLO client.test\n")
        assert c.reply().startswith("250-mx.test.example")
        c.send(b"NOOP\n")
        assert c.reply() == "250 2.0.0 Ok"
        c.send(b"NO\rOP\r\n")
        r = c.reply()
        assert r.startswith("500 5.5.2"), r
        assert c.cmd("NOOP") == "250 2.0.0 Ok"


def test_too_many_bad_commands(server):
    with RawSMTP(server.port) as c:
        c.ehlo()
        for i in range(100):
            try:
                r = c.cmd("BOGUS%d" % i)
            except (ConnectionError, AssertionError):
                raise AssertionError("closed without a 421 reply")
            if r.startswith("421"):
                break
            assert r == "500 5.5.2 Error: command not recognized"
        else:
            raise AssertionError("100 bad commands and no 421")
        assert r.startswith("421 4.7.0 "), r
        assert c.closed()


# ---------------------------------------------------------- message size

def size_server(server_factory):
    return server_factory(config=make_config(
        relayed='action = "relay"; max_message_size = 10000;')).start()


def test_message_over_max_size(server_factory):
    s = size_server(server_factory)
    with RawSMTP(s.port) as c:
        start_data(c)
        c.send(b"Subject: big\r\n\r\n" + (b"y" * 98 + b"\r\n") * 200 +
               b".\r\n")
        assert c.reply() == TOO_BIG
        # the session goes on and a small message still passes
        c.cmd("MAIL FROM:<alice@example.com>", expect="250 2.1.0")
        c.cmd("RCPT TO:<carol@example.com>", expect="250 2.1.5")
        c.cmd("DATA", expect=354)
        c.send(b"Subject: small\r\n\r\n" + (b"y" * 98 + b"\r\n") * 80 +
               b".\r\n")
        mid = queued_mid(c.reply())
    s.wait_log(rf"Message finished MID {mid} done$")
    assert s.maildir_files("example.com", "bob") == []
    assert len(s.maildir_files("example.com", "carol")) == 1
    assert queue_count(s) == 0
    s.wait_log(r"MID \d+ rejected: " + TOO_BIG + "$")


def test_mail_size_parameter(server_factory):
    s = size_server(server_factory)
    with RawSMTP(s.port) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<alice@example.com> SIZE=10001") == TOO_BIG
        c.cmd("MAIL FROM:<alice@example.com> SIZE=10000", expect="250 2.1.0")


def test_bdat_over_max_size(server_factory):
    s = size_server(server_factory)
    chunk = b"Subject: big\r\n\r\n" + b"z" * 6000 + b"\r\n"
    with RawSMTP(s.port) as c:
        c.ehlo()
        c.cmd("MAIL FROM:<alice@example.com>", expect="250 2.1.0")
        c.cmd("RCPT TO:<bob@example.com>", expect="250 2.1.5")
        c.send(f"BDAT {len(chunk)}\r\n".encode() + chunk)
        assert c.reply().startswith("250 2.0.0")
        c.send(f"BDAT {len(chunk)} LAST\r\n".encode() + chunk)
        assert c.reply() == TOO_BIG
        assert c.cmd("NOOP") == "250 2.0.0 Ok"
    settle(s)
    assert all_maildir_files(s) == []


# ----------------------------------------------------- DATA line length

def line_server(server_factory):
    return server_factory(extra="limits = { max_line_length = 1000; };").start()


def test_data_line_too_long(server_factory):
    s = line_server(server_factory)
    with RawSMTP(s.port) as c:
        start_data(c)
        c.send(b"Subject: long\r\n\r\n" + b"q" * 1001 + b"\r\nend\r\n.\r\n")
        assert c.reply() == "552 5.3.4 Message line too long"
        assert c.cmd("NOOP") == "250 2.0.0 Ok"
        # exactly max_line_length octets (without CRLF) pass, unchanged
        c.cmd("MAIL FROM:<alice@example.com>", expect="250 2.1.0")
        c.cmd("RCPT TO:<carol@example.com>", expect="250 2.1.5")
        c.cmd("DATA", expect=354)
        c.send(b"Subject: exact\r\n\r\n" + b"q" * 1000 + b"\r\nend\r\n.\r\n")
        mid = queued_mid(c.reply())
    s.wait_log(rf"Message finished MID {mid} done$")
    assert s.maildir_files("example.com", "bob") == []
    data = read_bytes(s.wait_maildir("example.com", "carol")[0])
    assert data.endswith(b"\n\n" + b"q" * 1000 + b"\nend\n")
    assert queue_count(s) == 0


def test_default_allows_long_data_lines(server):
    line = b"w" * 20000
    with RawSMTP(server.port) as c:
        start_data(c)
        c.send(b"Subject: wide\r\n\r\n" + line + b"\r\n.\r\n")
        queued_mid(c.reply())
    data = read_bytes(server.wait_maildir("example.com", "bob")[0])
    assert data.endswith(b"\n\n" + line + b"\n")


# ------------------------------------------------------------ recipients

def test_max_recipients(server_factory):
    s = server_factory(config=make_config(
        relayed='action = "relay"; max_recipients = 3;')).start()
    users = ["u1", "u2", "u3", "u4"]
    with RawSMTP(s.port) as c:
        c.ehlo()
        c.cmd("MAIL FROM:<alice@example.com>", expect="250 2.1.0")
        for u in users[:3]:
            c.cmd(f"RCPT TO:<{u}@example.com>", expect="250 2.1.5")
        assert c.cmd("RCPT TO:<u4@example.com>") == \
            "452 4.5.3 Too many recipients"
        c.cmd("DATA", expect=354)
        c.send(b"Subject: three\r\n\r\nhi\r\n.\r\n")
        mid = queued_mid(c.reply())
    s.wait_log(rf"Message finished MID {mid} done$")
    for u in users[:3]:
        assert len(s.maildir_files("example.com", u)) == 1
    assert s.maildir_files("example.com", "u4") == []


# ------------------------------------------------------------ connections

def test_connections_per_client(server_factory):
    s = server_factory(
        extra="limits = { max_connections_per_client = 3; };").start()
    s.wait_log(r"ICID \d+ close$")      # the fixture's readiness probe
    conns = [RawSMTP(s.port) for _ in range(3)]
    try:
        for c in conns:
            assert c.banner == "220 mx.test.example ESMTP Postern"
        with RawSMTP(s.port) as extra:
            assert extra.banner == "421 4.7.0 Too many connections"
            assert extra.closed()
        # the others are unaffected
        for c in conns:
            assert c.cmd("NOOP") == "250 2.0.0 Ok"
        closes = len(s.wait_log(r"ICID \d+ close$"))
        conns.pop().close()
        s.wait_log(r"ICID \d+ close$", count=closes + 1)
        with RawSMTP(s.port) as again:
            assert again.banner == "220 mx.test.example ESMTP Postern"
            assert again.cmd("NOOP") == "250 2.0.0 Ok"
    finally:
        for c in conns:
            c.close()
    s.wait_log(r"Warning: Connection refused address 127\.0\.0\.1 interface "
               r"inbound: max_connections_per_client reached")


# -------------------------------------------------------------- deadlines

def test_command_timeout(server_factory):
    s = server_factory(extra="limits = { command_timeout = 2; };").start()
    with RawSMTP(s.port) as c:
        c.ehlo()
        r, took = wait_reply_timed(c, 15)
        assert r == TIMEOUT_REPLY
        assert 1.5 <= took < 8, took
        assert c.closed()


def test_command_deadline_not_extended_by_slow_bytes(server_factory):
    s = server_factory(extra="limits = { command_timeout = 3; };").start()
    with RawSMTP(s.port) as c:
        c.ehlo()
        t0 = time.monotonic()
        text = b"NOOP NOOP NOOP NOOP NOOP"
        got = b""
        for b in text:
            try:
                c.send(bytes([b]))
            except (BrokenPipeError, ConnectionResetError):
                break
            c.sock.settimeout(1.0)
            try:
                got = c.sock.recv(4096)
            except socket.timeout:
                continue
            break
        took = time.monotonic() - t0
        c.buf = got
        c.sock.settimeout(5)
        assert c.reply() == TIMEOUT_REPLY
        assert took < 6.5, took
        assert c.closed()


def test_data_timeout(server_factory):
    s = server_factory(extra="limits = { data_timeout = 2; "
                       "data_block_timeout = 30; };").start()
    with RawSMTP(s.port) as c:
        start_data(c)
        t0 = time.monotonic()
        c.send(b"Subject: slow\r\n\r\n")
        reply = None
        for i in range(40):
            try:
                c.send(b"slow line %d\r\n" % i)
            except (BrokenPipeError, ConnectionResetError):
                break
            c.sock.settimeout(0.3)
            try:
                c.buf += c.sock.recv(4096)
            except socket.timeout:
                continue
            break
        c.sock.settimeout(5)
        reply = c.reply()
        took = time.monotonic() - t0
        assert reply == TIMEOUT_REPLY
        assert took < 8, took
        assert c.closed()
    s.wait_log(r"Message finished MID \d+ aborted$")
    assert queue_count(s) == 0
    assert all_maildir_files(s) == []
    assert "ready" not in s.log()


def test_data_block_timeout(server_factory):
    s = server_factory(extra="limits = { data_block_timeout = 2; };").start()
    with RawSMTP(s.port) as c:
        start_data(c)
        c.send(b"Subject: stalled\r\n\r\npart")
        r, took = wait_reply_timed(c, 15)
        assert r == TIMEOUT_REPLY
        assert took < 8, took
        assert c.closed()
    s.wait_log(r"Message finished MID \d+ aborted$")
    assert queue_count(s) == 0
