"""`postern queue`: list, show, hold/release, delete, pause/resume, retry,
with the daemon running and stopped (postern(8))."""
import re
import time

from conftest import (BASE_CONFIG, RawSMTP, free_port, queue_count,
                      queued_mid, read_bytes, run, wait_for)

PAUSED = "delivery = { paused = true; };"

# The indented per-recipient line under each message line of `queue list`.
RID_RE = re.compile(r"^    RID (\d+) <([^>]*)> (pending|delivered|bounced) "
                    r"attempts (\d+)(?: next (now|\d{4}-\d\d-\d\dT"
                    r"\d\d:\d\d:\d\dZ))?(?: last error: (.+))?$")


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


def list_output(server):
    p = q(server, "list")
    assert p.returncode == 0, p.stderr
    return p.stdout


def listing(server):
    """{MID: message line} (the lines that begin with a MID)."""
    lines = [ln for ln in list_output(server).splitlines()
             if ln and not ln[0].isspace()]
    return {int(ln.split()[0]): ln for ln in lines}


def rcpt_lines(server):
    """{MID: [RID_RE match per recipient line under that message]}."""
    out, mid = {}, None
    for ln in list_output(server).splitlines():
        if ln and not ln[0].isspace():
            mid = int(ln.split()[0])
            out[mid] = []
        elif ln.strip():
            m = RID_RE.match(ln)
            assert m and mid is not None, f"bad recipient line {ln!r}"
            out[mid].append(m)
    return out


def test_list_and_count_while_paused(server_factory):
    s = server_factory(extra=PAUSED).start()
    mids = [send(s, subject=f"m{i}") for i in range(3)]
    p = q(s, "list")
    assert p.returncode == 0, p.stderr
    lines = [ln for ln in p.stdout.splitlines() if not ln[0].isspace()]
    assert len(lines) == 3, p.stdout
    assert sorted(int(ln.split()[0]) for ln in lines) == sorted(mids)
    for ln in lines:
        assert re.match(r"^\d+ ", ln)
        assert "<alice@example.com>" in ln and "<bob@example.com>" in ln
    # under each message line, one line per recipient
    all_lines = p.stdout.splitlines()
    assert len(all_lines) == 6, p.stdout
    for i in (1, 3, 5):
        assert all_lines[i] == "    RID 0 <bob@example.com> pending " \
            "attempts 0 next now", p.stdout
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
    assert re.search(r"^RID 0:\s+<bob@example\.com> pending attempts 0 "
                     r"next now$", out, re.M), out
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


def dead_route_server(server_factory, extra):
    """A server whose route for remote.test points at a loopback port
    nobody listens on: every attempt for it fails and is delayed
    (connection refused; "no local route" without an SMTP client)."""
    dead = free_port()
    local_route = '{{ domain = "localhost"; maildir = "data/mail/%d/%u"; }}'
    assert local_route in BASE_CONFIG
    config = BASE_CONFIG.replace(
        local_route, '{{ domain = "remote.test"; hosts = [ "[127.0.0.1]:'
        + str(dead) + '" ]; }},\n  ' + local_route)
    return server_factory(config=config, extra=extra).start()


def delayed_re(mid, rid):
    return rf"Delayed: (?:DCID \d+ )?MID {mid} to RID \[{rid}\] - "


def test_retry_deferred_message(server_factory):
    # remote.test cannot be reached: the mail is deferred; retry_min is
    # long, so only `queue retry` brings the next attempt forward.
    s = dead_route_server(server_factory, "delivery = { retry_min = 3600; "
                          "retry_max = 7200; };")
    mid = send(s, rcpt="carol@remote.test", subject="deferred")
    s.wait_log(rf"Warning: {delayed_re(mid, 0)}")
    # the state file is written right after the log line
    ln = wait_for(lambda: [x for x in [listing(s)[mid]] if "attempts 1" in x],
                  10, "attempts 1")[0]
    assert re.search(r"attempts 1 next \d{4}-\d\d-\d\dT", ln), ln
    p = q(s, "retry", str(mid))
    assert p.returncode == 0, p.stderr
    assert p.stdout == f"MID {mid} scheduled for delivery now\n"
    s.wait_log(delayed_re(mid, 0), count=2)
    p = q(s, "retry")
    assert p.returncode == 0 and p.stdout == \
        "1 messages scheduled for delivery now\n"
    s.wait_log(delayed_re(mid, 0), count=3)
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


def test_list_shows_attempts_next_and_last_error(server_factory):
    # remote.test cannot be reached, so that recipient stays pending
    # while the local one is delivered.
    s = dead_route_server(server_factory, "delivery = { retry_min = 60; "
                          "retry_max = 120; };")
    with RawSMTP(s.port) as c:
        c.ehlo()
        c.cmd("MAIL FROM:<alice@example.com>", expect="250 2.1.0")
        c.cmd("RCPT TO:<bob@example.com>", expect="250 2.1.5")
        c.cmd("RCPT TO:<carol@remote.test>", expect="250 2.1.5")
        c.cmd("DATA", expect=354)
        c.send("From: alice@example.com\r\nSubject: two\r\n\r\nhi\r\n.\r\n")
        mid = queued_mid(c.reply())
    s.wait_log(delayed_re(mid, 1))
    s.wait_maildir("example.com", "bob")

    def settled():
        r = rcpt_lines(s).get(mid)
        return r if r and r[1].group(4) != "0" and r[0].group(3) == \
            "delivered" else None
    rids = wait_for(settled, 10, "recipient state after the first attempt")
    assert len(rids) == 2
    bob, carol = rids
    assert (bob.group(1), bob.group(2)) == ("0", "bob@example.com")
    assert bob.group(5) is None          # no next once delivered
    assert (carol.group(1), carol.group(2), carol.group(3)) == \
        ("1", "carol@remote.test", "pending")
    assert int(carol.group(4)) >= 1
    # retry_min = 60: the next attempt is in the future, as a UTC time
    assert re.match(r"\d{4}-", carol.group(5)), carol.group(0)
    assert carol.group(6) and carol.group(6).strip(), carol.group(0)
    # the message line itself is unchanged in form
    ln = listing(s)[mid]
    assert re.match(rf"^{mid} active \S+ \d+ bytes from <alice@example.com> "
                    r"to <bob@example.com> delivered attempts \d+, "
                    r"<carol@remote.test> pending attempts \d+ next ", ln), ln
    p = q(s, "list", "--count")
    assert p.returncode == 0 and p.stdout == "1\n"
    # show has the same per-recipient state
    p = q(s, "show", str(mid))
    assert p.returncode == 0, p.stderr
    m = re.search(r"^RID 1:\s+<carol@remote\.test> pending attempts (\d+) "
                  r"next \S+Z last error: (.+)$", p.stdout, re.M)
    assert m and int(m.group(1)) >= 1 and m.group(2).strip(), p.stdout
    assert re.search(r"^RID 0:\s+<bob@example\.com> delivered attempts \d+$",
                     p.stdout, re.M), p.stdout
    # after `queue retry` the recipient is due now
    assert q(s, "pause").returncode == 0
    assert q(s, "retry", str(mid)).returncode == 0
    carol = rcpt_lines(s)[mid][1]
    assert carol.group(5) == "now", carol.group(0)
    assert carol.group(6), carol.group(0)   # the last error stays


def test_bad_arguments_are_usage_errors_before_the_spool(tmp_path):
    """Every command parses its options before it touches the data dir:
    a bad option is exit 2 with one usage line, and no data dir appears
    (the embedded default would put it in ./postern-data)."""
    from conftest import run
    cases = [("queue", "list", "--no-such-option"),
             ("queue", "show", "--bogus", "1"), ("queue", "frob"),
             ("queue", "pause", "x"), ("queue", "delete", "--zzz"),
             ("cert", "list", "--bogus"), ("trust", "list", "--bogus"),
             ("user", "list", "--bogus"), ("config", "check", "--bogus"),
             ("send", "--bogus"), ("serve", "--bogus")]
    for args in cases:
        p = run(*args, cwd=str(tmp_path))
        assert p.returncode == 2, (args, p.stderr)
        assert p.stderr.strip(), args
        assert not (tmp_path / "postern-data").exists(), args
    p = run("queue", "list", "--no-such-option", cwd=str(tmp_path))
    assert p.stderr == ("postern: queue list: unknown option "
                        "'--no-such-option' (see `postern queue --help`)\n")
