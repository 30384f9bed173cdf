"""The process model: privileges dropped after binding, a crashed worker is
restarted without leaking its connection counts, SIGTERM ends sessions
cleanly with 421, SIGHUP reopens the log."""
import os
import pwd
import shutil
import signal
import socket
import tempfile
import time

import pytest

from conftest import BASE_CONFIG


def recv_line(s):
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(1)
        if not chunk:
            break
        buf += chunk
    return buf


def children(pid):
    out = os.popen(f"ps -o pid= --ppid {pid}").read().split()
    return [int(x) for x in out]


def uid_of(pid):
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("Uid:"):
                return [int(x) for x in line.split()[1:]]
    return None


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop privileges")
def test_privileges_are_dropped_after_binding(server_factory):
    nobody = pwd.getpwnam("nobody")
    # a directory the unprivileged user can reach
    d = tempfile.mkdtemp(prefix="postern-priv-", dir="/tmp")
    os.chmod(d, 0o755)
    srv = None
    try:
        srv = server_factory(config=BASE_CONFIG.replace(
            'user = "root";', 'user = "nobody";').replace(
            'file = "postern.log"', f'file = "{d}/postern.log"').replace(
            'data_dir = "data";', f'data_dir = "{d}/data";').replace(
            'maildir = "data/mail/%d/%u"', f'maildir = "{d}/data/mail/%d/%u"'))
        srv.start()
        kids = children(srv.proc.pid)
        assert len(kids) >= 2
        for pid in [srv.proc.pid] + kids:
            assert uid_of(pid) == [nobody.pw_uid] * 4, pid
        import smtplib
        with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as s:
            s.sendmail("a@example.com", ["bob@example.com"],
                       b"Subject: priv\r\n\r\nbody\r\n")
        new = os.path.join(d, "data", "mail", "example.com", "bob", "new")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if os.path.isdir(new) and os.listdir(new):
                break
            time.sleep(0.05)
        files = os.listdir(new)
        assert len(files) == 1
        st = os.stat(os.path.join(new, files[0]))
        assert st.st_uid == nobody.pw_uid
        assert st.st_mode & 0o777 == 0o600
    finally:
        if srv is not None:
            srv.stop()
        shutil.rmtree(d, ignore_errors=True)


def test_killed_worker_is_restarted_and_its_connections_forgotten(
        server_factory):
    srv = server_factory(
        extra="limits = { max_connections_per_client = 2; };").start()
    socks = []
    for _ in range(2):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        assert recv_line(s).startswith(b"220 ")
        socks.append(s)
    third = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    assert recv_line(third).startswith(b"421 4.7.0 Too many connections")
    third.close()
    # kill -9 every child (workers and queue manager): the master restarts
    # them, and the dead workers' connection counts must not stay behind
    kids = children(srv.proc.pid)
    assert len(kids) >= 2
    for p in kids:
        os.kill(p, signal.SIGKILL)
    srv.wait_log(r"(?:worker|queue manager) \d+ exited \(signal 9\); "
                 r"restarting it", count=len(kids))
    for s in socks:
        s.close()
    deadline = time.monotonic() + 15
    got = b""
    while time.monotonic() < deadline:
        try:
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
            got = recv_line(s)
            s.close()
            if got.startswith(b"220 "):
                break
        except OSError:
            pass
        time.sleep(0.1)
    assert got.startswith(b"220 "), got


def test_sigterm_ends_sessions_with_421_and_exits(server_factory):
    srv = server_factory().start()
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    assert recv_line(s).startswith(b"220 ")
    s.sendall(b"EHLO c\r\nMAIL FROM:<a@example.com>\r\n")
    while not recv_line(s).startswith(b"250 2.1.0"):
        pass
    os.kill(srv.proc.pid, signal.SIGTERM)
    line = recv_line(s)
    assert line.startswith(b"421 4.3.2 mx.test.example Service shutting down")
    assert srv.proc.wait(timeout=15) == 0
    srv.proc = None
    srv.errf.close()
    assert "Message finished MID" in srv.log()   # the open transaction
    assert "stopped" in srv.log()


def test_sighup_reopens_the_log_file(server_factory):
    srv = server_factory().start()
    os.rename(srv.log_path, srv.log_path + ".1")
    os.kill(srv.proc.pid, signal.SIGHUP)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
            recv_line(s)
            s.sendall(b"QUIT\r\n")
            recv_line(s)
        if "New SMTP ICID" in srv.log():
            break
        time.sleep(0.2)
    assert "New SMTP ICID" in srv.log()
