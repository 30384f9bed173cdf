"""`postern serve` as root with an unprivileged daemon user and its data
dir under a directory that user cannot enter (a checkout under /root,
mode 0700): the master enters data_dir before it drops privileges and
works relative to it, so the daemon starts, accepts and delivers; a path
outside data_dir that the user cannot reach (the log file here) stops the
start before anything is bound, with one line naming the directory and
the fix.

The daemon user is a throwaway system account made here (useradd) and
removed afterwards: the tests pass whether or not a `postern` user
exists.  Without root there is no privilege drop to test: skipped.
"""
import os
import re
import pwd
import socket
import subprocess
import uuid

import pytest

from conftest import BIN, free_port, wait_for, wait_port

CONF = """
hostname = "mx.test.example";
data_dir = "data";
user = "{user}";
log = {{ file = "{log}"; }};
listeners = ( {{ name = "inbound"; address = "127.0.0.1"; port = {port}; }} );
sender_groups = ( {{ name = "ALL"; networks = [ "0.0.0.0/0" ];
                    policy = "accepted"; }} );
policies = {{ accepted = {{ action = "accept"; }}; }};
local_domains = [ "localhost" ];
routes = ( {{ domain = "localhost"; maildir = "data/mail/%d/%u"; }} );
"""


@pytest.fixture
def daemon_user():
    if os.geteuid() != 0:
        pytest.skip("needs root: the daemon drops privileges only as root")
    name = "pt" + uuid.uuid4().hex[:10]
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                    "/usr/sbin/nologin", name], check=True,
                   capture_output=True, timeout=60)
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], capture_output=True, timeout=60)


def send_one(port, to):
    """One message from a@localhost to `to` by `postern send`."""
    out = subprocess.run(
        [BIN, "send", "--from", "a@localhost", "--to", to, "--body", "hi"],
        capture_output=True, text=True, timeout=60,
        env=dict(os.environ, SMTP_HOST="127.0.0.1", SMTP_PORT=str(port)))
    assert out.returncode == 0, out.stderr


def closed_dir(tmp_path):
    d = tmp_path / "home"
    d.mkdir()
    os.chmod(d, 0o700)          # like /root
    return d


def test_data_dir_under_a_closed_directory(tmp_path, daemon_user):
    d = closed_dir(tmp_path)
    port = free_port()
    conf = d / "postern.conf"
    conf.write_text(CONF.format(user=daemon_user, log="data/postern.log",
                                port=port))
    p = subprocess.Popen([BIN, "serve", "-c", "postern.conf",
                          "--foreground"], cwd=str(d),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         start_new_session=True)
    try:
        assert wait_port("127.0.0.1", port), p.stdout.read1().decode()
        log = d / "data" / "postern.log"
        wait_for(lambda: log.exists() and "starting" in log.read_text(),
                 15, "start")
        assert f"data_dir {d}/data" in log.read_text()
        send_one(port, "you@localhost")
        new = d / "data" / "mail" / "localhost" / "you" / "new"
        wait_for(lambda: new.is_dir() and os.listdir(new), 15, "delivery")
        f = new / os.listdir(new)[0]
        assert os.stat(f).st_uid == pwd.getpwnam(daemon_user).pw_uid
        # every process runs as the daemon user
        pids = [p.pid] + [int(x) for x in subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(p.pid)], capture_output=True,
            text=True).stdout.split()]
        for pid in pids:
            assert os.stat(f"/proc/{pid}").st_uid == \
                pwd.getpwnam(daemon_user).pw_uid
    finally:
        os.killpg(p.pid, 15)
        p.wait(timeout=15)


def test_unreachable_log_fails_before_binding(tmp_path, daemon_user):
    d = closed_dir(tmp_path)
    port = free_port()
    conf = d / "postern.conf"
    conf.write_text(CONF.format(user=daemon_user, log="postern.log",
                                port=port))
    p = subprocess.run([BIN, "serve", "-c", str(conf), "--foreground"],
                       cwd=str(d), capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 1
    lines = p.stderr.splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith(f"postern: user {daemon_user} cannot reach ")
    assert f"the log {d}/postern.log" in lines[0]
    assert "move it under data_dir" in lines[0]
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))         # never bound by postern


def test_store_commands_under_a_closed_directory(tmp_path, daemon_user):
    """The commands that write into data_dir's stores, run as root before
    the daemon ever ran: they make data_dir (0700, the user's) and leave
    every file they write owned by the daemon user, although that user
    cannot enter the directory above data_dir; `queue` and `status` read
    (and write) there as well."""
    d = closed_dir(tmp_path)
    conf = d / "postern.conf"
    conf.write_text(CONF.format(user=daemon_user, log="data/postern.log",
                                port=free_port()))
    data = d / "data"
    uid = pwd.getpwnam(daemon_user).pw_uid

    def run(*args):
        p = subprocess.run([BIN, *args, "-c", "postern.conf"], cwd=str(d),
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, (args, p.stderr)
        return p.stdout

    run("user", "add", "me", "--identity", "example.org")
    assert data.is_dir()
    st = os.stat(data)
    assert st.st_uid == uid and st.st_mode & 0o777 == 0o700
    run("cert", "selfsign", "--cn", "mx.test.example", "--name", "default")
    run("cert", "csr", "--cn", "mx.test.example", "--name", "next")
    run("dkim", "keygen", "--domain", "example.org", "--selector", "s1",
        "--type", "ed25519")
    run("trust", "add", str(data / "certs" / "default.pem"), "--name",
        "self")
    written = [data / "users", data / "certs" / "default.key",
               data / "certs" / "default.pem", data / "certs" / "next.key",
               data / "dkim" / "example.org.s1.key",
               data / "trust" / "self.pem"]
    for f in written:
        assert os.stat(f).st_uid == uid, f
    for f in (data / "certs" / "default.key",
              data / "dkim" / "example.org.s1.key", data / "users"):
        assert os.stat(f).st_mode & 0o777 == 0o600, f
    assert "me" in run("user", "list")
    run("trust", "remove", "self")
    assert not (data / "trust" / "self.pem").exists()
    # the readers too: the queue (made as the user) and the status
    assert run("queue", "list") == ""
    assert os.stat(data / "spool").st_uid == uid
    p = subprocess.run([BIN, "status", "-c", "postern.conf"], cwd=str(d),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1, p.stderr
    assert p.stdout.startswith("postern is NOT running"), p.stderr
    assert "queue: 0 active, 0 deferred, 0 held" in p.stdout, p.stdout
    # root again after the store: the admin's output file is root's
    (d / "pw").write_text("export-secret\n")
    run("cert", "export", "default", "--pkcs12", str(d / "default.p12"),
        "--password-file", str(d / "pw"))
    assert os.stat(d / "default.p12").st_uid == 0


def test_queue_retry_as_root_reaches_the_daemon(tmp_path, daemon_user):
    """`postern queue retry` run as root signals a daemon that runs as its
    unprivileged user (data_dir below a closed directory): the deferred
    message is tried again at once although retry_min is an hour."""
    d = closed_dir(tmp_path)
    port, dead = free_port(), free_port()
    conf = d / "postern.conf"
    conf.write_text(CONF.format(user=daemon_user, log="data/postern.log",
                                port=port).replace(
        'routes = ( {',
        'routes = ( { domain = "remote.test"; hosts = [ "[127.0.0.1]:'
        + str(dead) + '" ]; },\n  {').replace(
        'action = "accept"', 'action = "relay"') +
        "delivery = { retry_min = 3600; retry_max = 7200; };\n")
    p = subprocess.Popen([BIN, "serve", "-c", "postern.conf",
                          "--foreground"], cwd=str(d),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         start_new_session=True)
    log = d / "data" / "postern.log"

    def delayed():
        return re.findall(r"Delayed: (?:DCID \d+ )?MID (\d+) to RID",
                          log.read_text()) if log.exists() else []
    try:
        assert wait_port("127.0.0.1", port), p.stdout.read1().decode()
        send_one(port, "b@remote.test")
        mid = wait_for(delayed, 15, "the first attempt")[0]
        q = subprocess.run([BIN, "queue", "retry", mid, "-c",
                            "postern.conf"], cwd=str(d), capture_output=True,
                           text=True, timeout=60)
        assert q.returncode == 0, q.stderr
        wait_for(lambda: len(delayed()) >= 2, 15, "the attempt retry asked")
    finally:
        os.killpg(p.pid, 15)
        p.wait(timeout=15)
