"""SMTP smuggling: only <CRLF>.<CRLF> ends DATA; bare LF / bare CR are
refused (default) or normalised to CRLF, never passed on raw (postern.conf(5),
limits.bare_line_ends)."""
import re

import pytest

from conftest import (RawSMTP, all_maildir_files, queue_count, queued_mid,
                      read_bytes, settle, smtp_send)

BARE = "550 5.5.2 Bare LF or CR not allowed in message"

SMUGGLED = (b"MAIL FROM:<evil@x>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n"
            b"Subject: smuggled\r\n\r\nevil payload")

VARIANTS = {
    "bare_lf": b"\n",
    "bare_cr": b"\r",
    "lf_dot_crlf": b"\n.\r\n",
    "cr_dot_cr": b"\r.\r",
    "crlf_dot_lf": b"\r\n.\n",
    "lf_dot_lf": b"\n.\n",
    "crlf_dot_cr": b"\r\n.\r",
    "cr_dot_crlf": b"\r.\r\n",
}


def smuggle_payload(variant):
    return (b"From: alice@example.com\r\nTo: bob@example.com\r\n"
            b"Subject: carrier\r\n\r\nhello" + VARIANTS[variant] + SMUGGLED +
            b"\r\n.\r\n")


def start_data(c):
    c.ehlo()
    c.cmd("MAIL FROM:<alice@example.com>", expect="250 2.1.0")
    c.cmd("RCPT TO:<bob@example.com>", expect="250 2.1.5")
    c.cmd("DATA", expect=354)


def barrier(c, subject="barrier"):
    """A good message in the same session; returns its MID."""
    c.cmd("MAIL FROM:<alice@example.com>", expect="250 2.1.0")
    c.cmd("RCPT TO:<bob@example.com>", expect="250 2.1.5")
    c.cmd("DATA", expect=354)
    c.send(f"Subject: {subject}\r\n\r\nfine\r\n.\r\n")
    return queued_mid(c.reply())


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_bare_line_ends_rejected(server, variant):
    with RawSMTP(server.port) as c:
        start_data(c)
        c.send(smuggle_payload(variant))
        assert c.reply() == BARE
        # Nothing of the smuggled commands was read as a command: the next
        # reply is the answer to NOOP, and no stray reply is pending.
        assert c.cmd("NOOP") == "250 2.0.0 Ok"
        mid = barrier(c)
        assert c.cmd("QUIT") == "221 2.0.0 Bye"
        assert c.closed()
        assert c.buf == b""
    server.wait_log(rf"Message finished MID {mid} done$")
    files = server.wait_maildir("example.com", "bob")
    assert len(files) == 1
    data = read_bytes(files[0])
    assert b"Subject: barrier\n" in data
    assert b"evil" not in data and b"carrier" not in data
    assert all_maildir_files(server) == files
    log = server.log()
    assert re.search(rf"MID \d+ rejected: {BARE}$", log, re.M), log
    # exactly two transactions were started: the carrier and the barrier
    assert len(re.findall(r"Start MID \d+", log)) == 2, log
    assert "<evil@x>" not in log
    assert len(re.findall(r"ready \d+ bytes", log)) == 1
    assert queue_count(server) == 0


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_bare_line_ends_rejected_with_bdat(server, variant):
    """CHUNKING: a bare CR/LF inside BDAT content is refused as well."""
    content = smuggle_payload(variant)[:-3]     # no end-of-data in BDAT
    with RawSMTP(server.port) as c:
        c.ehlo()
        c.cmd("MAIL FROM:<alice@example.com>", expect="250 2.1.0")
        c.cmd("RCPT TO:<bob@example.com>", expect="250 2.1.5")
        c.send(f"BDAT {len(content)} LAST\r\n".encode() + content)
        assert c.reply() == BARE
        assert c.cmd("NOOP") == "250 2.0.0 Ok"
    settle(server)
    assert all_maildir_files(server) == []
    assert "ready" not in server.log()


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_bare_line_ends_normalized(server_factory, variant):
    s = server_factory(extra='limits = { bare_line_ends = "normalize"; };')
    s.start()
    with RawSMTP(s.port) as c:
        start_data(c)
        c.send(smuggle_payload(variant))
        mid = queued_mid(c.reply())
        assert c.cmd("NOOP") == "250 2.0.0 Ok"
        mid2 = barrier(c)
        assert mid2 > mid
        assert c.cmd("QUIT") == "221 2.0.0 Bye"
        assert c.closed()
        assert c.buf == b""
    s.wait_log(rf"Message finished MID {mid2} done$")
    files = s.wait_maildir("example.com", "bob", 2)
    assert len(files) == 2 and all_maildir_files(s) == files
    carrier = [read_bytes(f) for f in files if b"carrier" in read_bytes(f)]
    assert len(carrier) == 1
    data = carrier[0]
    # maildir uses LF line ends: no CR survives normalisation
    assert b"\r" not in data
    # the smuggled text stayed inside the one message body
    assert b"MAIL FROM:<evil@x>\nRCPT TO:<bob@example.com>\nDATA\n" in data
    assert data.endswith(b"evil payload\n")
    head, _, text = data.partition(b"\n\n")
    assert b"Subject: carrier" in head
    assert text.startswith(b"hello")
    log = s.log()
    assert len(re.findall(r"Start MID \d+", log)) == 2, log
    assert "<evil@x>" not in log
    # the spool copy is gone and no other message appeared
    assert queue_count(s) == 0


def test_dot_stuffing_round_trip(server):
    body = ("normal line\r\n.starts with a dot\r\n..two dots\r\n.\tdot tab\r\n"
            ". dot space\r\nend\r\n")
    code, reply = smtp_send(server, "alice@example.com", ["bob@example.com"],
                            "Subject: dots\r\n\r\n" + body)
    queued_mid(reply)
    data = read_bytes(server.wait_maildir("example.com", "bob")[0]).decode()
    assert data.endswith("\n\n" + body.replace("\r\n", "\n"))


def test_raw_dot_stuffing_and_lone_dot_inside(server):
    """A stuffed lone dot ("..") is content, not the end of data."""
    with RawSMTP(server.port) as c:
        start_data(c)
        c.send(b"Subject: lone\r\n\r\nbefore\r\n..\r\nafter\r\n...x\r\n.\r\n")
        queued_mid(c.reply())
    data = read_bytes(server.wait_maildir("example.com", "bob")[0])
    assert data.endswith(b"\n\nbefore\n.\nafter\n..x\n")


def test_end_of_data_split_across_writes(server):
    """<CRLF>.<CRLF> split over several TCP segments still ends DATA."""
    with RawSMTP(server.port) as c:
        start_data(c)
        for piece in (b"Subject: split\r\n\r\nbody\r", b"\n", b".", b"\r",
                      b"\n"):
            c.send(piece)
        queued_mid(c.reply())
        assert c.cmd("NOOP") == "250 2.0.0 Ok"
    data = read_bytes(server.wait_maildir("example.com", "bob")[0])
    assert data.endswith(b"\n\nbody\n")
