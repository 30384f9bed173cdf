"""Outbound SMTP delivery (postern.conf(5) routes and delivery, postern-log(7)): routes to
[IP]:port, MX delivery through resolver.local_data, several messages per
connection and several recipients per transaction, per-recipient
failures with DSNs (RFC 3464), retries of temporary failures, the queue
lifetime, null MX (RFC 7505).

The next hops are the test peers of peers.py (SMTPPeer, and postfix's
smtp-sink as an independent implementation), all on 127.0.0.0/8.  The
Postern under test has retry_min = 1 s, so every "later" below is a
bounded wait, never a sleep.  TLS policy is in test_delivery_tls.py.
"""
import re

import pytest

from conftest import all_maildir_files, queue_count, read_bytes, settle
# peer_factory, pki and sink_factory are fixtures
from peers import (EHLO_NAME, bounced_rx, delayed_rx, dsn_parts, log_lines, make_message,  # noqa: F401
                   new_smtp_dcid, parse_mail, peer_factory, pki,
                   reserve_port, rids, send, sink_factory, squash,
                   start_delivery_server, strip_trace, text_of, wait_done,
                   wait_queued_attempts)

WAIT = 20.0          # bound for anything that needs one delivery attempt
RETRY_WAIT = 30.0    # bound for anything that needs a retry


def relay_server(server_factory, pki, port, **cfg):
    """Postern with relay.test routed to [127.0.0.1]:port."""
    return start_delivery_server(server_factory, pki, relay_port=port, **cfg)


def bounce_of(server, mid, timeout=WAIT):
    """The MID of the DSN made for `mid`, from
    `Bounce MID n for MID mid to <alice@example.com>`."""
    return int(server.wait_log(
        rf"Bounce MID (\d+) for MID {mid} to <alice@example\.com>",
        timeout=timeout)[0])


def assert_rcpt_line(block, rcpt, error_part):
    """`queue list` shows an indented recipient line with its attempts
    and the last error."""
    rx = (rf"^\s+.*<{re.escape(rcpt)}>.*\battempts \d+.*last error"
          rf".*{error_part}")
    assert re.search(rx, block, re.M), block


# ---------------------------------------------------------------------------
# 1. Route [127.0.0.1]:P to a plain peer


DOTTY_BODY = ("first line\r\n.leading dot\r\n..two dots\r\n.\r\n"
              ". dot space\r\n...\r\nlast line\r\n")


def test_route_delivers_exact_message_and_logs(server_factory, pki,
                                               peer_factory):
    peer = peer_factory()
    s = relay_server(server_factory, pki, peer.port)
    msg = make_message("route-plain", DOTTY_BODY)
    mid = send(s, "bob@relay.test", msg=msg)

    got = peer.wait_messages(1, WAIT)[0]
    dcid, resp = wait_done(s, mid)
    assert resp.startswith("250 ") and "queued as P1" in resp, resp
    s.wait_log(rf"Message finished MID {mid} done", timeout=WAIT)

    # envelope and content, dot-stuffing transparent both ways
    assert got.mail_from == "alice@example.com"
    assert got.rcpts == ["bob@relay.test"]
    assert got.ehlo == EHLO_NAME
    assert not got.tls
    strip_trace(got.data, msg.encode())

    # log lines of the delivery connection
    ln = new_smtp_dcid(s, dcid)
    assert re.search(rf"New SMTP DCID {dcid} interface 127\.0\.0\.1 "
                     rf"address 127\.0\.0\.1 port {peer.port}$", ln), ln
    assert log_lines(s, rf"Info: Delivery start DCID {dcid} MID {mid} "
                        rf"to RID \[0\]$"), s.log()
    assert queue_count(s) == 0
    assert s.cli("queue", "list").stdout == ""


def test_one_mebibyte_message_with_dot_lines(server_factory, pki,
                                             peer_factory):
    peer = peer_factory()
    s = relay_server(server_factory, pki, peer.port)
    lines = []
    i = 0
    while sum(len(x) for x in lines) < 1024 * 1024 + 100:
        lead = "." if i % 7 == 0 else ("" if i % 5 else "..")
        lines.append(f"{lead}{i:07d} " + "abcdefghij" * 6 + "\r\n")
        i += 1
    lines.append(".\r\n")                  # a line that is just a dot
    lines.append("the end\r\n")
    msg = make_message("big-one", "".join(lines))
    assert len(msg) > 1024 * 1024
    mid = send(s, "bob@relay.test", msg=msg)
    got = peer.wait_messages(1, WAIT)[0]
    wait_done(s, mid)
    strip_trace(got.data, msg.encode())
    settle(s, WAIT)


def test_route_to_smtp_sink(server_factory, pki, sink_factory):
    """An independent next hop (postfix's smtp-sink) gets the same
    message; its dumps have LF line ends."""
    sink = sink_factory()
    s = relay_server(server_factory, pki, sink.port)
    msg = make_message("to-sink", DOTTY_BODY + "SINK-END\r\n")
    mid = send(s, ["bob@relay.test", "carol@relay.test"], msg=msg)
    wait_done(s, mid, "[0, 1]")
    got = sink.wait_messages(1, WAIT, marker=b"SINK-END")[0]
    assert got.helo == EHLO_NAME
    assert got.mail_args.startswith("<alice@example.com>")
    assert [a.split()[0] for a in got.rcpt_args] == [
        "<bob@relay.test>", "<carol@relay.test>"]
    strip_trace(got.body.replace(b"\n", b"\r\n"), msg.encode())
    settle(s, WAIT)


def test_queued_messages_share_connections(server_factory, pki,
                                           peer_factory):
    """Messages for one destination that are due at once go over fewer
    connections than messages."""
    peer = peer_factory()
    s = relay_server(server_factory, pki, peer.port)
    p = s.cli("queue", "pause")
    assert p.returncode == 0, p.stderr
    n = 10
    mids = [send(s, "bob@relay.test", subject=f"batch-{i}") for i in range(n)]
    assert queue_count(s) == n
    p = s.cli("queue", "resume")
    assert p.returncode == 0, p.stderr
    got = peer.wait_messages(n, RETRY_WAIT)
    for mid in mids:
        wait_done(s, mid)
    subjects = sorted(re.search(rb"Subject: (batch-\d+)", m.data).group(1)
                      for m in got)
    assert subjects == sorted(f"batch-{i}".encode() for i in range(n))
    assert peer.connections < n, peer.connections
    assert len({m.conn for m in got}) < n
    settle(s, WAIT)


def test_idle_connection_is_reused_for_the_next_message(server_factory,
                                                        pki, peer_factory):
    """A message that arrives while the last connection to its destination
    is still held open (2 s) goes over that same connection."""
    peer = peer_factory()
    s = relay_server(server_factory, pki, peer.port)
    dcids = []
    for i in range(3):
        mid = send(s, "bob@relay.test", subject=f"seq-{i}")
        dcid, _resp = wait_done(s, mid)
        dcids.append(dcid)
    peer.wait_messages(3, WAIT)
    assert len(set(dcids)) == 1, dcids
    assert peer.connections == 1, peer.connections
    settle(s, WAIT)


def test_several_recipients_one_transaction(server_factory, pki,
                                            peer_factory):
    peer = peer_factory()
    s = relay_server(server_factory, pki, peer.port)
    mid = send(s, ["bob@relay.test", "carol@relay.test"], subject="two-rcpt")
    dcid, _resp = wait_done(s, mid, "[0, 1]")
    got = peer.wait_messages(1, WAIT)
    assert len(got) == 1
    assert got[0].rcpts == ["bob@relay.test", "carol@relay.test"]
    assert peer.verbs().count("DATA") == 1
    assert log_lines(s, rf"Delivery start DCID {dcid} MID {mid} to RID "
                        rf"{rids(0, 1)}$"), s.log()
    s.wait_log(rf"Message finished MID {mid} done", timeout=WAIT)
    settle(s, WAIT)


# ---------------------------------------------------------------------------
# 2. Permanent failure of one recipient: DSN


REFUSED = "550 5.1.1 <nobody@relay.test>: Recipient address rejected"


def test_refused_recipient_bounces_with_dsn(server_factory, pki,
                                            peer_factory):
    peer = peer_factory(rcpt_replies={"nobody@relay.test": REFUSED})
    s = relay_server(server_factory, pki, peer.port)
    msg = make_message("bounce-one", "the original body\r\n")
    mid = send(s, ["bob@relay.test", "nobody@relay.test"], msg=msg)

    wait_done(s, mid, "[0]")
    reason = s.wait_log(bounced_rx(mid, "[1]"), timeout=WAIT)[0]
    assert reason.startswith("550 5.1.1 "), reason
    assert log_lines(s, rf"Bounced: DCID \d+ MID {mid} to RID \[1\] - "
                        rf"550 5\.1\.1 ")
    got = peer.wait_messages(1, WAIT)
    assert len(got) == 1 and got[0].rcpts == ["bob@relay.test"]

    bmid = bounce_of(s, mid)
    assert bmid != mid
    files = s.wait_maildir("example.com", "alice", 1, timeout=WAIT)
    assert len(files) == 1
    dsn = parse_mail(files[0])
    assert "MAILER-DAEMON" in dsn.get("From", ""), dsn.get("From")
    status, headers = dsn_parts(dsn)
    assert re.search(r"^Final-Recipient:\s*rfc822;\s*<?nobody@relay\.test>?",
                     status, re.M | re.I), status
    assert re.search(r"^Action:\s*failed\s*$", status, re.M | re.I), status
    assert re.search(r"^Status:\s*5\.1\.1\s*$", status, re.M), status
    assert "bob@relay.test" not in status, status     # only the failed one
    assert headers is not None, "no text/rfc822-headers part"
    assert "Subject: bounce-one" in headers
    assert "Message-ID: <bounce-one@client.test>" in headers
    s.wait_log(rf"Message finished MID {mid}\b", timeout=WAIT)
    settle(s, WAIT)


def test_null_sender_bounce_makes_no_dsn(server_factory, pki, peer_factory):
    peer = peer_factory(rcpt_replies={"nobody@relay.test": REFUSED})
    s = relay_server(server_factory, pki, peer.port)
    mid0 = send(s, "nobody@relay.test", sender="",
                msg=make_message("from-null", sender=None,
                                 to="nobody@relay.test"))
    s.wait_log(bounced_rx(mid0), timeout=WAIT)
    # barrier: a second refused message, from alice, must get its DSN;
    # by then a DSN for the first would have been made as well
    mid1 = send(s, "nobody@relay.test", subject="from-alice")
    s.wait_log(bounced_rx(mid1), timeout=WAIT)
    bounce_of(s, mid1)
    files = s.wait_maildir("example.com", "alice", 1, timeout=WAIT)
    settle(s, WAIT)
    assert all_maildir_files(s) == files, all_maildir_files(s)
    assert not log_lines(s, rf"Bounce MID \d+ for MID {mid0}\b"), s.log()
    assert peer.messages == []


# ---------------------------------------------------------------------------
# 3. Temporary failures and retries


@pytest.mark.parametrize("stage,reply", [
    ("RCPT", "451 4.3.0 Try again later"),
    ("MAIL", "421 4.3.2 Service shutting down"),
])
def test_temporary_reply_then_delivered_on_retry(server_factory, pki,
                                                 peer_factory, stage, reply):
    peer = peer_factory(replies={stage: reply})
    s = relay_server(server_factory, pki, peer.port)
    mid = send(s, "bob@relay.test", subject="tempfail")
    reason = s.wait_log(delayed_rx(mid), timeout=WAIT)[0]
    assert reply in reason, reason
    block = wait_queued_attempts(s, mid, 1, timeout=WAIT)
    assert_rcpt_line(block, "bob@relay.test", re.escape(reply[:9]))
    assert peer.messages == []

    peer.set_reply(stage, None)
    wait_done(s, mid, timeout=RETRY_WAIT)
    got = peer.wait_messages(1, WAIT)
    assert got[0].rcpts == ["bob@relay.test"]
    s.wait_log(rf"Message finished MID {mid} done", timeout=WAIT)
    settle(s, WAIT)


def test_peer_down_then_up(server_factory, pki, peer_factory):
    port = reserve_port()
    peer = peer_factory(start=False, port=port)
    s = relay_server(server_factory, pki, port)
    mid = send(s, "bob@relay.test", subject="down-up")
    s.wait_log(
        rf"Connection Error: DCID \d+ domain: relay\.test IP: 127\.0\.0\.1 "
        rf"port: {port} details: .+ reason: .+$", timeout=WAIT)
    s.wait_log(delayed_rx(mid), timeout=WAIT)
    block = wait_queued_attempts(s, mid, 1, timeout=WAIT)
    assert_rcpt_line(block, "bob@relay.test", "")

    peer.start()
    wait_done(s, mid, timeout=RETRY_WAIT)
    assert peer.wait_messages(1, WAIT)[0].rcpts == ["bob@relay.test"]
    settle(s, WAIT)


def test_peer_accepts_then_closes_then_recovers(server_factory, pki,
                                                peer_factory):
    peer = peer_factory(accept_close=True)
    s = relay_server(server_factory, pki, peer.port)
    mid = send(s, "bob@relay.test", subject="accept-close")
    s.wait_log(delayed_rx(mid), timeout=WAIT)
    assert peer.connections >= 1
    block = wait_queued_attempts(s, mid, 1, timeout=WAIT)
    assert_rcpt_line(block, "bob@relay.test", "")
    peer.accept_close = False
    wait_done(s, mid, timeout=RETRY_WAIT)
    assert len(peer.wait_messages(1, WAIT)) == 1
    settle(s, WAIT)


def test_queue_retry_triggers_immediate_attempt(server_factory, pki,
                                                peer_factory):
    """With retries 10 minutes apart, only `postern queue retry` can make
    the next attempt happen within the test."""
    port = reserve_port()
    peer = peer_factory(start=False, port=port)
    s = relay_server(server_factory, pki, port, delivery=(
        "retry_min = 600; retry_max = 600; max_queue_lifetime = 3600;"))
    mid = send(s, "bob@relay.test", subject="retry-now")
    s.wait_log(delayed_rx(mid), timeout=WAIT)
    wait_queued_attempts(s, mid, 1, timeout=WAIT)
    peer.start()
    p = s.cli("queue", "retry", str(mid))
    assert p.returncode == 0, p.stdout + p.stderr
    wait_done(s, mid, timeout=WAIT)
    assert len(peer.wait_messages(1, WAIT)) == 1
    settle(s, WAIT)


# ---------------------------------------------------------------------------
# 4. Queue lifetime


def test_queue_lifetime_bounces(server_factory, pki):
    port = reserve_port()                     # nothing ever listens there
    s = relay_server(server_factory, pki, port, delivery=(
        "retry_min = 1; retry_max = 1; max_queue_lifetime = 3;"))
    mid = send(s, "bob@relay.test", subject="too-old")
    s.wait_log(delayed_rx(mid), timeout=WAIT)
    reason = s.wait_log(bounced_rx(mid), timeout=RETRY_WAIT)[0]
    assert re.search(r"lifetime|expired|too long", reason, re.I), reason
    bounce_of(s, mid)
    files = s.wait_maildir("example.com", "alice", 1, timeout=WAIT)
    status, headers = dsn_parts(parse_mail(files[0]))
    assert re.search(r"^Final-Recipient:\s*rfc822;\s*<?bob@relay\.test>?",
                     status, re.M | re.I), status
    assert re.search(r"^Action:\s*failed\s*$", status, re.M | re.I), status
    assert "Subject: too-old" in (headers or "")
    settle(s, WAIT)


# ---------------------------------------------------------------------------
# 5. MX delivery (resolver.local_data)


def test_mx_lowest_preference_first(server_factory, pki, peer_factory):
    mx1 = peer_factory(host="127.0.0.2", port=25)
    mx2 = peer_factory(host="127.0.0.3", port=25)
    s = start_delivery_server(server_factory, pki)
    mid = send(s, "x@mxtest.example", subject="mx-pref")
    got = mx1.wait_messages(1, WAIT)[0]
    dcid, _ = wait_done(s, mid)
    assert got.rcpts == ["x@mxtest.example"]
    assert mx2.connections == 0
    assert re.search(r"address 127\.0\.0\.2 port 25$", new_smtp_dcid(s, dcid))
    settle(s, WAIT)


def test_mx_falls_back_to_next_preference(server_factory, pki,
                                          peer_factory):
    mx2 = peer_factory(host="127.0.0.3", port=25)   # 127.0.0.2:25 is down
    s = start_delivery_server(server_factory, pki)
    mid = send(s, "x@mxtest.example", subject="mx-fallback")
    got = mx2.wait_messages(1, RETRY_WAIT)[0]
    dcid, _ = wait_done(s, mid, timeout=WAIT)
    assert got.rcpts == ["x@mxtest.example"]
    assert re.search(r"address 127\.0\.0\.3 port 25$", new_smtp_dcid(s, dcid))
    assert log_lines(s, r"Connection Error: DCID \d+ domain: mxtest\.example "
                        r"IP: 127\.0\.0\.2 port: 25 "), s.log()
    settle(s, WAIT)


def test_mx_over_ipv6(server_factory, pki, peer_factory):
    peer = peer_factory(host="::1", port=25)
    s = start_delivery_server(server_factory, pki)
    mid = send(s, "x@v6.example", subject="mx-v6")
    got = peer.wait_messages(1, WAIT)[0]
    dcid, _ = wait_done(s, mid)
    assert got.rcpts == ["x@v6.example"]
    assert re.search(r"interface ::1 address ::1 port 25$",
                     new_smtp_dcid(s, dcid)), s.log()
    settle(s, WAIT)


def test_mx_ipv6_address_down_falls_back_to_ipv4(server_factory, pki,
                                                 peer_factory):
    # mx.dual.example has AAAA ::1 (tried first, nothing on port 25 there)
    # and A 127.0.0.7
    peer = peer_factory(host="127.0.0.7", port=25)
    s = start_delivery_server(server_factory, pki)
    mid = send(s, "x@dual.example", subject="mx-dual")
    got = peer.wait_messages(1, WAIT)[0]
    dcid, _ = wait_done(s, mid)
    assert got.rcpts == ["x@dual.example"]
    assert re.search(r"address 127\.0\.0\.7 port 25$", new_smtp_dcid(s, dcid))
    assert log_lines(s, r"Connection Error: DCID \d+ domain: dual\.example "
                        r"IP: ::1 port: 25 "), s.log()
    settle(s, WAIT)


def test_implicit_mx_uses_a_record(server_factory, pki, peer_factory):
    host = peer_factory(host="127.0.0.4", port=25)
    s = start_delivery_server(server_factory, pki)
    mid = send(s, "x@implicit.example", subject="implicit-mx")
    got = host.wait_messages(1, WAIT)[0]
    wait_done(s, mid)
    assert got.rcpts == ["x@implicit.example"]
    settle(s, WAIT)


def test_null_mx_bounces_without_connecting(server_factory, pki):
    s = start_delivery_server(server_factory, pki)
    mid = send(s, "x@nullmx.example", subject="nmx-test")
    s.wait_log(bounced_rx(mid), timeout=WAIT)
    bounce_of(s, mid)
    files = s.wait_maildir("example.com", "alice", 1, timeout=WAIT)
    dsn = parse_mail(files[0])
    status, _headers = dsn_parts(dsn)
    assert re.search(r"^Final-Recipient:\s*rfc822;\s*<?x@nullmx\.example>?",
                     status, re.M | re.I), status
    assert re.search(r"^Action:\s*failed\s*$", status, re.M | re.I), status
    assert re.search(r"^Status:\s*5\.", status, re.M), status
    everything = squash(text_of(dsn) + "\n" + status + "\n" +
                        read_bytes(files[0]).decode("utf-8", "replace"))
    assert re.search(r"null[ -]MX|7505", everything, re.I), everything
    settle(s, WAIT)
    assert not log_lines(s, r"New SMTP DCID "), s.log()


def test_mx_naming_ourselves_bounces_as_loop(server_factory, pki):
    # RFC 5321 5.1: when our own hostname is the best MX of a domain there
    # is nobody more preferred to hand the mail to: a bounce, no connection
    s = start_delivery_server(server_factory, pki)
    mid = send(s, "x@selfmx.example", subject="loop-test")
    s.wait_log(bounced_rx(mid), timeout=WAIT)
    assert re.search(r"loops back to myself", s.log()), s.log()
    files = s.wait_maildir("example.com", "alice", 1, timeout=WAIT)
    status, _headers = dsn_parts(parse_mail(files[0]))
    assert re.search(r"^Status:\s*5\.4\.6", status, re.M), status
    settle(s, WAIT)
    assert not log_lines(s, r"New SMTP DCID "), s.log()


def test_stop_lets_a_delivery_under_way_finish(server_factory, pki,
                                               peer_factory):
    """SIGTERM while the next hop is still answering the end of data: the
    queue manager waits for the reply, records the delivery and removes
    the spool copy, so a restart delivers nothing twice."""
    import threading
    import time
    started = threading.Event()

    def slow_eod(_c, _data):
        started.set()
        time.sleep(2)
        return None         # then the peer records it and says 250

    peer = peer_factory(replies={"EOD": slow_eod})
    s = relay_server(server_factory, pki, peer.port)
    mid = send(s, "bob@relay.test", subject="slow-eod")
    assert started.wait(WAIT), s.log()
    s.stop()
    assert re.search(rf"Message finished MID {mid} done", s.log()), s.log()
    assert queue_count(s) == 0
    s.start()
    settle(s, WAIT)
    assert len(peer.wait_messages(1, WAIT)) == 1
    time.sleep(1.5)         # a duplicate would have been sent by now
    assert len(peer.messages) == 1, peer.messages


def _send_8bit(s, rcpt, body):
    import smtplib
    msg = (b"From: alice@example.com\r\nTo: " + rcpt.encode() +
           b"\r\nSubject: eight\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\n"
           b"Content-Transfer-Encoding: 8bit\r\n\r\n" + body + b"\r\n")
    with smtplib.SMTP("127.0.0.1", s.port, timeout=20) as c:
        c.ehlo("client.test")
        c.sendmail("alice@example.com", [rcpt], msg,
                   mail_options=["BODY=8BITMIME"])


def test_8bit_data_only_to_peers_offering_8bitmime(server_factory, pki,
                                                   peer_factory):
    """RFC 6152: 8-bit content goes with BODY=8BITMIME to a peer that
    offers it; to one that does not it is bounced (never sent raw); a
    message declared 8BITMIME that is 7-bit after all is sent plain."""
    seven = peer_factory(eightbit=False)
    eight = peer_factory()
    s = start_delivery_server(
        server_factory, pki, relay_port=seven.port,
        extra_routes=',\n  { domain = "eight.test"; hosts = '
                     '[ "[127.0.0.1]:%d" ]; }' % eight.port)
    _send_8bit(s, "bob@eight.test", "Grüße".encode())
    got = eight.wait_messages(1, WAIT)
    assert "Grüße".encode() in got[0].data
    assert any(v.upper() == "MAIL" and "BODY=8BITMIME" in str(d).upper()
               for _n, v, d in eight.commands), eight.commands
    _send_8bit(s, "carol@relay.test", "plain ascii after all".encode())
    got = seven.wait_messages(1, WAIT)
    assert b"plain ascii after all" in got[0].data
    _send_8bit(s, "dave@relay.test", "Grüße".encode())
    s.wait_log(r"Bounced: DCID \d+ MID \d+ to RID \[0\] - .*8BITMIME",
               timeout=WAIT)
    files = s.wait_maildir("example.com", "alice", 1, timeout=WAIT)
    status, _h = dsn_parts(parse_mail(files[0]))
    assert re.search(r"^Status:\s*5\.6\.3", status, re.M), status
    settle(s, WAIT)
    assert len(seven.messages) == 1
