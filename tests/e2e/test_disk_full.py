"""A spool whose file system fills up (docs/spool.md "When the disk fills
up"), through the real binary: data_dir is a small tmpfs mounted for the
test (root only; skipped only where mounting is impossible).

One daemon walks through an episode: messages accepted while there is room;
a message bigger than the space left is answered 451 4.3.0 at the end of
DATA (the race the MAIL check cannot see) and leaves nothing behind; below
limits.spool_min_free every MAIL gets 452 4.3.1 (and the log says so, once
per episode and per refusal); once space is freed mail flows again without
a restart; every acknowledged message is delivered, the refused ones never.
"""
import os
import re
import subprocess
import time

import pytest

from conftest import RawSMTP, Server, make_config, queue_count, wait_for

RESERVE = 1024 * 1024            # limits.spool_min_free
TMPFS_SIZE = "4m"
QUEUED_RE = re.compile(r"^250 2\.0\.0 Ok: queued as (\d+)$")
STORAGE = "452 4.3.1 Insufficient system storage"


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fill_to(path, filler, want_free):
    """Grow the filler file until `want_free` octets are left free."""
    grow = free_bytes(path) - want_free
    assert grow > 0, (free_bytes(path), want_free)
    size = os.path.getsize(filler) if os.path.exists(filler) else 0
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.posix_fallocate(fd, size, grow)
    finally:
        os.close(fd)


def message(subject, size):
    head = ("From: a@example.org\r\nTo: bob@example.com\r\n"
            "Subject: %s\r\n\r\n" % subject)
    line = "x" * 78 + "\r\n"
    return head + line * max(1, (size - len(head)) // len(line))


def send(port, subject, size, size_param=False):
    """One message over SMTP; returns the reply to the end of data (or to
    MAIL when that is refused)."""
    body = message(subject, size)
    with RawSMTP(port) as c:
        c.ehlo()
        mail = "MAIL FROM:<a@example.org>"
        if size_param:
            mail += " SIZE=%d" % len(body)
        r = c.cmd(mail)
        if not r.startswith("250"):
            return r
        c.cmd("RCPT TO:<bob@example.com>", expect=250)
        c.cmd("DATA", expect=354)
        c.send(body + ".\r\n")
        r = c.reply()
        c.cmd("QUIT")
        return r


def mail_reply_until(port, want, then=(), timeout=10.0):
    """MAIL on one session until its reply starts with `want` (a worker
    sees a new free-space figure within a second), then the commands
    `then`; returns every reply from that MAIL on."""
    deadline = time.monotonic() + timeout
    with RawSMTP(port) as c:
        c.ehlo()
        while True:
            r = c.cmd("MAIL FROM:<a@example.org>")
            if r.startswith(want):
                return [r] + [c.cmd(x) for x in then]
            assert time.monotonic() < deadline, f"MAIL still gets {r!r}"
            if r.startswith("250"):
                c.cmd("RSET", expect=250)
            time.sleep(0.1)


def delivered_subjects(mail_dir):
    out = []
    d = os.path.join(mail_dir, "example.com", "bob", "new")
    if not os.path.isdir(d):
        return out
    for name in os.listdir(d):
        with open(os.path.join(d, name), errors="replace") as fh:
            m = re.search(r"^Subject: (\S+)", fh.read(), re.M)
            out.append(m.group(1) if m else "?")
    return sorted(out)


@pytest.fixture
def tmpfs_server(tmp_path):
    """A daemon whose data_dir is a 4 MiB tmpfs; maildirs and the log live
    outside it.  Unmounted after the daemon has stopped."""
    data = tmp_path / "data"
    data.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o",
                        "size=%s,mode=0700" % TMPFS_SIZE, "tmpfs", str(data)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root): " +
                    p.stderr.strip())
    conf = make_config(example_route='domain = "example.com"; '
                       'maildir = "mail/%d/%u";')
    # One worker: each worker logs its own episode, so the log lines
    # checked below come from the worker the test talks to.
    s = Server(str(tmp_path), config=conf,
               extra="workers = 1; limits = { spool_min_free = %d; };"
               % RESERVE)
    try:
        s.start()
        yield s
    finally:
        s.stop()
        if subprocess.run(["umount", str(data)]).returncode != 0:
            subprocess.run(["umount", "-l", str(data)])
    text = s.stderr() + s.log()
    assert not re.search(r"AddressSanitizer|runtime error:|LeakSanitizer",
                         text), text[-4000:]


def test_disk_full_episode(tmpfs_server):
    s = tmpfs_server
    port = s.port
    filler = os.path.join(s.data, "filler")
    mail_dir = os.path.join(s.dir, "mail")
    assert s.cli("queue", "pause").returncode == 0
    acked = {}

    # Room: accepted, durable.
    for i in range(3):
        r = send(port, "early%d" % i, 2000)
        m = QUEUED_RE.match(r)
        assert m, r
        acked["early%d" % i] = int(m.group(1))

    # Above the reserve, but not enough for this message, which declares
    # no SIZE: MAIL passes, the spool write fails, 451 at the end of DATA.
    fill_to(s.data, filler, RESERVE + 300 * 1024)
    r = send(port, "race", RESERVE + 600 * 1024)
    assert r == "451 4.3.0 Error: queue file write error", r
    s.wait_log(r"MID \d+ rejected: 451 4\.3\.0 Error: queue file write error")
    assert os.listdir(os.path.join(s.data, "spool", "incoming")) == []
    assert queue_count(s) == 3

    # Below the reserve: MAIL is refused before any data is sent, and the
    # client keeps its message.
    fill_to(s.data, filler, RESERVE - 300 * 1024)
    mail, rcpt, data = mail_reply_until(
        port, "452", then=("RCPT TO:<bob@example.com>", "DATA"))
    assert mail == STORAGE
    assert rcpt == "503 5.5.1 Error: need MAIL command"
    assert data == "503 5.5.1 Error: need MAIL command"
    s.wait_log(r"^\S+ Info: ICID \d+ From: <a@example\.org> rejected: "
               r"452 4\.3\.1 Insufficient system storage$")
    s.wait_log(r"^\S+ Warning: Spool \S+/data/spool nearly full: \d+ bytes "
               r"free \(\d+ inodes\), limits\.spool_min_free %d; MAIL gets "
               r"452 4\.3\.1 until space is freed$" % RESERVE)
    assert queue_count(s) == 3

    # Space freed: mail flows again, same daemon, no restart.
    os.unlink(filler)
    mail_reply_until(port, "250")
    s.wait_log(r"Spool \S+/data/spool has room again: \d+ bytes free "
               r"\(\d+ inodes\)$")
    # A declared SIZE that cannot fit above the reserve is refused at once.
    with RawSMTP(port) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@example.org> SIZE=%d" %
                     (free_bytes(s.data) + 1)) == STORAGE
    r = send(port, "after", 5000, size_param=True)
    m = QUEUED_RE.match(r)
    assert m, r
    acked["after"] = int(m.group(1))

    # Nothing acknowledged was lost; nothing refused is delivered.
    assert s.cli("queue", "resume").returncode == 0
    wait_for(lambda: len(delivered_subjects(mail_dir)) >= len(acked),
             timeout=20, what="delivery of every acknowledged message")
    wait_for(lambda: queue_count(s) == 0, timeout=20, what="empty queue")
    assert delivered_subjects(mail_dir) == sorted(acked)
    for subject, mid in acked.items():
        s.wait_log(r"Message finished MID %d done" % mid)
