"""Crash safety: `kill -9` of the whole daemon while 10 clients send.

Every message that got `250 ... queued as` must be delivered to the maildir
after a restart (at least once).  A duplicate is allowed only for a message
whose spool copy still existed after the kill (it was being delivered).
POSTERN_SOAK=1 (`make soak`) repeats the kill/restart cycle many times.
"""
import os
import re
import signal
import smtplib
import threading
import time

from conftest import queue_count, wait_for

CLIENTS = 10
QUEUED_RE = re.compile(r"queued as (\d+)")


def sender(port, cid, acked, stop):
    n = 0
    while not stop.is_set():
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
                s.ehlo()
                while not stop.is_set():
                    n += 1
                    tag = f"c{cid}-{n}"
                    msg = (f"From: a@example.com\r\nTo: bob@example.com\r\n"
                           f"Subject: crash {tag}\r\nX-Test-Id: {tag}\r\n\r\n"
                           + ("body line for the crash test\r\n" * 40))
                    code, resp = s.docmd("MAIL", "FROM:<a@example.com>")
                    if code != 250:
                        break
                    code, resp = s.docmd("RCPT", "TO:<bob@example.com>")
                    if code != 250:
                        break
                    code, resp = s.docmd("DATA")
                    if code != 354:
                        break
                    s.send(msg.replace("\r\n.", "\r\n..").encode() + b".\r\n")
                    code, resp = s.getreply()
                    if code == 250:
                        acked.append(tag)
        except (OSError, smtplib.SMTPException):
            time.sleep(0.05)


def delivered_ids(srv):
    ids = []
    for f in srv.maildir_files("example.com", "bob"):
        with open(f, errors="replace") as fh:
            m = re.search(r"^X-Test-Id: (\S+)", fh.read(), re.M)
            if m:
                ids.append(m.group(1))
    return ids


def spool_mids(srv):
    q = os.path.join(srv.data, "spool", "queue")
    return set(os.listdir(q)) if os.path.isdir(q) else set()


def test_when_the_daemon_is_killed_every_acknowledged_message_is_delivered(
        server_factory):
    srv = server_factory().start()
    cycles = 5 if os.environ.get("POSTERN_SOAK") else 1
    acked = []
    spool_after_kill = set()
    for cycle in range(cycles):
        stop = threading.Event()
        threads = [threading.Thread(target=sender,
                                    args=(srv.port, i, acked, stop))
                   for i in range(CLIENTS)]
        for t in threads:
            t.start()
        # let the clients get going, with deliveries in flight
        deadline = time.monotonic() + 20
        start_len = len(acked)
        while len(acked) < start_len + 200 and time.monotonic() < deadline:
            time.sleep(0.02)
        srv.kill9()
        stop.set()
        for t in threads:
            t.join(timeout=30)
        assert not any(t.is_alive() for t in threads)
        # the spool copies that survived the kill, by Subject tag
        for mid in spool_mids(srv):
            path = os.path.join(srv.data, "spool", "queue", mid)
            with open(path, errors="replace") as fh:
                m = re.search(r"^X-Test-Id: (\S+)", fh.read(), re.M)
                if m:
                    spool_after_kill.add(m.group(1))
        srv.start()
    assert len(acked) >= 200 * cycles, "the clients got too few messages in"
    # after the restart, the queue drains into the maildir
    wait_for(lambda: queue_count(srv) == 0, timeout=60, what="empty queue")
    got = delivered_ids(srv)
    missing = set(acked) - set(got)
    assert not missing, f"{len(missing)} acknowledged messages lost, e.g. " \
        f"{sorted(missing)[:5]}"
    dups = {t for t in got if got.count(t) > 1}
    assert dups <= spool_after_kill, \
        f"duplicates of messages that were not in delivery: {dups - spool_after_kill}"


def test_concurrent_messages_share_one_flush(server_factory):
    """Group commit: with 20 clients sending at once, some flush covers
    more than one message (and every message still gets its 250)."""
    srv = server_factory(debug=True,
                         extra="delivery = { paused = true; };").start()
    acked = []
    stop = threading.Event()
    threads = [threading.Thread(target=sender, args=(srv.port, i, acked, stop))
               for i in range(20)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while len(acked) < 400 and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    sizes = [int(n) for n in re.findall(
        r"spool: group commit of (\d+) messages in one flush", srv.log())]
    assert sum(sizes) >= len(acked) >= 400
    assert max(sizes) > 1, f"no flush covered two messages: {sizes[:20]}"


def test_sigterm_under_load_loses_nothing_and_duplicates_nothing(
        server_factory):
    """A clean stop while 10 clients send: commits in flight still get
    their 250, every acknowledged message is delivered after the restart,
    none twice, and the daemon exits 0."""
    srv = server_factory().start()
    acked = []
    stop = threading.Event()
    threads = [threading.Thread(target=sender, args=(srv.port, i, acked, stop))
               for i in range(CLIENTS)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while len(acked) < 200 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(srv.proc.pid, signal.SIGTERM)
    assert srv.proc.wait(timeout=30) == 0
    srv.proc = None
    srv.errf.close()
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert "Info: stopped" in srv.log()
    srv.start()
    wait_for(lambda: queue_count(srv) == 0, timeout=60, what="empty queue")
    got = delivered_ids(srv)
    assert len(acked) >= 200
    assert not set(acked) - set(got), "acknowledged messages lost"
    assert len(got) == len(set(got)), "duplicates after a clean stop"
