"""`postern trust add FILE --name NAME` / `trust list` / `trust remove NAME`
(postern(8)): the trust store in <data_dir>/trust, and its effect
on `postern cert check`."""
import re

import pytest

from conftest import one_error_line, ossl, run


def make_ca(d, name, cn, days=365):
    ossl("req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:P-256", "-nodes", "-keyout", f"{name}.key",
         "-out", f"{name}.pem", "-subj", f"/CN={cn}", "-days", str(days),
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext",
         "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    return d / f"{name}.pem"


class Env:
    def __init__(self, d, extra=""):
        self.dir = d
        self.conf = str(d / "postern.conf")
        with open(self.conf, "w") as fh:
            fh.write('hostname = "mx.test.example";\ndata_dir = "data";\n'
                     'user = "root";\n' + extra + "\n")
        self.trustdir = d / "data" / "trust"

    def trust(self, *args):
        return run("trust", *args, "-c", self.conf, cwd=str(self.dir))

    def cert(self, *args):
        return run("cert", *args, "-c", self.conf, cwd=str(self.dir))


@pytest.fixture
def env(tmp_path):
    return Env(tmp_path)


def enddate(path):
    out = ossl("x509", "-in", str(path), "-noout", "-enddate",
               "-dateopt", "iso_8601")
    return out.split("=")[1].strip()[:10]


def test_help_and_usage(env):
    p = run("trust", "--help")
    assert p.returncode == 0
    for sub in ("add FILE --name NAME", "list", "remove NAME"):
        assert sub in p.stdout
    assert run("help", "trust").stdout == p.stdout
    assert run("trust", "add", "--help").returncode == 0
    p = run("trust")
    assert p.returncode == 2 and p.stderr.startswith("usage: postern trust")
    one_error_line(env.trust("bogus"), 2)
    one_error_line(env.trust("add", "x.pem"), 2)                 # no --name
    one_error_line(env.trust("add", "--name", "x"), 2)           # no FILE
    one_error_line(env.trust("add", "x.pem", "--name", "../x"), 2)
    one_error_line(env.trust("remove"), 2)
    one_error_line(env.trust("list", "extra"), 2)


def test_add_list_remove(env):
    d = env.dir
    a = make_ca(d, "a", "Corp Root A")
    b = make_ca(d, "b", "Corp Root B", days=100)
    (d / "bundle.pem").write_text(a.read_text() + b.read_text())

    p = env.trust("list")
    assert p.returncode == 0 and "empty" in p.stdout
    assert "system CAs: also used" in p.stdout

    p = env.trust("add", "bundle.pem", "--name", "corp")
    assert p.returncode == 0, p.stderr
    assert "2 certificates" in p.stdout
    assert "CN=Corp Root A" in p.stdout and "CN=Corp Root B" in p.stdout
    assert enddate(a) in p.stdout and enddate(b) in p.stdout
    assert "warn" not in p.stdout
    stored = env.trustdir / "corp.pem"
    assert stored.read_text().count("BEGIN CERTIFICATE") == 2

    # DER input is stored as PEM
    ossl("x509", "-in", str(b), "-outform", "DER", "-out", "b.der", cwd=d)
    p = env.trust("add", "b.der", "--name", "b-der")
    assert p.returncode == 0, p.stderr
    assert "Corp Root B" in ossl("x509", "-in",
                                 str(env.trustdir / "b-der.pem"),
                                 "-noout", "-subject")

    p = env.trust("list")
    assert p.returncode == 0
    lines = p.stdout.splitlines()
    assert lines[0].split() == ["NAME", "SUBJECT", "NOT-AFTER", "CERTS"]
    corp = [ln for ln in lines if ln.startswith("corp ")][0]
    assert "Corp Root A" in corp and enddate(a) in corp
    assert corp.split()[-1] == "2"
    bder = [ln for ln in lines if ln.startswith("b-der ")][0]
    assert bder.split()[-1] == "1" and enddate(b) in bder
    assert lines[-1].startswith("system CAs: also used")

    # an existing name needs --force
    line = one_error_line(env.trust("add", "a.pem", "--name", "corp"))
    assert "exists" in line and "--force" in line
    assert stored.read_text().count("BEGIN CERTIFICATE") == 2
    assert env.trust("add", "a.pem", "--name", "corp",
                     "--force").returncode == 0
    assert stored.read_text().count("BEGIN CERTIFICATE") == 1

    # remove
    p = env.trust("remove", "corp")
    assert p.returncode == 0 and not stored.exists()
    line = one_error_line(env.trust("remove", "corp"))
    assert "no such entry" in line
    assert "corp " not in env.trust("list").stdout


def test_bad_files(env):
    d = env.dir
    (d / "junk.pem").write_text("not a certificate\n")
    assert "no certificate" in one_error_line(
        env.trust("add", "junk.pem", "--name", "j"))
    assert "cannot read" in one_error_line(
        env.trust("add", "missing.pem", "--name", "j"))
    # a private key alone is not a certificate
    ossl("genpkey", "-algorithm", "EC", "-pkeyopt",
         "ec_paramgen_curve:P-256", "-out", "k.pem", cwd=d)
    one_error_line(env.trust("add", "k.pem", "--name", "j"))
    assert not (env.trustdir / "j.pem").exists()


def test_pinned_server_cert_warns(env):
    assert env.cert("selfsign", "--cn", "peer.test.example", "--name",
                    "peer").returncode == 0
    p = env.trust("add", "data/certs/peer.pem", "--name", "peer")
    assert p.returncode == 0, p.stderr
    assert re.search(r"^warn: .*not a CA", p.stdout, re.M), p.stdout
    assert (env.trustdir / "peer.pem").exists()
    # the key never goes into the trust store
    assert "PRIVATE KEY" not in (env.trustdir / "peer.pem").read_text()


def test_system_cas_off_is_reported(tmp_path):
    env = Env(tmp_path, extra="tls = { system_cas = false; };")
    p = env.trust("list")
    assert p.returncode == 0, p.stderr
    assert "system CAs: not used" in p.stdout


def test_trust_store_drives_cert_check(env):
    d = env.dir
    root = make_ca(d, "root", "Private Root")
    ossl("req", "-new", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:P-256", "-nodes", "-keyout", "k.pem", "-out",
         "r.csr", "-subj", "/CN=mx.test.example", cwd=d)
    (d / "ext").write_text("subjectAltName=DNS:mx.test.example\n"
                           "extendedKeyUsage=serverAuth\n")
    ossl("x509", "-req", "-in", "r.csr", "-CA", "root.pem", "-CAkey",
         "root.key", "-CAcreateserial", "-out", "c.pem", "-days", "90",
         "-extfile", "ext", cwd=d)

    def check():
        return env.cert("check", "--cert", "c.pem", "--key", "k.pem")

    p = check()
    assert p.returncode == 1 and "FAIL: missing intermediate" in p.stdout
    assert "postern trust add" in p.stdout
    assert env.trust("add", str(root), "--name", "private").returncode == 0
    p = check()
    assert p.returncode == 0, p.stdout
    assert "trusted root 'Private Root'" in p.stdout
    assert env.trust("remove", "private").returncode == 0
    assert check().returncode == 1
