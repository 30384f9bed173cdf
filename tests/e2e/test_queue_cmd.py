"""`postern queue`: list, show, hold/release, delete, pause/resume, retry,
with the daemon running and stopped (SPEC "One binary")."""
import re
import time

from conftest import (RawSMTP, queue_count, queued_mid, read_bytes, run,
                      wait_for)

PAUSED = "delivery = { paused = true; };"


def send(server, rcpt="bob@example.com", subject="queued"):
    with RawSMTP(server.port) as c:
        c.ehlo()
        c.cmd("MAIL FROM:<alice@example.com>", expect="250 2.1.0")
        c.cmd(f"RCPT TO:<{rcpt}>", expect="250 2.1.5")
        c.cmd("DATA", expect=354)
        c.send(f"From: alice@example.com\r\nSubject: {subject}\r\n"
               f"Message-ID: <{subject}@client.test>\r\n\r\nbody of "
               f"{subject}\r\n.\r\n")
        return queued_mid(c.reply())


def q(server, *args):
    return server.cli("queue", *args)


def listing(server):
    p = q(server, "list")
    assert p.returncode == 0, p.stderr
    lines = [ln for ln in p.stdout.splitlines() if ln.strip()]
    return {int(ln.split()[0]): ln for ln in lines}


def test_list_and_count_while_paused(server_factory):
    s = server_factory(extra=PAUSED).start()
    mids = [send(s, subject=f"m{i}") for i in range(3)]
    p = q(s, "list")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) == 3, p.stdout
    assert sorted(int(ln.split()[0]) for ln in lines) == sorted(mids)
    for ln in lines:
        assert re.match(r"^\d+ ", ln)
        assert "<alice@example.com>" in ln and "<bob@example.com>" in ln
    p = q(s, "list", "--count")
    assert p.returncode == 0 and p.stdout == "3\n"
    assert s.maildir_files("example.com", "bob") == []


def test_show(server_factory):
    s = server_factory(extra=PAUSED).start()
    mid = send(s, subject="showme")
    p = q(s, "show", str(mid))
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert re.search(rf"^MID:\s+{mid}\b", out, re.M), out
    assert re.search(r"^From:\s+<alice@example\.com>$", out, re.M), out
    assert re.search(r"^RID 0:\s+<bob@example\.com> pending", out, re.M), out
    assert "127.0.0.1" in out
    # the header section as stored
    assert "Received: from client.test" in out
    assert "Subject: showme" in out
    assert "Message-ID: <showme@client.test>" in out
    assert "body of showme" not in out


def test_hold_release_delete(server_factory):
    s = server_factory(extra=PAUSED).start()
    m1, m2, m3 = (send(s, subject=f"h{i}") for i in range(3))
    p = q(s, "hold", str(m1))
    assert p.returncode == 0, p.stderr
    assert p.stdout == f"MID {m1} held\n"
    ls = listing(s)
    assert set(ls) == {m1, m2, m3}
    assert ls[m1].split()[1] == "held"
    assert ls[m2].split()[1] != "held"
    # hold twice: nothing to hold
    p = q(s, "hold", str(m1))
    assert p.returncode == 1 and f"MID {m1}" in p.stderr
    p = q(s, "release", str(m1))
    assert p.returncode == 0 and p.stdout == f"MID {m1} released\n"
    assert listing(s)[m1].split()[1] != "held"
    p = q(s, "release", str(m2))
    assert p.returncode == 1 and "nothing to release" in p.stderr
    p = q(s, "delete", str(m2))
    assert p.returncode == 0 and p.stdout == f"MID {m2} deleted\n"
    assert set(listing(s)) == {m1, m3}
    assert q(s, "show", str(m2)).returncode == 1
    # delete --all also takes held messages
    assert q(s, "hold", str(m3)).returncode == 0
    p = q(s, "delete", "--all")
    assert p.returncode == 0 and p.stdout == "2 messages deleted\n"
    assert queue_count(s) == 0
    assert listing(s) == {}


def test_pause_resume_running_daemon(server):
    p = q(server, "pause")
    assert p.returncode == 0, p.stderr
    assert "paused" in p.stdout
    try:
        mid = send(server, subject="while-paused")
        # Accepted and queued, but the queue manager does not deliver: give
        # it more than one of its 1-second rounds to (wrongly) act.
        server.wait_log(rf"MID {mid} ready ")
        time.sleep(2.5)
        assert server.maildir_files("example.com", "bob") == []
        assert mid in listing(server)
        assert f"Message finished MID {mid}" not in server.log()
    finally:
        p = q(server, "resume")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "delivery resumed\n"
    files = server.wait_maildir("example.com", "bob", timeout=15)
    assert b"Subject: while-paused" in read_bytes(files[0])
    server.wait_log(rf"Message finished MID {mid} done$")
    assert queue_count(server) == 0


def test_resume_with_paused_config_says_so(server_factory):
    s = server_factory(extra=PAUSED).start()
    p = q(s, "resume")
    assert p.returncode == 0
    assert "stays paused" in p.stdout


def test_retry_deferred_message(server_factory):
    # No SMTP client in this version: remote mail is deferred; retry_min
    # is long, so only `queue retry` brings the next attempt forward.
    s = server_factory(extra="delivery = { retry_min = 3600; "
                       "retry_max = 7200; };").start()
    mid = send(s, rcpt="carol@remote.example", subject="deferred")
    s.wait_log(rf"Warning: Delayed: MID {mid} to RID \[0\] - ")
    # the state file is written right after the log line
    ln = wait_for(lambda: [x for x in [listing(s)[mid]] if "attempts 1" in x],
                  10, "attempts 1")[0]
    assert re.search(r"attempts 1 next \d{4}-\d\d-\d\dT", ln), ln
    p = q(s, "retry", str(mid))
    assert p.returncode == 0, p.stderr
    assert p.stdout == f"MID {mid} scheduled for delivery now\n"
    s.wait_log(rf"Delayed: MID {mid} to RID \[0\] - ", count=2)
    p = q(s, "retry")
    assert p.returncode == 0 and p.stdout == \
        "1 messages scheduled for delivery now\n"
    s.wait_log(rf"Delayed: MID {mid} to RID \[0\] - ", count=3)
    wait_for(lambda: "attempts 3" in listing(s)[mid], 10, "attempts 3")


def test_commands_with_daemon_stopped(server_factory):
    s = server_factory(extra=PAUSED).start()
    m1, m2, m3, m4 = (send(s, subject=f"st{i}") for i in range(4))
    s.stop()
    assert queue_count(s) == 4
    assert set(listing(s)) == {m1, m2, m3, m4}
    p = q(s, "show", str(m3))
    assert p.returncode == 0 and "Subject: st2" in p.stdout
    assert q(s, "hold", str(m1)).returncode == 0
    assert q(s, "delete", str(m2)).returncode == 0
    p = q(s, "retry", str(m3))
    assert p.returncode == 0, p.stderr
    assert "next now" in listing(s)[m3]
    # pause through the spool flag, then start without paused in config
    assert q(s, "pause").returncode == 0
    with open(s.conf) as fh:
        text = fh.read()
    with open(s.conf, "w") as fh:
        fh.write(text.replace(PAUSED, ""))
    s.start()
    s.wait_log(r"starting: hostname", count=2)
    time.sleep(2.5)             # queue manager rounds: must stay paused
    assert s.maildir_files("example.com", "bob") == []
    assert q(s, "resume").returncode == 0
    files = s.wait_maildir("example.com", "bob", 2)
    s.wait_log(rf"Message finished MID {m4} done$")
    s.wait_log(rf"Message finished MID {m3} done$")
    subjects = sorted(re.search(rb"Subject: (st\d)", read_bytes(f)).group(1)
                      for f in files)
    assert subjects == [b"st2", b"st3"]
    # the held message stays held while the daemon runs; release sends it
    ls = listing(s)
    assert list(ls) == [m1] and ls[m1].split()[1] == "held"
    assert q(s, "release", str(m1)).returncode == 0
    s.wait_maildir("example.com", "bob", 3)
    s.wait_log(rf"Message finished MID {m1} done$")
    assert queue_count(s) == 0


def test_errors_and_usage(server):
    mid_missing = "987654"
    for verb in ("show", "hold", "release", "delete"):
        p = q(server, verb, mid_missing)
        assert p.returncode == 1, (verb, p)
        assert p.stderr.strip() == f"postern: MID {mid_missing} is not in " \
            "the queue", p.stderr
        assert len(p.stderr.strip().splitlines()) == 1
    p = q(server, "retry", mid_missing)
    assert p.returncode == 1 and mid_missing in p.stderr
    for args in (("show", "abc"), ("show",), ("hold",), ("delete",),
                 ("show", "1", "2"), ("list", "--bogus"), ("frobnicate",),
                 ("pause", "now"), ("retry", "x"), ("show", "0"), ()):
        p = q(server, *args)
        assert p.returncode == 2, (args, p.returncode, p.stderr)
        assert p.stderr, args
    p = run("queue", "--bogus", cwd=server.dir)
    assert p.returncode == 2
    for args in (("queue", "--help"), ("queue", "-h"), ("help", "queue"),
                 ("queue", "list", "--help")):
        p = run(*args, cwd=server.dir)
        assert p.returncode == 0, (args, p)
        assert "usage: postern queue" in p.stdout


def test_bad_config_is_an_error(tmp_path):
    bad = tmp_path / "bad.conf"
    bad.write_text('hostname = "x";\nnosuchkey = 1;\n')
    p = run("queue", "-c", str(bad), "list", cwd=str(tmp_path))
    assert p.returncode == 1
    assert re.search(r"bad\.conf:2: ", p.stderr), p.stderr
