"""PROXY protocol (docs/proxy-protocol.md) end to end: Debian's haproxy in
front of two Postern instances on loopback (round robin, send-proxy-v2,
health checks every 200 ms), plus swaks --proxy and raw headers straight to
one instance.

The clients bind 127.0.0.2 / 127.0.0.3 while haproxy connects from
127.0.0.1, so the proxy's address and the client's differ: 127.0.0.1 is in
a relaying sender group, 127.0.0.2 in a rejected one, everything else may
only deliver locally.  One haproxy and two servers serve the whole module.
"""
import base64
import os
import re
import shutil
import smtplib
import socket
import ssl
import subprocess

import pytest

from conftest import (CRASH_RE, SANITIZER_RE, RawSMTP, Server, free_port,
                      stop_process_group, wait_for)

pytestmark = pytest.mark.skipif(shutil.which("haproxy") is None,
                                reason="haproxy is not installed")

CLIENT = "127.0.0.3"        # delivers locally only (sender group ALL)
BLOCKED = "127.0.0.2"       # sender group BLOCKED: 554 at the banner
V2SIG = b"\r\n\r\n\x00\r\nQUIT\n"
V2_LOCAL = V2SIG + b"\x20\x00\x00\x00"

CONFIG = """
hostname = "mx{n}.test.example";
data_dir = "data";
log = {{ file = "postern.log"; format = "text"; }};
user = "root";
listeners = (
  {{ name = "inbound"; address = "127.0.0.1"; port = {inbound};
     tls = "preferred"; auth = "optional";
     proxy_protocol = true; proxy_from = [ "127.0.0.1/32" ]; }},
  {{ name = "smtps"; address = "127.0.0.1"; port = {smtps}; tls = "implicit";
     proxy_protocol = true; proxy_from = [ "127.0.0.1" ]; }}
);
sender_groups = (
  {{ name = "RELAYLIST"; networks = [ "127.0.0.1/32" ]; policy = "relayed"; }},
  {{ name = "BLOCKED"; networks = [ "127.0.0.2/32" ]; policy = "blocked"; }},
  {{ name = "ALL"; networks = [ "0.0.0.0/0", "::/0" ]; policy = "accepted"; }}
);
policies = {{
  relayed  = {{ action = "relay"; }};
  blocked  = {{ action = "reject"; }};
  accepted = {{ action = "accept"; allow_plaintext_auth = true;
               max_connections_per_client = 2; auth_failures = 2;
               auth_failure_delay = 1; }};
}};
local_domains = [ "example.com" ];
routes = ( {{ domain = "example.com"; maildir = "data/mail/%d/%u"; }} );
"""

HAPROXY = """
global
    maxconn 500
    stats socket {sock} mode 600 level admin
defaults
    mode tcp
    timeout check 5s
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend smtp
    bind 127.0.0.1:{smtp}
    default_backend smtp_pool
frontend smtps
    bind 127.0.0.1:{smtps}
    default_backend smtps_pool
backend smtp_pool
    balance roundrobin
    option smtpchk EHLO haproxy.test
    server a 127.0.0.1:{a_in} send-proxy-v2 check inter 200ms
    server b 127.0.0.1:{b_in} send-proxy-v2 check inter 200ms
backend smtps_pool
    balance roundrobin
    server a 127.0.0.1:{a_tls} send-proxy-v2 check inter 200ms
    server b 127.0.0.1:{b_tls} send-proxy-v2 check inter 200ms
"""


def port_bound(port):
    """Is something listening on 127.0.0.1:port?  Tested by binding, not
    by connecting (a connection would go through to Postern)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def servers_up(sock):
    """Names of the backend servers haproxy has UP ("smtp_pool/a", ...),
    from `show stat` on its stats socket."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        try:
            s.connect(sock)
        except OSError:
            return set()
        s.sendall(b"show stat\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    lines = data.decode().splitlines()
    if not lines or not lines[0].startswith("# "):
        return set()
    cols = lines[0][2:].split(",")
    up = set()
    for ln in lines[1:]:
        row = dict(zip(cols, ln.split(",")))
        if row.get("svname") in ("a", "b") and row.get("status") == "UP":
            up.add(row["pxname"] + "/" + row["svname"])
    return up


def health_checks(srv, listener):
    return len(re.findall(r"Debug: ICID \d+ PROXY v2 LOCAL from 127\.0\.0\.1 "
                          r"port \d+ on %s: a health check" % listener,
                          srv.log()))


class Env:
    def __init__(self, tmp):
        self.tmp = tmp
        self.servers = []
        self.haproxy = None

    def start(self):
        for n in (1, 2):
            d = os.path.join(self.tmp, f"s{n}")
            os.mkdir(d)
            inbound, smtps = free_port(), free_port()
            text = CONFIG.format(n=n, inbound=inbound, smtps=smtps)
            text = text.replace("{", "{{").replace("}", "}}")
            s = Server(d, config=text, port=inbound, debug=True)
            s.smtps = smtps
            self.servers.append(s.start())
        self.smtp, self.smtps = free_port(), free_port()
        a, b = self.servers
        cfg = os.path.join(self.tmp, "haproxy.cfg")
        sock = os.path.join(self.tmp, "haproxy.sock")
        with open(cfg, "w") as fh:
            fh.write(HAPROXY.format(smtp=self.smtp, smtps=self.smtps,
                                    sock=sock,
                                    a_in=a.port, b_in=b.port,
                                    a_tls=a.smtps, b_tls=b.smtps))
        self.hout = open(os.path.join(self.tmp, "haproxy.out"), "w")
        self.haproxy = subprocess.Popen(["haproxy", "-f", cfg, "-db"],
                                        stdout=self.hout, stderr=self.hout,
                                        start_new_session=True)
        wait_for(lambda: port_bound(self.smtp) and port_bound(self.smtps),
                 15, "haproxy listening")
        # its checks pass on both listeners of both servers
        want = {f"{p}/{n}" for p in ("smtp_pool", "smtps_pool")
                for n in ("a", "b")}
        wait_for(lambda: servers_up(sock) == want, 20,
                 "haproxy to see every server UP")
        return self

    def stop(self):
        if self.haproxy is not None:
            stop_process_group(self.haproxy)
            self.hout.close()
        bad = []
        for s in self.servers:
            s.stop()
            text = s.stderr() + s.log()
            if SANITIZER_RE.search(text) or CRASH_RE.search(text):
                bad.append(text[-6000:])
        return bad

    def mail_for(self, user):
        return [f for s in self.servers
                for f in s.maildir_files("example.com", user)]

    def wait_mail(self, user, n=1):
        return wait_for(lambda: len(self.mail_for(user)) >= n and
                        self.mail_for(user), 15, f"{n} messages for {user}")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    e = Env(str(tmp_path_factory.mktemp("proxy")))
    try:
        e.start()
        yield e
    finally:
        bad = e.stop()
    if bad:
        pytest.fail("sanitizer report or crash from postern:\n" +
                    "\n".join(bad))


def message(subject):
    return (f"From: a@client.example\r\nTo: x@example.com\r\n"
            f"Subject: {subject}\r\n\r\nthrough the proxy\r\n").encode()


def insecure():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def via_haproxy(env, source=CLIENT, tls=False):
    if tls:
        return smtplib.SMTP_SSL("127.0.0.1", env.smtps, timeout=10,
                                source_address=(source, 0),
                                context=insecure())
    return smtplib.SMTP("127.0.0.1", env.smtp, timeout=10,
                        source_address=(source, 0))


def direct(srv, header, port=None):
    """A raw session straight to one instance, as a proxy: `header` first."""
    c = RawSMTP(port or srv.port, banner=False)
    c.send(header)
    return c


def v1(src, sport=40000, dst="127.0.0.1", dport=25):
    return f"PROXY TCP4 {src} {dst} {sport} {dport}\r\n"


def test_round_robin_reaches_both_with_the_real_client(env):
    for i in range(4):
        with via_haproxy(env) as c:
            c.sendmail("a@client.example", ["rr@example.com"],
                       message(f"rr {i}"))
    files = env.wait_mail("rr", 4)
    for s in env.servers:
        assert s.maildir_files("example.com", "rr"), \
            "round robin: every instance gets mail\n" + s.log()[-3000:]
        s.wait_log(r"Info: New SMTP ICID \d+ interface inbound "
                   r"\(127\.0\.0\.1:%d\) address 127\.0\.0\.3 reverse dns "
                   r"host \S+ verified (yes|no)$" % s.port)
        s.wait_log(r"Info: ICID \d+ ACCEPT SG ALL match 0\.0\.0\.0/0$")
        s.wait_log(r"Info: ICID \d+ PROXY v2 TCP4 from 127\.0\.0\.1 port "
                   r"\d+ client 127\.0\.0\.3 port \d+$")
    for f in files:
        with open(f) as fh:
            assert "[127.0.0.3])" in fh.read()


def test_sender_groups_use_the_real_client(env):
    # the proxy itself (127.0.0.1) may relay; 127.0.0.2 is rejected
    with pytest.raises(smtplib.SMTPConnectError) as ei:
        via_haproxy(env, source=BLOCKED)
    assert ei.value.smtp_code == 554
    assert ei.value.smtp_error == b"5.7.1 Access denied"
    # 127.0.0.3 may deliver locally but not relay
    with via_haproxy(env) as c:
        c.ehlo("client.test")
        assert c.mail("a@client.example")[0] == 250
        code, text = c.rcpt("someone@remote.example")
        assert (code, text) == (550, b"5.7.1 Relaying denied")
    wait_for(lambda: any(re.search(r"Info: ICID \d+ REJECT SG BLOCKED match "
                                   r"127\.0\.0\.2/32$", s.log(), re.M)
                         for s in env.servers), 15, "the REJECT SG line")


def assert_received_over_tls(env, user):
    """The one message for `user` names the real client and TLS."""
    (path,) = env.wait_mail(user)
    with open(path) as fh:
        header = fh.read().split("\r\n\r\n", 1)[0]
    assert "[127.0.0.3])" in header and "with ESMTPS" in header, header


def test_starttls_through_the_proxy(env):
    with via_haproxy(env) as c:
        c.ehlo("client.test")
        c.starttls(context=insecure())
        c.ehlo("client.test")
        c.sendmail("a@client.example", ["starttls@example.com"],
                   message("starttls"))
    assert_received_over_tls(env, "starttls")


def test_implicit_tls_through_the_proxy(env):
    with via_haproxy(env, tls=True) as c:
        c.sendmail("a@client.example", ["smtps@example.com"],
                   message("implicit"))
    assert_received_over_tls(env, "smtps")
    wait_for(lambda: any(re.search(r"New SMTP ICID \d+ interface smtps "
                                   r"\(127\.0\.0\.1:\d+\) address 127\.0\.0\.3 ",
                                   s.log()) for s in env.servers), 15,
             "the smtps New SMTP line")


@pytest.mark.parametrize("version,proto,tls", [
    ("1", "TCP4", False), ("2", "TCP4", False), ("2", "TCP4", True)])
def test_swaks_proxy(env, version, proto, tls):
    s = env.servers[0]
    source = {"1": "192.0.2.41", "2": "192.0.2.42"}[version]
    if tls:
        source = "192.0.2.43"
    port = s.smtps if tls else s.port
    family = {"1": "TCP4", "2": "AF_INET"}[version]
    p = subprocess.run(
        ["swaks", "--server", f"127.0.0.1:{port}", "--to",
         "swaks@example.com", "--from", "a@client.example",
         "--proxy-version", version, "--proxy-family", family,
         "--proxy-source", source, "--proxy-source-port", "4242",
         "--proxy-dest", "127.0.0.1", "--proxy-dest-port", str(port)] +
        (["--tlsc"] if tls else []),
        capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "250 2.0.0 Ok: queued as" in p.stdout
    s.wait_log(r"Info: New SMTP ICID \d+ interface %s \(127\.0\.0\.1:%d\) "
               r"address %s " % ("smtps" if tls else "inbound", port,
                                 re.escape(source)))
    s.wait_log(r"Info: ICID \d+ PROXY v%s %s from 127\.0\.0\.1 port \d+ "
               r"client %s port 4242$" % (version, proto, re.escape(source)))


def test_peer_outside_proxy_from_is_refused(env):
    s = env.servers[0]
    with socket.socket() as raw:
        raw.settimeout(10)
        raw.bind((BLOCKED, 0))
        raw.connect(("127.0.0.1", s.port))
        try:
            assert raw.recv(100) == b""     # closed without a banner
        except ConnectionResetError:
            pass
    s.wait_log(r"Warning: PROXY refused address 127\.0\.0\.2 interface "
               r"inbound: not in proxy_from$")


def test_malformed_header_is_closed_with_the_reason(env):
    s = env.servers[1]
    with direct(s, "EHLO direct.example\r\n") as c:
        assert c.closed()
        assert c.buf == b""                 # no banner before the header
    s.wait_log(r"Warning: PROXY header from 127\.0\.0\.1 port \d+ interface "
               r"inbound rejected: not a PROXY protocol header \(it starts "
               r"'EHLO direct\.exam'\.\.\.; a client bypassing the proxy\?\)$")
    with direct(s, V2SIG + b"\x21\x12\x00\x0c" + bytes(12)) as c:
        assert c.closed()
    s.wait_log(r"rejected: v2 header with a datagram \(UDP\) transport 0x12$")


def test_limits_and_auth_counters_use_the_real_client(env):
    s = env.servers[0]
    # max_connections_per_client = 2 counts 192.0.2.10, not the proxy
    held = [direct(s, v1("192.0.2.10", 1000 + i)) for i in range(2)]
    try:
        for c in held:
            assert c.reply().startswith("220 ")
        with direct(s, v1("192.0.2.10", 1002)) as c:
            assert c.reply() == "421 4.7.0 Too many connections"
        with direct(s, v1("192.0.2.11")) as c:
            assert c.reply().startswith("220 ")
    finally:
        for c in held:
            c.close()
    s.wait_log(r"Warning: Connection refused address 192\.0\.2\.10 interface "
               r"inbound: max_connections_per_client reached$")
    # auth_failures = 2 counts per real client: 192.0.2.20 is blocked,
    # 192.0.2.21 (same proxy) is not
    bad = base64.b64encode(b"\0nobody\0wrong-password").decode()
    with direct(s, v1("192.0.2.20")) as c:
        c.reply()
        c.ehlo()
        for _ in range(2):
            assert c.cmd("AUTH PLAIN " + bad).startswith("535 ")
        assert c.cmd("AUTH PLAIN " + bad) == \
            "454 4.7.0 Temporary authentication failure"
    with direct(s, v1("192.0.2.21")) as c:
        c.reply()
        c.ehlo()
        assert c.cmd("AUTH PLAIN " + bad).startswith("535 ")
    s.wait_log(r"Warning: ICID \d+ AUTH blocked: address 192\.0\.2\.20 had 2 "
               r"failed AUTH attempts")
    assert "AUTH blocked: address 192.0.2.21" not in s.log()


def test_local_connection_is_logged_once_it_sends_mail(env):
    s = env.servers[1]
    # v1 UNKNOWN, EHLO, QUIT: what a health check does; no Info line
    with direct(s, "PROXY UNKNOWN\r\n") as c:
        assert c.reply().startswith("220 ")
        c.ehlo()
        c.cmd("QUIT", expect=221)
    s.wait_log(r"Debug: ICID \d+ PROXY v1 UNKNOWN from 127\.0\.0\.1 port "
               r"\d+ on inbound: a health check")
    # v2 LOCAL going on to MAIL: served with the proxy's address, and its
    # New SMTP line is written at MAIL
    with direct(s, V2_LOCAL) as c:
        assert c.reply().startswith("220 ")
        c.ehlo()
        c.cmd("MAIL FROM:<a@client.example>", expect=250)
        c.cmd("RCPT TO:<someone@remote.example>", expect=250)   # relayed
        c.cmd("QUIT", expect=221)
    icid = s.wait_log(r"Info: ICID (\d+) PROXY v2 LOCAL from 127\.0\.0\.1 "
                      r"port \d+$")[-1]
    log = s.log()
    assert re.search(r"Info: New SMTP ICID %s interface inbound "
                     r"\(127\.0\.0\.1:\d+\) address 127\.0\.0\.1 " % icid, log)
    assert re.search(r"Info: ICID %s RELAY SG RELAYLIST" % icid, log)
    assert log.index(f"New SMTP ICID {icid} ") < \
        log.index(f"ICID {icid} From: <a@client.example>")
    s.wait_log(r"Info: ICID %s close$" % icid)


def test_health_checks_do_not_spam_the_log(env):
    def counts(s):
        log = s.log()
        return (len(re.findall(r"New SMTP ICID", log)),
                len(re.findall(r"Info: ICID \d+ close$", log, re.M)),
                len(re.findall(r"TLS failed|Warning", log)),
                health_checks(s, "inbound"), health_checks(s, "smtps"))

    def all_closed(s):
        log = s.log()
        return set(re.findall(r"New SMTP ICID (\d+) ", log)) == \
            set(re.findall(r"Info: ICID (\d+) close$", log, re.M))

    # sessions of earlier tests have ended and said so
    for s in env.servers:
        wait_for(lambda: all_closed(s), 15, "earlier sessions to close")
    before = [counts(s) for s in env.servers]
    # a few seconds of checks: smtpchk (EHLO) on inbound, plain TCP
    # checks on the implicit-TLS port, each every 200 ms, on both servers
    for s, b in zip(env.servers, before):
        wait_for(lambda: counts(s)[3] >= b[3] + 10 and
                 counts(s)[4] >= b[4] + 10, 20, "20 more health checks")
    for s, b in zip(env.servers, before):
        got = counts(s)
        assert got[:3] == b[:3], (
            "health checks wrote Info/Warning lines", b, got,
            s.log()[-3000:])


def test_sockets_waiting_for_a_header_are_bounded(server_factory):
    """limits.max_connections also bounds the sockets still waiting for
    their header, per worker (one worker here)."""
    conf = CONFIG.format(n=3, inbound="{port}", smtps=free_port())
    conf = conf.replace("{", "{{").replace("}", "}}") \
        .replace("{{port}}", "{port}")
    conf += "workers = 1;\nlimits = {{ max_connections = 2; }};\n"
    s = server_factory(config=conf, debug=True).start()
    # the start-up probe (connect, close) must be gone before we count
    s.wait_log(r"Debug: listener inbound: 127\.0\.0\.1 port \d+ closed "
               r"before sending a PROXY header")
    # one worker accepts in order: these two wait, the third is refused
    waiting = [RawSMTP(s.port, banner=False) for _ in range(2)]
    try:
        with RawSMTP(s.port, banner=False) as c:
            assert c.closed()
            assert c.buf == b""
        s.wait_log(r"Warning: Connection refused address 127\.0\.0\.1 "
                   r"interface inbound: max_connections reached \(waiting "
                   r"for PROXY headers\)$")
        # the two that wait still get in once their header arrives
        for i, c in enumerate(waiting):
            c.send(v1(f"192.0.2.{60 + i}"))
            assert c.reply().startswith("220 ")
    finally:
        for c in waiting:
            c.close()
