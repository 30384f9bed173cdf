"""`postern serve` under systemd, without systemd: the sd_notify protocol
checked end to end with a datagram socket of ours in NOTIFY_SOCKET (READY=1
only once every listener accepts and the spool is recovered, STATUS= with
the queue, WATCHDOG=1 at half WATCHDOG_USEC, RELOADING=1 then READY=1
around a SIGHUP reload, STOPPING=1), SIGUSR2 reopening the log files and
nothing else, and the generated unit file under `systemd-analyze verify`
and `systemd-analyze security` (docs/man/postern.8.scd, "SYSTEMD")."""
import os
import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import tempfile
import time

import pytest

from conftest import (BIN, RawSMTP, Server, free_port, queued_mid, smtp_send,
                      systemd_analyze, wait_for)
from peers import sink_factory  # noqa: F401  (a fixture)

# What every daemon of this file shares; CONFIG and TRACED_CONFIG add
# workers, listeners, routes.
HEAD = """
hostname = "mx.test.example";
data_dir = "data";
log = {{ file = "postern.log"; format = "text"; }};
user = "root";
sender_groups = (
  {{ name = "ALL"; networks = [ "0.0.0.0/0", "::/0" ]; policy = "relayed"; }}
);
policies = {{ relayed = {{ action = "relay"; }}; }};
local_domains = [ "example.com" ];
"""

CONFIG = HEAD + """
workers = 2;
listeners = (
  {{ name = "inbound"; address = "127.0.0.1"; port = {port}; }},
  {{ name = "second"; address = "127.0.0.1"; port = PORT2; }}
);
routes = (
  {{ domain = "example.com"; maildir = "data/mail/%d/%u"; }},
  {{ domain = "*"; hosts = [ "[127.0.0.1]:9" ]; }}
);
delivery = {{ paused = true; }};
"""

MSG = "From: a@example.org\r\nTo: b@far.example\r\nSubject: s\r\n\r\nbody\r\n"


class NotifySocket:
    """systemd's side of sd_notify(3): an AF_UNIX datagram socket whose
    path goes into NOTIFY_SOCKET.  Every datagram is kept as a dict."""

    def __init__(self):
        # sun_path holds 108 bytes: a short directory, not tmp_path
        self.dir = tempfile.mkdtemp(prefix="pn-notify-")
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        # like systemd's own: any user may notify (the unit's is not root)
        os.chmod(self.dir, 0o755)
        os.chmod(self.path, 0o777)
        self.msgs = []

    def close(self):
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def env(self, **extra):
        e = dict(os.environ, NOTIFY_SOCKET=self.path)
        e.update(extra)
        return e

    def _recv(self, timeout):
        self.sock.settimeout(max(0.01, timeout))
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            return False
        fields = dict(ln.split("=", 1) for ln in data.decode().split("\n")
                      if "=" in ln)
        self.msgs.append(fields)
        return True

    def drain(self):
        """Read whatever is pending, without waiting."""
        while self._recv(0.05):
            pass

    def wait(self, key, value=None, start=0, timeout=15.0):
        """The first message from index `start` on that has key (=value);
        returns its index."""
        deadline = time.monotonic() + timeout
        i = start
        while True:
            while i < len(self.msgs):
                m = self.msgs[i]
                if key in m and (value is None or m[key] == value):
                    return i
                i += 1
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {key}={value} from serve within "
                                     f"{timeout} s; got {self.msgs}")
            self._recv(left)


@pytest.fixture
def notify():
    n = NotifySocket()
    yield n
    n.close()


def banner(port):
    with RawSMTP(port) as c:
        return c.banner


def test_notify_protocol(server_factory, notify):
    port2 = free_port()
    s = server_factory(config=CONFIG.replace("PORT2", str(port2)),
                       env=notify.env(WATCHDOG_USEC="200000"))
    # an unfinished reception from "before a crash": recovery removes it
    incoming = os.path.join(s.data, "spool", "incoming")
    os.makedirs(incoming)
    with open(os.path.join(incoming, "5"), "w") as fh:
        fh.write("half a message")
    s.start(wait=False)

    r = notify.wait("READY", "1")
    # READY=1 means every listener accepts and the spool is recovered
    assert banner(s.port).startswith("220 mx.test.example ESMTP Postern")
    assert banner(port2).startswith("220 mx.test.example ESMTP Postern")
    assert not os.path.exists(os.path.join(incoming, "5"))
    assert notify.msgs[r]["STATUS"] == ("accepting on 2 listeners with 2 "
                                        "workers, 0 messages queued, "
                                        "delivery paused")
    assert not any("READY" in m for m in notify.msgs[:r])

    # WATCHDOG=1 every 0.1 s (half of WATCHDOG_USEC): two come quickly
    w = notify.wait("WATCHDOG", "1", start=r + 1)
    notify.wait("WATCHDOG", "1", start=w + 1)

    # two messages queued (delivery is paused), one of them held
    mids = []
    for _ in range(2):
        code, text = smtp_send(s, "a@example.org", ["b@far.example"], MSG)
        assert code == 250, text
        mids.append(queued_mid(text))
    assert s.cli("queue", "hold", str(mids[1])).returncode == 0

    # SIGHUP: RELOADING=1 (with MONOTONIC_USEC), then READY=1 and the
    # new counts
    start = len(notify.msgs)
    os.kill(s.proc.pid, signal.SIGHUP)
    rl = notify.wait("RELOADING", "1", start=start)
    assert re.fullmatch(r"\d+", notify.msgs[rl]["MONOTONIC_USEC"])
    rd = notify.wait("READY", "1", start=rl + 1)
    assert notify.msgs[rd]["STATUS"] == (
        "accepting on 2 listeners with 2 workers, 1 message queued, "
        "1 held, delivery paused")
    s.wait_log(r"configuration reloaded from")

    # SIGUSR2: every process reopens the log, nothing else happens
    wait_for(lambda: len(s.pids()) == 4, what="old generation gone")
    before = set(s.pids())
    os.rename(s.log_path, s.log_path + ".1")
    start = len(notify.msgs)
    os.kill(s.proc.pid, signal.SIGUSR2)
    s.wait_log(r"Info: log reopened \(SIGUSR2\)")
    code, text = smtp_send(s, "a@example.org", ["c@far.example"], MSG)
    assert code == 250, text
    s.wait_log(r"MID %d ready" % queued_mid(text))   # a worker's line
    assert set(s.pids()) <= before                    # no process started
    assert "configuration reloaded" not in s.log()
    notify.drain()
    assert not any("RELOADING" in m or "READY" in m
                   for m in notify.msgs[start:]), notify.msgs[start:]

    # a reload that is refused still ends with READY=1, and says so
    with open(s.conf, "a") as fh:
        fh.write("\nbogus_key = 1;\n")
    start = len(notify.msgs)
    os.kill(s.proc.pid, signal.SIGHUP)
    rl = notify.wait("RELOADING", "1", start=start)
    rd = notify.wait("READY", "1", start=rl + 1)
    assert notify.msgs[rd]["STATUS"].endswith(
        "last reload refused (see the log)"), notify.msgs[rd]
    s.wait_log(r"reload refused: .*unknown key 'bogus_key'")

    # SIGTERM: STOPPING=1
    start = len(notify.msgs)
    s.stop()
    st = notify.wait("STOPPING", "1", start=start)
    assert notify.msgs[st]["STATUS"].startswith("stopping ")


def test_no_ready_when_a_listener_cannot_bind(server_factory, notify):
    """A listener that cannot be bound: serve exits 1 and never says
    READY=1."""
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port2 = busy.getsockname()[1]
    try:
        s = server_factory(config=CONFIG.replace("PORT2", str(port2)),
                           env=notify.env())
        s.start(wait=False)
        assert s.proc.wait(timeout=15) == 1
        s.proc = None
        s.errf.close()
    finally:
        busy.close()
    notify.drain()
    assert not any("READY" in m for m in notify.msgs), notify.msgs
    assert "Address already in use" in s.stderr()


def test_without_notify_socket_nothing_is_sent(server_factory, notify):
    """Started by hand (no NOTIFY_SOCKET) serve sends nothing anywhere,
    WATCHDOG_USEC or not."""
    env = dict(os.environ, WATCHDOG_USEC="100000")
    env.pop("NOTIFY_SOCKET", None)
    s = server_factory(config=CONFIG.replace("PORT2", str(free_port())),
                       env=env).start()
    assert banner(s.port).startswith("220 ")
    s.stop()
    notify.drain()
    assert notify.msgs == []


# ---------------------------------------------------------------- the unit

def unit_root(tmp_path):
    """An installed tree of this build for systemd_analyze(): the unit made
    by the build (<build>/dist/postern.service), the binary where its
    ExecStart says, the man pages."""
    build = os.path.dirname(BIN)
    unit = os.path.join(build, "dist", "postern.service")
    assert os.path.exists(unit), "the build made no dist/postern.service"
    root = str(tmp_path / "root")
    unitdir = os.path.join(root, "lib", "systemd", "system")
    os.makedirs(unitdir)
    shutil.copy(unit, unitdir)
    with open(unit) as fh:
        exe = re.search(r"^ExecStart=(\S+)", fh.read(), re.M).group(1)
    os.makedirs(os.path.dirname(root + exe), exist_ok=True)
    shutil.copy(BIN, root + exe)
    for page in ("postern.8", "postern.conf.5", "postern-log.7"):
        d = os.path.join(root, "usr", "share", "man",
                         "man" + page.rsplit(".")[-1])
        os.makedirs(d, exist_ok=True)
        shutil.copy(os.path.join(build, "docs", "man", page), d)
    return root


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is missing (Debian: systemd)")
def test_unit_passes_systemd_analyze(tmp_path):
    root = unit_root(tmp_path)
    verify, security, exposure, rating = systemd_analyze(root)
    assert verify.returncode == 0 and verify.stderr.strip() == "", \
        verify.stderr
    # at most 2.5, "OK"
    assert security.returncode == 0 and exposure <= 2.5, security.stdout
    assert rating == "OK", (exposure, rating)
    # the hardening the unit promises in postern(8)
    with open(os.path.join(root, "lib", "systemd", "system",
                           "postern.service")) as fh:
        text = fh.read()
    for want in ("Type=notify", "WatchdogSec=", "NoNewPrivileges=yes",
                 "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
                 "CapabilityBoundingSet=CAP_NET_BIND_SERVICE\n",
                 "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6\n",
                 "SystemCallFilter=@system-service",
                 "ExecReload=/bin/kill -HUP $MAINPID"):
        assert want in text, want


TRACED_CONFIG = HEAD + """
workers = 1;
listeners = (
  {{ name = "inbound"; address = "127.0.0.1"; port = {port};
     tls = "preferred"; }}
);
routes = (
  {{ domain = "example.com"; maildir = "data/mail/%d/%u"; }},
  {{ domain = "far.example"; hosts = [ "[127.0.0.1]:SINKPORT" ]; }}
);
"""


def syscall_set(group):
    """The system calls of a systemd filter group, nested groups
    expanded (`systemd-analyze syscall-filter`)."""
    out = subprocess.run(["systemd-analyze", "syscall-filter", group],
                         capture_output=True, text=True, check=True,
                         timeout=60).stdout
    calls = set()
    for ln in out.splitlines()[1:]:
        ln = ln.strip()
        if ln.startswith("@"):
            calls |= syscall_set(ln)
        elif ln and not ln.startswith("#"):
            calls.add(ln)
    return calls


def unit_syscall_filter():
    """What the unit's SystemCallFilter= lines allow: the first names an
    allow list, the later ones (~...) take groups away."""
    with open(os.path.join(os.path.dirname(BIN), "dist",
                           "postern.service")) as fh:
        lines = re.findall(r"^SystemCallFilter=(.*)$", fh.read(), re.M)
    assert lines and not lines[0].startswith("~"), lines
    allowed = set()
    for g in lines[0].split():
        allowed |= syscall_set(g)
    for ln in lines[1:]:
        assert ln.startswith("~"), ln
        for g in ln[1:].split():
            allowed -= syscall_set(g)
    return allowed


def traced_calls(path):
    calls = set()
    with open(path, errors="replace") as fh:
        for ln in fh:
            m = re.match(r"^\d+ +(?:<\.\.\. )?([a-z_0-9]+)(?:\(| resumed)",
                         ln)
            if m:
                calls.add(m.group(1))
    return calls


def can_trace():
    if shutil.which("strace") is None:
        return False
    return subprocess.run(["strace", "-qq", "-o", "/dev/null", "true"],
                          capture_output=True, timeout=30).returncode == 0


def sanitized(path):
    with open(path, "rb") as fh:
        return b"__asan_init" in fh.read()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is missing (Debian: systemd)")
@pytest.mark.skipif(not can_trace(), reason="strace cannot trace here "
                    "(Debian: strace; ptrace not permitted)")
@pytest.mark.skipif(sanitized(BIN), reason="a sanitizer build: its runtime "
                    "makes system calls the shipped binary does not")
def test_system_calls_fit_the_units_filter(tmp_path, server_factory,
                                           sink_factory):
    """Everything serve (and `config check`, the unit's ExecReload) does
    here - TLS, local and SMTP delivery, a reload, a log reopen, a stop -
    uses only system calls the unit's SystemCallFilter= allows (a call
    outside it would fail with EPERM under systemd)."""
    allowed = unit_syscall_filter()
    trace = str(tmp_path / "trace")
    wrapper = tmp_path / "traced-postern"
    wrapper.write_text(f'#!/bin/sh\nexec strace -f -qq -o "{trace}" '
                       f'"{BIN}" "$@"\n')
    wrapper.chmod(0o755)
    sink = sink_factory()
    s = server_factory(bin=str(wrapper), config=TRACED_CONFIG.replace(
        "SINKPORT", str(sink.port)))
    s.start()
    with smtplib.SMTP("127.0.0.1", s.port, timeout=15) as c:
        c.starttls(context=ssl._create_unverified_context())
        c.sendmail("a@example.org", ["bob@example.com", "x@far.example"],
                   MSG)
    s.wait_maildir("example.com", "bob")
    sink.wait_messages(1)
    master = int(open(os.path.join(s.data, "postern.pid")).read())
    os.kill(master, signal.SIGHUP)
    s.wait_log(r"configuration reloaded")
    os.kill(master, signal.SIGUSR2)
    s.wait_log(r"log reopened")
    os.kill(master, signal.SIGTERM)     # strace exits with its tracee
    assert s.proc.wait(timeout=30) == 0, s.stderr()
    s.proc = None
    s.errf.close()
    check = subprocess.run(["strace", "-f", "-qq", "-o", trace + ".check",
                            BIN, "config", "check", "-c", s.conf],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    used = traced_calls(trace) | traced_calls(trace + ".check")
    # the trace saw the master, a worker, the queue manager and its threads
    assert {"rt_sigtimedwait", "accept4", "syncfs", "connect", "clone3",
            "execve"} <= used, sorted(used)
    assert used - allowed == set(), sorted(used - allowed)



def test_serve_started_unprivileged_as_the_unit_does(notify):
    """The unit starts serve as its user, never as root (User=postern):
    here as nobody (setpriv, no new privileges), on high ports, with the
    binary and every file where nobody can reach them.  It says READY=1,
    serves a message and never tries to switch users."""
    top = tempfile.mkdtemp(prefix="pn-unpriv-")
    s = None
    try:
        os.chmod(top, 0o755)
        exe = os.path.join(top, "postern")
        shutil.copy(BIN, exe)
        as_nobody = os.path.join(top, "as-nobody")
        with open(as_nobody, "w") as fh:
            fh.write("#!/bin/sh\nexec setpriv --reuid=65534 --regid=65534 "
                     "--clear-groups --no-new-privs %s \"$@\"\n" % exe)
        os.chmod(as_nobody, 0o755)
        work = os.path.join(top, "w")
        os.mkdir(work)
        s = Server(work, config=CONFIG.replace("PORT2", str(free_port()))
                   .replace('user = "root";', 'user = "postern";'),
                   bin=as_nobody, env=notify.env())
        for path in (work, s.conf):
            os.chown(path, 65534, 65534)
        s.start()
        notify.wait("READY", "1")
        code, text = smtp_send(s, "a@example.org", ["bob@example.com"], MSG)
        assert code == 250, text
        assert os.stat(s.data).st_uid == 65534
        assert os.stat(s.log_path).st_uid == 65534
        log = s.log()
        assert "running as" not in log and "Critical" not in log, log
    finally:
        if s is not None:
            s.stop()
        shutil.rmtree(top, ignore_errors=True)
