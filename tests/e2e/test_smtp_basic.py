"""SMTP server basics: greeting, EHLO keywords, delivery into the maildir,
the small commands, DSN/SMTPUTF8/CHUNKING, and access policy (postern-log(7),
SMTP REPLIES)."""
import os
import re
import shutil
import subprocess

import pytest

from conftest import (RawSMTP, all_maildir_files, make_config, queue_count,
                      queued_mid, read_bytes, settle, smtp_send)

BANNER = "220 mx.test.example ESMTP Postern"


def msg(subject, body="Hello there.\r\n", extra=""):
    return (f"From: Alice <alice@example.com>\r\nTo: bob@example.com\r\n"
            f"Subject: {subject}\r\nMessage-ID: <{subject}@client.test>\r\n"
            f"{extra}\r\n{body}")


def start_tx(c, sender="alice@example.com", rcpts=("bob@example.com",),
             mail_params=""):
    c.ehlo()
    c.cmd(f"MAIL FROM:<{sender}>{mail_params}", expect="250 2.1.0")
    for r in rcpts:
        c.cmd(f"RCPT TO:<{r}>", expect="250 2.1.5")


# ------------------------------------------------------------- greeting

def test_banner_exact(server):
    with RawSMTP(server.port) as c:
        assert c.banner == BANNER
        assert c.cmd("QUIT") == "221 2.0.0 Bye"
        assert c.closed()


def test_ehlo_keywords(server):
    with RawSMTP(server.port) as c:
        r = c.ehlo("client.test")
        lines = r.split("\n")
        assert lines[0] == "250-mx.test.example"
        assert all(ln.startswith("250-") for ln in lines[:-1])
        assert lines[-1].startswith("250 ")
        kws = [ln[4:] for ln in lines[1:]]
        for k in ("PIPELINING", "8BITMIME", "SMTPUTF8",
                  "ENHANCEDSTATUSCODES", "DSN", "CHUNKING"):
            assert k in kws, (k, kws)
        size = [k for k in kws if k.startswith("SIZE")]
        assert len(size) == 1 and re.fullmatch(r"SIZE \d+", size[0]), kws
        # Default policy max_message_size (postern.conf(5): 20971520).
        assert size[0] == "SIZE 20971520"
        # Not in this version (no TLS, no AUTH).
        assert not any(k.startswith("STARTTLS") for k in kws), kws
        assert not any(k.startswith("AUTH") for k in kws), kws


def test_ehlo_size_follows_policy(server_factory):
    s = server_factory(config=make_config(
        relayed='action = "relay"; max_message_size = 12345;')).start()
    with RawSMTP(s.port) as c:
        assert "\n250-SIZE 12345\n" in c.ehlo()


def test_helo(server):
    with RawSMTP(server.port) as c:
        assert c.cmd("HELO client.test") == "250 mx.test.example"
        # HELO session can still send mail (no ESMTP parameters).
        c.cmd("MAIL FROM:<alice@example.com>", expect="250 2.1.0")
        c.cmd("RCPT TO:<bob@example.com>", expect="250 2.1.5")
        c.cmd("DATA", expect=354)
        c.send(msg("helo") + ".\r\n")
        queued_mid(c.reply())
        # ESMTP parameters need EHLO.
        r = c.cmd("MAIL FROM:<alice@example.com> SIZE=100")
        assert r.startswith("555 5.5.4"), r
    f = server.wait_maildir("example.com", "bob")
    assert b"with SMTP id" in read_bytes(f[0])


def test_mail_before_helo_refused(server):
    with RawSMTP(server.port) as c:
        r = c.cmd("MAIL FROM:<alice@example.com>")
        assert r.startswith("503 5.5.1"), r


# ------------------------------------------------------------- delivery

def test_smtplib_delivery_to_maildir(server):
    body = ("First line.\r\n\r\nSecond paragraph with trailing space \r\n"
            "Tab\tinside\r\nlast line\r\n")
    code, reply = smtp_send(server, "alice@example.com", ["bob@example.com"],
                            msg("delivery1", body))
    assert code == 250
    mid = queued_mid(reply)
    files = server.wait_maildir("example.com", "bob")
    assert len(files) == 1
    assert os.path.dirname(files[0]) == os.path.join(
        server.data, "mail", "example.com", "bob", "new")
    data = read_bytes(files[0]).decode()
    lines = data.split("\n")
    assert lines[0] == "Return-Path: <alice@example.com>"
    assert lines[1].startswith("Received: from client.test ")
    assert "127.0.0.1" in lines[1]
    assert f"by mx.test.example (Postern) with ESMTP id {mid}" in data
    assert "for <bob@example.com>" in data
    assert "Subject: delivery1\n" in data
    # Body intact (maildir stores LF line ends).
    assert data.endswith("\n\n" + body.replace("\r\n", "\n"))
    server.wait_log(rf"Info: MID {mid} ready \d+ bytes from <alice@example\.com>$")
    server.wait_log(rf"Info: Message finished MID {mid} done$")


def test_mid_matches_log(server):
    mids = []
    for i in range(2):
        code, reply = smtp_send(server, "alice@example.com",
                                ["bob@example.com"], msg(f"mid{i}"))
        mids.append(queued_mid(reply))
    assert mids[1] > mids[0]
    for m in mids:
        server.wait_log(rf"Info: Start MID {m} ICID \d+$")
        server.wait_log(rf"Info: MID {m} Subject 'mid\d'$")
    server.wait_maildir("example.com", "bob", 2)


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks missing")
def test_swaks_delivery(server):
    p = subprocess.run(
        ["swaks", "--server", "127.0.0.1", "--port", str(server.port),
         "--helo", "swaks.test", "--from", "alice@example.com",
         "--to", "carol@example.com", "--header", "Subject: via swaks",
         "--body", "swaks body line"],
        capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stdout + p.stderr
    m = re.search(r"<-\s+250 2\.0\.0 Ok: queued as (\d+)", p.stdout)
    assert m, p.stdout
    files = server.wait_maildir("example.com", "carol")
    data = read_bytes(files[0]).decode()
    assert "Subject: via swaks" in data
    assert "swaks body line" in data
    assert f"id {m.group(1)}" in data


def test_multiple_recipients_one_copy_each(server):
    users = ["alice", "bob", "carol"]
    code, reply = smtp_send(server, "dave@example.com",
                            [f"{u}@example.com" for u in users],
                            msg("multi"))
    mid = queued_mid(reply)
    for u in users:
        files = server.wait_maildir("example.com", u)
        assert len(files) == 1, files
        data = read_bytes(files[0]).decode()
        assert "Subject: multi" in data
        assert "Return-Path: <dave@example.com>" in data
    server.wait_log(rf"Info: Message finished MID {mid} done$")
    for rid, u in enumerate(users):
        server.wait_log(rf"Info: MID {mid} ICID \d+ RID {rid} To: "
                        rf"<{u}@example\.com>$")
    assert len(all_maildir_files(server)) == 3


def test_null_sender(server):
    with RawSMTP(server.port) as c:
        start_tx(c, sender="")
        c.cmd("DATA", expect=354)
        c.send(msg("bounce") + ".\r\n")
        queued_mid(c.reply())
    f = server.wait_maildir("example.com", "bob")
    assert read_bytes(f[0]).startswith(b"Return-Path: <>\n")


# ------------------------------------------------------- small commands

def test_rset_noop_vrfy_help_unknown(server):
    with RawSMTP(server.port) as c:
        c.ehlo()
        assert c.cmd("NOOP") == "250 2.0.0 Ok"
        r = c.cmd("VRFY bob")
        assert r.startswith("252 2.0.0 "), r
        r = c.cmd("HELP")
        assert r.startswith("214 2.0.0 "), r
        assert c.cmd("FOOBAR") == "500 5.5.2 Error: command not recognized"
        c.cmd("MAIL FROM:<alice@example.com>", expect="250 2.1.0")
        assert c.cmd("RSET") == "250 2.0.0 Ok"
        # the transaction is gone
        r = c.cmd("RCPT TO:<bob@example.com>")
        assert r.startswith("503 5.5.1"), r
        r = c.cmd("DATA")
        assert r.startswith("503 5.5.1"), r
        # and a new one can start
        c.cmd("MAIL FROM:<alice@example.com>", expect="250 2.1.0")
        assert c.cmd("QUIT") == "221 2.0.0 Bye"
        assert c.closed()
    server.wait_log(r"Message finished MID \d+ aborted$")


def test_dsn_parameters_accepted(server):
    with RawSMTP(server.port) as c:
        c.ehlo()
        c.cmd("MAIL FROM:<alice@example.com> RET=HDRS ENVID=QQ314159",
              expect="250 2.1.0")
        c.cmd("RCPT TO:<bob@example.com> NOTIFY=SUCCESS,FAILURE "
              "ORCPT=rfc822;bob@example.com", expect="250 2.1.5")
        c.cmd("RCPT TO:<carol@example.com> NOTIFY=NEVER", expect="250 2.1.5")
        c.cmd("DATA", expect=354)
        c.send(msg("dsn") + ".\r\n")
        queued_mid(c.reply())
        # BODY and SIZE too
        c.cmd("MAIL FROM:<alice@example.com> BODY=8BITMIME SIZE=1000 "
              "RET=FULL", expect="250 2.1.0")
    server.wait_maildir("example.com", "bob")
    server.wait_maildir("example.com", "carol")


def test_smtputf8_address(server):
    user = "j\u00f6rg"
    with RawSMTP(server.port) as c:
        c.ehlo()
        c.cmd("MAIL FROM:<alice@example.com>", expect="250 2.1.0")
        r = c.cmd(f"RCPT TO:<{user}@example.com>")
        assert r.startswith("553 5.6.7"), r
        c.cmd("RSET", expect=250)
        c.cmd("MAIL FROM:<alice@example.com> SMTPUTF8", expect="250 2.1.0")
        c.cmd(f"RCPT TO:<{user}@example.com>", expect="250 2.1.5")
        c.cmd("DATA", expect=354)
        c.send(msg("utf8", "Gr\u00fc\u00dfe\r\n") + ".\r\n")
        queued_mid(c.reply())
    files = server.wait_maildir("example.com", user)
    data = read_bytes(files[0]).decode()
    assert "with UTF8SMTP id" in data
    assert data.endswith("Gr\u00fc\u00dfe\n")


# -------------------------------------------------------------- CHUNKING

def test_bdat_chunks(server):
    part1 = (msg("bdat", "") + "first half of a line ").encode()
    # chunk boundary between CR and LF
    part1 += b"ends here\r"
    part2 = b"\n.leading dot is not stuffing in BDAT\r\nlast\r\n"
    with RawSMTP(server.port) as c:
        start_tx(c)
        c.send(f"BDAT {len(part1)}\r\n".encode() + part1)
        assert c.reply() == f"250 2.0.0 Ok: {len(part1)} octets received"
        c.send(f"BDAT {len(part2)} LAST\r\n".encode() + part2)
        mid = queued_mid(c.reply())
    files = server.wait_maildir("example.com", "bob")
    data = read_bytes(files[0]).decode()
    assert f"id {mid}" in data
    assert data.endswith("\n\nfirst half of a line ends here\n"
                         ".leading dot is not stuffing in BDAT\nlast\n")


def test_bdat_pipelined_with_empty_last(server):
    body = (msg("bdat2", "one\r\ntwo\r\n")).encode()
    with RawSMTP(server.port) as c:
        c.ehlo()
        c.send(b"MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.com>\r\n"
               + f"BDAT {len(body)}\r\n".encode() + body + b"BDAT 0 LAST\r\n")
        assert c.reply().startswith("250 2.1.0")
        assert c.reply().startswith("250 2.1.5")
        assert c.reply() == f"250 2.0.0 Ok: {len(body)} octets received"
        queued_mid(c.reply())
    data = read_bytes(server.wait_maildir("example.com", "bob")[0]).decode()
    assert data.endswith("\n\none\ntwo\n")


def test_data_after_bdat_refused(server):
    with RawSMTP(server.port) as c:
        start_tx(c)
        c.send(b"BDAT 5\r\nabc\r\n")
        assert c.reply().startswith("250 2.0.0 ")
        r = c.cmd("DATA")
        assert r.startswith("503 5.5.1"), r
        # the BDAT transaction can still be completed properly
        c.send(b"BDAT 14 LAST\r\nSubject: x\r\n\r\n")
        queued_mid(c.reply())
    server.wait_maildir("example.com", "bob")


def test_bdat_without_transaction_refused(server):
    with RawSMTP(server.port) as c:
        c.ehlo()
        c.send(b"BDAT 4 LAST\r\nabcd")
        r = c.reply()
        assert r.startswith("503 5.5.1"), r
        assert c.cmd("NOOP") == "250 2.0.0 Ok"
    assert queue_count(server) == 0


# ---------------------------------------------------------------- policy

def test_relay_denied_for_accept_policy(server_factory):
    s = server_factory(config=make_config(local_policy="accepted")).start()
    with RawSMTP(s.port) as c:
        c.ehlo()
        c.cmd("MAIL FROM:<alice@example.com>", expect="250 2.1.0")
        assert c.cmd("RCPT TO:<someone@remote.example>") == \
            "550 5.7.1 Relaying denied"
        # a local domain is still accepted in the same transaction
        c.cmd("RCPT TO:<bob@example.com>", expect="250 2.1.5")
    s.wait_log(r"ICID \d+ ACCEPT SG RELAYLIST match 127\.0\.0\.1/32$")
    s.wait_log(r"To: <someone@remote\.example> rejected: 550 5\.7\.1 "
               r"Relaying denied$")


def test_relay_policy_accepts_remote_rcpt(server):
    with RawSMTP(server.port) as c:
        c.ehlo()
        c.cmd("MAIL FROM:<alice@example.com>", expect="250 2.1.0")
        c.cmd("RCPT TO:<someone@remote.example>", expect="250 2.1.5")


def test_reject_policy_access_denied(server_factory):
    s = server_factory(config=make_config(
        accepted='action = "reject";', local_policy="accepted")).start()
    with RawSMTP(s.port) as c:
        assert c.banner == "554 5.7.1 Access denied"
        assert c.cmd("EHLO client.test") == "554 5.7.1 Access denied"
        assert c.cmd("MAIL FROM:<alice@example.com>") == \
            "554 5.7.1 Access denied"
        assert c.cmd("QUIT") == "221 2.0.0 Bye"
        assert c.closed()
    s.wait_log(r"ICID \d+ REJECT SG RELAYLIST match 127\.0\.0\.1/32$")


def test_tcprefuse_closes_without_banner(server_factory):
    s = server_factory(config=make_config(
        accepted='action = "tcprefuse";', local_policy="accepted"))
    s.start()       # the port accepts (then closes) connections
    c = RawSMTP(s.port, banner=False)
    with c:
        assert c.closed(timeout=10)
        assert c.buf == b""
    s.wait_log(r"TCP refused address 127\.0\.0\.1 interface inbound SG "
               r"RELAYLIST")
    assert "New SMTP ICID" not in s.log()


# ------------------------------------------------------------ recipients

def test_postmaster_without_domain(server):
    with RawSMTP(server.port) as c:
        start_tx(c, rcpts=())
        c.cmd("RCPT TO:<postmaster>", expect="250 2.1.5")
        c.cmd("RCPT TO:<Postmaster>", expect="250 2.1.5")
        c.cmd("DATA", expect=354)
        c.send(msg("pm") + ".\r\n")
        queued_mid(c.reply())
    files = server.wait_maildir("example.com", "postmaster", 2)
    assert len(files) == 2


def test_unknown_users_rejected(server_factory):
    s = server_factory(config=make_config(example_route=(
        'domain = "example.com"; maildir = "data/mail/%d/%u"; '
        'unknown_users = "reject"; users = [ "alice" ];'))).start()
    with RawSMTP(s.port) as c:
        c.ehlo()
        c.cmd("MAIL FROM:<x@example.com>", expect="250 2.1.0")
        r = c.cmd("RCPT TO:<bob@example.com>")
        assert r.startswith("550 5.1.1 "), r
        c.cmd("RCPT TO:<alice@example.com>", expect="250 2.1.5")
        c.cmd("RCPT TO:<ALICE@example.com>", expect="250 2.1.5")
        c.cmd("DATA", expect=354)
        c.send(msg("known") + ".\r\n")
        queued_mid(c.reply())
    s.wait_maildir("example.com", "alice", 2)
    assert s.maildir_files("example.com", "bob") == []


@pytest.mark.parametrize("local", [
    "../../etc", '"../../etc"', '"../x"', "..", ".hidden", "a/b",
    "x/../../../../tmp/pwn", '"a/../../b"', '"\\/etc"',
])
def test_path_traversal_local_part_refused(server, local):
    before = set()
    for dirpath, dirs, files in os.walk(server.dir):
        before.update(os.path.join(dirpath, x) for x in dirs + files)
    with RawSMTP(server.port) as c:
        c.ehlo()
        c.cmd("MAIL FROM:<alice@example.com>", expect="250 2.1.0")
        r = c.cmd(f"RCPT TO:<{local}@example.com>")
        assert r[0] == "5", r
        # a good recipient in the same message still works
        c.cmd("RCPT TO:<bob@example.com>", expect="250 2.1.5")
        c.cmd("DATA", expect=354)
        c.send(msg("traversal") + ".\r\n")
        mid = queued_mid(c.reply())
    server.wait_log(rf"Message finished MID {mid} done$")
    mail_root = os.path.join(server.data, "mail")
    assert all_maildir_files(server) == server.maildir_files(
        "example.com", "bob")
    assert len(all_maildir_files(server)) == 1
    # only the maildir of bob was created, nothing elsewhere
    after = set()
    for dirpath, dirs, files in os.walk(server.dir):
        after.update(os.path.join(dirpath, x) for x in dirs + files)
    for p in after - before:
        if p.startswith(mail_root + os.sep):
            rel = os.path.relpath(p, mail_root).split(os.sep)
            assert rel[:2] == ["example.com", "bob"][:len(rel)], p
        else:
            assert p.startswith(os.path.join(server.data, "")), p
    assert not os.path.exists(os.path.join(server.data, "etc"))
    assert not os.path.exists(os.path.join(server.dir, "etc"))
    assert not os.path.exists(os.path.join(server.dir, "tmp"))
    settle(server)
