"""`postern send --sign / --encrypt` (RFC 8551 S/MIME, postern(8),
docs/send.md): every variant checked by two independent implementations.

* `openssl cms` verifies every signature (RSA and ECDSA signers, the
  chain carried in the message) and decrypts every enveloped message
  (AES-256-CBC enveloped-data and AES-256-GCM authEnveloped-data, RSA and
  EC recipients, To + Cc + Bcc each able to decrypt), also sign-then-
  encrypt;
* GnuPG's gpgsm 2.2 verifies the RSA signature and decrypts the RSA /
  AES-256-CBC message (what 2.2 supports), in a throwaway GNUPGHOME with
  the test CA in its trustlist, CRL and policy checks off, no network;
* the outer From, To, Cc, Subject, Date and Message-ID stay readable;
* every key problem (missing file, no key, key not matching the
  certificate, expired, no emailProtection, address not in the
  certificate, missing recipient certificate) is one error naming the
  file and the fix, exit 1, nothing written;
* a signed and encrypted message goes through a real SMTP peer
  (aiosmtpd) and decrypts and verifies there.
"""
import datetime
import email
import email.policy
import os
import re
import shutil
import subprocess

import pytest
from aiosmtpd.controller import Controller

from peers import reserve_port
from test_send import Recorder, send

SENDER = "alice@example.org"          # RSA signer
EC_SENDER = "carol@example.org"       # ECDSA signer
RSA_RCPT = "bob@example.net"
EC_RCPT = "dave@example.net"
CC_RCPT = "erin@example.net"          # RSA
BCC_RCPT = "frank@example.net"        # EC


class Keys:
    pass


def make_keys(d):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import pkcs12
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    day = datetime.timedelta(days=1)
    os.makedirs(os.path.join(d, "keys"))
    k = Keys()
    k.dir = os.path.join(d, "keys")

    def pem_key(key):
        return key.private_bytes(serialization.Encoding.PEM,
                                 serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    def pem_cert(c):
        return c.public_bytes(serialization.Encoding.PEM)

    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                            "S/MIME Test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name)
          .issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - day).not_valid_after(now + 30 * day)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
          .add_extension(x509.KeyUsage(False, False, False, False, False,
                                       True, True, False, False), True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(
              ca_key.public_key()), False)
          .sign(ca_key, hashes.SHA256()))
    k.ca = os.path.join(d, "ca.pem")
    with open(k.ca, "wb") as fh:
        fh.write(pem_cert(ca))

    def leaf(addr, kind="rsa", eku=ExtendedKeyUsageOID.EMAIL_PROTECTION,
             expired=False, san=None):
        key = rsa.generate_private_key(public_exponent=65537,
                                       key_size=2048) if kind == "rsa" \
            else ec.generate_private_key(ec.SECP256R1())
        nb, na = (now - 20 * day, now - 2 * day) if expired else \
            (now - day, now + 30 * day)
        c = (x509.CertificateBuilder()
             .subject_name(x509.Name([
                 x509.NameAttribute(NameOID.COMMON_NAME, addr)]))
             .issuer_name(ca_name).public_key(key.public_key())
             .serial_number(x509.random_serial_number())
             .not_valid_before(nb).not_valid_after(na)
             .add_extension(x509.SubjectAlternativeName(
                 [x509.RFC822Name(san or addr)]), False)
             .add_extension(x509.BasicConstraints(ca=False,
                                                  path_length=None), True)
             .add_extension(x509.KeyUsage(
                 True, False, kind == "rsa", False, kind != "rsa", False,
                 False, False, False), True)
             .add_extension(x509.ExtendedKeyUsage([eku]), False)
             .add_extension(x509.AuthorityKeyIdentifier
                            .from_issuer_public_key(ca_key.public_key()),
                            False)
             .sign(ca_key, hashes.SHA256()))
        return key, c

    def signer_file(addr, key, c, chain=True):
        with open(os.path.join(k.dir, addr + ".pem"), "wb") as fh:
            fh.write(pem_key(key) + pem_cert(c) + (pem_cert(ca) if chain
                                                    else b""))
        os.chmod(os.path.join(k.dir, addr + ".pem"), 0o600)

    def rcpt_files(addr, key, c):
        with open(os.path.join(k.dir, addr + ".crt"), "wb") as fh:
            fh.write(pem_cert(c))
        kp = os.path.join(d, addr + ".key")
        with open(kp, "wb") as fh:
            fh.write(pem_key(key))
        with open(os.path.join(d, addr + ".crt"), "wb") as fh:
            fh.write(pem_cert(c))
        if isinstance(key, rsa.RSAPrivateKey):
            # gpgsm 2.2 reads PKCS#12 with 3DES key bags, clear cert bags
            enc = (serialization.PrivateFormat.PKCS12.encryption_builder()
                   .kdf_rounds(2048)
                   .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
                   .hmac_hash(hashes.SHA1()).build(b"x"))
            with open(os.path.join(d, addr + ".p12"), "wb") as fh:
                fh.write(pkcs12.serialize_key_and_certificates(
                    addr.encode(), key, c, None, enc))

    key, c = leaf(SENDER)
    signer_file(SENDER, key, c)
    key, c = leaf(EC_SENDER, "ec")
    signer_file(EC_SENDER, key, c, chain=False)
    for addr, kind in ((RSA_RCPT, "rsa"), (EC_RCPT, "ec"),
                       (CC_RCPT, "rsa"), (BCC_RCPT, "ec")):
        key, c = leaf(addr, kind)
        rcpt_files(addr, key, c)
    # the broken ones
    key, c = leaf("expired@example.org", "ec", expired=True)
    signer_file("expired@example.org", key, c)
    key, c = leaf("server@example.org", "ec",
                  eku=ExtendedKeyUsageOID.SERVER_AUTH)
    signer_file("server@example.org", key, c)
    key, c = leaf("wrong@example.org", "ec", san="other@example.org")
    signer_file("wrong@example.org", key, c)
    key, c = leaf("mismatch@example.org", "ec")
    other, _ = leaf("x@example.org", "ec")
    signer_file("mismatch@example.org", other, c)
    with open(os.path.join(k.dir, "nokey@example.org.pem"), "wb") as fh:
        fh.write(pem_cert(c))
    key, c = leaf("old@example.net", "ec", expired=True)
    rcpt_files("old@example.net", key, c)
    return k


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    return make_keys(str(tmp_path_factory.mktemp("smime")))


def make(keys, tmp_path, *args, frm=SENDER, to=(RSA_RCPT,), cc=(), bcc=(),
         name="out.eml"):
    out = tmp_path / name
    argv = ["--from", f"Alice <{frm}>", "--subject", "Geheim: Zahlen",
            "--body", "The figures.\nZeile zwei: ä\n", "--keys", keys.dir,
            "--dry-run", "--output", str(out), *args]
    for a in to:
        argv += ["--to", a]
    for a in cc:
        argv += ["--cc", a]
    for a in bcc:
        argv += ["--bcc", a]
    p = send(*argv)
    assert p.returncode == 0, p.stderr
    return out


def openssl(*args, input=None):
    return subprocess.run(["openssl", *args], capture_output=True,
                          input=input, timeout=60)


def outer(path):
    raw = open(path, "rb").read()
    assert b"\n" not in raw.replace(b"\r\n", b"")
    m = email.message_from_bytes(raw, policy=email.policy.default)
    assert m["From"].addresses[0].addr_spec == SENDER or \
        m["From"].addresses[0].addr_spec == EC_SENDER
    assert m["Subject"] == "Geheim: Zahlen"
    assert m["Date"] and m["Message-ID"] and m["To"]
    return raw, m


def cms_verify(keys, path):
    p = openssl("cms", "-verify", "-in", str(path), "-CAfile", keys.ca)
    assert p.returncode == 0, p.stderr
    assert b"Verification successful" in p.stderr
    return p.stdout


def cms_decrypt(keys, path, addr, inform=()):
    p = openssl("cms", "-decrypt", "-in", str(path), *inform,
                "-recip", os.path.join(os.path.dirname(keys.dir),
                                       addr + ".crt"),
                "-inkey", os.path.join(os.path.dirname(keys.dir),
                                       addr + ".key"))
    assert p.returncode == 0, p.stderr
    return p.stdout


def check_body(entity):
    m = email.message_from_bytes(entity, policy=email.policy.default)
    text = m.get_content() if not m.is_multipart() else \
        next(m.iter_parts()).get_content()
    assert text.replace("\r\n", "\n") == "The figures.\nZeile zwei: ä\n"


@pytest.mark.parametrize("frm", [SENDER, EC_SENDER])
def test_sign_verified_by_openssl(keys, tmp_path, frm):
    out = make(keys, tmp_path, "--sign", frm=frm)
    raw, m = outer(out)
    assert m.get_content_type() == "multipart/signed"
    assert m.get_param("micalg") == "sha-256"
    assert m.get_param("protocol") == "application/pkcs7-signature"
    sig = list(m.iter_parts())[1]
    assert sig.get_filename() == "smime.p7s"
    content = cms_verify(keys, out)
    check_body(content)
    # the chain is in the signature (RSA signer file carries the CA)
    p = openssl("pkcs7", "-print_certs", "-inform", "DER",
                input=sig.get_content())
    assert p.stdout.count(b"subject=") == (2 if frm == SENDER else 1)
    # a changed byte breaks it
    bad = tmp_path / "bad.eml"
    bad.write_bytes(raw.replace(b"The figures.", b"The figurez."))
    assert openssl("cms", "-verify", "-in", str(bad), "-CAfile",
                   keys.ca).returncode != 0


@pytest.mark.parametrize("cipher,smime_type", [
    ("aes-256-cbc", "enveloped-data"), ("aes-256-gcm", "authEnveloped-data")])
def test_encrypt_every_recipient_decrypts(keys, tmp_path, cipher,
                                          smime_type):
    out = make(keys, tmp_path, "--encrypt", "--cipher", cipher,
               to=(RSA_RCPT, EC_RCPT), cc=(CC_RCPT,), bcc=(BCC_RCPT,))
    raw, m = outer(out)
    assert m.get_content_type() == "application/pkcs7-mime"
    assert m.get_param("smime-type") == smime_type
    assert b"figures" not in raw and b"Bcc" not in raw
    assert m["Cc"].addresses[0].addr_spec == CC_RCPT
    info = openssl("cms", "-cmsout", "-print", "-inform", "DER",
                   input=m.get_content()).stdout
    assert (b"aes-256-gcm" if cipher == "aes-256-gcm" else
            b"aes-256-cbc") in info
    for addr in (RSA_RCPT, EC_RCPT, CC_RCPT, BCC_RCPT):
        check_body(cms_decrypt(keys, out, addr))


def test_sign_then_encrypt(keys, tmp_path):
    out = make(keys, tmp_path, "--sign", "--encrypt")
    raw, m = outer(out)
    assert m.get_param("smime-type") == "enveloped-data"
    inner = cms_decrypt(keys, out, RSA_RCPT)
    assert b"multipart/signed" in inner.split(b"\r\n\r\n")[0]
    dec = tmp_path / "dec.eml"
    dec.write_bytes(inner)
    check_body(cms_verify(keys, dec))


# ---------------------------------------------------------------------------
# gpgsm 2.2: RSA signatures and RSA / AES-256-CBC enveloped data

@pytest.fixture(scope="module")
def gpgsm(keys, tmp_path_factory):
    if shutil.which("gpgsm") is None:
        pytest.skip("gpgsm not installed (Debian package gpgsm)")
    home = str(tmp_path_factory.mktemp("gnupg"))
    os.chmod(home, 0o700)
    with open(os.path.join(home, "gpg-agent.conf"), "w") as fh:
        fh.write("allow-loopback-pinentry\n")
    env = dict(os.environ, GNUPGHOME=home)
    base = ["gpgsm", "--batch", "--disable-crl-checks",
            "--disable-policy-checks", "--disable-dirmngr",
            "--pinentry-mode", "loopback", "--passphrase-fd", "0"]
    fpr = openssl("x509", "-in", keys.ca, "-noout", "-fingerprint",
                  "-sha1").stdout.decode().split("=")[1].strip()
    with open(os.path.join(home, "trustlist.txt"), "w") as fh:
        fh.write(fpr.replace(":", "") + " S relax\n")

    def run(*args):
        return subprocess.run(base + list(args), env=env, input=b"x",
                              capture_output=True, timeout=60)

    p = run("--import", keys.ca,
            os.path.join(os.path.dirname(keys.dir), RSA_RCPT + ".p12"))
    assert p.returncode == 0, p.stderr
    yield run
    subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env,
                   capture_output=True, timeout=30)


def split_signed(raw, boundary):
    """The signed part exactly as signed, and the signature (DER)."""
    delim = b"--" + boundary.encode()
    start = raw.index(delim + b"\r\n") + len(delim) + 2
    end = raw.index(b"\r\n" + delim, start)
    return raw[start:end]


def test_gpgsm_verifies_rsa_signature(keys, tmp_path, gpgsm):
    out = make(keys, tmp_path, "--sign")
    raw, m = outer(out)
    data = tmp_path / "signed.part"
    data.write_bytes(split_signed(raw, m.get_boundary()))
    sig = tmp_path / "smime.p7s"
    sig.write_bytes(list(m.iter_parts())[1].get_content())
    p = gpgsm("--verify", str(sig), str(data))
    assert p.returncode == 0, p.stderr
    assert b"Good signature" in p.stderr
    data.write_bytes(data.read_bytes().replace(b"figures", b"figurez"))
    p = gpgsm("--verify", str(sig), str(data))
    assert p.returncode != 0 and b"Good signature" not in p.stderr


def test_gpgsm_decrypts_rsa_aes_cbc(keys, tmp_path, gpgsm):
    for args in (["--encrypt"], ["--sign", "--encrypt"]):
        out = make(keys, tmp_path, *args)
        raw, m = outer(out)
        p7m = tmp_path / "smime.p7m"
        p7m.write_bytes(m.get_content())
        p = gpgsm("--decrypt", str(p7m))
        assert p.returncode == 0, p.stderr
        if args == ["--encrypt"]:
            check_body(p.stdout)
        else:
            assert b"multipart/signed" in p.stdout


# ---------------------------------------------------------------------------
# key problems: one error naming the file and the fix

@pytest.mark.parametrize("frm,to,words", [
    ("nobody@example.org", RSA_RCPT, ["nobody@example.org.pem",
                                      "No such file", "private key and "
                                      "certificate"]),
    ("nokey@example.org", RSA_RCPT, ["nokey@example.org.pem",
                                     "no private key"]),
    ("mismatch@example.org", RSA_RCPT, ["mismatch@example.org.pem",
                                        "does not belong to its "
                                        "certificate"]),
    ("expired@example.org", RSA_RCPT, ["expired@example.org.pem",
                                       "expired on", "get a new one"]),
    ("server@example.org", RSA_RCPT, ["server@example.org.pem",
                                      "emailProtection", "S/MIME "
                                      "certificate"]),
    ("wrong@example.org", RSA_RCPT, ["wrong@example.org.pem", "does not "
                                     "carry wrong@example.org",
                                     "other@example.org"]),
    (SENDER, "nocert@example.net", ["nocert@example.net.crt",
                                    "recipient's certificate"]),
    (SENDER, "old@example.net", ["old@example.net.crt", "expired on"]),
])
def test_key_problems(keys, tmp_path, frm, to, words):
    out = tmp_path / "never.eml"
    p = send("--from", frm, "--to", to, "--body", "x", "--keys", keys.dir,
             "--sign", "--encrypt", "--dry-run", "--output", str(out))
    assert p.returncode == 1
    assert len(p.stderr.splitlines()) == 1, p.stderr
    assert p.stderr.startswith("postern: send: S/MIME: ")
    for w in words:
        assert w in p.stderr, (w, p.stderr)
    assert p.stdout == "" and not out.exists()


# ---------------------------------------------------------------------------
# over SMTP

def test_signed_encrypted_over_smtp(keys, tmp_path):
    rec = Recorder()
    ctl = Controller(rec, hostname="127.0.0.1", port=reserve_port())
    ctl.start()
    try:
        p = send("--from", SENDER, "--to", RSA_RCPT, "--subject",
                 "Geheim: Zahlen", "--body", "The figures.\nZeile zwei: "
                 "ä\n", "--keys", keys.dir, "--sign", "--encrypt",
                 env={"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(ctl.port)})
        assert p.returncode == 0, p.stderr
        assert re.search(r"^OK - in ", p.stdout, re.M)
        got = tmp_path / "got.eml"
        got.write_bytes(rec.messages[0][2])
        dec = tmp_path / "dec.eml"
        dec.write_bytes(cms_decrypt(keys, got, RSA_RCPT))
        check_body(cms_verify(keys, dec))
    finally:
        ctl.stop()
