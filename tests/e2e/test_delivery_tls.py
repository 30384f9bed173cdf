"""TLS on outbound delivery (postern.conf(5) destinations, "routes", "alerts"):
the destination control's tls mode (none | preferred | required |
preferred-verify | required-verify) against next hops that offer no
STARTTLS, or STARTTLS with a certificate that is good (test CA in the trust
store, name mx.partner.example), for the wrong name, from an untrusted CA,
or expired; TLS alerts to postmaster; cloud-relay routes with STARTTLS or
implicit TLS and AUTH; STARTTLS refused before its 220 (clear) or failing
after it (deferred, never clear: handshake failure, injected data).

Every route here is `[mx.partner.example]:P` (resolver.local_data maps the
name to 127.0.0.1), so the name checked is mx.partner.example.  The peers
are SMTPPeer (peers.py) on 127.0.0.1.
"""
import base64
import re

import pytest

from conftest import settle
# peer_factory and pki are fixtures
from peers import (PARTNER, RELAY_PASSWORD, RELAY_USER,  # noqa: F401
                   delayed_rx, log_lines, new_smtp_dcid, parse_mail,
                   peer_factory, pki, queue_block, send, squash,
                   start_delivery_server, text_of, wait_done,
                   wait_queued_attempts)

WAIT = 20.0
RETRY_WAIT = 30.0

MODES = ["none", "preferred", "required", "preferred-verify",
         "required-verify"]
PEERS = ["plain", "good", "wrongname", "untrusted", "expired"]

# outcome of delivering to named.test with destination tls MODE through a
# peer of each kind:
#   clear  delivered without TLS
#   tls    delivered over TLS, no verification warning
#   warn   delivered over TLS with the "not verified ... delivering anyway"
#          Warning
#   fail   not delivered: TLS failed, message stays queued, alert to
#          postmaster (once)
EXPECT = {
    "none":             dict(plain="clear", good="clear", wrongname="clear",
                             untrusted="clear", expired="clear"),
    "preferred":        dict(plain="clear", good="tls", wrongname="tls",
                             untrusted="tls", expired="tls"),
    "required":         dict(plain="fail", good="tls", wrongname="tls",
                             untrusted="tls", expired="tls"),
    "preferred-verify": dict(plain="clear", good="tls", wrongname="warn",
                             untrusted="warn", expired="warn"),
    "required-verify":  dict(plain="fail", good="tls", wrongname="fail",
                             untrusted="fail", expired="fail"),
}


def make_peer(peer_factory, pki, kind, **kw):
    if kind == "plain":
        return peer_factory(**kw)
    cert = {"good": pki.partner, "wrongname": pki.wrong,
            "untrusted": pki.untrusted, "expired": pki.expired}[kind]
    return peer_factory(tls="starttls", cert=cert, **kw)


def destinations(mode):
    return (f'{{ domain = "named.test"; tls = "{mode}"; }}, '
            '{ domain = "*"; tls = "preferred"; max_connections = 20; }')


def tls_success(server, dcid):
    """(protocol, cipher) from `DCID n TLS success protocol P cipher C`."""
    found = re.findall(rf"DCID {dcid} TLS success protocol (\S+) cipher (\S+)",
                       server.log())
    return found[0] if found else None


def warning_rx(mode):
    return (rf"Warning: DCID (\d+) TLS certificate of {re.escape(PARTNER)} "
            rf"not verified: (.+); delivering anyway \(destination "
            rf"named\.test tls {re.escape(mode)}\)")


ALERT_RX = r"Alert MID (\d+) TLS failure domain named\.test host (\S+): (.+)$"


def check_alert_mail(server, host, reason):
    files = server.wait_maildir("localhost", "postmaster", 1, timeout=WAIT)
    alert = parse_mail(files[0])
    assert "postern@mx.test.example" in alert.get("From", ""), \
        alert.get("From")
    text = squash(str(alert.get("Subject", "")) + " " + text_of(alert))
    assert "named.test" in text, text
    assert host in text, (host, text)
    assert squash(reason) in text, (reason, text)
    return files


def assert_not_delivered_tls_failure(server, peer, mid):
    """Attempts fail on TLS, the message stays queued, the peer never gets
    a MAIL command, and only one alert is sent however often it fails."""
    server.wait_log(r"DCID \d+ TLS failed: .+$", timeout=WAIT)
    for dcid in re.findall(r"DCID (\d+) TLS failed: ", server.log()):
        new_smtp_dcid(server, dcid)
    # the first alert (log line and mail)
    amid, host, reason = server.wait_log(ALERT_RX, timeout=WAIT)[0]
    assert PARTNER in host or "127.0.0.1" in host, host
    assert int(amid) != mid
    files = check_alert_mail(server, host, reason)
    # at least two more failed attempts: still one alert
    server.wait_log(r"DCID \d+ TLS failed: .+$", timeout=RETRY_WAIT, count=3)
    wait_queued_attempts(server, mid, 3, timeout=RETRY_WAIT)
    assert len(log_lines(server, r"Alert MID \d+ TLS failure ")) == 1, \
        server.log()
    assert server.maildir_files("localhost", "postmaster") == files
    assert queue_block(server, mid), "message left the queue"
    assert peer.messages == []
    assert "MAIL" not in peer.verbs(), peer.commands
    assert not log_lines(server, rf"Message done DCID \d+ MID {mid} ")


@pytest.mark.parametrize("kind", PEERS)
@pytest.mark.parametrize("mode", MODES)
def test_destination_tls_mode(server_factory, pki, peer_factory, mode, kind):
    peer = make_peer(peer_factory, pki, kind)
    s = start_delivery_server(server_factory, pki, named_port=peer.port,
                              destinations=destinations(mode))
    mid = send(s, "bob@named.test", subject=f"tls-{mode}-{kind}")
    want = EXPECT[mode][kind]

    if want == "fail":
        assert_not_delivered_tls_failure(s, peer, mid)
        return

    got = peer.wait_messages(1, WAIT)[0]
    dcid, resp = wait_done(s, mid)
    assert resp.startswith("250 "), resp
    assert got.rcpts == ["bob@named.test"]
    assert re.search(rf"New SMTP DCID {dcid} interface \S+ address "
                     rf"127\.0\.0\.1 port {peer.port}$", new_smtp_dcid(s, dcid))
    warnings = log_lines(s, warning_rx(mode))
    if want == "clear":
        assert not got.tls
        assert tls_success(s, dcid) is None
        if mode == "none":
            assert peer.starttls_attempts == 0
    else:
        assert got.tls, "delivered in clear"
        proto, cipher = tls_success(s, dcid) or (None, None)
        assert proto == got.tls_version, (proto, got.tls_version, s.log())
        assert proto in ("TLSv1.2", "TLSv1.3")
        assert cipher == got.cipher, (cipher, got.cipher)
    if want == "warn":
        assert len(warnings) == 1, s.log()
        assert re.search(warning_rx(mode), warnings[0]).group(1) == str(dcid)
        assert warnings[0].split(" ", 2)[1] == "Warning:"
    else:
        assert not log_lines(s, r"not verified: "), s.log()
    assert not log_lines(s, r"Alert MID ")
    settle(s, WAIT)


# ---------------------------------------------------------------------------
# Cloud relays: route tls = "starttls" / "implicit" with AUTH


def test_cloud_starttls_auth_delivered(server_factory, pki, peer_factory):
    peer = peer_factory(tls="starttls", cert=pki.partner, require_tls=True,
                        auth=(RELAY_USER, RELAY_PASSWORD))
    s = start_delivery_server(server_factory, pki, cloud_port=peer.port)
    mid = send(s, "bob@cloud.test", subject="cloud-587")
    got = peer.wait_messages(1, WAIT)[0]
    dcid, _ = wait_done(s, mid)
    assert got.tls and got.auth_user == RELAY_USER
    assert got.rcpts == ["bob@cloud.test"]
    assert all(ok and tls for _c, _m, _u, ok, tls in peer.auth_attempts), \
        peer.auth_attempts
    assert tls_success(s, dcid) is not None, s.log()
    assert RELAY_PASSWORD not in s.log()
    settle(s, WAIT)


def test_cloud_wrong_password_is_delayed(server_factory, pki, peer_factory):
    peer = peer_factory(tls="starttls", cert=pki.partner, require_tls=True,
                        auth=(RELAY_USER, RELAY_PASSWORD))
    s = start_delivery_server(server_factory, pki, cloud_port=peer.port,
                              password="not-the-password")
    mid = send(s, "bob@cloud.test", subject="cloud-535")
    reason = s.wait_log(rf"Delayed: (?:DCID \d+ )?MID {mid} to RID \[0\] - "
                        rf"(.*)$", timeout=WAIT)[0]
    assert "535" in reason, reason
    assert peer.auth_attempts and not any(a[3] for a in peer.auth_attempts)
    assert peer.messages == []
    assert "MAIL" not in peer.verbs(), peer.commands
    wait_queued_attempts(s, mid, 1, timeout=WAIT)
    assert "not-the-password" not in s.log()


def test_cloud465_implicit_tls_auth_delivered(server_factory, pki,
                                              peer_factory):
    peer = peer_factory(tls="implicit", cert=pki.partner,
                        auth=(RELAY_USER, RELAY_PASSWORD))
    s = start_delivery_server(server_factory, pki, cloud465_port=peer.port)
    mid = send(s, "bob@cloud465.test", subject="cloud-465")
    got = peer.wait_messages(1, WAIT)[0]
    dcid, _ = wait_done(s, mid)
    assert got.tls and got.auth_user == RELAY_USER
    assert got.rcpts == ["bob@cloud465.test"]
    assert peer.starttls_attempts == 0
    assert tls_success(s, dcid) is not None, s.log()
    settle(s, WAIT)


def secret_forms():
    pw = RELAY_PASSWORD.encode()
    plain = base64.b64encode(b"\0" + RELAY_USER.encode() + b"\0" + pw)
    return [pw, base64.b64encode(pw), plain]


def assert_no_credentials(peer):
    assert "AUTH" not in peer.verbs(), peer.commands
    assert peer.auth_attempts == []
    raw = peer.raw_received()
    for form in secret_forms():
        assert form not in raw


def test_starttls_route_to_plain_peer_sends_nothing(server_factory, pki,
                                                    peer_factory):
    """tls = "starttls" on the route and a next hop without STARTTLS (which
    even offers AUTH in clear): no AUTH, no MAIL, not delivered."""
    peer = peer_factory(auth=(RELAY_USER, RELAY_PASSWORD),
                        auth_before_tls=True)
    s = start_delivery_server(server_factory, pki, cloud_port=peer.port)
    mid = send(s, "bob@cloud.test", subject="cloud-no-starttls")
    s.wait_log(rf"Delayed: (?:DCID \d+ )?MID {mid} to RID \[0\] - ",
               timeout=WAIT)
    assert peer.connections >= 1
    wait_queued_attempts(s, mid, 1, timeout=WAIT)
    assert_no_credentials(peer)
    assert "MAIL" not in peer.verbs(), peer.commands
    assert peer.messages == []


def test_auth_route_without_tls_never_sends_credentials(server_factory, pki,
                                                        peer_factory):
    """A route with auth_user but no route tls (destination preferred) to a
    next hop offering no STARTTLS but AUTH in clear: the credentials never
    go over the wire."""
    peer = peer_factory(auth=(RELAY_USER, RELAY_PASSWORD),
                        auth_before_tls=True)
    s = start_delivery_server(server_factory, pki, authplain_port=peer.port)
    mid = send(s, "bob@authplain.test", subject="auth-in-clear")
    s.wait_log(rf"(?:Delayed|Bounced): (?:DCID \d+ )?MID {mid} to RID \[0\] "
               rf"- |Message done DCID \d+ MID {mid} ", timeout=WAIT)
    assert peer.connections >= 1
    assert_no_credentials(peer)


# ---------------------------------------------------------------------------
# STARTTLS under preferred (Cisco's meaning, postern.conf(5) destinations): refused
# before its 220, delivery goes on in clear; any failure after the 220
# (handshake failure, data injected after the 220) never falls back to
# clear text, on that connection or a new one: the message is deferred and
# a Warning names a possible active attack.


def _broken_starttls(c, _arg):
    """220 to STARTTLS, then plaintext instead of a handshake, and close."""
    import peers
    c.sock.sendall(b"220 2.0.0 Ready to start TLS\r\nthis is not TLS\r\n")
    raise peers._Closed()


def _failed_handshake(c, _arg):
    """220 to STARTTLS, read the ClientHello, answer with a TLS alert
    (handshake_failure) and close."""
    import peers
    c.sock.sendall(b"220 2.0.0 Ready to start TLS\r\n")
    c.sock.settimeout(10)
    c.sock.recv(65536)
    c.sock.sendall(b"\x15\x03\x03\x00\x02\x02\x28")
    raise peers._Closed()


def _injected_after_220(c, _arg):
    """220 to STARTTLS with a plaintext reply glued after it, in one
    write (the CVE-2011-0411 class of STARTTLS injection)."""
    import peers
    c.sock.sendall(b"220 2.0.0 Ready to start TLS\r\n"
                   b"250 2.0.0 injected in plaintext\r\n")
    raise peers._Closed()


AFTER_220 = {"handshake": _failed_handshake, "injection": _injected_after_220,
             "not-tls": _broken_starttls}
ATTACK_RX = (r"Warning: DCID (\d+) TLS failed: (.+); possible active attack: "
             r"the failure came after the server's 220 to STARTTLS, so the "
             r"message is deferred and never sent in clear \(destination "
             r"named\.test tls {mode}\)$")


@pytest.mark.parametrize("case", sorted(AFTER_220))
@pytest.mark.parametrize("mode", ["preferred", "preferred-verify"])
def test_preferred_failure_after_220_is_deferred_never_clear(
        server_factory, pki, peer_factory, mode, case):
    peer = make_peer(peer_factory, pki, "good",
                     replies={"STARTTLS": AFTER_220[case]})
    s = start_delivery_server(server_factory, pki, named_port=peer.port,
                              destinations=destinations(mode))
    mid = send(s, "bob@named.test", subject=f"after-220-{mode}-{case}")
    attack = s.wait_log(ATTACK_RX.format(mode=re.escape(mode)),
                        timeout=WAIT)
    reason = s.wait_log(delayed_rx(mid), timeout=WAIT)[0]
    assert "possible active attack" in reason, reason
    assert "not sent in clear" in reason, reason
    # retried (retry_min = 1): every attempt tries TLS again, none in clear
    wait_queued_attempts(s, mid, 2, timeout=RETRY_WAIT)
    dcids = re.findall(ATTACK_RX.format(mode=re.escape(mode)), s.log(),
                       re.M)
    assert len(dcids) >= 2, s.log()
    assert int(attack[0][0]) == int(dcids[0][0])
    for dcid, _why in dcids:
        new_smtp_dcid(s, dcid)
    assert peer.messages == []
    assert "MAIL" not in peer.verbs(), peer.commands
    assert peer.starttls_attempts >= 2, peer.commands
    assert not log_lines(s, r"delivering in clear"), s.log()
    assert not log_lines(s, rf"Message done DCID \d+ MID {mid} ")
    assert not log_lines(s, r"Alert MID "), s.log()
    assert queue_block(s, mid), "message left the queue"


def test_preferred_starttls_refused_before_220_goes_on_in_clear(
        server_factory, pki, peer_factory):
    peer = make_peer(peer_factory, pki, "good",
                     replies={"STARTTLS": "454 4.7.0 TLS not available due "
                              "to local problem"})
    s = start_delivery_server(server_factory, pki, named_port=peer.port,
                              destinations=destinations("preferred"))
    mid = send(s, "bob@named.test", subject="refused-before-220")
    got = peer.wait_messages(1, WAIT)[0]
    dcid, resp = wait_done(s, mid)
    assert resp.startswith("250 "), resp
    assert not got.tls
    assert peer.connections == 1 and peer.starttls_attempts == 1
    line = s.wait_log(rf"Warning: DCID {dcid} TLS failed: STARTTLS refused "
                      r"by mx\.partner\.example: 454 4\.7\.0 TLS not "
                      r"available due to local problem; delivering in clear "
                      r"\(destination named\.test tls preferred\)$",
                      timeout=WAIT)
    assert line
    assert not log_lines(s, r"possible active attack"), s.log()
    assert not log_lines(s, r"Alert MID ")
    settle(s, WAIT)


def test_required_failed_handshake_is_not_delivered(server_factory, pki,
                                                    peer_factory):
    peer = make_peer(peer_factory, pki, "good",
                     replies={"STARTTLS": _broken_starttls})
    s = start_delivery_server(server_factory, pki, named_port=peer.port,
                              destinations=destinations("required"))
    mid = send(s, "bob@named.test", subject="broken-starttls-required")
    assert_not_delivered_tls_failure(s, peer, mid)
    assert re.search(r"TLS failed: .*TLS handshake with mx\.partner\.example "
                     r"failed", s.log()), s.log()
