"""`postern cert` (postern(8), cert): selfsign, csr, import (also
PKCS#12), export, list, show, check, checked against the openssl CLI.
A small CA (root -> Int1 -> Int2) is made with openssl once per module."""
import datetime
import os
import re
import stat
import subprocess

import pytest

from conftest import BIN, one_error_line, ossl, run

PW = "pkcs12-Secret-7f3a"

LEAF_EXT = """basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:mail.test.example,DNS:smtp.test.example
"""
CA_EXT = """basicConstraints=critical,CA:TRUE
keyUsage=critical,keyCertSign,cRLSign
"""
PEM_RE = re.compile(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n",
                    re.S)


def subject_cn(pem_text):
    out = ossl("x509", "-noout", "-subject", "-nameopt", "multiline",
               input=pem_text)
    m = re.search(r"commonName\s*=\s*(.+)", out)
    return m.group(1).strip()


def pubkey_of_cert(path):
    return ossl("x509", "-in", path, "-noout", "-pubkey")


def pubkey_of_key(path):
    return ossl("pkey", "-in", path, "-pubout")


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    """Root CA -> Int1 -> Int2 (EC keys), made with the openssl CLI."""
    d = tmp_path_factory.mktemp("ca")
    (d / "ca.ext").write_text(CA_EXT)
    (d / "leaf.ext").write_text(LEAF_EXT)
    ossl("req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:P-256", "-nodes", "-keyout", "root.key", "-out",
         "root.pem", "-subj", "/CN=Test Root CA", "-days", "365", "-addext",
         "basicConstraints=critical,CA:TRUE", "-addext",
         "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    for name, issuer in (("int1", "root"), ("int2", "int1")):
        cn = "Test Int1 CA" if name == "int1" else "Test Int2 CA"
        ossl("req", "-new", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:P-256", "-nodes", "-keyout", f"{name}.key",
             "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=d)
        ossl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{issuer}.pem",
             "-CAkey", f"{issuer}.key", "-CAcreateserial", "-out",
             f"{name}.pem", "-days", "200", "-extfile", "ca.ext", cwd=d)
    return d


def sign(ca, csr, out, days=90, ext="leaf.ext"):
    ossl("x509", "-req", "-in", str(csr), "-CA", str(ca / "int2.pem"),
         "-CAkey", str(ca / "int2.key"), "-CAcreateserial", "-out", str(out),
         "-days", str(days), "-extfile", str(ca / ext), cwd=ca)


def cat(out, *paths):
    out.write_text("".join(p.read_text() for p in paths))
    return out


class Env:
    def __init__(self, tmp_path, extra=""):
        self.dir = tmp_path
        self.conf = str(tmp_path / "postern.conf")
        with open(self.conf, "w") as fh:
            fh.write('hostname = "mx.test.example";\ndata_dir = "data";\n'
                     'user = "root";\n' + extra + "\n")
        self.certs = tmp_path / "data" / "certs"

    def cert(self, *args, env=None):
        return run("cert", *args, "-c", self.conf, cwd=str(self.dir),
                   env=env)

    def trust(self, *args):
        return run("trust", *args, "-c", self.conf, cwd=str(self.dir))

    def ok(self, *args, env=None):
        p = self.cert(*args, env=env)
        assert p.returncode == 0, (args, p.stdout, p.stderr)
        return p


@pytest.fixture
def env(tmp_path):
    return Env(tmp_path)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def pw_env(value=PW):
    return dict(os.environ, P12PW=value)


def fails_with_fixes(out):
    """The FAIL lines; each must be followed by a fix: line."""
    lines = out.splitlines()
    fails = []
    for i, ln in enumerate(lines):
        if ln.startswith("FAIL: "):
            assert i + 1 < len(lines) and lines[i + 1].startswith("fix: ") \
                and len(lines[i + 1]) > 10, out
            fails.append(ln)
    return fails


# ---------------------------------------------------------------------------

def test_help_and_usage_errors(env):
    p = run("cert", "--help")
    assert p.returncode == 0
    for sub in ("selfsign", "csr", "import", "export", "list", "show",
                "check"):
        assert re.search(rf"^  {sub}\b", p.stdout, re.M), p.stdout
    assert "fetch HOST[:PORT] [--starttls] --out DIR" in p.stdout
    assert run("help", "cert").stdout == p.stdout
    f = run("cert", "fetch", "--help")             # dispatched to fetch
    assert f.returncode == 0 and "cert fetch HOST[:PORT]" in f.stdout
    assert "cert" in run("--help").stdout and "trust" in run("--help").stdout
    for sub in ("selfsign", "csr", "import", "export", "list", "show",
                "check"):
        h = run("cert", sub, "--help")
        assert h.returncode == 0 and h.stdout.startswith(
            f"usage: postern cert {sub}"), h.stdout
    one_error_line(run("cert", "bogus"), 2)
    one_error_line(run("cert", "-x", "list"), 2)
    one_error_line(env.cert("selfsign", "--name", "x"), 2)        # no --cn
    one_error_line(env.cert("selfsign", "--cn", "a.example"), 2)  # no --name
    one_error_line(env.cert("selfsign", "--cn", "a", "--name", "../x"), 2)
    one_error_line(env.cert("selfsign", "--cn", "a", "--name", "x",
                            "--days", "zero"), 2)
    one_error_line(env.cert("selfsign", "--cn", "a", "--name", "x",
                            "--key", "dsa512"), 2)
    one_error_line(env.cert("selfsign", "--cn", "a", "--name", "x",
                            "--san", "bad name"), 2)
    one_error_line(env.cert("selfsign", "--bogus"), 2)
    one_error_line(env.cert("show"), 2)
    one_error_line(env.cert("show", "nope"), 1)
    one_error_line(env.cert("check", "nope"), 1)
    one_error_line(env.cert("export", "nope", "--pkcs12", "x.p12",
                            "--password-env", "P12PW", env=pw_env()), 1)
    one_error_line(env.cert("import", "--name", "x", "--cert",
                            "/nonexistent.pem"), 1)
    assert not os.path.exists(env.certs / "x.pem")


def test_empty_list(env):
    p = env.ok("list")
    assert "no certificates" in p.stdout


def test_selfsign(env):
    p = env.ok("selfsign", "--cn", "mx.test.example", "--san",
               "alt.test.example", "--san", "192.0.2.7", "--days", "10",
               "--key", "ec256", "--name", "mx")
    pem, key = env.certs / "mx.pem", env.certs / "mx.key"
    text = ossl("x509", "-in", str(pem), "-noout", "-text")
    assert "Subject: CN = mx.test.example" in text
    assert re.search(r"DNS:mx\.test\.example, DNS:alt\.test\.example, "
                     r"IP Address:192\.0\.2\.7", text), text
    assert "CA:FALSE" in text and "TLS Web Server Authentication" in text
    assert "ecdsa-with-SHA256" in text
    assert "Key Encipherment" not in text        # EC key
    serial = ossl("x509", "-in", str(pem), "-noout", "-serial").split("=")[1]
    assert len(serial.strip()) >= 30             # 128 random bits
    end = ossl("x509", "-in", str(pem), "-noout", "-enddate").split("=")[1]
    end = datetime.datetime.strptime(end.strip(), "%b %d %H:%M:%S %Y %Z")
    left = end - datetime.datetime.utcnow()
    assert datetime.timedelta(days=9, hours=23) < left <= \
        datetime.timedelta(days=10, minutes=1)
    assert mode(key) == 0o600
    assert mode(env.certs) == 0o700
    assert pubkey_of_key(str(key)) == pubkey_of_cert(str(pem))
    # what it printed
    fp = ossl("x509", "-in", str(pem), "-noout", "-fingerprint",
              "-sha256").split("=")[1].strip()
    assert fp in p.stdout
    assert "mx.test.example" in p.stdout and "alt.test.example" in p.stdout
    assert "EC P-256" in p.stdout and end.strftime("%Y-%m-%d") in p.stdout
    # no silent overwrite; --force replaces
    line = one_error_line(env.cert("selfsign", "--cn", "other", "--name",
                                   "mx"))
    assert "exists" in line and "--force" in line
    assert fp in ossl("x509", "-in", str(pem), "-noout", "-fingerprint",
                      "-sha256")
    env.ok("selfsign", "--cn", "other.test.example", "--name", "mx",
           "--force")
    text = ossl("x509", "-in", str(pem), "-noout", "-text")
    assert "CN = other.test.example" in text and "RSA Public-Key: (2048" \
        in text or "Public-Key: (2048 bit)" in text
    assert pubkey_of_key(str(key)) == pubkey_of_cert(str(pem))


def test_private_key_mode_despite_umask(env):
    p = subprocess.run(["sh", "-c", 'umask 000; exec "$0" "$@"', BIN, "cert",
                        "csr", "--cn", "u.test.example", "--name", "u",
                        "--out", "u.csr", "-c", env.conf], cwd=str(env.dir),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert mode(env.certs / "u.key") == 0o600
    assert mode(env.certs) == 0o700
    assert not mode(env.dir / "data") & 0o077


def test_csr(env):
    p = env.ok("csr", "--cn", "mail.test.example", "--san",
               "smtp.test.example", "--org", "Example Org", "--country", "DE",
               "--locality", "Berlin", "--name", "mail")
    assert p.stdout.startswith("-----BEGIN CERTIFICATE REQUEST-----")
    (env.dir / "out.csr").write_text(p.stdout)
    v = subprocess.run(["openssl", "req", "-verify", "-noout", "-in",
                        str(env.dir / "out.csr")], capture_output=True,
                       text=True)
    assert v.returncode == 0 and "verify OK" in (v.stdout + v.stderr)
    text = ossl("req", "-in", str(env.dir / "out.csr"), "-noout", "-text")
    assert "CN = mail.test.example" in text and "O = Example Org" in text
    assert "C = DE" in text and "L = Berlin" in text
    assert "DNS:mail.test.example, DNS:smtp.test.example" in text
    assert (env.certs / "mail.csr").read_text() == p.stdout
    assert mode(env.certs / "mail.key") == 0o600
    assert not (env.certs / "mail.pem").exists()
    # the CSR's key is the stored one
    assert ossl("req", "-in", str(env.certs / "mail.csr"), "-noout",
                "-pubkey") == pubkey_of_key(str(env.certs / "mail.key"))
    lst = env.ok("list").stdout
    ln = [x for x in lst.splitlines() if x.startswith("mail ")]
    assert ln and "csr pending" in ln[0] and "RSA 2048" in ln[0], lst
    # --out, EC key; an existing name is refused
    env.ok("csr", "--cn", "b.test.example", "--key", "ec256", "--name", "b",
           "--out", "b.csr")
    subprocess.run(["openssl", "req", "-verify", "-noout", "-in",
                    str(env.dir / "b.csr")], check=True, capture_output=True)
    line = one_error_line(env.cert("csr", "--cn", "x", "--name", "mail"))
    assert "exists" in line
    one_error_line(env.cert("csr", "--cn", "x", "--name", "c", "--country",
                            "Germany"), 2)
    show = env.ok("show", "mail").stdout
    assert "pending" in show and "mail.test.example" in show


def test_ca_signed_import_export_list_show(env, ca):
    # a request made here, signed by the CA (Int2), imported under another ID
    env.ok("csr", "--cn", "mail.test.example", "--san", "smtp.test.example",
           "--name", "mail-req", "--out", "req.csr")
    sign(ca, env.dir / "req.csr", env.dir / "leaf.pem")
    # chain: wrong order, a duplicate and the root
    chain = cat(env.dir / "chain.pem", ca / "int1.pem", ca / "root.pem",
                ca / "int2.pem", ca / "int1.pem")
    p = env.ok("import", "--name", "mail", "--cert", "leaf.pem", "--chain",
               str(chain))
    out = p.stdout
    assert "mail-req" in out                           # key found by itself
    assert re.search(r"issuer order", out), out
    assert re.search(r"dropped 1 duplicate", out), out
    assert re.search(r"self-signed root", out), out
    stored = (env.certs / "mail.pem").read_text()
    blocks = PEM_RE.findall(stored)
    assert [subject_cn(b) for b in blocks] == \
        ["mail.test.example", "Test Int2 CA", "Test Int1 CA"]
    v = ossl("verify", "-CAfile", str(ca / "root.pem"), "-untrusted",
             str(env.certs / "mail.pem"), str(env.certs / "mail.pem"))
    assert ": OK" in v
    assert pubkey_of_key(str(env.certs / "mail.key")) == \
        pubkey_of_cert(str(env.certs / "mail.pem"))
    assert mode(env.certs / "mail.key") == 0o600
    # the pending request moved to the new ID
    assert not (env.certs / "mail-req.key").exists()
    assert not (env.certs / "mail-req.csr").exists()
    # importing again needs --force
    assert "exists" in one_error_line(env.cert(
        "import", "--name", "mail", "--cert", "leaf.pem"))

    # list
    lst = env.ok("list").stdout.splitlines()
    assert lst[0].split()[:3] == ["ID", "SUBJECT", "SANS"]
    row = [x for x in lst if x.startswith("mail ")][0]
    end = ossl("x509", "-in", "leaf.pem", "-noout", "-enddate",
               cwd=env.dir).split("=")[1].strip()
    end = datetime.datetime.strptime(end, "%b %d %H:%M:%S %Y %Z")
    assert "mail.test.example,smtp.test.example" in row
    assert "Test Int2 CA" in row and end.strftime("%Y-%m-%d") in row
    assert re.search(r"\b(89|90)\b", row) and "RSA 2048" in row, row

    # show
    show = env.ok("show", "mail").stdout
    serial = ossl("x509", "-in", "leaf.pem", "-noout", "-serial",
                  cwd=env.dir).split("=")[1].strip()
    fp = ossl("x509", "-in", "leaf.pem", "-noout", "-fingerprint", "-sha256",
              cwd=env.dir).split("=")[1].strip()
    assert re.search(rf"^serial:\s+{serial}$", show, re.M), show
    assert fp in show and "RSA 2048" in show
    assert "mail.test.example, smtp.test.example" in show
    assert re.search(r"CN=Test Int2 CA -> Test Int1 CA", show), show
    assert re.search(r"CN=Test Int1 CA -> Test Root CA", show), show

    # export: PKCS#12 that openssl reads with the password from the env
    p = env.ok("export", "mail", "--pkcs12", "mail.p12", "--password-env",
               "P12PW", env=pw_env())
    assert PW not in p.stdout + p.stderr
    p12 = str(env.dir / "mail.p12")
    assert mode(p12) == 0o600
    dump = ossl("pkcs12", "-in", p12, "-passin", "env:P12PW", "-nodes",
                env=pw_env())
    assert dump.count("BEGIN CERTIFICATE") == 3 and "PRIVATE KEY" in dump
    assert "friendlyName: mail" in dump
    keyfile = env.dir / "exported.key"
    keyfile.write_text(re.search(r"-----BEGIN PRIVATE KEY-----.*?"
                                 r"-----END PRIVATE KEY-----\n", dump,
                                 re.S).group(0))
    assert pubkey_of_key(str(keyfile)) == \
        pubkey_of_cert(str(env.certs / "mail.pem"))
    info = subprocess.run(["openssl", "pkcs12", "-in", p12, "-passin",
                           "env:P12PW", "-info", "-noout"], env=pw_env(),
                          capture_output=True, text=True)
    assert "AES-256-CBC" in info.stderr + info.stdout
    assert "MAC: sha256" in info.stderr + info.stdout
    # no overwrite without --force, empty and missing passwords refused
    assert "exists" in one_error_line(env.cert(
        "export", "mail", "--pkcs12", "mail.p12", "--password-env", "P12PW",
        env=pw_env()))
    one_error_line(env.cert("export", "mail", "--pkcs12", "e.p12",
                            "--password-env", "P12PW", env=pw_env("")))
    one_error_line(env.cert("export", "mail", "--pkcs12", "e.p12"), 2)
    assert not (env.dir / "e.p12").exists()
    (env.dir / "pw.txt").write_text(PW + "\n")
    env.ok("export", "mail", "--pkcs12", "f.p12", "--password-file",
           "pw.txt")
    ossl("pkcs12", "-in", str(env.dir / "f.p12"), "-passin", "env:P12PW",
         "-nodes", env=pw_env())


def test_import_pkcs12_from_openssl(env, ca):
    d = env.dir
    ossl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "k.pem",
         "-out", "r.csr", "-subj", "/CN=mail.test.example", cwd=d)
    sign(ca, d / "r.csr", d / "c.pem")
    cat(d / "ch.pem", ca / "int1.pem", ca / "int2.pem")
    ossl("pkcs12", "-export", "-inkey", "k.pem", "-in", "c.pem", "-certfile",
         "ch.pem", "-out", "in.p12", "-passout", "env:P12PW", "-name", "x",
         cwd=d, env=pw_env())
    bad = env.cert("import", "--name", "p", "--pkcs12", "in.p12",
                   "--password-env", "P12PW", env=pw_env("wrong-password"))
    assert "password" in one_error_line(bad)
    assert "wrong-password" not in bad.stdout + bad.stderr
    one_error_line(env.cert("import", "--name", "p", "--pkcs12", "in.p12"), 2)
    p = env.ok("import", "--name", "p", "--pkcs12", "in.p12",
               "--password-env", "P12PW", env=pw_env())
    assert PW not in p.stdout + p.stderr
    blocks = PEM_RE.findall((env.certs / "p.pem").read_text())
    assert [subject_cn(b) for b in blocks] == \
        ["mail.test.example", "Test Int2 CA", "Test Int1 CA"]
    assert pubkey_of_key(str(env.certs / "p.key")) == \
        pubkey_of_key(str(d / "k.pem"))
    assert mode(env.certs / "p.key") == 0o600


def test_import_key_handling(env, ca):
    d = env.dir
    ossl("req", "-new", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:P-256", "-nodes", "-keyout", "k.pem", "-out",
         "r.csr", "-subj", "/CN=mail.test.example", cwd=d)
    sign(ca, d / "r.csr", d / "c.pem")
    # made elsewhere, no key given: refused, with the way out
    line = one_error_line(env.cert("import", "--name", "x", "--cert",
                                   "c.pem"))
    assert "no private key" in line and "--key" in line
    # a key that does not belong to it
    ossl("genpkey", "-algorithm", "EC", "-pkeyopt",
         "ec_paramgen_curve:P-256", "-out", "other.key", cwd=d)
    line = one_error_line(env.cert("import", "--name", "x", "--cert",
                                   "c.pem", "--key", "other.key"))
    assert "does not match" in line
    assert not (env.certs / "x.pem").exists()
    # key, intermediates and leaf all in one file, leaf not first
    cat(d / "all.pem", ca / "int2.pem", d / "k.pem", d / "c.pem",
        ca / "int1.pem")
    p = env.ok("import", "--name", "x", "--cert", "all.pem")
    assert "first" in p.stdout, p.stdout
    blocks = PEM_RE.findall((env.certs / "x.pem").read_text())
    assert [subject_cn(b) for b in blocks] == \
        ["mail.test.example", "Test Int2 CA", "Test Int1 CA"]
    assert pubkey_of_key(str(env.certs / "x.key")) == \
        pubkey_of_key(str(d / "k.pem"))


def _expired_leaf(ca, d):
    """A leaf signed by Int2 that expired yesterday (python3-cryptography,
    installed by `make deps`)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    ikey = serialization.load_pem_private_key(
        (ca / "int2.key").read_bytes(), None)
    icert = x509.load_pem_x509_certificate((ca / "int2.pem").read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.utcnow()
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(
                NameOID.COMMON_NAME, "mail.test.example")]))
            .issuer_name(icert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=60))
            .not_valid_after(now - datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("mail.test.example")]), critical=False)
            .sign(ikey, hashes.SHA256()))
    (d / "old.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "old.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))


def test_check(env, ca):
    d = env.dir
    assert env.trust("add", str(ca / "root.pem"), "--name",
                     "root").returncode == 0
    ossl("req", "-new", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:P-256", "-nodes", "-keyout", "k.pem", "-out",
         "r.csr", "-subj", "/CN=mail.test.example", cwd=d)
    sign(ca, d / "r.csr", d / "c.pem")
    sign(ca, d / "r.csr", d / "soon.pem", days=10)
    ossl("genpkey", "-algorithm", "EC", "-pkeyopt",
         "ec_paramgen_curve:P-256", "-out", "other.key", cwd=d)
    good = cat(d / "good.pem", ca / "int2.pem", ca / "int1.pem")
    wrong = cat(d / "wrong.pem", ca / "int1.pem", ca / "int2.pem")
    dup = cat(d / "dup.pem", ca / "int2.pem", ca / "int2.pem",
              ca / "int1.pem")

    def check(*args):
        return env.cert("check", *args)

    p = check("--cert", "c.pem", "--chain", str(good), "--key", "k.pem",
              "--hostname", "mail.test.example")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "FAIL" not in p.stdout and "no problems found" in p.stdout
    for what in ("key matches", "chain in order", "chain complete",
                 "valid until", "valid for mail.test.example"):
        assert what in p.stdout, p.stdout

    cases = [
        (["--key", "other.key", "--chain", str(good)], "does not match"),
        (["--key", "k.pem", "--chain", str(ca / "int1.pem")],
         "missing intermediate"),
        (["--key", "k.pem"], "missing intermediate"),
        (["--key", "k.pem", "--chain", str(wrong)], "wrong order"),
        (["--key", "k.pem", "--chain", str(dup)], "1 duplicate"),
    ]
    for extra, what in cases:
        p = check("--cert", "c.pem", "--hostname", "mail.test.example",
                  *extra)
        assert p.returncode == 1, (extra, p.stdout)
        fails = fails_with_fixes(p.stdout)
        assert len(fails) == 1 and what in fails[0], (extra, p.stdout)
    p = check("--cert", "c.pem", "--key", "k.pem", "--chain", str(wrong))
    fix = p.stdout.split("FAIL: wrong order")[1].splitlines()[1]
    assert fix.startswith("fix: postern cert import --name ID --cert c.pem "
                          f"--chain {wrong}"), fix

    # expiring within 30 days
    p = check("--cert", "soon.pem", "--chain", str(good), "--key", "k.pem",
              "--hostname", "mail.test.example")
    fails = fails_with_fixes(p.stdout)
    assert p.returncode == 1 and len(fails) == 1
    assert re.search(r"expires in (9|10) days", fails[0]), p.stdout

    # host name: --hostname, else the configuration's hostname
    p = check("--cert", "c.pem", "--chain", str(good), "--key", "k.pem",
              "--hostname", "other.test.example")
    fails = fails_with_fixes(p.stdout)
    assert p.returncode == 1 and len(fails) == 1
    assert "host name mismatch" in fails[0] and "other.test.example" in \
        fails[0]
    p = check("--cert", "c.pem", "--chain", str(good), "--key", "k.pem")
    assert p.returncode == 1 and "mx.test.example" in \
        fails_with_fixes(p.stdout)[0]

    # expired
    _expired_leaf(ca, d)
    p = check("--cert", "old.pem", "--chain", str(good), "--key", "old.key",
              "--hostname", "mail.test.example")
    fails = fails_with_fixes(p.stdout)
    assert p.returncode == 1 and len(fails) == 1 and "expired" in fails[0]

    # a stored entry: import puts it right, check by ID passes
    env.ok("import", "--name", "m", "--cert", "c.pem", "--key", "k.pem",
           "--chain", str(dup))
    p = check("m", "--hostname", "www.test.example")
    assert p.returncode == 1 and "host name mismatch" in p.stdout
    p = check("m", "--hostname", "mail.test.example")
    assert p.returncode == 0, p.stdout

    # self-signed: a warning, not a failure
    env.ok("selfsign", "--cn", "mx.test.example", "--name", "self")
    p = check("self")
    assert p.returncode == 0, p.stdout
    assert re.search(r"^warn: self-signed", p.stdout, re.M), p.stdout
    # key swapped in the store: FAIL with a fix naming the ID
    (env.certs / "self.key").write_text((d / "other.key").read_text())
    p = check("self")
    fails = fails_with_fixes(p.stdout)
    assert p.returncode == 1 and "does not match" in fails[0]
    assert "--name self" in p.stdout
