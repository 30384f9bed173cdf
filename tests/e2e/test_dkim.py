"""DKIM and S/MIME at the gateway (postern.conf(5) `dkim`, `dkim_on_error`,
`smime`; postern(8) `dkim keygen`, `dkim check`), through the real
daemon, checked by two independent DKIM verifiers:

* dkimpy (Debian python3-dkim) and mailauth (npm, pinned in
  tests/e2e/npm/, installed with `npm ci` into build/npm, run with an
  offline DNS cache file) verify every signature of plain, 8-bit,
  multipart, SMTPUTF8 (local maildir) and S/MIME-signed-and-encrypted
  messages, each signed twice (RSA-SHA256 and Ed25519-SHA256, dual
  signing), with the keys and DNS records `postern dkim keygen` made;
* the records keygen printed, pasted into resolver.local_data, make
  `postern dkim check` pass; wrong records make it fail, each problem
  with its fix: line;
* S/MIME before DKIM: openssl cms and gpgsm decrypt and verify what the
  next hop got, and DKIM still verifies; encrypt = when-possible sends
  signed only when a recipient has no certificate; encrypt = required
  bounces that recipient (5.7.5);
* a domain without a key stays unsigned; a key that cannot be used
  defers the message (nothing is sent unsigned) and, fixed, the message
  goes out signed after `postern queue retry`; dkim_on_error =
  "send-unsigned" sends it with a Warning; a retry sends the very same
  bytes, signed once.
"""
import base64
import email
import email.policy
import fcntl
import json
import os
import re
import shutil
import smtplib
import subprocess

import dkim
import pytest

from conftest import (BIN, CRASH_RE, SANITIZER_RE, Server, read_bytes,
                      run, wait_for)
from peers import SMTPPeer
from test_send_smime import (RSA_RCPT, CC_RCPT, SENDER, cms_decrypt,
                             cms_verify, gpgsm, keys, openssl,
                             split_signed)

assert gpgsm and keys                   # fixtures used by tests below

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
NPM_SRC = os.path.join(os.path.dirname(__file__), "npm")
NPM_DIR = os.path.join(REPO, "build", "npm")
DATE = "Tue, 01 Apr 2025 10:00:00 +0000"


# ---------------------------------------------------------------------------
# the second verifier: mailauth, installed once with npm ci

@pytest.fixture(scope="session")
def mailauth():
    """Path of the mailauth command (npm ci of tests/e2e/npm/ into
    build/npm, once, under a lock: xdist workers share it)."""
    binpath = os.path.join(NPM_DIR, "node_modules", ".bin", "mailauth")
    os.makedirs(NPM_DIR, exist_ok=True)
    with open(os.path.join(NPM_DIR, ".lock"), "w") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        want = open(os.path.join(NPM_SRC, "package-lock.json")).read()
        have = os.path.join(NPM_DIR, "package-lock.json")
        if not os.path.exists(binpath) or not os.path.exists(have) or \
                open(have).read() != want:
            for f in ("package.json", "package-lock.json"):
                shutil.copy(os.path.join(NPM_SRC, f), NPM_DIR)
            p = subprocess.run(["npm", "ci", "--no-audit", "--no-fund",
                                "--ignore-scripts"], cwd=NPM_DIR,
                               capture_output=True, text=True, timeout=600)
            assert p.returncode == 0, "npm ci of mailauth failed (make " \
                "deps installs nodejs and npm):\n" + p.stdout + p.stderr
    assert os.path.exists(binpath)
    return binpath


def verify_mailauth(mailauth, raw, records, path):
    """[(selector, result)] of every DKIM-Signature, by mailauth with an
    offline DNS cache holding `records` ({name: txt})."""
    cache = path + ".dns.json"
    with open(cache, "w") as fh:
        json.dump({n: {"TXT": [[t]]} for n, t in records.items()}, fh)
    with open(path, "wb") as fh:
        fh.write(raw)
    p = subprocess.run([mailauth, "report", "--dns-cache", cache, "-i",
                        "127.0.0.1", "-m", "verifier.test", path],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)["dkim"]["results"]
    return [(r["selector"], r["status"]["result"]) for r in res]


def verify_dkimpy(raw, records):
    """[(selector, ok)] of every DKIM-Signature, by dkimpy."""
    def dnsfunc(name, timeout=5):
        return records.get(name.decode().rstrip("."), "").encode() or None
    d = dkim.DKIM(raw)
    out = []
    sigs = [v for k, v in email.message_from_bytes(raw).items()
            if k.lower() == "dkim-signature"]
    for i, sig in enumerate(sigs):
        sel = re.search(r"\bs=([^;\s]+)", sig).group(1)
        try:
            ok = d.verify(idx=i, dnsfunc=dnsfunc)
        except dkim.DKIMException:      # e.g. "body hash mismatch"
            ok = False
        out.append((sel, ok))
    return out


def crlf(data):
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


# ---------------------------------------------------------------------------
# keys and records: postern dkim keygen

def keygen(conf, domain, selector, typ, cwd):
    p = run("dkim", "keygen", "-c", conf, "--domain", domain, "--selector",
            selector, "--type", typ, cwd=cwd)
    assert p.returncode == 0, p.stderr
    m = re.search(r"^(\S+\._domainkey\.\S+\. IN TXT \(.*?\))$", p.stdout,
                  re.S | re.M)
    assert m, p.stdout
    zone = m.group(1)
    strings = re.findall(r'"([^"]*)"', zone)
    assert all(len(s) <= 255 for s in strings), strings
    return {"stdout": p.stdout, "zone": zone,
            "name": f"{selector}._domainkey.{domain}",
            "txt": "".join(strings),
            "key": re.search(r"^wrote (\S+) ", p.stdout, re.M).group(1)}


def local_data(*lines):
    """resolver.local_data entries (libconfig strings) for zone lines."""
    return ", ".join('"%s"' % " ".join(z.split()).replace('"', '\\"')
                     for z in lines)


CONF = """
hostname = "mx.test.example";
data_dir = "data";
log = {{ file = "postern.log"; format = "text"; }};
user = "root";
listeners = ( {{ name = "in"; address = "127.0.0.1"; port = {port}; }} );
sender_groups = ( {{ name = "L"; networks = [ "127.0.0.1/32" ];
  policy = "r"; }} );
policies = {{ r = {{ action = "relay"; max_recipients = 100; }}; }};
local_domains = [ "example.com" ];
routes = (
  {{ domain = "example.com"; maildir = "data/mail/%d/%u"; }},
  {{ domain = "*"; hosts = [ "[127.0.0.1]:@PEER@" ]; }}
);
delivery = {{ retry_min = 1; retry_max = 2; max_queue_lifetime = 3600; }};
{extra}
"""


def conf_text(peer_port, body):
    """CONF for conftest.Server (which fills in {port})."""
    return CONF.replace("@PEER@", str(peer_port)).replace(
        "{extra}", body.replace("{", "{{").replace("}", "}}"))


class Gateway:
    """A module's daemon, its next hop and what keygen made."""


def start_gateway(tmp, peer, extra_fn, keygens=()):
    """Server in tmp: keygen for each (domain, selector, type) with a
    first configuration, then the real one, extra_fn(recs) -> text."""
    g = Gateway()
    g.peer = peer
    s = Server(str(tmp), config=conf_text(peer.port, ""))
    g.recs = {}
    for domain, sel, typ in keygens:
        g.recs[sel] = keygen(s.conf, domain, sel, typ, s.dir)
    g.server = Server(str(tmp), config=conf_text(peer.port,
                                                 extra_fn(g.recs)),
                      port=s.port)
    return g


def stop_gateway(g):
    g.server.stop()
    g.peer.stop()
    text = g.server.stderr() + g.server.log()
    assert not SANITIZER_RE.search(text) and not CRASH_RE.search(text), \
        text[-6000:]


def records_of(g, *sels):
    return {g.recs[s]["name"]: g.recs[s]["txt"] for s in sels}


def send(server, sender, rcpts, msg, options=()):
    """One message over SMTP; its MID (from the 250 reply)."""
    if isinstance(msg, str):
        msg = msg.encode()
    with smtplib.SMTP("127.0.0.1", server.port, timeout=15) as c:
        c.ehlo("client.test")
        code, text = c.mail(sender, list(options))
        assert code == 250, text
        for r in rcpts:
            code, text = c.rcpt(r)
            assert code == 250, text
        code, text = c.data(msg)
        assert code == 250, text
    return int(re.search(rb"queued as (\d+)", text).group(1))


def message(subject, frm="Joe <joe@example.org>", to="bob@example.net",
            extra="", body="Hello,\r\n\r\nthe figures.\r\n"):
    return (f"From: {frm}\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Date: {DATE}\r\nMessage-ID: <{subject.replace(' ', '.')}"
            f"@client.test>\r\n{extra}\r\n{body}")


def wait_peer(peer, subject, timeout=20):
    def got():
        for m in peer.messages:
            if f"Subject: {subject}".encode() in m.data:
                return m
        return None
    return wait_for(got, timeout, f"message {subject!r} at the peer")


def dkim_fields(raw):
    head = raw.split(b"\r\n\r\n", 1)[0]
    return re.findall(rb"^DKIM-Signature:.*?(?=\r\n[^ \t])", head,
                      re.M | re.S)


# ---------------------------------------------------------------------------
# the main gateway: example.org signed with RSA and Ed25519 (the Ed25519
# key also for subdomains); alice@example.org also S/MIME signed (her
# own key) and encrypted when every recipient has a certificate

@pytest.fixture(scope="module")
def gw(tmp_path_factory, keys):
    tmp = tmp_path_factory.mktemp("gw")
    peer = SMTPPeer(name="next.test").start()

    def extra(recs):
        return f"""
dkim = ( {{ domain = "example.org"; selector = "rsa1"; key = "{recs['rsa1']['key']}"; }},
         {{ domain = "example.org"; selector = "ed1"; key = "{recs['ed1']['key']}";
            subdomains = true; expire = 604800; }} );
smime = {{ keys = "{keys.dir}"; sign = [ "{SENDER}" ]; encrypt = "when-possible"; }};
resolver = {{ local_data = [ {local_data(recs['rsa1']['zone'], recs['ed1']['zone'])} ]; }};
"""
    g = start_gateway(tmp, peer, extra, [("example.org", "rsa1", "rsa2048"),
                                         ("example.org", "ed1", "ed25519")])
    g.server.start()
    yield g
    stop_gateway(g)


def assert_verifies(g, raw, tmp_path, mailauth, want=("rsa1", "ed1")):
    recs = records_of(g, "rsa1", "ed1")
    got = verify_dkimpy(raw, recs)
    assert sorted(got) == sorted((s, True) for s in want), got
    got = verify_mailauth(mailauth, raw, recs, str(tmp_path / "m.eml"))
    assert sorted(got) == sorted((s, "pass") for s in want), got


def test_keygen_wrote_keys_and_check_passes(gw):
    for sel, kind, words in (("rsa1", "rsa", "RSA 2048 bits"),
                             ("ed1", "ed25519", "Ed25519")):
        r = gw.recs[sel]
        assert os.stat(r["key"]).st_mode & 0o777 == 0o600
        assert r["key"] == os.path.join(gw.server.data, "dkim",
                                        f"example.org.{sel}.key")
        assert words in r["stdout"]
        assert r["txt"].startswith(f"v=DKIM1; k={kind}; p=")
        assert (f'{{ domain = "example.org"; selector = "{sel}"; key = '
                f'"{r["key"]}"; }}') in r["stdout"]
    p = gw.server.cli("dkim", "check")
    assert p.returncode == 0, p.stdout + p.stderr
    assert re.search(r"^rsa1\._domainkey\.example\.org: ok \(RSA 2048 bits",
                     p.stdout, re.M), p.stdout
    assert re.search(r"^ed1\._domainkey\.example\.org: ok \(Ed25519",
                     p.stdout, re.M), p.stdout
    # an existing key is never replaced
    p = gw.server.cli("dkim", "keygen", "--domain", "example.org",
                      "--selector", "ed1")
    assert p.returncode == 1 and "exists already" in p.stderr
    p = gw.server.cli("config", "check")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "DKIM key ./dkim/example.org.rsa1.key: d=example.org s=rsa1 " \
        "RSA 2048 bits" in gw.server.log()


CASES = {
    "plain": ("Joe <joe@example.org>", "", "Hello,\r\n\r\nplain.\r\n", ()),
    "8bit": ("Jörg <joe@example.org>",
             "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8"
             "\r\nContent-Transfer-Encoding: 8bit\r\n",
             "Grüße aus Köln  \t\r\n\r\n\r\n", ("BODY=8BITMIME",)),
    "multipart": ("Joe <joe@example.org>",
                  "Cc: carol@example.net\r\nReply-To: list@example.org\r\n"
                  "List-Id: <news.example.org>\r\nList-Unsubscribe: "
                  "<mailto:leave@example.org>\r\nMIME-Version: 1.0\r\n"
                  "Content-Type: multipart/alternative; boundary=\"b1\"\r\n",
                  "--b1\r\nContent-Type: text/plain\r\n\r\ntext\r\n--b1\r\n"
                  "Content-Type: text/html\r\n\r\n<p>html</p>\r\n--b1--\r\n",
                  ()),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_relayed_mail_is_dual_signed_and_verifies(gw, case, tmp_path,
                                                  mailauth):
    frm, extra, body, opts = CASES[case]
    subject = f"dkim {case}"
    mid = send(gw.server, "joe@example.org", ["bob@example.net"],
               message(subject, frm=frm, extra=extra, body=body), opts)
    got = wait_peer(gw.peer, subject)
    fields = dkim_fields(got.data)
    assert len(fields) == 2, got.data[:1500]
    assert b"a=rsa-sha256" in fields[0] and b"a=ed25519-sha256" in \
        fields[1]
    unfolded = b" ".join(fields[1].split())
    assert b" l=" not in unfolded and b" t=" in unfolded
    assert re.search(rb" x=\d+;", unfolded)            # expire on ed1
    h = re.search(rb"h=([^;]+);", unfolded).group(1).replace(b" ", b"")
    assert h.startswith(b"From:From:To:To:Cc:") and b"Subject:Subject" in h
    if case == "multipart":
        assert b":Cc:Cc:" in h and b"List-Id" in h and \
            b"List-Unsubscribe" in h and b"Reply-To" in h
    assert_verifies(gw, got.data, tmp_path, mailauth)
    for sel, alg in (("rsa1", "rsa-sha256"), ("ed1", "ed25519-sha256")):
        gw.server.wait_log(rf"Info: MID {mid} DKIM signed d=example.org "
                           rf"s={sel} a={alg}$")
    # what was signed is what left: a changed body byte fails them
    i = got.data.index(b"\r\n\r\n") + 4
    i += re.search(rb"[A-Za-z]", got.data[i:]).start()
    bad = got.data[:i] + bytes([got.data[i] ^ 0x20]) + got.data[i + 1:]
    assert not any(ok for _s, ok in verify_dkimpy(bad,
                                                  records_of(gw, "rsa1",
                                                             "ed1")))


def test_smtputf8_local_maildir_keeps_signature(gw, tmp_path, mailauth):
    subject = "dkim smtputf8"
    msg = message(subject, frm="José <josé@example.org>",
                  to="bob@example.com",
                  extra="MIME-Version: 1.0\r\nContent-Type: text/plain; "
                        "charset=utf-8\r\n",
                  body="Olá, café.\r\n")
    mid = send(gw.server, "josé@example.org", ["bob@example.com"],
               msg.encode(), ("SMTPUTF8", "BODY=8BITMIME"))
    files = gw.server.wait_maildir("example.com", "bob")
    raw = crlf(read_bytes([f for f in files
                           if subject.encode() in read_bytes(f)][0]))
    assert raw.startswith(b"Return-Path: <jos\xc3\xa9@example.org>\r\n")
    assert len(dkim_fields(raw)) == 2
    assert_verifies(gw, raw, tmp_path, mailauth)
    gw.server.wait_log(rf"MID {mid} DKIM signed d=example.org s=ed1 ")


def test_other_domain_unsigned_and_subdomain(gw):
    msg = message("dkim none", frm="x@plain.test")
    mid = send(gw.server, "x@plain.test", ["bob@example.net"], msg)
    got = wait_peer(gw.peer, "dkim none")
    assert dkim_fields(got.data) == []
    # only our Received field was added
    assert got.data.endswith(msg.encode())
    assert got.data[:-len(msg)].startswith(b"Received: from client.test ")
    assert not re.search(rf"MID {mid} DKIM", gw.server.log())
    # a subdomain: only the key with subdomains = true signs
    send(gw.server, "a@news.example.org", ["bob@example.net"],
         message("dkim sub", frm="a@news.example.org"))
    got = wait_peer(gw.peer, "dkim sub")
    fields = dkim_fields(got.data)
    assert len(fields) == 1 and b"s=ed1;" in fields[0]
    assert verify_dkimpy(got.data, records_of(gw, "ed1")) == [("ed1",
                                                                True)]


def test_smime_then_dkim(gw, keys, tmp_path, mailauth, gpgsm):
    subject = "smime and dkim"
    mid = send(gw.server, SENDER, [RSA_RCPT, CC_RCPT],
               message(subject, frm=f"Alice <{SENDER}>",
                       to=f"{RSA_RCPT}, {CC_RCPT}",
                       body="The figures.\r\nZeile zwei\r\n"))
    gw.server.wait_log(rf"Info: MID {mid} S/MIME signed by {SENDER} "
                       rf"encrypted for 2 recipients$")
    got = wait_peer(gw.peer, subject)
    raw = got.data
    # DKIM signs the S/MIME message: both verifiers pass
    assert_verifies(gw, raw, tmp_path, mailauth)
    m = email.message_from_bytes(raw, policy=email.policy.default)
    assert m.get_content_type() == "application/pkcs7-mime"
    assert m["Subject"] == subject and b"figures" not in raw
    # each recipient decrypts, openssl verifies the signature inside
    enc = tmp_path / "enc.eml"
    enc.write_bytes(raw)
    for addr in (RSA_RCPT, CC_RCPT):
        inner = cms_decrypt(keys, enc, addr)
        dec = tmp_path / "dec.eml"
        dec.write_bytes(inner)
        assert b"The figures." in cms_verify(keys, dec)
    # gpgsm decrypts (as erin, a recipient's key it holds now), then
    # verifies the detached signature
    p = gpgsm("--import", os.path.join(os.path.dirname(keys.dir),
                                       CC_RCPT + ".p12"))
    assert p.returncode == 0, p.stderr
    p7m = tmp_path / "smime.p7m"
    p7m.write_bytes(m.get_content())
    p = gpgsm("--decrypt", str(p7m))
    assert p.returncode == 0, p.stderr
    signed = email.message_from_bytes(p.stdout, policy=email.policy.default)
    data = tmp_path / "signed.part"
    data.write_bytes(split_signed(p.stdout, signed.get_boundary()))
    sig = tmp_path / "smime.p7s"
    sig.write_bytes(list(signed.iter_parts())[1].get_content())
    p = gpgsm("--verify", str(sig), str(data))
    assert p.returncode == 0 and b"Good signature" in p.stderr, p.stderr


def test_smime_when_possible_signs_only(gw, keys, tmp_path, mailauth):
    subject = "smime signed only"
    mid = send(gw.server, SENDER, [RSA_RCPT, "nocert@example.net"],
               message(subject, frm=f"Alice <{SENDER}>", to=RSA_RCPT))
    gw.server.wait_log(rf"Info: MID {mid} S/MIME signed by {SENDER} not "
                       rf"encrypted: S/MIME: cannot read .*nocert@example"
                       rf"\.net\.crt")
    got = wait_peer(gw.peer, subject)
    assert len(got.rcpts) == 2
    m = email.message_from_bytes(got.data, policy=email.policy.default)
    assert m.get_content_type() == "multipart/signed"
    f = tmp_path / "signed.eml"
    f.write_bytes(got.data)
    assert b"figures" in cms_verify(keys, f)
    assert_verifies(gw, got.data, tmp_path, mailauth)


def test_retry_sends_identical_bytes_signed_once(gw):
    attempts = []

    def eod(c, data):
        attempts.append(data)
        return "451 4.3.0 try again" if len(attempts) == 1 else None
    gw.peer.set_reply("EOD", eod)
    try:
        mid = send(gw.server, "joe@example.org", ["bob@example.net"],
                   message("dkim retry"))
        got = wait_peer(gw.peer, "dkim retry")
    finally:
        gw.peer.set_reply("EOD", None)
    assert len(attempts) == 2 and attempts[0] == attempts[1] == got.data
    assert len(re.findall(rf"MID {mid} DKIM signed d=example.org s=rsa1 ",
                          gw.server.log())) == 1
    assert re.search(rf"Delayed: DCID \d+ MID {mid} to RID \[0\]",
                     gw.server.log())


# ---------------------------------------------------------------------------
# dkim check against records that are wrong

def test_dkim_check_reports_each_problem_with_its_fix(tmp_path):
    conf = str(tmp_path / "c.conf")
    base = ('data_dir = "data";\nlog = { file = "l.log"; };\n'
            'listeners = ( { name = "a"; address = "127.0.0.1"; '
            'port = 2999; } );\n')
    with open(conf, "w") as fh:
        fh.write(base)
    sels = {"mis": "rsa2048", "tst": "ed25519", "rev": "ed25519",
            "gone": "ed25519", "weak": None, "k": "rsa2048"}
    recs = {s: keygen(conf, "check.test", s, t, str(tmp_path))
            for s, t in sels.items() if t}
    other = keygen(conf, "other.test", "o", "rsa2048", str(tmp_path))
    weak = str(tmp_path / "weak.key")
    assert openssl("genrsa", "-out", weak, "1024").returncode == 0
    weak_p = base64.b64encode(openssl("pkey", "-in", weak, "-pubout",
                                      "-outform", "DER").stdout).decode()
    zones = [other["zone"].replace("o._domainkey.other.test",
                                   "mis._domainkey.check.test"),
             recs["tst"]["zone"].replace('"p=', '"t=y; p='),
             re.sub(r'"p=[^"]*"', '"p="', recs["rev"]["zone"]),
             recs["k"]["zone"].replace("k=rsa", "k=ed25519"),
             f'weak._domainkey.check.test. TXT "v=DKIM1; k=rsa; p={weak_p}"']
    entries = ",\n".join(
        f'{{ domain = "check.test"; selector = "{s}"; key = "{k}"; }}'
        for s, k in [(s, recs[s]["key"]) for s in recs] + [("weak", weak)])
    with open(conf, "w") as fh:
        fh.write(base + f"dkim = ( {entries} );\nresolver = {{ local_data "
                 f"= [ {local_data(*zones)} ]; }};\n")
    p = run("dkim", "check", "-c", conf, cwd=str(tmp_path))
    assert p.returncode == 1, p.stdout + p.stderr
    out = p.stdout
    want = {
        "mis": (r"FAIL: the key in DNS \(k=rsa\) does not match the "
                r"private key", "fix: publish the record of"),
        "tst": (r"warning: the record is in testing mode \(t=y\)",
                "fix: remove t=y from the record"),
        "rev": (r"FAIL: the record revokes the key \(p= is empty\)",
                "fix: this selector is retired"),
        "gone": (r"FAIL: no DKIM record at gone\._domainkey\.check\.test: "
                 r"the name does not exist \(NXDOMAIN\)",
                 "fix: publish in the zone of check.test: "
                 "gone._domainkey.check.test. IN TXT ( \"v=DKIM1; "
                 "k=ed25519; \""),
        "k": (r"FAIL: the key in DNS \(k=ed25519\) does not match",
              "fix: publish the record of"),
        "weak": (r"warning: the RSA key has only 1024 bits",
                 "fix: make a 2048-bit key with `postern dkim keygen "
                 "--domain check.test --selector NEW`"),
    }
    for sel, (problem, fix) in want.items():
        m = re.search(rf"^{sel}\._domainkey\.check\.test: {problem}.*\n"
                      rf"  (.*)$", out, re.M)
        assert m, (sel, out)
        assert m.group(1).startswith(fix), (sel, m.group(1))
    # the fix for a missing record is the record itself, one line
    gone = recs["gone"]["txt"].split("p=")[1]
    assert gone in out
    p = run("dkim", "check", "-c", conf, "--json", cwd=str(tmp_path))
    assert p.returncode == 1
    res = {r["selector"]: r for r in json.loads(p.stdout)}
    assert res["tst"]["status"] == "warning"
    assert res["gone"]["problems"][0]["problem"] == "record-missing"
    assert res["mis"]["problems"][0]["problem"] == "key-mismatch"
    assert res["rev"]["problems"][0]["problem"] == "key-revoked"
    assert res["weak"]["problems"][-1]["problem"] == "rsa-weak"
    p = run("dkim", "check", "-c", conf, "--domain", "nosuch.test",
            cwd=str(tmp_path))
    assert p.returncode == 1 and "no dkim entry for nosuch.test" in \
        p.stderr and len(p.stderr.splitlines()) == 1
    p = run("dkim", "check", "-c", conf, "--selector", "x",
            cwd=str(tmp_path))
    assert p.returncode == 2


def test_config_check_loads_every_key(tmp_path):
    d = str(tmp_path)
    openssl("genrsa", "-out", os.path.join(d, "r512.key"), "512")
    openssl("genrsa", "-out", os.path.join(d, "r1024.key"), "1024")
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-out", os.path.join(d, "ec.key"))
    for f in ("r512.key", "r1024.key", "ec.key"):
        os.chmod(os.path.join(d, f), 0o600)
    conf = os.path.join(d, "c.conf")
    with open(conf, "w") as fh:
        fh.write('data_dir = "data";\nlisteners = ( { name = "a"; address '
                 '= "127.0.0.1"; port = 2999; } );\ndkim = (\n'
                 ' { domain = "a.test"; selector = "w"; key = "r1024.key"; },\n'
                 ' { domain = "a.test"; selector = "s"; key = "r512.key"; },\n'
                 ' { domain = "a.test"; selector = "e"; key = "ec.key"; },\n'
                 ' { domain = "a.test"; selector = "m"; key = "no.key"; } );\n')
    p = run("config", "check", "-c", conf, cwd=d)
    assert p.returncode == 1
    assert re.search(r"^warning: .*c\.conf:4: dkim d=a.test s=w: the RSA key "
                     r".*has only 1024 bits", p.stdout, re.M), p.stdout
    for line, sel, words in ((5, "s", "is RSA with 512 bits"),
                             (6, "e", "is of type EC"),
                             (7, "m", "cannot read DKIM key")):
        assert re.search(rf"c\.conf:{line}: dkim d=a\.test s={sel}: .*"
                         rf"{words}", p.stderr), p.stderr
    assert "signing keys cannot be used" in p.stderr


# ---------------------------------------------------------------------------
# keys that cannot be used: deferred (never sent unsigned), then signed
# once fixed; or sent unsigned with a Warning when so configured

def test_broken_key_defers_then_signs_after_fix(tmp_path_factory, tmp_path,
                                                mailauth):
    tmp = tmp_path_factory.mktemp("defer")
    peer = SMTPPeer(name="next.test").start()
    key = str(tmp / "data" / "dkim" / "example.org.late.key")

    def extra(recs):
        return f"""
dkim = ( {{ domain = "example.org"; selector = "late"; key = "{key}"; }} );
"""
    g = start_gateway(tmp, peer, extra)
    try:
        g.server.start()
        g.server.wait_log(r"Warning: cannot read DKIM key .*late\.key: No "
                          r"such file.* mail from example\.org is deferred")
        mid = send(g.server, "joe@example.org", ["bob@example.net"],
                   message("dkim late key"))
        g.server.wait_log(rf"Warning: MID {mid} DKIM not signed "
                          rf"d=example.org s=late: cannot read DKIM key .*; "
                          rf"message deferred \(dkim_on_error = defer\)")
        g.server.wait_log(rf"Delayed: MID {mid} to RID \[0\] - dkim: "
                          rf"cannot read DKIM key")
        assert peer.messages == [] and peer.connections == 0
        # the key appears (keygen); `postern queue retry` sends it, signed
        rec = keygen(g.server.conf, "example.org", "late", "ed25519",
                     g.server.dir)
        assert rec["key"] == key
        p = g.server.cli("queue", "retry")
        assert p.returncode == 0, p.stderr
        got = wait_peer(peer, "dkim late key")
        assert verify_dkimpy(got.data, {rec["name"]: rec["txt"]}) == \
            [("late", True)]
        assert verify_mailauth(mailauth, got.data, {rec["name"]: rec["txt"]},
                               str(tmp_path / "m.eml")) == [("late", "pass")]
        g.server.wait_log(rf"MID {mid} DKIM signed d=example.org s=late "
                          rf"a=ed25519-sha256")
    finally:
        stop_gateway(g)


def test_send_unsigned_and_smime_required(tmp_path_factory, keys, tmp_path):
    tmp = tmp_path_factory.mktemp("unsigned")
    peer = SMTPPeer(name="next.test").start()

    def extra(recs):
        return f"""
dkim = ( {{ domain = "example.org"; selector = "gone"; key = "gone.key"; }} );
dkim_on_error = "send-unsigned";
smime = {{ keys = "{keys.dir}"; sign = [ "{SENDER}" ]; encrypt = "required"; }};
"""
    g = start_gateway(tmp, peer, extra)
    try:
        g.server.start()
        mid = send(g.server, "joe@example.org", ["bob@example.net"],
                   message("dkim unsigned"))
        got = wait_peer(peer, "dkim unsigned")
        assert dkim_fields(got.data) == []
        g.server.wait_log(rf"Warning: MID {mid} DKIM not signed "
                          rf"d=example.org s=gone: cannot read DKIM key .*; "
                          rf"sent without this signature")
        # encrypt = required: the recipient without a certificate
        # bounces (5.7.5), the other gets the encrypted copy
        mid = send(g.server, SENDER, [RSA_RCPT, "nocert@example.net"],
                   message("smime required", frm=f"Alice <{SENDER}>"))
        got = wait_peer(peer, "smime required")
        assert [r.lower() for r in got.rcpts] == [RSA_RCPT]
        g.server.wait_log(rf"Bounced: MID {mid} to RID \[1\] - no usable "
                          rf"S/MIME certificate .*nocert@example\.net\.crt")
        dsn = wait_for(lambda: [m for m in peer.messages
                                if m.mail_from == ""], 20, "the DSN")[0]
        assert [r.lower() for r in dsn.rcpts] == [SENDER]
        assert b"Status: 5.7.5" in dsn.data and b"nocert@example.net" in \
            dsn.data
        g.server.wait_log(rf"MID {mid} S/MIME signed by {SENDER} encrypted "
                          rf"for 1 recipients")
        enc = tmp_path / "enc.eml"
        enc.write_bytes(got.data)
        dec = tmp_path / "dec.eml"
        dec.write_bytes(cms_decrypt(keys, enc, RSA_RCPT))
        assert b"Hello," in cms_verify(keys, dec)
    finally:
        stop_gateway(g)


def test_help_and_usage():
    p = run("help")
    assert re.search(r"^  dkim +DKIM signing keys", p.stdout, re.M)
    p = run("dkim", "keygen", "--domain", "a.test")
    assert p.returncode == 2 and "give --domain and --selector" in p.stderr
    p = run("dkim", "keygen", "--domain", "a.test", "--selector", "s",
            "--type", "dsa")
    assert p.returncode == 2 and "--type must be" in p.stderr
    p = run("dkim", "keygen", "--domain", "bad domain", "--selector", "s")
    assert p.returncode == 2
    assert BIN
