"""`postern probe`, the "Test Connection" button (postern(8) "probe",
docs/probe.md), through the real binary against real peers on loopback.
One test per diagnosis, each asserting the step, its status and its
`fix:` line:

* good servers: Postern itself (a certificate from a test CA whose root is
  in its trust store: every step ok, exit 0) and aiosmtpd with STARTTLS;
* the test SMTPPeer (peers.py): no STARTTLS, an untrusted root, a leaf
  sent without its intermediate, a wrong name, an expired and a
  self-signed certificate, a chain in the wrong order, a weak certificate
  (RSA 1024, SHA-1, expiring in 10 days), a server that still accepts
  TLS 1.0, AUTH offered before TLS, 454 to STARTTLS, 530/538;
* `openssl s_server`: DHE only with a 1024-bit group, TLS 1.0 only;
* a raw-socket peer written here that answers a NOOP pipelined with
  STARTTLS inside TLS (CVE-2011-0411 class);
* a closed port, a name that does not resolve (.invalid: answered
  locally, never the network), a listener that never greets, a 554
  banner, a banner sent in parts after a delay to a client that then
  gets HELO only;
* Postern's 535, 550 (relaying denied) and 554 (sender not verified);
* --mx over three MX hosts of resolver.local_data (127.0.0.2-4), one down;
* --policy for each destination tls setting; --json parsed by Python;
* the same table on the delivery side: a deferred delivery whose cause is
  known gets a `Fix:` line in the log and a `fix:` line under its
  recipient in `postern queue show`.
The test PKI, the Postern server and the s_server peers are made once for
the module.
"""
import datetime
import ipaddress
import json
import os
import re
import socket
import ssl
import subprocess
import threading
import warnings

import pytest
from aiosmtpd.controller import Controller

from conftest import (BIN, CRASH_RE, SANITIZER_RE, Server, free_port,
                      stop_process_group, wait_port)
from peers import (PARTNER, CertPair, SMTPPeer, pki,  # noqa: F401
                   reserve_port, send, start_delivery_server)

MX = "mx.probe.test"
PASSWORD_RE = re.compile(r"password: ([A-Za-z0-9]{32})")
STEP_RE = re.compile(r"^(\S+)\s+(ok|warn|FAIL) \((\d+) ms\)$")
TLS_MODES = ("none", "preferred", "required", "preferred-verify",
             "required-verify")


# ---------------------------------------------------------------------------
# the test PKI: root -> intermediate -> leaves, and the odd ones

def make_probe_pki(d):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import (AuthorityInformationAccessOID,
                                       ExtendedKeyUsageOID, NameOID)

    now = datetime.datetime.now(datetime.timezone.utc)
    day = datetime.timedelta(days=1)
    pki = {"dir": d}

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def save(stem, certs, key):
        cp, kp = os.path.join(d, stem + ".pem"), os.path.join(d, stem + ".key")
        with open(cp, "wb") as fh:
            for c in certs:
                fh.write(c.public_bytes(serialization.Encoding.PEM))
        with open(kp, "wb") as fh:
            fh.write(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
        os.chmod(kp, 0o600)
        pki[stem] = CertPair(cp, kp)

    def cert(cn, issuer, ca=False, sans=(MX,), ips=("127.0.0.1",), nb=-1,
             na=400, key=None, digest=None, aia=True):
        """A CA (ca=True) or a server certificate signed by `issuer`
        ((cert, key), None: itself)."""
        k = key or ec.generate_private_key(ec.SECP256R1())
        b = (x509.CertificateBuilder().subject_name(name(cn))
             .issuer_name(issuer[0].subject if issuer else name(cn))
             .public_key(k.public_key())
             .serial_number(x509.random_serial_number())
             .not_valid_before(now + nb * day).not_valid_after(now + na * day)
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None),
                            critical=True))
        if ca:
            b = (b.add_extension(x509.KeyUsage(
                False, False, False, False, False, True, True, False, False),
                critical=True)
                 .add_extension(x509.SubjectKeyIdentifier.from_public_key(
                     k.public_key()), critical=False))
        else:
            b = (b.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName(n) for n in sans] +
                [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]),
                critical=False)
                 .add_extension(x509.ExtendedKeyUsage(
                     [ExtendedKeyUsageOID.SERVER_AUTH]), critical=False))
        if aia and issuer and not ca:
            b = b.add_extension(x509.AuthorityInformationAccess([
                x509.AccessDescription(
                    AuthorityInformationAccessOID.CA_ISSUERS,
                    x509.UniformResourceIdentifier(
                        "http://ca.probe.test/issuer.der"))]),
                critical=False)
        return b.sign(issuer[1] if issuer else k, digest or hashes.SHA256()), k

    def ca(cn, issuer=None):
        return cert(cn, issuer, ca=True)

    def leaf(cn, issuer, **kw):
        return cert(cn, issuer, **kw)

    root = ca("Probe Test Root")
    inter = ca("Probe Test Intermediate", root)
    inter2 = ca("Probe Test Intermediate 2", inter)
    other = ca("Probe Untrusted Root")
    save("root", [root[0]], root[1])
    save("other", [other[0]], other[1])
    save("inter", [inter[0]], inter[1])
    sans = (MX, "*.wild.probe.test", "mx1.probe.test", "mx2.probe.test",
            "mx3.probe.test")
    good = leaf(MX, inter, sans=sans)
    save("good", [good[0], inter[0]], good[1])
    save("noint", [good[0]], good[1])
    deep = leaf(MX, inter2)
    save("order", [deep[0], inter[0], inter2[0]], deep[1])
    untrusted = leaf(MX, other, aia=False)
    save("untrusted", [untrusted[0]], untrusted[1])
    wrong = leaf("wrong.probe.test", inter, sans=("wrong.probe.test",),
                 ips=())
    save("wrong", [wrong[0], inter[0]], wrong[1])
    expired = leaf(MX, inter, nb=-30, na=-2)
    save("expired", [expired[0], inter[0]], expired[1])
    selfsigned = leaf(MX, None)
    save("selfsigned", [selfsigned[0]], selfsigned[1])
    expiring = leaf(MX, inter, na=10)
    save("expiring", [expiring[0], inter[0]], expiring[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # SHA-1, on purpose
        weak = leaf(MX, inter, na=10, digest=hashes.SHA1(),
                    key=rsa.generate_private_key(65537, 1024))
    save("weak", [weak[0], inter[0]], weak[1])
    rsa_leaf = leaf(MX, inter, key=rsa.generate_private_key(65537, 2048))
    save("rsa", [rsa_leaf[0]], rsa_leaf[1])
    return pki


@pytest.fixture(scope="module")
def ppki(tmp_path_factory):
    return make_probe_pki(str(tmp_path_factory.mktemp("probe-pki")))


# ---------------------------------------------------------------------------
# Postern as the server, and the configuration every probe reads (-c)

CONFIG = """
hostname = "mx.probe.test";
data_dir = "data";
log = {{ file = "postern.log"; format = "text"; }};
user = "root";
listeners = (
  {{ name = "inbound"; address = "127.0.0.1"; port = {port}; tls = "preferred";
     certificate = {{ cert = "{cert}"; key = "{key}"; chain = "{chain}"; }}; }},
  {{ name = "submission"; address = "127.0.0.1"; port = {sub};
     tls = "required"; auth = "required";
     certificate = {{ cert = "{cert}"; key = "{key}"; chain = "{chain}"; }}; }}
);
sender_groups = (
  {{ name = "ALL"; networks = [ "0.0.0.0/0", "::/0" ]; policy = "accepted"; }}
);
policies = {{ accepted = {{ action = "accept"; }}; }};
local_domains = [ "example.com" ];
routes = ( {{ domain = "example.com"; maildir = "data/mail/%d/%u"; }} );
destinations = (
{dests}
);
resolver = {{ local_data = [
  "mx.probe.test. A 127.0.0.1",
  "mxtest.probe.test. MX 10 mx1.probe.test.",
  "mxtest.probe.test. MX 20 mx2.probe.test.",
  "mxtest.probe.test. MX 30 mx3.probe.test.",
  "mx1.probe.test. A 127.0.0.2",
  "mx2.probe.test. A 127.0.0.3",
  "mx3.probe.test. A 127.0.0.4"
]; }};
delivery = {{ retry_min = 3600; retry_max = 7200; }};
"""


@pytest.fixture(scope="module")
def pn(ppki, tmp_path_factory):
    d = tmp_path_factory.mktemp("probe-postern")
    port, sub = free_port(), free_port()
    while sub == port:
        sub = free_port()
    leaf = os.path.join(ppki["dir"], "leaf-only.pem")
    with open(ppki["good"].cert) as fh:
        first = fh.read().split("-----END CERTIFICATE-----")[0]
    with open(leaf, "w") as fh:
        fh.write(first + "-----END CERTIFICATE-----\n")
    dests = ",\n".join('  {{ domain = "%s.test"; tls = "%s"; }}' % (m, m)
                       for m in TLS_MODES)
    conf = CONFIG.format(port="{port}", sub=sub, cert=leaf,
                         key=ppki["good"].key, chain=ppki["inter"].cert,
                         dests=dests.replace("{{", "{").replace("}}", "}"))
    conf = conf.replace("{", "{{").replace("}", "}}").replace(
        "{{port}}", "{port}")
    s = Server(str(d), config=conf, port=port)
    s.sub = sub
    s.start()
    s.wait_log(r"postern \S+ starting")
    assert wait_port("127.0.0.1", sub)
    assert s.cli("trust", "add", ppki["root"].cert, "--name",
                 "probe-root").returncode == 0
    p = s.cli("user", "add", "alice", "--identity", "example.org")
    assert p.returncode == 0, p.stderr
    s.pw = PASSWORD_RE.search(p.stdout).group(1)
    yield s
    s.stop()
    text = s.stderr() + s.log()
    assert not SANITIZER_RE.search(text) and not CRASH_RE.search(text), \
        text[-4000:]


def probe(pn, *args, env=None, timeout=60):
    """postern probe -c <the module's configuration> ARGS."""
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run([BIN, "probe", "-c", pn.conf, "--timeout", "5",
                        *args], capture_output=True, text=True,
                       timeout=timeout, env=e, cwd=pn.dir)
    assert not SANITIZER_RE.search(p.stderr), p.stderr
    return p


def steps(p):
    """The text output as {name: {status, ms, details, fix}} (the first
    step of each name)."""
    out, cur = {}, None
    for ln in p.stdout.splitlines():
        m = STEP_RE.match(ln)
        if m:
            cur = {"status": m[2], "ms": int(m[3]), "details": [],
                   "fix": []}
            out.setdefault(m[1], cur)
        elif cur is not None and ln.startswith("    fix: "):
            cur["fix"].append(ln[len("    fix: "):])
        elif cur is not None and ln.startswith("    "):
            cur["details"].append(ln[4:])
        else:
            cur = None
    return out


def check(p, name, status, fix=None, code=None):
    """Step `name` has `status` and, for warn/FAIL, a fix line containing
    `fix`; every warn and FAIL step has at least one fix line."""
    if os.environ.get("PROBE_DUMP"):
        print("=====", name, "\n", p.stdout)
    st = steps(p)
    assert name in st, p.stdout + p.stderr
    assert st[name]["status"] == status, (name, p.stdout)
    for n, s in st.items():
        if s["status"] != "ok":
            assert s["fix"], (n, p.stdout)
    if fix is not None:
        assert any(fix in f for f in st[name]["fix"]), (fix, p.stdout)
    if code is not None:
        assert p.returncode == code, (p.returncode, p.stdout, p.stderr)
    return st[name]


def probe_json(pn, *args, **kw):
    p = probe(pn, "--json", *args, **kw)
    assert p.stderr == "", p.stderr
    return p, json.loads(p.stdout)


def causes(doc, name):
    return [f["cause"] for s in doc["steps"] if s["name"] == name
            for f in s["fixes"]]


def tls_peer(factory_kw, ppki, cert, **kw):
    """A started STARTTLS SMTPPeer with `cert` of the PKI."""
    p = SMTPPeer(tls="starttls", cert=ppki[cert], name=MX, **kw)
    factory_kw.append(p)
    return p.start()


@pytest.fixture
def peers():
    made = []
    yield made
    for p in made:
        p.stop()


# ---------------------------------------------------------------------------
# help and usage

def test_help_lists_probe_and_every_option():
    p = subprocess.run([BIN, "help"], capture_output=True, text=True)
    assert re.search(r"^  probe ", p.stdout, re.M), p.stdout
    p = subprocess.run([BIN, "probe", "--help"], capture_output=True,
                       text=True)
    assert p.returncode == 0
    for opt in ("--starttls", "--tls", "--plain", "--port", "--servername",
                "--trust", "--user", "--password-env", "--password-file",
                "--from", "--to", "--mx", "--policy", "--domain", "--quick",
                "--timeout", "--json", "-c FILE"):
        assert opt in p.stdout, opt
    p2 = subprocess.run([BIN, "help", "probe"], capture_output=True,
                        text=True)
    assert p2.stdout == p.stdout


@pytest.mark.parametrize("args", [
    [], ["a.example", "--mx", "b.example"], ["a.example", "--policy"],
    ["a.example", "--no-such"], ["a.example", "--user", "u"],
    ["a.example", "--tls", "--plain"], ["a.example:99999"],
    ["a.example", "--from", "x@y.example"], ["a.example", "--to", "bad"]])
def test_usage_errors_exit_2(args):
    p = subprocess.run([BIN, "probe", *args], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 2, (args, p.stdout, p.stderr)
    assert p.stderr.startswith("postern: probe: "), p.stderr
    assert len(p.stderr.splitlines()) == 1, p.stderr


# ---------------------------------------------------------------------------
# good servers

def test_postern_itself_every_step_ok(pn):
    p = probe(pn, f"{MX}:{pn.port}", "--to", "bob@example.com")
    st = steps(p)
    assert p.returncode == 0, p.stdout + p.stderr
    for name in ("resolve", "connect", "banner", "ehlo", "starttls", "tls",
                 "certificate", "verify", "hostname", "ehlo-tls", "auth",
                 "mail", "rcpt", "old-tls", "injection"):
        assert st[name]["status"] == "ok", (name, p.stdout)
        assert st[name]["fix"] == []
    assert p.stdout.splitlines()[-1] == "result: ok (0 steps failed, " \
        "0 warnings)"
    assert f"{MX}: 127.0.0.1" in st["resolve"]["details"]
    assert "220 mx.probe.test ESMTP Postern" in st["banner"]["details"]
    assert any("STARTTLS" in d for d in st["ehlo"]["details"])
    assert any(d.startswith("TLSv1.3") for d in st["tls"]["details"])
    assert any("key exchange: X25519" in d for d in st["tls"]["details"])
    cert = "\n".join(st["certificate"]["details"])
    assert "2 certificates sent" in cert and "#1 CN=Probe Test " \
        "Intermediate" in cert and "key EC P-256" in cert
    assert "signed ecdsa-with-SHA256" in cert and "days left" in cert
    assert st["verify"]["details"] == [
        'trusted: the chain leads to "Probe Test Root" (trust store or '
        'system CAs)']
    assert f'matched "{MX}": a DNS name of its subjectAltName' in \
        st["hostname"]["details"]
    assert "TLS 1.0 and 1.1 refused" in st["old-tls"]["details"][0]
    assert "the NOOP was discarded" in st["injection"]["details"][0]
    assert "250 2.1.5 Ok" in st["rcpt"]["details"]


def test_wildcard_and_address_matches_are_named(pn):
    p = probe(pn, f"127.0.0.1:{pn.port}", "--servername",
              "x.wild.probe.test", "--quick")
    st = check(p, "hostname", "ok", code=0)
    assert 'matched "*.wild.probe.test": a wildcard of its ' \
        'subjectAltName (one label)' in st["details"]
    p = probe(pn, f"127.0.0.1:{pn.port}", "--quick")
    st = check(p, "hostname", "ok", code=0)
    assert 'matched "127.0.0.1": an IP address of its subjectAltName' in \
        st["details"]


def test_implicit_tls_server(pn, ppki, peers):
    peer = SMTPPeer(tls="implicit", cert=ppki["good"], name=MX,
                    auth=("u", "p"))
    peers.append(peer.start())
    p = probe(pn, f"{MX}:{peer.port}", "--tls", "--user", "u",
              "--password-env", "PROBE_PW", env={"PROBE_PW": "p"})
    st = steps(p)
    assert p.returncode == 0, p.stdout
    names = [ln.split()[0] for ln in p.stdout.splitlines()
             if STEP_RE.match(ln)]
    assert names == ["resolve", "connect", "tls", "certificate", "verify",
                     "hostname", "banner", "ehlo", "auth", "old-tls"], names
    assert all(s["status"] == "ok" for s in st.values()), p.stdout
    assert "offered under TLS: PLAIN LOGIN" in st["auth"]["details"]
    assert 'authenticated as "u"' in st["auth"]["details"]


class Recorder:
    async def handle_DATA(self, server, session, envelope):
        return "250 2.0.0 Ok"


def test_aiosmtpd_with_starttls(pn, ppki):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(ppki["good"].cert, ppki["good"].key)
    ctl = Controller(Recorder(), hostname="127.0.0.1", port=reserve_port(),
                     tls_context=ctx, require_starttls=False)
    ctl.start()
    try:
        p = probe(pn, f"{MX}:{ctl.port}", "--from", "a@example.org",
                  "--to", "b@example.net")
    finally:
        ctl.stop()
    st = steps(p)
    assert p.returncode == 0, p.stdout
    for name in ("banner", "starttls", "tls", "verify", "hostname",
                 "ehlo-tls", "mail", "rcpt"):
        assert st[name]["status"] == "ok", (name, p.stdout)


# ---------------------------------------------------------------------------
# one diagnosis each

def test_plain_server_without_starttls(pn, peers):
    peer = SMTPPeer(name=MX).start()
    peers.append(peer)
    p = probe(pn, f"{MX}:{peer.port}", "--quick")
    check(p, "starttls", "warn", "does not offer STARTTLS on port", code=0)
    p = probe(pn, f"{MX}:{peer.port}", "--starttls", "--quick")
    check(p, "starttls", "FAIL", "its admin should enable STARTTLS", code=1)


def test_untrusted_root(pn, ppki, peers):
    peer = tls_peer(peers, ppki, "untrusted")
    p = probe(pn, f"{MX}:{peer.port}", "--quick")
    st = check(p, "verify", "FAIL", 'issued by "CN=Probe Untrusted Root", '
               'which is not in the trust store', code=1)
    fix = st["fix"][0]
    assert f"`postern cert fetch {MX}:{peer.port} --starttls --out certs`" \
        in fix
    assert "`postern trust add CA.pem --name NAME`" in fix
    assert "untrusted root" in st["details"][1]
    # the fix's other way: --trust with that CA
    p = probe(pn, f"{MX}:{peer.port}", "--quick", "--trust",
              ppki["other"].cert)
    st = check(p, "verify", "ok", code=0)
    assert 'trusted: the chain leads to "Probe Untrusted Root"' in \
        st["details"][0]


def test_leaf_without_its_intermediate(pn, ppki, peers):
    peer = tls_peer(peers, ppki, "noint")
    p = probe(pn, f"{MX}:{peer.port}", "--quick")
    st = check(p, "verify", "FAIL", "sends its certificate without the "
               'intermediate CA certificate of "CN=Probe Test Intermediate"',
               code=1)
    assert st["details"][1].startswith("missing intermediate")


def test_wrong_name(pn, ppki, peers):
    peer = tls_peer(peers, ppki, "wrong")
    p = probe(pn, f"{MX}:{peer.port}", "--quick")
    st = check(p, "hostname", "FAIL", f"does not name {MX} (it names CN "
               "wrong.probe.test; SAN wrong.probe.test)", code=1)
    assert f"name used: {MX}" in st["details"]
    assert check(p, "verify", "ok")


def test_expired_certificate(pn, ppki, peers):
    peer = tls_peer(peers, ppki, "expired")
    p = probe(pn, f"{MX}:{peer.port}", "--quick")
    st = check(p, "verify", "FAIL", f"the certificate of {MX} has expired "
               "(expired ", code=1)
    assert "its admin must renew it" in st["fix"][0]
    assert "--insecure" not in st["fix"][0]


def test_self_signed(pn, ppki, peers):
    peer = tls_peer(peers, ppki, "selfsigned")
    p = probe(pn, f"{MX}:{peer.port}", "--quick")
    st = check(p, "verify", "FAIL", "presents a self-signed certificate",
               code=1)
    assert f"`postern trust add certs/{MX}.pem --name {MX}`" in st["fix"][0]


def test_chain_in_the_wrong_order(pn, ppki, peers):
    peer = tls_peer(peers, ppki, "order")
    p = probe(pn, f"{MX}:{peer.port}", "--quick")
    check(p, "certificate", "warn", "sends its certificate chain in the "
          "wrong order (sent: Probe Test Intermediate, Probe Test "
          "Intermediate 2; in issuer order: Probe Test Intermediate 2, "
          "Probe Test Intermediate)", code=0)
    check(p, "verify", "ok")


def test_weak_certificate(pn, ppki, peers):
    """RSA 1024, SHA-1, expiring in 10 days: three warnings with their
    fixes.  Whether the handshake itself goes through depends on
    OpenSSL's security level here (1 lets it; 2 refuses it, and the
    diagnostic handshake then shows the chain and names the weak key)."""
    peer = SMTPPeer(tls="starttls", cert=ppki["good"], name=MX)
    peer.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    peer.ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    peer.ctx.load_cert_chain(ppki["weak"].cert, ppki["weak"].key)
    peers.append(peer.start())
    p = probe(pn, f"{MX}:{peer.port}", "--quick")
    st = check(p, "certificate", "warn", "has a weak key (mx.probe.test: "
               "RSA 1024)")
    assert any("is signed with SHA-1 (mx.probe.test: ecdsa-with-SHA1)" in f
               for f in st["fix"])
    assert any("expires soon (mx.probe.test on " in f for f in st["fix"])
    assert len(st["fix"]) == 3
    tls = steps(p)["tls"]
    if tls["status"] == "ok":
        assert p.returncode == 0
    else:
        check(p, "tls", "FAIL", "has a weak key", code=1)


def test_expiring_is_a_warn_and_exit_0(pn, ppki, peers):
    peer = tls_peer(peers, ppki, "expiring")
    p = probe(pn, f"{MX}:{peer.port}", "--quick")
    check(p, "certificate", "warn", "expires soon", code=0)
    assert p.stdout.splitlines()[-1] == "result: ok (0 steps failed, " \
        "1 warning)"


def test_server_that_still_accepts_tls10(pn, ppki, peers):
    peer = SMTPPeer(tls="starttls", cert=ppki["good"], name=MX)
    peer.ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")         # TLS 1.0, on purpose
        peer.ctx.minimum_version = ssl.TLSVersion.TLSv1
    peers.append(peer.start())
    p = probe(pn, f"{MX}:{peer.port}")
    st = check(p, "old-tls", "warn", "still accepts TLSv1", code=0)
    assert "RFC 8996" in st["fix"][0]
    check(p, "tls", "ok")


def test_auth_offered_before_tls(pn, ppki, peers):
    peer = tls_peer(peers, ppki, "good", auth=("u", "p"),
                    auth_before_tls=True)
    p = probe(pn, f"{MX}:{peer.port}", "--quick")
    st = check(p, "auth", "warn", "offers AUTH before TLS", code=0)
    assert "offered before TLS: PLAIN LOGIN" in st["details"]


def test_454_to_starttls(pn, ppki, peers):
    peer = tls_peer(peers, ppki, "good", replies={
        "STARTTLS": "454 4.7.0 TLS not available due to local problem"})
    p = probe(pn, f"{MX}:{peer.port}", "--quick")
    st = check(p, "starttls", "FAIL", "cannot start TLS now (454)", code=1)
    assert "454 4.7.0 TLS not available due to local problem" in \
        st["details"]


def test_handshake_fails_after_220(pn, ppki, peers):
    """220 to STARTTLS, then plaintext instead of TLS: the "tls" step
    fails, and under a preferred destination Postern would defer (never
    clear text after the 220: a possible active attack)."""
    peer = tls_peer(peers, ppki, "good",
                    replies={"STARTTLS": "220 2.0.0 go ahead"})
    p = probe(pn, f"{MX}:{peer.port}", "--policy", "--domain",
              "preferred.test")
    check(p, "starttls", "ok")
    st = check(p, "tls", "FAIL", "the TLS handshake with mx.probe.test "
               "failed", code=1)
    assert "a handshake allowing every protocol and cipher failed too" in \
        st["details"]
    st = check(p, "policy", "FAIL", "Postern would defer mail for "
               "preferred.test")
    assert any("possible active attack" in d for d in st["details"])


def test_530_and_538_tls_first(pn, ppki, peers):
    """A server that lists AUTH in clear but answers it with 538, and MAIL
    with 530 until STARTTLS; --plain sends the credentials anyway."""
    peer = tls_peer(peers, ppki, "good", require_tls=True, auth=("u", "p"),
                    replies={"EHLO": "250-mx.probe.test\r\n250-STARTTLS"
                             "\r\n250 AUTH PLAIN LOGIN"})
    p = probe(pn, f"{MX}:{peer.port}", "--plain", "--user", "u",
              "--password-env", "PROBE_PW", "--from", "a@example.org",
              "--to", "b@example.net", env={"PROBE_PW": "p"})
    st = check(p, "auth", "FAIL", "requires TLS before this command",
               code=1)
    assert "538 5.7.11 Encryption required for requested authentication " \
        "mechanism" in st["details"]
    st = check(p, "mail", "FAIL", "requires TLS before this command")
    assert "530 5.7.0 Must issue a STARTTLS command first" in st["details"]


def test_dhe_only_1024_bit_group(pn, s_servers):
    p = probe(pn, f"127.0.0.1:{s_servers['dhe']}", "--tls",
              "--servername", MX)
    st = check(p, "tls", "FAIL", "offers a Diffie-Hellman key that is too "
               "small (DH 1024 bits", code=1)
    assert "a cipher list without DHE" in st["fix"][0]
    assert "tls.ciphers without DHE" in st["fix"][0]
    assert any("key exchange DH (1024 bits)" in d for d in st["details"])


def test_tls10_only_server(pn, s_servers):
    p = probe(pn, f"127.0.0.1:{s_servers['tls1']}", "--tls",
              "--servername", MX)
    st = check(p, "tls", "FAIL", "share no TLS protocol version or cipher "
               "(it speaks TLSv1 at best", code=1)
    assert "tls.min_protocol" in st["fix"][0]


def test_closed_port(pn):
    port = reserve_port()
    p = probe(pn, f"127.0.0.1:{port}")
    st = check(p, "connect", "FAIL", f"nothing listens on 127.0.0.1 port "
               f"{port}", code=1)
    assert any(d.startswith("refused:") for d in st["details"])


def test_name_that_does_not_resolve(pn):
    p = probe(pn, "nothing.probe.invalid")
    st = check(p, "resolve", "FAIL", "the name nothing.probe.invalid does "
               "not resolve", code=1)
    assert "NXDOMAIN" in st["details"][0]
    assert "connect" not in steps(p)


def test_535_bad_credentials(pn):
    p = probe(pn, f"{MX}:{pn.sub}", "--user", "alice", "--password-env",
              "PROBE_PW", "--quick", env={"PROBE_PW": "wrong-password"})
    st = check(p, "auth", "FAIL", 'refused the credentials of "alice"',
               code=1)
    assert "per region" in st["fix"][0]
    assert "535 5.7.8 Authentication credentials invalid" in st["details"]
    assert "wrong-password" not in p.stdout + p.stderr


def test_550_relaying_denied(pn):
    p = probe(pn, f"{MX}:{pn.port}", "--from", "a@example.org", "--to",
              "x@elsewhere.example", "--quick")
    st = check(p, "rcpt", "FAIL", "does not relay for this client", code=1)
    assert "550 5.7.1 Relaying denied" in st["details"]


def test_554_sender_not_verified(pn, tmp_path):
    pw = tmp_path / "pw"
    pw.write_text(pn.pw + "\n")
    p = probe(pn, f"{MX}:{pn.sub}", "--user", "alice", "--password-file",
              str(pw), "--from", "x@other.example", "--to",
              "bob@example.com", "--quick")
    check(p, "auth", "ok")
    st = check(p, "mail", "FAIL", "the sender x@other.example is not a "
               "verified identity", code=1)
    assert "`postern user modify alice --add-identity x@other.example`" in \
        st["fix"][0]
    assert "rcpt" not in steps(p)
    assert pn.pw not in p.stdout + p.stderr


# ---------------------------------------------------------------------------
# the banner: none, refused, slow; HELO only

def test_no_banner(pn):
    """A port whose listener never accepts: TCP succeeds, nothing comes."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        p = probe(pn, f"127.0.0.1:{s.getsockname()[1]}", "--timeout", "1")
    st = check(p, "banner", "FAIL", "took the connection but sent no "
               "banner", code=1)
    assert "no greeting within 1 s" in st["details"][0]
    check(p, "connect", "ok")


def test_banner_refused(pn, peers):
    peer = SMTPPeer(name=MX, replies={"BANNER": "554 5.7.1 Access denied"})
    peers.append(peer.start())
    p = probe(pn, f"{MX}:{peer.port}")
    st = check(p, "banner", "FAIL", "refuses connections from this "
               "address", code=1)
    assert st["details"] == ["554 5.7.1 Access denied"]


class SlowPeer:
    """'220-' at once, the rest of the banner after `delay` seconds (a
    greeting delay as postscreen does it); EHLO refused, HELO taken."""

    def __init__(self, delay):
        self.delay = delay
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        self.sock.settimeout(30)
        try:
            c, _ = self.sock.accept()
        except OSError:
            return
        with c:
            c.settimeout(30)
            c.sendall(b"220-slow.test ESMTP\r\n")
            threading.Event().wait(self.delay)
            c.sendall(b"220 slow.test ready\r\n")
            f = c.makefile("rb")
            for line in f:
                verb = line.split()[0].upper() if line.split() else b""
                if verb == b"EHLO":
                    c.sendall(b"502 5.5.1 EHLO not implemented\r\n")
                elif verb == b"HELO":
                    c.sendall(b"250 slow.test\r\n")
                elif verb == b"QUIT":
                    c.sendall(b"221 bye\r\n")
                    return
                else:
                    c.sendall(b"250 ok\r\n")

    def close(self):
        self.sock.close()
        self.thread.join(timeout=35)


def test_slow_banner_and_helo_only(pn):
    peer = SlowPeer(2.2)
    try:
        p = probe(pn, f"127.0.0.1:{peer.port}", "--quick")
    finally:
        peer.close()
    st = check(p, "banner", "warn", "sent its banner after 2.", code=0)
    assert any("a deliberate delay: the banner came in parts" in d
               for d in st["details"]), st
    st = check(p, "ehlo", "warn", "speaks old SMTP (HELO) only")
    assert "EHLO refused; HELO accepted: slow.test" in st["details"]
    check(p, "starttls", "warn", "does not offer STARTTLS")


# ---------------------------------------------------------------------------
# STARTTLS command injection: a peer that runs the NOOP sent with STARTTLS

class InjectPeer:
    """Answers what was pipelined with STARTTLS after the handshake,
    inside TLS, as servers vulnerable to CVE-2011-0411 did."""

    def __init__(self, cert):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert.cert, cert.key)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stop_ev = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while not self.stop_ev.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self.serve, args=(c,),
                             daemon=True).start()

    def serve(self, c):
        c.settimeout(10)
        buf = b""
        try:
            c.sendall(b"220 inject.test ESMTP\r\n")
            while True:
                while b"\r\n" not in buf:
                    data = c.recv(4096)
                    if not data:
                        return
                    buf += data
                line, buf = buf.split(b"\r\n", 1)
                verb = line.split(b" ")[0].upper()
                if verb == b"STARTTLS":
                    c.sendall(b"220 2.0.0 go ahead\r\n")
                    # the flaw: `buf` (plaintext read with STARTTLS) is
                    # kept and read as if it came through TLS
                    c = self.ctx.wrap_socket(c, server_side=True)
                elif verb == b"EHLO":
                    c.sendall(b"250-inject.test\r\n" + (
                        b"250 STARTTLS\r\n" if not isinstance(
                            c, ssl.SSLSocket) else b"250 8BITMIME\r\n"))
                elif verb == b"QUIT":
                    c.sendall(b"221 2.0.0 bye\r\n")
                    return
                else:
                    c.sendall(b"250 2.0.0 Ok\r\n")
        except (OSError, ssl.SSLError):
            return
        finally:
            c.close()

    def close(self):
        self.stop_ev.set()
        self.thread.join(timeout=5)
        self.sock.close()


def test_starttls_injection_flagged(pn, ppki):
    peer = InjectPeer(ppki["good"])
    try:
        p = probe(pn, f"{MX}:{peer.port}")
    finally:
        peer.close()
    st = check(p, "injection", "FAIL", "CVE-2011-0411", code=1)
    assert "250 2.0.0 Ok" in st["details"]
    check(p, "ehlo-tls", "ok")


# ---------------------------------------------------------------------------
# openssl s_server peers (module-scoped)

@pytest.fixture(scope="module")
def s_servers(ppki, tmp_path_factory):
    d = tmp_path_factory.mktemp("s_server")
    dh = os.path.join(d, "dh1024.pem")
    subprocess.run(["openssl", "dhparam", "-out", dh, "1024"], check=True,
                   capture_output=True, timeout=120)
    rsa, inter = ppki["rsa"], ppki["inter"].cert
    specs = {
        "dhe": ["-dhparam", dh, "-no_tls1_3",
                "-cipher", "DHE-RSA-AES128-GCM-SHA256:@SECLEVEL=0"],
        "tls1": ["-tls1", "-cipher", "DEFAULT@SECLEVEL=0"],
    }
    procs, ports = [], {}
    for name, extra in specs.items():
        port = reserve_port()
        proc = subprocess.Popen(
            ["openssl", "s_server", "-accept", f"127.0.0.1:{port}",
             "-cert", rsa.cert, "-key", rsa.key, "-cert_chain", inter,
             "-quiet", *extra], stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        procs.append(proc)
        assert wait_port("127.0.0.1", port), name
        ports[name] = port
    yield ports
    for proc in procs:
        stop_process_group(proc)


# ---------------------------------------------------------------------------
# --mx, --policy, --json

def test_mx_matrix_three_hosts_one_down(pn, ppki, peers):
    with socket.socket() as s:
        s.bind(("127.0.0.2", 0))
        port = s.getsockname()[1]
    for host in ("127.0.0.2", "127.0.0.4"):
        peers.append(SMTPPeer(host=host, port=port, tls="starttls",
                              cert=ppki["good"], name=MX).start())
    p = probe(pn, "--mx", "mxtest.probe.test", "--port", str(port),
              "--quick")
    if os.environ.get("PROBE_DUMP"):
        print(p.stdout)
    assert p.returncode == 1, p.stdout
    assert "MX hosts of mxtest.probe.test: 10 mx1.probe.test, 20 " \
        "mx2.probe.test, 30 mx3.probe.test" in p.stdout
    lines = p.stdout.splitlines()
    head = next(i for i, ln in enumerate(lines) if ln.startswith("pref "))
    assert lines[head].split()[:4] == ["pref", "host", "resolve", "connect"]
    rows = [ln.split() for ln in lines[head + 1:head + 4]]
    assert [r[:2] for r in rows] == [["10", "mx1.probe.test"],
                                     ["20", "mx2.probe.test"],
                                     ["30", "mx3.probe.test"]]
    assert rows[0][4] == "ok" and rows[1][4] == "FAIL" and \
        rows[2][4] == "ok", lines[head:head + 4]
    assert re.fullmatch(r"\d+ms", rows[0][5])
    p, doc = probe_json(pn, "--mx", "mxtest.probe.test", "--port",
                        str(port), "--quick")
    assert [(h["host"], h["pref"], h["result"]) for h in doc["hosts"]] == [
        ("mx1.probe.test", 10, "ok"), ("mx2.probe.test", 20, "fail"),
        ("mx3.probe.test", 30, "ok")]
    assert causes(doc["hosts"][1], "connect") == ["connection-refused"]
    assert doc["domain"] == "mxtest.probe.test" and doc["result"] == "fail"


POLICY_GOOD = {
    "none": "deliver in clear",
    "preferred": "deliver encrypted, unverified",
    "required": "deliver encrypted, unverified",
    "preferred-verify": "deliver encrypted and verified",
    "required-verify": "deliver encrypted and verified",
}


@pytest.mark.parametrize("mode", TLS_MODES)
def test_policy_for_each_destination_tls(pn, ppki, peers, mode):
    """Postern (verified), a server whose root is untrusted, and one
    without STARTTLS, judged by each destination's tls."""
    dom = f"{mode}.test"
    p = probe(pn, f"{MX}:{pn.port}", "--policy", "--domain", dom, "--quick")
    st = check(p, "policy", "ok", code=0)
    assert f'destinations entry "{dom}" (line ' in st["details"][1]
    assert f"verdict: {POLICY_GOOD[mode]}" in st["details"]

    bad = tls_peer(peers, ppki, "untrusted")
    p = probe(pn, f"{MX}:{bad.port}", "--policy", "--domain", dom, "--quick")
    if mode == "required-verify":
        st = check(p, "policy", "FAIL", f"Postern would defer mail for "
                   f"{dom} (tls required-verify)", code=1)
        assert "verdict: defer (the mail waits in the queue)" in \
            st["details"]
    else:
        st = check(p, "policy", "ok")
        assert ("verdict: deliver in clear" if mode == "none" else
                "verdict: deliver encrypted, unverified") in st["details"]

    plain = SMTPPeer(name=MX).start()
    peers.append(plain)
    p = probe(pn, f"{MX}:{plain.port}", "--policy", "--domain", dom,
              "--quick")
    if mode.startswith("required"):
        check(p, "policy", "FAIL", "Postern would defer mail", code=1)
    elif mode == "none":
        st = check(p, "policy", "ok", code=0)
        assert "why: tls none: TLS is never started" in st["details"]
    else:
        check(p, "policy", "warn", f"mail for {dom} would go in clear",
              code=0)


def test_json_document(pn, ppki, peers):
    peer = tls_peer(peers, ppki, "untrusted")
    p, doc = probe_json(pn, f"{MX}:{peer.port}", "--to", "a@example.org")
    assert p.returncode == 1
    assert doc["host"] == MX and doc["port"] == peer.port
    assert doc["mode"] == "STARTTLS when offered"
    assert doc["result"] == "fail" and doc["failed"] == 1
    names = [s["name"] for s in doc["steps"]]
    assert names[:9] == ["resolve", "connect", "banner", "ehlo", "starttls",
                         "tls", "certificate", "verify", "hostname"]
    for s in doc["steps"]:
        assert set(s) >= {"name", "status", "time_ms", "details", "fix"}
        assert s["status"] in ("ok", "warn", "fail")
        assert isinstance(s["time_ms"], int) and s["time_ms"] >= 0
        assert isinstance(s["details"], list)
        assert (s["fix"] is None) == (s["status"] == "ok")
    v = next(s for s in doc["steps"] if s["name"] == "verify")
    assert v["status"] == "fail" and v["cause"] == "tls-untrusted"
    assert "postern trust add" in v["fix"]
    # the text output says the same
    t = probe(pn, f"{MX}:{peer.port}", "--to", "a@example.org")
    assert steps(t)["verify"]["fix"] == [v["fix"]]


# ---------------------------------------------------------------------------
# the same table for deliveries: the log's Fix line and `queue show`

def test_deferred_delivery_names_its_fix(server_factory, pki, peers):
    """A required-verify destination whose server has an untrusted
    certificate, and a relay route whose password is wrong: each deferred
    recipient's fix is in the log and under it in `postern queue show`."""
    untrusted = SMTPPeer(tls="starttls", cert=pki.untrusted).start()
    cloud = SMTPPeer(tls="starttls", cert=pki.partner, require_tls=True,
                     auth=("relayuser", "right")).start()
    peers += [untrusted, cloud]
    s = start_delivery_server(server_factory, pki, password="wrong",
                              named_port=untrusted.port,
                              cloud_port=cloud.port)
    m1 = send(s, "bob@named.test", subject="probe-fix-tls")
    m2 = send(s, "bob@cloud.test", subject="probe-fix-auth")
    fix1 = s.wait_log(rf"Delayed: DCID \d+ MID {m1} to RID \[0\] - .*\n.*"
                      rf"Info: Fix: DCID \d+ MID {m1} to RID \[0\] - "
                      rf"(\S+): (.*)$")[0]
    assert fix1[0] == "tls-untrusted", fix1
    assert f"the certificate of {PARTNER} was issued by" in fix1[1]
    assert f"`postern cert fetch {PARTNER}:{untrusted.port} --starttls " \
        "--out certs`" in fix1[1]
    fix2 = s.wait_log(rf"Fix: DCID \d+ MID {m2} to RID \[0\] - "
                      rf"(\S+): (.*)$")[0]
    assert fix2[0] == "auth-failed", fix2
    assert "the route's auth_user and auth_password_file" in fix2[1]
    shown = {}
    for mid in (m1, m2):
        p = s.cli("queue", "show", str(mid))
        assert p.returncode == 0, p.stderr
        lines = p.stdout.splitlines()
        i = next(k for k, ln in enumerate(lines) if ln.startswith("RID 0:"))
        assert "last error: " in lines[i], lines[i]
        assert lines[i + 1].startswith("           fix: "), lines
        shown[mid] = lines[i + 1][len("           fix: "):]
    assert shown[m1] == fix1[1]
    # queue show knows the route, so it names its auth_user
    assert shown[m2] == fix2[1].replace(
        "refused the credentials:", 'refused the credentials of '
        '"relayuser":').replace("user passwd NAME", "user passwd relayuser")
    # the state file keeps the cause on a line of its own
    with open(os.path.join(s.data, "spool", "state", str(m1))) as fh:
        assert re.search(rf"^cause 0 tls-untrusted {untrusted.port} "
                         rf"{re.escape(PARTNER)}$", fh.read(), re.M)
