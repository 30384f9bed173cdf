"""Fixtures for end-to-end tests: the real `postern` binary in a temp dir.

`postern_server(config_text)` writes the configuration, starts
`postern serve --foreground`, waits (bounded) until every listener accepts,
and at teardown stops the whole process group and fails the test if the
daemon printed a sanitizer report.  Only loopback addresses are used.
"""
import os
import re
import signal
import socket
import subprocess
import time

import pytest

BIN = os.environ.get("POSTERN_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "postern")
BIN = os.path.abspath(BIN)
SANITIZER_RE = re.compile(r"ERROR: AddressSanitizer|runtime error:|LeakSanitizer")
# a child that died of anything but the tests' own kill -9 (abort on a
# double free, a segfault, ...) fails the test even when the master's
# restart hid it from the test's own assertions
CRASH_RE = re.compile(r"exited \(signal (?!9\))\d+\)|double free|"
                      r"corrupted size|segmentation fault", re.I)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(host, port, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def stop_process_group(proc, timeout=10):
    """SIGTERM a peer started with start_new_session=True and its whole
    process group, SIGKILL if it is still there after `timeout` s."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)
    except ProcessLookupError:
        pass


def run(*args, cwd=None, check=False, timeout=60, env=None):
    """Run the postern binary; returns CompletedProcess (text)."""
    p = subprocess.run([BIN, *args], cwd=cwd, capture_output=True, text=True,
                       timeout=timeout, env=env)
    if check and p.returncode != 0:
        raise AssertionError(f"postern {' '.join(args)} -> {p.returncode}\n"
                             f"{p.stdout}\n{p.stderr}")
    return p


BASE_CONFIG = """
hostname = "mx.test.example";
data_dir = "data";
log = {{ file = "postern.log"; format = "{log_format}"; }};
user = "root";
listeners = (
  {{ name = "inbound"; address = "127.0.0.1"; port = {port}; }}
);
sender_groups = (
  {{ name = "RELAYLIST"; networks = [ "127.0.0.1/32" ]; policy = "relayed"; }},
  {{ name = "ALL"; networks = [ "0.0.0.0/0", "::/0" ]; policy = "accepted"; }}
);
policies = {{
  relayed  = {{ action = "relay";  max_recipients = 100; }};
  accepted = {{ action = "accept"; }};
}};
local_domains = [ "example.com", "localhost" ];
routes = (
  {{ domain = "example.com"; maildir = "data/mail/%d/%u"; }},
  {{ domain = "localhost"; maildir = "data/mail/%d/%u"; }}
);
{extra}
"""


class Server:
    def __init__(self, tmp_path, config=None, extra="", log_format="text",
                 debug=False,
                 port=None, bin=None, env=None):
        self.dir = tmp_path
        self.bin = bin or BIN        # another postern (an installed tree)
        self.env = env               # environment of serve (None: ours)
        self.debug = debug
        self.port = port or free_port()
        self.conf = os.path.join(self.dir, "postern.conf")
        text = config if config is not None else BASE_CONFIG
        text = text.format(port=self.port, extra=extra, log_format=log_format)
        with open(self.conf, "w") as fh:
            fh.write(text)
        self.proc = None
        self.stderr_path = os.path.join(self.dir, "stderr.txt")

    @property
    def log_path(self):
        return os.path.join(self.dir, "postern.log")

    @property
    def data(self):
        return os.path.join(self.dir, "data")

    def start(self, wait=True):
        self.errf = open(self.stderr_path, "a")
        self.proc = subprocess.Popen(
            [self.bin, "serve", "-c", self.conf, "--foreground"] +
            (["--debug"] if self.debug else []), cwd=self.dir,
            stdout=self.errf, stderr=self.errf, start_new_session=True,
            env=self.env)
        if wait and not wait_port("127.0.0.1", self.port):
            self.stop()
            raise AssertionError("postern did not start listening:\n" +
                                 self.stderr())
        return self

    def pids(self):
        """PIDs of the master and its children."""
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.proc.pid)],
                             capture_output=True, text=True).stdout.split()
        return [self.proc.pid] + [int(x) for x in out]

    def kill9(self):
        """kill -9 the whole process group at once (a crash)."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None
        self.errf.close()

    def stop(self):
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        except ProcessLookupError:
            pass
        self.proc = None
        self.errf.close()

    def stderr(self):
        try:
            with open(self.stderr_path, errors="replace") as fh:
                return fh.read()
        except OSError:
            return ""

    def log(self):
        try:
            with open(self.log_path, errors="replace") as fh:
                return fh.read()
        except OSError:
            return ""

    def wait_log(self, pattern, timeout=15.0, count=1):
        """Wait until `pattern` (regex) matches `count` times in the log."""
        rx = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = rx.findall(self.log())
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"log never matched {pattern!r} x{count}:\n" +
                             self.log()[-4000:])

    def maildir_files(self, domain, user):
        d = os.path.join(self.data, "mail", domain, user, "new")
        if not os.path.isdir(d):
            return []
        return sorted(os.path.join(d, f) for f in os.listdir(d))

    def wait_maildir(self, domain, user, count=1, timeout=15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            files = self.maildir_files(domain, user)
            if len(files) >= count:
                return files
            time.sleep(0.05)
        raise AssertionError(f"maildir {user}@{domain} has "
                             f"{len(self.maildir_files(domain, user))} "
                             f"messages, wanted {count}\n" + self.log()[-3000:])

    def cli(self, *args, check=False):
        return run(*args, "-c", self.conf, cwd=self.dir, check=check) \
            if args[0] != "queue" else \
            run("queue", "-c", self.conf, *args[1:], cwd=self.dir, check=check)


@pytest.fixture
def server_factory(tmp_path):
    servers = []

    def make(**kw):
        d = tmp_path / f"s{len(servers)}"
        d.mkdir()
        s = Server(str(d), **kw)
        servers.append(s)
        return s

    yield make
    bad = []
    for s in servers:
        s.stop()
        text = s.stderr() + s.log()
        if SANITIZER_RE.search(text) or CRASH_RE.search(text):
            bad.append(text[-6000:])
    if bad:
        pytest.fail("sanitizer report or crash from postern:\n" +
                    "\n".join(bad))


@pytest.fixture
def server(server_factory):
    """A started server with the base configuration."""
    return server_factory().start()


# ---------------------------------------------------------------------------
# Helpers shared by the e2e test modules (import them with
# `from conftest import ...`).

def _esc(text):
    """Escape braces so a fragment survives BASE_CONFIG's str.format()."""
    return text.replace("{", "{{").replace("}", "}}")


_RELAYED = 'relayed  = {{ action = "relay";  max_recipients = 100; }};'
_ACCEPTED = 'accepted = {{ action = "accept"; }};'
_SG_LOCAL = ('{{ name = "RELAYLIST"; networks = [ "127.0.0.1/32" ]; '
             'policy = "relayed"; }},')
_ROUTE_EX = '{{ domain = "example.com"; maildir = "data/mail/%d/%u"; }},'


def make_config(relayed=None, accepted=None, local_policy=None,
                example_route=None):
    """BASE_CONFIG with some parts replaced (plain libconfig text, no
    brace escaping needed):
      relayed / accepted : the body of that policy group
      local_policy       : the policy name of the 127.0.0.1 sender group
      example_route      : the body of the example.com route group
    The result is a template for Server(config=...)."""
    t = BASE_CONFIG
    for part in (_RELAYED, _ACCEPTED, _SG_LOCAL, _ROUTE_EX):
        assert part in t, "BASE_CONFIG changed; update make_config: " + part
    if relayed is not None:
        t = t.replace(_RELAYED, "relayed  = {{ " + _esc(relayed) + " }};")
    if accepted is not None:
        t = t.replace(_ACCEPTED, "accepted = {{ " + _esc(accepted) + " }};")
    if local_policy is not None:
        t = t.replace(_SG_LOCAL, _SG_LOCAL.replace(
            'policy = "relayed"', 'policy = "%s"' % local_policy))
    if example_route is not None:
        t = t.replace(_ROUTE_EX, "{{ " + _esc(example_route) + " }},")
    return t


class SMTPError(AssertionError):
    pass


class RawSMTP:
    """A raw SMTP client over a loopback socket, every read bounded."""

    def __init__(self, port, timeout=10.0, banner=True):
        self.sock = socket.create_connection(("127.0.0.1", port),
                                             timeout=timeout)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.banner = self.reply() if banner else None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise SMTPError("connection closed by server; unread: %r"
                            % self.buf)
        self.buf += chunk

    def line(self):
        while b"\n" not in self.buf:
            self._fill()
        ln, self.buf = self.buf.split(b"\n", 1)
        return ln.rstrip(b"\r").decode("utf-8", "replace")

    def reply(self):
        """One (possibly multi-line) reply: returns the whole text, lines
        joined with "\\n", e.g. "250-a\\n250 b"."""
        lines = []
        while True:
            ln = self.line()
            lines.append(ln)
            if len(ln) < 4 or ln[3] != "-":
                return "\n".join(lines)

    def cmd(self, line, expect=None):
        self.send(line + "\r\n")
        r = self.reply()
        if expect is not None and not r.startswith(str(expect)):
            raise SMTPError(f"{line!r} -> {r!r}, wanted {expect}")
        return r

    def ehlo(self, name="client.test"):
        return self.cmd("EHLO " + name, expect=250)

    def closed(self, timeout=5.0):
        """True when the server closes the connection within `timeout`
        (any pending data is read and kept in self.buf)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False
            except ConnectionResetError:
                return True
            if not chunk:
                return True
            self.buf += chunk
        return False


def ossl(*args, cwd=None, env=None, input=None):
    """Run the openssl CLI, which must succeed; returns its stdout."""
    p = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True,
                       text=True, env=env, input=input, timeout=60)
    assert p.returncode == 0, f"openssl {' '.join(args)}:\n{p.stderr}"
    return p.stdout


def one_error_line(p, code=1):
    """postern(8): a failed command says why in one line on stderr."""
    assert p.returncode == code, (p.returncode, p.stdout, p.stderr)
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("postern: "), p.stderr
    return lines[0]


def queue_count(server):
    p = server.cli("queue", "list", "--count")
    assert p.returncode == 0, p.stderr
    return int(p.stdout.strip())


def wait_for(pred, timeout=15.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def all_maildir_files(server):
    """Every file below data/mail (any domain, user, subdirectory)."""
    out = []
    root = os.path.join(server.data, "mail")
    for dirpath, _dirs, files in os.walk(root):
        out.extend(os.path.join(dirpath, f) for f in files)
    return sorted(out)


def read_bytes(path):
    with open(path, "rb") as fh:
        return fh.read()


def settle(server, timeout=10.0):
    """Wait until the queue manager has nothing left that is due: the
    spool queue is empty.  Returns the count (0)."""
    wait_for(lambda: queue_count(server) == 0, timeout, "empty queue")
    return 0


QUEUED_RE = re.compile(r"^250 2\.0\.0 Ok: queued as (\d+)$")


def smtp_send(server, sender, rcpts, msg, ehlo=True):
    """Send one message with smtplib; returns (code, text) of the reply to
    the end of data (smtplib does the dot-stuffing)."""
    import smtplib
    with smtplib.SMTP("127.0.0.1", server.port, local_hostname="client.test",
                      timeout=15) as c:
        if ehlo:
            c.ehlo()
        else:
            c.helo()
        code, text = c.mail(sender)
        assert code == 250, (code, text)
        for r in rcpts:
            code, text = c.rcpt(r)
            assert code == 250, (r, code, text)
        code, text = c.data(msg)
        return code, f"{code} {text.decode()}"


def queued_mid(reply):
    m = QUEUED_RE.match(reply)
    assert m, f"not a queued reply: {reply!r}"
    return int(m.group(1))


def systemd_analyze(root):
    """`systemd-analyze verify` and `systemd-analyze security --offline` of
    ROOT/lib/systemd/system/postern.service, ROOT being an installed tree
    (the binary where ExecStart says, the man pages Documentation= names).
    The system's own units (the targets the unit depends on) are copied in
    beside it.  Returns (verify CompletedProcess, security
    CompletedProcess, exposure as a float, its rating word)."""
    import shutil
    unitdir = os.path.join(root, "lib", "systemd", "system")
    system_units = ("/lib/systemd/system" if os.path.isdir(
        "/lib/systemd/system") else "/usr/lib/systemd/system")
    for name in os.listdir(system_units):
        src = os.path.join(system_units, name)
        dst = os.path.join(unitdir, name)
        if os.path.exists(dst) or os.path.islink(dst):
            continue
        if os.path.isdir(src) and not os.path.islink(src):
            shutil.copytree(src, dst, symlinks=True)
        else:
            shutil.copy(src, dst, follow_symlinks=False)
    env = dict(os.environ, MANPATH=os.path.join(root, "usr", "share", "man"))
    verify = subprocess.run(["systemd-analyze", "verify", "--root=" + root,
                             "postern.service"], capture_output=True,
                            text=True, env=env, timeout=60)
    # --threshold counts in tenths: 25 = 2.5
    security = subprocess.run(["systemd-analyze", "security", "--offline=true",
                               "--threshold=25",
                               os.path.join(unitdir, "postern.service")],
                              capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for postern\.service: "
                  r"(\d+\.\d+) (\w+)", security.stdout)
    assert m, security.stdout + security.stderr
    return verify, security, float(m.group(1)), m.group(2)
