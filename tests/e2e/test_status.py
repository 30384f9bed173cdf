"""`postern status [--json]` (postern(8)): with the daemon running and
after it stopped, as root and as the daemon's unprivileged user, without
a metrics listener: the first line says whether it runs (exit 0 / 1),
then processes, listeners, delivery paused or not, the queue by
destination (a deferred and a held message), certificates by expiry and
the last delivery TLS failure; the JSON says the same; any other user is
told it cannot read data_dir; a daemon killed with -9 is "not running"
too, with the reason."""
import json
import os
import pwd
import re
import shutil
import subprocess
import tempfile

import pytest

from conftest import (BIN, CRASH_RE, SANITIZER_RE, Server, run, smtp_send,
                      queued_mid, wait_for)
from peers import SMTPPeer, delayed_rx, reserve_port

CONFIG = """
hostname = "mx.test.example";
data_dir = "data";
log = {{ file = "postern.log"; format = "{log_format}"; }};
user = "nobody";
workers = 2;
listeners = (
  {{ name = "inbound"; address = "127.0.0.1"; port = {port}; tls = "preferred"; }}
);
sender_groups = (
  {{ name = "RELAYLIST"; networks = [ "127.0.0.1/32" ]; policy = "relayed"; }}
);
policies = {{ relayed = {{ action = "relay"; }}; }};
local_domains = [ "example.com" ];
routes = (
  {{ domain = "example.com"; maildir = "data/mail/%d/%u"; }},
  {{ domain = "down.test"; hosts = [ "[127.0.0.1]:@CLOSED@" ]; }},
  {{ domain = "tlsreq.test"; hosts = [ "[127.0.0.1]:@PEER@" ]; }}
);
destinations = ( {{ domain = "tlsreq.test"; tls = "required"; }} );
delivery = {{ retry_min = 3600; retry_max = 3600; }};
"""

ROOT = os.geteuid() == 0


def as_user(name, *args):
    """postern run as another user (setpriv); CompletedProcess."""
    pw = pwd.getpwnam(name)
    return subprocess.run(
        ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}",
         "--clear-groups", "--", BIN, *args], capture_output=True,
        text=True, timeout=60, cwd="/")


def status(s, *args, user=None):
    argv = ("status", "-c", s.conf, *args)
    return as_user(user, *argv) if user else run(*argv, cwd="/")


def wait_running(s):
    """The port listens as soon as the master binds; the pid file, the
    status file and the children come a moment later."""
    def up():
        p = status(s, "--json")
        return p.returncode == 0 and len(json.loads(p.stdout)["processes"]) \
            == 3
    wait_for(up, what="postern status: running, 3 processes")


def send(s, rcpt):
    msg = f"From: a@example.org\r\nTo: {rcpt}\r\nSubject: s\r\n\r\nhi\r\n"
    code, reply = smtp_send(s, "a@example.org", [rcpt], msg)
    assert code == 250, reply
    return queued_mid(reply)


def check_running_text(s, p):
    assert p.returncode == 0, p.stdout + p.stderr
    lines = p.stdout.splitlines()
    m = re.match(r"^postern 0\.1\.0 is running: pid (\d+), up \d+ s "
                 r"\(since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\)$", lines[0])
    assert m and int(m.group(1)) == s.proc.pid, lines[0]
    assert re.search(r"^processes: 2 workers \(\d+, \d+\), queue manager "
                     r"\d+$", p.stdout, re.M), p.stdout
    assert "\ndelivery: not paused\n" in p.stdout
    assert re.search(r"^  inbound +127\.0\.0\.1:\d+ +tls preferred +auth "
                     r"off$", p.stdout, re.M), p.stdout
    assert "\nqueue: 0 active, 1 deferred, 1 held; oldest " in p.stdout
    assert re.search(r"^  tlsreq\.test +0 +1 +0  \d+ s$", p.stdout, re.M)
    assert re.search(r"^  down\.test +0 +0 +1  -$", p.stdout, re.M)
    assert re.search(r"^  default +mx\.test\.example +expires \d{4}-\d\d-\d\d"
                     r" \(in 36[45] days\)  listeners inbound  self-signed$",
                     p.stdout, re.M), p.stdout
    assert re.search(r"^  \d{4}-\S+ \S+ UTC  tlsreq\.test  127\.0\.0\.1: "
                     r"STARTTLS not offered by 127\.0\.0\.1$", p.stdout,
                     re.M), p.stdout


def check_json(s, p, running, tls_failure=True):
    assert p.returncode == (0 if running else 1), p.stdout + p.stderr
    j = json.loads(p.stdout)
    assert j["running"] is running
    assert j["version"] == "0.1.0"
    assert j["data_dir"] == os.path.join(s.dir, "data")
    assert [x["name"] for x in j["listeners"]] == ["inbound"]
    assert j["delivery_paused"] is False
    q = j["queue"]
    assert (q["active"], q["deferred"], q["held"]) == (0, 1, 1)
    by = {d["destination"]: d for d in q["destinations"]}
    assert set(by) == {"tlsreq.test", "down.test"}
    assert (by["tlsreq.test"]["deferred"], by["down.test"]["held"]) == (1, 1)
    assert by["tlsreq.test"]["oldest_age_seconds"] >= 0
    cert = {c["certificate"]: c for c in j["certificates"]}["default"]
    assert cert["listeners"] == ["inbound"] and cert["in_store"] is True
    assert cert["self_signed"] is True and cert["expires_in_seconds"] > 0
    if tls_failure:
        f = j["tls_failures"][0]
        assert (f["destination"], f["host"]) == ("tlsreq.test", "127.0.0.1")
        assert f["reason"] == "STARTTLS not offered by 127.0.0.1"
    if running:
        assert j["pid"] == s.proc.pid
        roles = sorted(x["role"] for x in j["processes"])
        assert roles == ["queue manager", "worker", "worker"]
        assert j["metrics"] is None and j["uptime_seconds"] >= 0
    return j


@pytest.fixture
def tmpdir_nobody():
    """A directory the user nobody can reach (tests may run under /root)."""
    d = tempfile.mkdtemp(prefix="postern-status-", dir="/tmp")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_status_running_and_stopped_as_root_and_as_its_user(tmpdir_nobody):
    peer = SMTPPeer().start()
    s = Server(tmpdir_nobody, config=CONFIG.replace(
        "@CLOSED@", str(reserve_port())).replace("@PEER@", str(peer.port)))
    try:
        s.start()
        wait_running(s)
        held, deferred = send(s, "bob@down.test"), send(s, "bob@tlsreq.test")
        s.wait_log(delayed_rx(held))
        s.wait_log(delayed_rx(deferred))
        assert s.cli("queue", "hold", str(held)).returncode == 0
        # root (acting as the daemon's user), then that user itself
        check_running_text(s, status(s))
        j = check_json(s, status(s, "--json"), True)
        if ROOT:
            check_running_text(s, status(s, user="nobody"))
            mine = check_json(s, status(s, "--json", user="nobody"), True)
            assert _counts(mine["queue"]) == _counts(j["queue"])
            other = next((u for u in ("daemon", "bin", "sys") if
                          _has_user(u)), None)
            if other is not None:
                p = status(s, user=other)
                assert p.returncode == 1 and p.stdout == ""
                assert re.fullmatch(r"postern: cannot read data_dir \S+: "
                                    r"Permission denied \(run `postern "
                                    r"status` as root or as user nobody\)\n",
                                    p.stderr), p.stderr
        s.stop()
        for user in ([None, "nobody"] if ROOT else [None]):
            p = status(s, user=user)
            assert p.returncode == 1, p.stdout + p.stderr
            assert p.stdout.startswith("postern is NOT running (it was "
                                       "stopped; data_dir "), p.stdout
            assert "\nqueue: 0 active, 1 deferred, 1 held" in p.stdout
            assert "listeners (configured):\n  inbound " in p.stdout
            j = check_json(s, status(s, "--json", user=user), False)
            assert j["reason"] == "it was stopped"
        # killed: the pid file stays, the process is gone (a new start
        # has a new status file: no TLS failure yet)
        s.start()
        wait_running(s)
        check_json(s, status(s, "--json"), True, tls_failure=False)
        s.kill9()
        p = status(s)
        assert p.returncode == 1
        assert p.stdout.startswith("postern is NOT running (it stopped "
                                   "without cleaning up (crashed or "
                                   "killed): start it again;"), p.stdout
    finally:
        s.stop()
        peer.stop()
    out = s.stderr() + s.log()
    assert not SANITIZER_RE.search(out) and not CRASH_RE.search(out), \
        out[-4000:]


def _counts(q):
    """The queue of `status --json` without its ages (they tick)."""
    return (q["active"], q["deferred"], q["held"],
            sorted((d["destination"], d["active"], d["deferred"], d["held"])
                   for d in q["destinations"]))


def _has_user(name):
    try:
        return pwd.getpwnam(name).pw_uid != 0 and name != "nobody"
    except KeyError:
        return False


def test_status_usage(tmp_path):
    for args, want in ((["--bogus"], "unknown option '--bogus'"),
                       (["extra"], "unexpected argument 'extra'"),
                       (["-c"], "-c needs a FILE")):
        p = run("status", *args)
        assert p.returncode == 2 and p.stdout == ""
        assert p.stderr == f"postern: status: {want} (see `postern status " \
            "--help`)\n", p.stderr
    # a data_dir where no daemon ever ran: not running, empty queue
    conf = tmp_path / "p.conf"
    conf.write_text('data_dir = "d"; listeners = ( { name = "a"; '
                    'address = "127.0.0.1"; port = 2999; } );\n')
    p = run("status", "-c", str(conf))
    assert p.returncode == 1
    assert p.stdout.startswith("postern is NOT running (it never ran with "
                               "this data_dir; data_dir "), p.stdout
    assert "\nqueue: unknown (no spool yet)\n" in p.stdout
    assert not (tmp_path / "d").exists()        # status writes nothing
    j = json.loads(run("status", "-c", str(conf), "--json").stdout)
    assert j["running"] is False and j["queue"] is None
