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
                 port=None):
        self.dir = tmp_path
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
            [BIN, "serve", "-c", self.conf, "--foreground"], cwd=self.dir,
            stdout=self.errf, stderr=self.errf, start_new_session=True)
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
        if SANITIZER_RE.search(text):
            bad.append(text[-6000:])
    if bad:
        pytest.fail("sanitizer report from postern:\n" + "\n".join(bad))


@pytest.fixture
def server(server_factory):
    """A started server with the base configuration."""
    return server_factory().start()
