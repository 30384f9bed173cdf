"""The Prometheus endpoint (postern.conf(5) "METRICS"): one daemon with a
metrics listener takes real traffic - messages accepted and rejected at
MAIL, RCPT and DATA, a refused connection, AUTH that fails and succeeds,
TLS in and out and a TLS failure each way, a delivery to an SMTP peer
over STARTTLS, deferrals to a port nobody listens on and to a peer
without the STARTTLS its destination requires, and one message to 55
domains, more than the 50 destination labels - then a scrape must hold
exactly those counts (as differences from a scrape taken before),
`promtool check metrics` must accept it, and the counts must survive a
kill -9 of a worker and of the metrics process, and a reload."""
import os
import re
import signal
import smtplib
import socket
import subprocess
import types
import urllib.error
import urllib.request

import pytest

from conftest import (CRASH_RE, SANITIZER_RE, RawSMTP, Server, free_port,
                      queued_mid, wait_for)
from peers import SMTPPeer, pki, reserve_port  # noqa: F401 (pki: fixture)
from test_auth import add_user
from test_tls import insecure_ctx

FOLD = 55                       # recipient domains of the folding message
CAP = 50                        # destination labels (metrics.h)

CONFIG = """
hostname = "mx.test.example";
data_dir = "data";
log = { file = "postern.log"; format = "@LOG_FORMAT@"; };
user = "root";
workers = 2;
listeners = (
  { name = "inbound"; address = "127.0.0.1"; port = @PORT@; tls = "preferred"; },
  { name = "submission"; address = "127.0.0.1"; port = @SUB@; tls = "required";
    auth = "required"; }
);
sender_groups = (
  { name = "RELAYLIST"; networks = [ "127.0.0.1/32" ]; policy = "relayed"; },
  { name = "BLOCKED"; networks = [ "127.0.0.3/32" ]; policy = "refused"; },
  { name = "ALL"; networks = [ "0.0.0.0/0", "::/0" ]; policy = "accepted"; }
);
policies = {
  relayed = { action = "relay"; };
  accepted = { action = "accept"; };
  refused = { action = "tcprefuse"; };
};
local_domains = [ "example.com" ];
routes = (
  { domain = "example.com"; maildir = "data/mail/%d/%u"; },
  { domain = "relay.test"; hosts = [ "[127.0.0.1]:@TLSPEER@" ]; },
  { domain = "tlsreq.test"; hosts = [ "[127.0.0.1]:@PLAINPEER@" ]; },
  { domain = "down.test"; hosts = [ "[127.0.0.1]:@CLOSED@" ]; },
  { domain = "*"; hosts = [ "[127.0.0.1]:@CLOSED@" ]; }
);
destinations = ( { domain = "tlsreq.test"; tls = "required"; },
                 { domain = "*"; tls = "preferred"; } );
delivery = { retry_min = 3600; retry_max = 3600; };
tls = { system_cas = false; };
metrics = { address = "127.0.0.1"; port = @METRICS@; };
"""

SERIES_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def scrape_text(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                timeout=20) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith(
            "text/plain; version=0.0.4")
        return r.read().decode()


def parse(text):
    """{(name, frozenset(labels)): value}; every series once."""
    out = {}
    for ln in text.splitlines():
        if ln.startswith("#") or not ln:
            continue
        m = SERIES_RE.match(ln)
        assert m, ln
        key = (m.group(1), frozenset(LABEL_RE.findall(m.group(2) or "")))
        assert key not in out, "series twice: " + ln
        out[key] = float(m.group(3))
    return out


def val(m, name, **labels):
    return m.get((name, frozenset(labels.items())), 0.0)


def series(m, name):
    """[(labels dict, value)] of one family."""
    return [(dict(k[1]), v) for k, v in m.items() if k[0] == name]


def delta(a, b, name, **labels):
    return val(b, name, **labels) - val(a, name, **labels)


def promtool(text):
    p = subprocess.run(["promtool", "check", "metrics"], input=text,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and not p.stdout.strip(), p.stdout + p.stderr


def starttls(c, name="mx.test.example"):
    """STARTTLS on a RawSMTP session (after its EHLO)."""
    c.cmd("STARTTLS", expect=220)
    c.sock = insecure_ctx().wrap_socket(c.sock, server_hostname=name)
    c.buf = b""


def raw_from(port, source):
    """A RawSMTP session from another loopback address."""
    c = RawSMTP.__new__(RawSMTP)
    c.sock = socket.create_connection(("127.0.0.1", port), timeout=10,
                                      source_address=(source, 0))
    c.sock.settimeout(10)
    c.buf = b""
    c.banner = c.reply()
    return c


def send(port, rcpts, tls=False):
    """One message from 127.0.0.1 (relay allowed); its MID."""
    msg = ("From: a@example.org\r\nTo: x@example.com\r\nSubject: m\r\n"
           "\r\nhello\r\n")
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test",
                      timeout=20) as c:
        if tls:
            c.starttls(context=insecure_ctx())
        c.ehlo()
        c.mail("a@example.org")
        for r in rcpts:
            code, text = c.rcpt(r)
            assert code == 250, (r, code, text)
        code, text = c.data(msg)
    return queued_mid(f"{code} {text.decode()}")


def rejections(port):
    """550 5.7.1 at RCPT (no relay right from 127.0.0.2), 503 5.5.1 at
    MAIL (no EHLO), 550 5.5.2 for the message (bare LF)."""
    with raw_from(port, "127.0.0.2") as c:
        c.ehlo()
        c.cmd("MAIL FROM:<a@example.org>", expect=250)
        assert c.cmd("RCPT TO:<x@relay.test>").startswith("550 5.7.1")
        c.cmd("QUIT", expect=221)
    with RawSMTP(port) as c:
        assert c.cmd("MAIL FROM:<a@example.org>").startswith("503 5.5.1")
        c.ehlo()
        c.cmd("MAIL FROM:<a@example.org>", expect=250)
        c.cmd("RCPT TO:<bob@example.com>", expect=250)
        c.cmd("DATA", expect=354)
        c.send("Subject: bare\nLF\r\n.\r\n")
        assert c.reply().startswith("550 5.5.2")
        c.cmd("QUIT", expect=221)


def refused_and_broken_tls(port):
    """A tcprefuse connection (127.0.0.3) and plaintext after STARTTLS."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10,
                                 source_address=("127.0.0.3", 0))
    assert s.recv(100) == b""           # closed at once, no banner
    s.close()
    with RawSMTP(port) as c:
        c.ehlo()
        c.cmd("STARTTLS", expect=220)
        c.send("EHLO not-tls.example\r\n" * 20)
        assert c.closed()


def auth_session(sub, password):
    """AUTH before TLS (530), a wrong password (535), then the right one."""
    with RawSMTP(sub) as c:
        c.ehlo()
        assert c.cmd("AUTH PLAIN AGFsaWNlAHdyb25n").startswith("530 5.7.0")
        starttls(c)
        c.ehlo()
        bad = "AGFsaWNlAHdyb25n"                # \0alice\0wrong
        assert c.cmd("AUTH PLAIN " + bad).startswith("535 5.7.8")
        import base64
        good = base64.b64encode(b"\0alice\0" + password.encode()).decode()
        c.cmd("AUTH PLAIN " + good, expect=235)
        c.cmd("QUIT", expect=221)


def deferred_sum(m):
    return sum(v for lab, v in series(m, "postern_deliveries_total")
               if lab["outcome"] == "deferred")


@pytest.fixture(scope="module")
def traffic(tmp_path_factory, pki):
    d = str(tmp_path_factory.mktemp("metrics"))
    tls_peer = SMTPPeer(tls="starttls", cert=pki.partner).start()
    plain_peer = SMTPPeer().start()
    sub, mport = free_port(), free_port()
    text = CONFIG.replace("{", "{{").replace("}", "}}")
    text = (text.replace("@PORT@", "{port}")
            .replace("@LOG_FORMAT@", "{log_format}")
            .replace("@SUB@", str(sub)).replace("@METRICS@", str(mport))
            .replace("@TLSPEER@", str(tls_peer.port))
            .replace("@PLAINPEER@", str(plain_peer.port))
            .replace("@CLOSED@", str(reserve_port())))
    s = Server(d, config=text)
    try:
        s.start()
        assert wait_for(lambda: _listening(sub), what="submission port")
        s.wait_log(r"ICID \d+ close")       # the start-up probe is gone
        password = add_user(s, "alice")
        base = parse(scrape_text(mport))
        mids = types.SimpleNamespace(
            local=send(s.port, ["bob@example.com"], tls=True),
            relay=send(s.port, ["bob@relay.test"]),
            tlsreq=send(s.port, ["bob@tlsreq.test"]),
            down=send(s.port, ["bob@down.test"]))
        rejections(s.port)
        refused_and_broken_tls(s.port)
        auth_session(sub, password)
        tls_peer.wait_messages(1)
        # the four destinations take their labels first, then the rest
        wait_for(lambda: deferred_sum(parse(scrape_text(mport))) >= 2,
                 what="two deferrals")
        mids.fold = send(s.port, [f"r@f{i}.fold.test" for i in range(FOLD)])
        wait_for(lambda: deferred_sum(parse(scrape_text(mport))) >=
                 2 + FOLD, timeout=30, what="the fold message deferred")
        wait_for(lambda: delta(base, parse(scrape_text(mport)),
                               "postern_tls_failures_total",
                               direction="inbound", reason="not_tls") == 1,
                 what="the inbound TLS failure counted")
        final = scrape_text(mport)
        yield types.SimpleNamespace(server=s, mport=mport, base=base,
                                    text=final, m=parse(final), mids=mids)
    finally:
        s.stop()
        tls_peer.stop()
        plain_peer.stop()
    out = s.stderr() + s.log()
    if SANITIZER_RE.search(out) or CRASH_RE.search(out):
        pytest.fail("sanitizer report or crash from postern:\n" +
                    out[-6000:])


def _listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def test_scrape_after_traffic_has_the_counts_and_passes_promtool(traffic):
    a, b = traffic.base, traffic.m
    promtool(traffic.text)
    d = lambda name, **lab: delta(a, b, name, **lab)        # noqa: E731
    assert val(b, "postern_build_info", version="0.1.0") == 1
    assert val(b, "postern_delivery_paused") == 0
    # 8 sessions on inbound from 127.0.0.1/.2, one refused from .3, one
    # on submission
    assert d("postern_connections_total", listener="inbound",
             outcome="accepted") == 8
    assert d("postern_connections_total", listener="inbound",
             outcome="tcprefuse") == 1
    assert d("postern_connections_total", listener="submission",
             outcome="accepted") == 1
    assert d("postern_messages_accepted_total") == 5
    rejected = {(lab["stage"], lab["status"]): v for lab, v in
                series(b, "postern_messages_rejected_total")}
    assert rejected == {("rcpt", "5.7.1"): 1, ("mail", "5.5.1"): 1,
                        ("data", "5.5.2"): 1}
    assert d("postern_auth_successes_total", mechanism="PLAIN") == 1
    assert d("postern_auth_failures_total",
             reason="invalid_credentials") == 1
    assert d("postern_auth_failures_total",
             reason="encryption_required") == 1
    assert sum(v for _, v in series(b, "postern_auth_failures_total")) == 2
    # TLS: the local message and the submission session in, the delivery
    # to relay.test out; plaintext after STARTTLS in, no STARTTLS where
    # tlsreq.test requires it out
    tls = series(b, "postern_tls_sessions_total")
    assert sum(v for lab, v in tls if lab["direction"] == "inbound") == 2
    assert sum(v for lab, v in tls if lab["direction"] == "outbound") == 1
    assert all(lab["protocol"] in ("TLSv1.2", "TLSv1.3") and
               lab["cipher"] != "other" for lab, _ in tls)
    assert d("postern_tls_failures_total", direction="inbound",
             reason="not_tls") == 1
    assert d("postern_tls_failures_total", direction="outbound",
             reason="starttls_not_offered") == 1
    assert sum(v for _, v in series(b, "postern_tls_failures_total")) == 2
    # deliveries and the queue by destination
    for dest, outcome in (("example.com", "delivered"),
                          ("relay.test", "delivered"),
                          ("tlsreq.test", "deferred"),
                          ("down.test", "deferred")):
        assert val(b, "postern_deliveries_total", destination=dest,
                   outcome=outcome) == 1, (dest, outcome)
        if outcome == "deferred":
            assert val(b, "postern_queue_messages", destination=dest,
                       state="deferred") == 1, dest
            assert val(b, "postern_queue_oldest_message_age_seconds",
                       destination=dest) >= 0
    assert d("postern_spool_commit_duration_seconds_count") == 5
    assert val(b, "postern_spool_commit_duration_seconds_bucket",
               le="+Inf") == val(b, "postern_spool_commit_duration_seconds_"
                                 "count")
    assert d("postern_delivery_latency_seconds_count") == 2
    # certificate expiry: the demo certificate, for both listeners and
    # in the store
    for lab in ({"source": "listener", "listener": "inbound",
                 "certificate": "default"},
                {"source": "listener", "listener": "submission",
                 "certificate": "default"},
                {"source": "store", "certificate": "default"}):
        assert val(b, "postern_certificate_expiry_timestamp_seconds",
                   **lab) > val(b, "postern_start_time_seconds") + 86400


def test_destinations_past_the_cap_fold_into_other(traffic):
    b = traffic.m
    dests = {lab["destination"] for lab, _ in
             series(b, "postern_deliveries_total")}
    assert "other" in dests
    assert len(dests - {"other"}) == CAP
    fold = {x for x in dests if x.endswith(".fold.test")}
    assert len(fold) == CAP - 4         # after the four above
    # every recipient of the fold message counted once: as its own
    # destination or as "other"
    got = sum(val(b, "postern_deliveries_total", destination=x,
                  outcome="deferred") for x in fold | {"other"})
    assert got == FOLD
    assert val(b, "postern_deliveries_total", destination="other",
               outcome="deferred") == FOLD - len(fold)
    # the queue gauges use the same labels
    assert val(b, "postern_queue_messages", destination="other",
               state="deferred") == FOLD - len(fold)
    assert {lab["destination"] for lab, _ in
            series(b, "postern_queue_messages")} == dests


def _kids(server):
    p = server.cli("status", "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    import json
    return json.loads(p.stdout)["processes"]


def counters(m):
    return {k: v for k, v in m.items()
            if k[0].endswith(("_total", "_bucket", "_count", "_sum"))}


def test_counters_survive_kill9_and_reload(traffic):
    s = traffic.server
    before = counters(parse(scrape_text(traffic.mport)))
    kids = _kids(s)
    worker = next(k["pid"] for k in kids if k["role"] == "worker")
    metrics = next(k["pid"] for k in kids if k["role"] == "metrics")
    os.kill(worker, signal.SIGKILL)
    os.kill(metrics, signal.SIGKILL)
    s.wait_log(rf"worker {worker} exited \(signal 9\); restarting it")
    s.wait_log(rf"metrics process {metrics} exited \(signal 9\); "
               r"restarting it")
    # the master published the new children; the endpoint answers again
    wait_for(lambda: worker not in [k["pid"] for k in _kids(s)] and
             metrics not in [k["pid"] for k in _kids(s)],
             what="restarted children")
    after = wait_for(lambda: _try_scrape(traffic.mport),
                     what="the new metrics process")
    assert counters(parse(after)) == before
    promtool(after)
    # a reload starts a new generation, metrics process included
    gen = _status(s)["generation"]
    os.kill(s.proc.pid, signal.SIGHUP)
    wait_for(lambda: _status(s)["generation"] == gen + 1 and
             sum(k["generation"] == gen + 1 and k["role"] == "metrics"
                 for k in _status(s)["processes"]) == 1,
             what="the new generation")
    after = wait_for(lambda: _try_scrape(traffic.mport),
                     what="the new metrics process")
    assert counters(parse(after)) == before
    # another metrics port needs a restart: the reload is refused
    with open(s.conf) as fh:
        text = fh.read()
    try:
        with open(s.conf, "w") as fh:
            fh.write(text.replace(f"port = {traffic.mport};",
                                  f"port = {free_port()};"))
        os.kill(s.proc.pid, signal.SIGHUP)
        s.wait_log(r"reload refused: metrics changed in \S+; restart "
                   r"postern to apply it")
    finally:
        with open(s.conf, "w") as fh:
            fh.write(text)
    wait_for(lambda: _status(s)["last_reload_refused"] is True,
             what="status: the last reload refused")
    assert counters(parse(scrape_text(traffic.mport))) == before


def _status(server):
    import json
    p = server.cli("status", "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    return json.loads(p.stdout)


def _try_scrape(port):
    try:
        return scrape_text(port)
    except OSError:
        return None


def test_endpoint_answers_only_metrics(traffic):
    base = f"http://127.0.0.1:{traffic.mport}"
    with urllib.request.urlopen(base + "/", timeout=10) as r:
        assert b"/metrics" in r.read()
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(base + "/other", timeout=10)
    assert e.value.code == 404
    req = urllib.request.Request(base + "/metrics", data=b"", method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code in (405, 501)
    # a body is refused whatever the method
    req = urllib.request.Request(base + "/metrics", data=b"x", method="GET")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 413
