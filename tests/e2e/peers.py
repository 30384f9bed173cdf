"""Next-hop peers for the outbound delivery tests (test_delivery*.py).

Everything here listens on loopback only (127.0.0.0/8) and every wait is
bounded.

* `make_pki(dir)` / fixture `pki` (session): a test PKI made with
  python3-cryptography: a root CA (put into Postern's trust store by the
  tests), server certificates signed by it for `mx.partner.example`
  (SAN DNS), for `127.0.0.1` (SAN IP), for `wrong.example` (right CA, wrong
  name), an expired one for `mx.partner.example`, and one for
  `mx.partner.example` from a SECOND CA that is never trusted.

* `SMTPPeer`: a small threaded SMTP server written for these tests (one
  thread per connection, blocking sockets with timeouts), so that every
  detail the tests need is under control and recorded:
    - tls=None (plain, no STARTTLS) | "starttls" | "implicit" (port 465
      style, the whole connection is TLS) with a given certificate;
    - auth=(user, password): AUTH PLAIN/LOGIN, offered only under TLS unless
      auth_before_tls=True; MAIL is refused with 530 until authenticated;
      require_tls=True refuses MAIL with 530 until STARTTLS;
    - scripted replies: rcpt_replies={addr: "550 5.1.1 ..."} and
      replies={"BANNER"|"EHLO"|"STARTTLS"|"MAIL"|"RCPT"|"DATA"|"EOD": reply}
      (a string, or a callable(conn, arg) returning a reply or None for the
      default); set_reply() changes them while running;
    - accept_close=True: accept the TCP connection and close it at once;
      "down" is simply a port with nothing listening (`reserve_port`).
  It records each message it accepts (envelope, data after dot-unstuffing,
  TLS state/version/cipher, SNI, authenticated user, EHLO name), every
  command verb it saw, AUTH attempts, the number of connections, STARTTLS
  commands and TLS handshake failures, and every byte received (to check
  that secrets never went over the wire where they should not).

* `SmtpSink`: postfix's /usr/sbin/smtp-sink as an independent plain peer
  that dumps each message into a file.

* Helpers for the delivery tests: `delivery_config()` (the configuration
  template for conftest.Server), `start_delivery_server()`, `send()`,
  log-line finders, DSN parsing.
"""
import base64
import datetime
import email
import email.policy
import ipaddress
import os
import re
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field

import pytest

from conftest import queue_count, queued_mid, smtp_send, wait_for, wait_port

PARTNER = "mx.partner.example"
EHLO_NAME = "mx.test.example"          # Postern's hostname in these tests

# ---------------------------------------------------------------------------
# Test PKI


@dataclass
class CertPair:
    cert: str
    key: str


@dataclass
class PKI:
    dir: str
    ca: str                     # trusted root CA (PEM), for `trust add`
    other_ca: str               # second CA, never trusted
    partner: CertPair           # mx.partner.example, trusted CA
    ip: CertPair                # SAN IP 127.0.0.1, trusted CA
    wrong: CertPair             # wrong.example, trusted CA
    untrusted: CertPair         # mx.partner.example, untrusted CA
    expired: CertPair           # mx.partner.example, trusted CA, expired


def make_pki(d):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def key():
        return ec.generate_private_key(ec.SECP256R1())

    def write(name, obj, k):
        cp = os.path.join(d, name + ".pem")
        kp = os.path.join(d, name + ".key")
        with open(cp, "wb") as fh:
            fh.write(obj.public_bytes(serialization.Encoding.PEM))
        with open(kp, "wb") as fh:
            fh.write(k.private_bytes(serialization.Encoding.PEM,
                                     serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()))
        os.chmod(kp, 0o600)
        return CertPair(cp, kp)

    def make_ca(name, cn):
        k = key()
        subj = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        c = (x509.CertificateBuilder().subject_name(subj).issuer_name(subj)
             .public_key(k.public_key())
             .serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(days=1))
             .not_valid_after(now + datetime.timedelta(days=30))
             .add_extension(x509.BasicConstraints(ca=True, path_length=0),
                            critical=True)
             .add_extension(x509.KeyUsage(
                 digital_signature=False, content_commitment=False,
                 key_encipherment=False, data_encipherment=False,
                 key_agreement=False, key_cert_sign=True, crl_sign=True,
                 encipher_only=False, decipher_only=False), critical=True)
             .add_extension(x509.SubjectKeyIdentifier.from_public_key(
                 k.public_key()), critical=False)
             .sign(k, hashes.SHA256()))
        write(name, c, k)
        return c, k

    def make_leaf(name, ca, cn, dns=(), ips=(), expired=False):
        ca_cert, ca_key = ca
        k = key()
        if expired:
            nb = now - datetime.timedelta(days=20)
            na = now - datetime.timedelta(days=2)
        else:
            nb = now - datetime.timedelta(days=1)
            na = now + datetime.timedelta(days=30)
        san = [x509.DNSName(n) for n in dns] + \
              [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        c = (x509.CertificateBuilder()
             .subject_name(x509.Name([
                 x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
             .issuer_name(ca_cert.subject)
             .public_key(k.public_key())
             .serial_number(x509.random_serial_number())
             .not_valid_before(nb).not_valid_after(na)
             .add_extension(x509.SubjectAlternativeName(san), critical=False)
             .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                            critical=True)
             .add_extension(x509.ExtendedKeyUsage(
                 [ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                 ca_key.public_key()), critical=False)
             .sign(ca_key, hashes.SHA256()))
        return write(name, c, k)

    ca = make_ca("ca", "Postern Test Root CA")
    other = make_ca("other-ca", "Untrusted Test CA")
    return PKI(
        dir=d, ca=os.path.join(d, "ca.pem"),
        other_ca=os.path.join(d, "other-ca.pem"),
        partner=make_leaf("partner", ca, PARTNER, dns=[PARTNER]),
        ip=make_leaf("ip", ca, "127.0.0.1", ips=["127.0.0.1"]),
        wrong=make_leaf("wrong", ca, "wrong.example", dns=["wrong.example"]),
        untrusted=make_leaf("untrusted", other, PARTNER, dns=[PARTNER]),
        expired=make_leaf("expired", ca, PARTNER, dns=[PARTNER],
                          expired=True))


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    return make_pki(str(tmp_path_factory.mktemp("pki")))


# ---------------------------------------------------------------------------
# SMTP peer


def reserve_port(host="127.0.0.1"):
    """A port on `host` with nothing listening (for a peer that is down, or
    started later).  SO_REUSEADDR so the peer can take it at once."""
    with socket.socket(socket.AF_INET6 if ":" in host
                       else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class Received:
    """One message a peer accepted (250 to the end of data)."""
    mail_from: str
    mail_params: str
    rcpts: list
    data: bytes                 # after dot-unstuffing, line ends as sent
    tls: bool
    tls_version: str
    cipher: str
    sni: str
    auth_user: str
    ehlo: str
    conn: int                   # connection number at the peer, from 1
    client: str                 # client IP address


@dataclass
class _Conn:
    no: int
    sock: socket.socket
    client: str
    buf: bytes = b""
    tls: bool = False
    tls_version: str = None
    cipher: str = None
    sni: str = None
    ehlo: str = None
    auth_user: str = None
    mail_from: str = None
    mail_params: str = ""
    rcpts: list = field(default_factory=list)
    raw: bytearray = field(default_factory=bytearray)

    def reset_tx(self):
        self.mail_from = None
        self.mail_params = ""
        self.rcpts = []


class _Closed(Exception):
    pass


def _remember_sni(sslsock, server_name, _ctx):
    sslsock.peer_sni = server_name


_ADDR_RE = re.compile(r"^(?:FROM|TO):\s*<([^>]*)>\s*(.*)$", re.I)


class SMTPPeer:
    def __init__(self, host="127.0.0.1", port=0, tls=None, cert=None,
                 auth=None, auth_before_tls=False, require_tls=False,
                 rcpt_replies=None, replies=None, accept_close=False,
                 pipelining=True, name="peer.test", timeout=30.0,
                 max_data=64 * 1024 * 1024, eightbit=True):
        assert tls in (None, "starttls", "implicit"), tls
        assert ipaddress.ip_address(host).is_loopback, host
        assert tls is None or cert is not None, "TLS needs a certificate"
        self.host = host
        self.port = port
        self.tls_mode = tls
        self.cert = cert
        self.auth = auth
        self.auth_before_tls = auth_before_tls
        self.require_tls = require_tls
        self.rcpt_replies = {k.lower(): v for k, v in
                             (rcpt_replies or {}).items()}
        self.replies = dict(replies or {})
        self.accept_close = accept_close
        self.pipelining = pipelining
        self.eightbit = eightbit
        self.name = name
        self.timeout = timeout
        self.max_data = max_data
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self._messages = []
        self.connections = 0
        self.starttls_attempts = 0
        self.tls_handshakes = 0
        self.tls_failures = []          # error strings
        self.commands = []              # (conn no, verb, detail)
        self.auth_attempts = []         # (conn no, mech, user, ok, tls)
        self._raw = []                  # bytearrays, one per connection
        self._conns = []
        self._threads = []
        self._lsock = None
        self._stop = threading.Event()
        self.ctx = None
        if tls is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert.cert, cert.key)
            ctx.sni_callback = _remember_sni
            self.ctx = ctx

    # -- life cycle --------------------------------------------------------

    def start(self):
        s = socket.socket(socket.AF_INET6 if ":" in self.host
                          else socket.AF_INET)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, self.port))
        s.listen(64)
        s.settimeout(0.2)
        self.port = s.getsockname()[1]
        self._lsock = s
        self._stop.clear()
        t = threading.Thread(target=self._accept_loop, daemon=True,
                             name=f"peer-{self.host}:{self.port}")
        t.start()
        self._threads.append(t)
        return self

    def stop(self):
        self._stop.set()
        if self._lsock is not None:
            self._lsock.close()
            self._lsock = None
        with self.lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                c.sock.close()
            except OSError:
                pass
        for t in self._threads:
            t.join(timeout=5)
        self._threads = []

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def address(self):
        return f"{self.host}:{self.port}"

    # -- results -----------------------------------------------------------

    @property
    def messages(self):
        with self.lock:
            return list(self._messages)

    def verbs(self):
        with self.lock:
            return [v for _n, v, _d in self.commands]

    def raw_received(self):
        """Every byte received on every connection (decrypted), joined."""
        with self.lock:
            return b"".join(bytes(r) for r in self._raw)

    def wait_messages(self, n=1, timeout=20.0):
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self._messages) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"peer {self.address} got {len(self._messages)} "
                        f"messages, wanted {n}; commands: {self.commands}")
                self.cond.wait(left)
            return list(self._messages)

    def wait_connections(self, n=1, timeout=20.0):
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.connections < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"peer {self.address} got {self.connections} "
                        f"connections, wanted {n}")
                self.cond.wait(left)
            return self.connections

    def set_reply(self, key, reply):
        """Change a scripted reply while running (None = default)."""
        with self.lock:
            if reply is None:
                self.replies.pop(key, None)
            else:
                self.replies[key] = reply

    def set_rcpt_reply(self, addr, reply):
        with self.lock:
            if reply is None:
                self.rcpt_replies.pop(addr.lower(), None)
            else:
                self.rcpt_replies[addr.lower()] = reply

    # -- server ------------------------------------------------------------

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                lsock = self._lsock
                if lsock is None:
                    return
                sock, addr = lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.cond:
                self.connections += 1
                no = self.connections
                self.cond.notify_all()
            if self.accept_close:
                sock.close()
                continue
            sock.settimeout(self.timeout)
            c = _Conn(no=no, sock=sock, client=addr[0])
            with self.lock:
                self._conns.append(c)
                self._raw.append(c.raw)
            t = threading.Thread(target=self._serve, args=(c,), daemon=True,
                                 name=f"peer-conn-{no}")
            t.start()
            self._threads.append(t)

    def _scripted(self, key, c, arg):
        with self.lock:
            r = self.replies.get(key)
        if callable(r):
            r = r(c, arg)
        return r

    def _send(self, c, text):
        c.sock.sendall(text.encode() + b"\r\n")

    def _fill(self, c):
        chunk = c.sock.recv(65536)
        if not chunk:
            raise _Closed()
        c.raw.extend(chunk)
        c.buf += chunk

    def _line(self, c, limit=65536):
        while b"\n" not in c.buf:
            if len(c.buf) > limit:
                raise _Closed()
            self._fill(c)
        ln, c.buf = c.buf.split(b"\n", 1)
        return ln + b"\n"

    def _handshake(self, c):
        c.buf = b""                     # plaintext pipelined after STARTTLS
        try:
            # wrap_socket detaches the plain socket: the SSLSocket owns
            # the descriptor from here on (and _close closes it)
            s = c.sock = self.ctx.wrap_socket(c.sock, server_side=True,
                                              do_handshake_on_connect=False)
            s.settimeout(self.timeout)
            s.do_handshake()
        except (ssl.SSLError, OSError) as e:
            with self.cond:
                self.tls_failures.append(str(e))
                self.cond.notify_all()
            raise _Closed()
        c.tls = True
        c.tls_version = s.version()
        c.cipher = s.cipher()[0]
        c.sni = getattr(s, "peer_sni", None)
        with self.cond:
            self.tls_handshakes += 1
            self.cond.notify_all()

    def _serve(self, c):
        try:
            if self.tls_mode == "implicit":
                self._handshake(c)
            banner = self._scripted("BANNER", c, None)
            if banner:
                self._send(c, banner)
                if not banner.startswith("2"):
                    return
            else:
                self._send(c, f"220 {self.name} ESMTP test peer")
            while not self._stop.is_set():
                line = self._line(c, 4096)
                text = line.rstrip(b"\r\n").decode("utf-8", "replace")
                verb, _, arg = text.partition(" ")
                verb = verb.upper()
                detail = text if verb in ("MAIL", "RCPT", "EHLO", "HELO") \
                    else (verb + " " + arg.split(" ")[0] if verb == "AUTH"
                          else verb)
                with self.lock:
                    self.commands.append((c.no, verb, detail))
                if not self._command(c, verb, arg.strip()):
                    return
        except (_Closed, OSError, ssl.SSLError):
            return
        finally:
            self._close(c)
            with self.lock:
                if c in self._conns:
                    self._conns.remove(c)

    def _close(self, c):
        """Close so that the client reads our last reply (a 421, say) and
        then EOF, not a reset: a plain socket is shut down for writing and
        what the client had pipelined is drained (at most 2 s); a TLS one
        sends close_notify first."""
        sock = c.sock
        try:
            if self._stop.is_set():
                return
            sock.settimeout(2.0)
            if isinstance(sock, ssl.SSLSocket):
                try:
                    sock = sock.unwrap()
                except (ssl.SSLError, OSError, ValueError):
                    return
            sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline:
                if not sock.recv(65536):
                    break
        except (OSError, ValueError):
            pass
        finally:
            for s in {sock, c.sock}:
                try:
                    s.close()
                except OSError:
                    pass

    def _auth_offered(self, c):
        return self.auth is not None and (c.tls or self.auth_before_tls)

    def _command(self, c, verb, arg):
        """Handle one command; False ends the session."""
        if verb in ("EHLO", "HELO"):
            c.ehlo = arg
            c.reset_tx()
            r = self._scripted("EHLO", c, arg)
            if r:
                self._send(c, r)
                return True
            if verb == "HELO":
                self._send(c, f"250 {self.name}")
                return True
            ext = [self.name]
            if self.pipelining:
                ext.append("PIPELINING")
            ext += ["SIZE 104857600"] + (["8BITMIME"] if self.eightbit
                                          else []) + ["ENHANCEDSTATUSCODES"]
            if self.tls_mode == "starttls" and not c.tls:
                ext.append("STARTTLS")
            if self._auth_offered(c):
                ext.append("AUTH PLAIN LOGIN")
            for e in ext[:-1]:
                self._send(c, "250-" + e)
            self._send(c, "250 " + ext[-1])
            return True
        if verb == "STARTTLS":
            with self.cond:
                self.starttls_attempts += 1
                self.cond.notify_all()
            if self.tls_mode != "starttls" or c.tls:
                self._send(c, "502 5.5.1 STARTTLS not available")
                return True
            r = self._scripted("STARTTLS", c, arg)
            if r:
                self._send(c, r)
                return True
            self._send(c, "220 2.0.0 Ready to start TLS")
            self._handshake(c)
            c.ehlo = None
            c.auth_user = None
            c.reset_tx()
            return True
        if verb == "AUTH":
            return self._auth(c, arg)
        if verb == "MAIL":
            if c.mail_from is not None:
                self._send(c, "503 5.5.1 Error: nested MAIL command")
                return True
            if self.require_tls and not c.tls:
                self._send(c, "530 5.7.0 Must issue a STARTTLS command first")
                return True
            if self.auth is not None and c.auth_user is None:
                self._send(c, "530 5.7.0 Authentication required")
                return True
            m = _ADDR_RE.match(arg)
            if not m or not arg.upper().startswith("FROM:"):
                self._send(c, "501 5.5.4 Syntax: MAIL FROM:<address>")
                return True
            r = self._scripted("MAIL", c, m.group(1))
            if r:
                self._send(c, r)
                return not r.startswith("421")
            c.mail_from, c.mail_params = m.group(1), m.group(2)
            c.rcpts = []
            self._send(c, "250 2.1.0 Ok")
            return True
        if verb == "RCPT":
            if c.mail_from is None:
                self._send(c, "503 5.5.1 Error: need MAIL command")
                return True
            m = _ADDR_RE.match(arg)
            if not m or not arg.upper().startswith("TO:"):
                self._send(c, "501 5.5.4 Syntax: RCPT TO:<address>")
                return True
            addr = m.group(1)
            with self.lock:
                r = self.rcpt_replies.get(addr.lower())
            if callable(r):
                r = r(c, addr)
            if not r:
                r = self._scripted("RCPT", c, addr)
            if r:
                self._send(c, r)
                if r.startswith("2"):
                    c.rcpts.append(addr)
                return not r.startswith("421")
            c.rcpts.append(addr)
            self._send(c, "250 2.1.5 Ok")
            return True
        if verb == "DATA":
            if c.mail_from is None:
                self._send(c, "503 5.5.1 Error: need MAIL command")
                return True
            if not c.rcpts:
                self._send(c, "554 5.5.1 Error: no valid recipients")
                return True
            r = self._scripted("DATA", c, None)
            if r:
                self._send(c, r)
                c.reset_tx()
                return not r.startswith("421")
            self._send(c, "354 End data with <CR><LF>.<CR><LF>")
            parts = []
            size = 0
            while True:
                ln = self._line(c, self.max_data)
                if ln == b".\r\n":
                    break
                if ln.startswith(b"."):
                    ln = ln[1:]
                size += len(ln)
                if size > self.max_data:
                    raise _Closed()
                parts.append(ln)
            data = b"".join(parts)
            r = self._scripted("EOD", c, data)
            if r:
                self._send(c, r)
                c.reset_tx()
                return not r.startswith("421")
            msg = Received(mail_from=c.mail_from, mail_params=c.mail_params,
                           rcpts=list(c.rcpts), data=data, tls=c.tls,
                           tls_version=c.tls_version, cipher=c.cipher,
                           sni=c.sni, auth_user=c.auth_user, ehlo=c.ehlo,
                           conn=c.no, client=c.client)
            with self.cond:
                self._messages.append(msg)
                n = len(self._messages)
                self.cond.notify_all()
            self._send(c, f"250 2.0.0 Ok: queued as P{n}")
            c.reset_tx()
            return True
        if verb == "RSET":
            c.reset_tx()
            self._send(c, "250 2.0.0 Ok")
            return True
        if verb == "NOOP":
            self._send(c, "250 2.0.0 Ok")
            return True
        if verb == "VRFY":
            self._send(c, "252 2.0.0 Cannot VRFY user")
            return True
        if verb == "QUIT":
            self._send(c, "221 2.0.0 Bye")
            return False
        self._send(c, "500 5.5.2 Error: command not recognized")
        return True

    def _read_b64(self, c):
        ln = self._line(c, 4096).rstrip(b"\r\n")
        if ln == b"*":
            return None
        try:
            return base64.b64decode(ln, validate=True)
        except ValueError:
            return b"\x00invalid"

    def _auth(self, c, arg):
        if not self._auth_offered(c):
            if self.auth is not None and not c.tls:
                self._send(c, "538 5.7.11 Encryption required for requested "
                              "authentication mechanism")
            else:
                self._send(c, "503 5.5.1 Error: authentication not enabled")
            return True
        if c.auth_user is not None:
            self._send(c, "503 5.5.1 Error: already authenticated")
            return True
        mech, _, initial = arg.partition(" ")
        mech = mech.upper()
        user = password = None
        if mech == "PLAIN":
            if initial and initial != "=":
                try:
                    blob = base64.b64decode(initial, validate=True)
                except ValueError:
                    blob = b"\x00invalid"
            else:
                self._send(c, "334 ")
                blob = self._read_b64(c)
                if blob is None:
                    self._send(c, "501 5.7.0 Authentication aborted")
                    return True
            fields = blob.split(b"\x00")
            if len(fields) == 3:
                user = fields[1].decode("utf-8", "replace")
                password = fields[2].decode("utf-8", "replace")
        elif mech == "LOGIN":
            if initial:
                try:
                    u = base64.b64decode(initial, validate=True)
                except ValueError:
                    u = b""
            else:
                self._send(c, "334 VXNlcm5hbWU6")
                u = self._read_b64(c)
                if u is None:
                    self._send(c, "501 5.7.0 Authentication aborted")
                    return True
            self._send(c, "334 UGFzc3dvcmQ6")
            p = self._read_b64(c)
            if p is None:
                self._send(c, "501 5.7.0 Authentication aborted")
                return True
            user = u.decode("utf-8", "replace")
            password = p.decode("utf-8", "replace")
        else:
            self._send(c, "504 5.5.4 Unrecognized authentication type")
            return True
        ok = (user, password) == tuple(self.auth)
        with self.cond:
            self.auth_attempts.append((c.no, mech, user, ok, c.tls))
            self.cond.notify_all()
        if ok:
            c.auth_user = user
            self._send(c, "235 2.7.0 Authentication successful")
        else:
            self._send(c, "535 5.7.8 Authentication credentials invalid")
        return True


@pytest.fixture
def peer_factory():
    """make(**SMTPPeer kwargs) -> a started peer, stopped at teardown.
    make(start=False, ...) -> not started yet (call .start() later)."""
    made = []

    def make(start=True, **kw):
        p = SMTPPeer(**kw)
        made.append(p)
        return p.start() if start else p

    yield make
    for p in made:
        p.stop()


# ---------------------------------------------------------------------------
# postfix smtp-sink


SMTP_SINK = "/usr/sbin/smtp-sink"


@dataclass
class SinkMessage:
    helo: str
    mail_args: str
    rcpt_args: list
    body: bytes            # header and body as received, LF line ends


class SmtpSink:
    """`smtp-sink -u USER -a -C -F -d DIR/%M. HOST:PORT 100` in its own
    process group; each mail transaction becomes one file in DIR (line ends
    LF).  -a -C -F: no AUTH, XCLIENT or XFORWARD offered (a plain peer).
    -u: smtp-sink insists on it when started as root; the tests' tmp dirs
    are 0700 root, so it stays root (`-u nobody` could not write there).
    Note: its EHLO reply ends with an empty "250 " line (a smtp-sink quirk
    that SMTP clients, Postfix's included, ignore)."""

    def __init__(self, workdir, host="127.0.0.1", port=None,
                 extra_args=()):
        assert ipaddress.ip_address(host).is_loopback, host
        self.host = host
        self.port = port or reserve_port(host)
        self.dir = os.path.join(workdir, f"sink-{host}-{self.port}")
        os.makedirs(self.dir, exist_ok=True)
        self.logpath = self.dir + ".log"
        user = ["-u", "root"] if os.geteuid() == 0 else []
        self.argv = [SMTP_SINK, *user, "-a", "-C", "-F", "-h", "sink.test",
                     "-d", os.path.join(self.dir, "%M."), *extra_args,
                     f"{host}:{self.port}", "100"]
        self.proc = None

    def start(self):
        self.logf = open(self.logpath, "w")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                     stdout=self.logf, stderr=self.logf,
                                     start_new_session=True)
        # Probe by connecting: smtp-sink does not count a session without
        # a transaction as a message, so the probe leaves no file.
        if not wait_port(self.host, self.port, timeout=15):
            self.stop()
            raise AssertionError("smtp-sink did not start: " + self.output())
        return self

    def output(self):
        try:
            with open(self.logpath, errors="replace") as fh:
                return fh.read()
        except OSError:
            return ""

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(timeout=10)
        self.proc = None
        self.logf.close()

    def files(self):
        return sorted(os.path.join(self.dir, f) for f in os.listdir(self.dir))

    @staticmethod
    def parse(raw):
        """Split a dump into smtp-sink's own records and the message."""
        helo, mail, rcpts = None, None, []
        lines = raw.split(b"\n")
        i = 0
        while i < len(lines):
            ln = lines[i]
            if ln.startswith(b"X-Helo-Args: "):
                helo = ln[13:].decode()
            elif ln.startswith(b"X-Mail-Args: "):
                mail = ln[13:].decode()
            elif ln.startswith(b"X-Rcpt-Args: "):
                rcpts.append(ln[13:].decode())
            elif ln.startswith(b"Received: ") and b"(smtp-sink)" in \
                    b"\n".join(lines[i:i + 3]):
                i += 3                  # the three-line Received record
                break
            i += 1
        body = b"\n".join(lines[i:])
        if body.endswith(b"\n\n"):
            body = body[:-1]            # the empty line smtp-sink appends
        return SinkMessage(helo, mail, rcpts, body)

    def wait_messages(self, n=1, timeout=20.0, marker=None):
        """Wait for n complete dumps (ending in the empty line smtp-sink
        appends, and containing `marker` when given)."""
        def ready():
            out = []
            for f in self.files():
                with open(f, "rb") as fh:
                    raw = fh.read()
                if raw.endswith(b"\n\n") and (marker is None or
                                              marker in raw):
                    out.append(self.parse(raw))
            return out if len(out) >= n else None
        return wait_for(ready, timeout, f"{n} messages in smtp-sink "
                        f"{self.host}:{self.port}")


@pytest.fixture
def sink_factory(tmp_path):
    made = []

    def make(**kw):
        s = SmtpSink(str(tmp_path), **kw)
        made.append(s)
        return s.start()

    yield make
    for s in made:
        s.stop()


# ---------------------------------------------------------------------------
# Postern configuration and helpers for the delivery tests

RELAY_PASSWORD = "s3cret-Relay-Pass"
RELAY_USER = "relayuser"


def delivery_config(relay_port=None, named_port=None, cloud_port=None,
                    cloud465_port=None, authplain_port=None,
                    destinations=None, delivery=None, extra_routes=""):
    """A configuration template for conftest.Server(config=...): the
    listener on 127.0.0.1:{port}, example.com and localhost delivered to
    maildirs, and SMTP routes
      relay.test     -> [127.0.0.1]:relay_port
      named.test     -> [mx.partner.example]:named_port (A lookup only)
      cloud.test     -> [mx.partner.example]:cloud_port, tls starttls + AUTH
      cloud465.test  -> [mx.partner.example]:cloud465_port, implicit + AUTH
      authplain.test -> [mx.partner.example]:authplain_port, AUTH, no route
                        tls (follows the destination control)
    Other domains go by MX (resolver.local_data).  `destinations` is the
    list body of `destinations = ( ... );`, `delivery` the body of
    `delivery = { ... };`.  A port left None gets a free port with nothing
    listening."""
    relay_port = relay_port or reserve_port()
    named_port = named_port or reserve_port()
    cloud_port = cloud_port or reserve_port()
    cloud465_port = cloud465_port or reserve_port()
    authplain_port = authplain_port or reserve_port()
    if destinations is None:
        destinations = ('{ domain = "named.test"; tls = "required-verify"; },'
                        ' { domain = "*"; tls = "preferred"; '
                        'max_connections = 20; }')
    if delivery is None:
        delivery = "retry_min = 1; retry_max = 2; max_queue_lifetime = 3600;"
    auth = (f'auth_user = "{RELAY_USER}"; '
            'auth_password_file = "relay.pass";')
    text = f"""
hostname = "{EHLO_NAME}";
data_dir = "data";
log = {{ file = "postern.log"; format = "@LOG_FORMAT@"; }};
user = "root";
listeners = (
  {{ name = "inbound"; address = "127.0.0.1"; port = @PORT@; }}
);
sender_groups = (
  {{ name = "RELAYLIST"; networks = [ "127.0.0.1/32" ]; policy = "relayed"; }},
  {{ name = "ALL"; networks = [ "0.0.0.0/0", "::/0" ]; policy = "accepted"; }}
);
policies = {{
  relayed  = {{ action = "relay";  max_recipients = 100; max_message_size = 20971520; }};
  accepted = {{ action = "accept"; }};
}};
local_domains = [ "example.com", "localhost" ];
routes = (
  {{ domain = "example.com"; maildir = "data/mail/%d/%u"; }},
  {{ domain = "localhost"; maildir = "data/mail/%d/%u"; }},
  {{ domain = "relay.test"; hosts = [ "[127.0.0.1]:{relay_port}" ]; }},
  {{ domain = "named.test"; hosts = [ "[{PARTNER}]:{named_port}" ]; }},
  {{ domain = "cloud.test"; hosts = [ "[{PARTNER}]:{cloud_port}" ];
     tls = "starttls"; {auth} }},
  {{ domain = "cloud465.test"; hosts = [ "[{PARTNER}]:{cloud465_port}" ];
     tls = "implicit"; {auth} }},
  {{ domain = "authplain.test"; hosts = [ "[{PARTNER}]:{authplain_port}" ];
     {auth} }}{extra_routes}
);
destinations = ( {destinations} );
delivery = {{ {delivery} }};
resolver = {{ local_data = [
  "partner.example. MX 10 {PARTNER}.", "{PARTNER}. A 127.0.0.1",
  "mxtest.example. MX 10 mx1.mxtest.example.",
  "mxtest.example. MX 20 mx2.mxtest.example.",
  "mx1.mxtest.example. A 127.0.0.2", "mx2.mxtest.example. A 127.0.0.3",
  "nullmx.example. MX 0 .", "implicit.example. A 127.0.0.4",
  "selfmx.example. MX 10 {EHLO_NAME}.", "{EHLO_NAME}. A 127.0.0.6",
  "v6.example. MX 10 mx.v6.example.", "mx.v6.example. AAAA ::1",
  "dual.example. MX 10 mx.dual.example.", "mx.dual.example. AAAA ::1",
  "mx.dual.example. A 127.0.0.7" ]; }};
tls = {{ system_cas = false; }};
alerts = {{ recipients = [ "postmaster@localhost" ]; from = "postern@{EHLO_NAME}"; }};
"""
    # conftest.Server runs str.format(port=, extra=, log_format=) on it
    text = text.replace("{", "{{").replace("}", "}}")
    return (text.replace("@PORT@", "{port}")
            .replace("@LOG_FORMAT@", "{log_format}") + "{extra}\n")


def start_delivery_server(server_factory, pki, password=RELAY_PASSWORD,
                          start=True, **cfg):
    """A Server with delivery_config(**cfg), relay.pass written and the test
    CA in its trust store (added before the start)."""
    s = server_factory(config=delivery_config(**cfg))
    with open(os.path.join(s.dir, "relay.pass"), "w") as fh:
        fh.write(password + "\n")
    os.chmod(os.path.join(s.dir, "relay.pass"), 0o600)
    p = s.cli("trust", "add", pki.ca, "--name", "testca")
    assert p.returncode == 0, p.stdout + p.stderr
    return s.start() if start else s


def make_message(subject, body="hello\r\n", sender="alice@example.com",
                 to="bob@relay.test", extra_headers=""):
    """An RFC 5322 message as str with CRLF line ends."""
    body = body.replace("\r\n", "\n").replace("\n", "\r\n")
    return (f"From: {sender or 'MAILER-DAEMON@client.test'}\r\n"
            f"To: {to}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '-')}@client.test>\r\n"
            f"Date: Tue, 01 Apr 2025 10:00:00 +0000\r\n"
            f"{extra_headers}\r\n{body}")


def send(server, rcpts, subject="test", body="hello\r\n",
         sender="alice@example.com", msg=None):
    """Send one message into Postern from 127.0.0.1 (relay allowed);
    returns its MID."""
    if isinstance(rcpts, str):
        rcpts = [rcpts]
    if msg is None:
        msg = make_message(subject, body, sender, ", ".join(rcpts))
    code, reply = smtp_send(server, sender, rcpts, msg)
    assert code == 250, reply
    return queued_mid(reply)


# Log-line patterns (postern-log(7)); each log line is
# "<ISO time> <Info|Warning|Critical>: <event>".

def rids(*ids):
    return re.escape("[" + ", ".join(str(i) for i in ids) + "]")


def delayed_rx(mid, rid="[0]"):
    return (rf"Delayed: (?:DCID \d+ )?MID {mid} to RID {re.escape(rid)} "
            rf"- (.*)$")


def bounced_rx(mid, rid="[0]"):
    return (rf"Bounced: (?:DCID \d+ )?MID {mid} to RID {re.escape(rid)} "
            rf"- (.*)$")


def wait_done(server, mid, rid_list="[0]", timeout=20.0):
    """Wait for `Message done DCID n MID mid to RID [...] response '...'`;
    returns (dcid, response)."""
    rx = (rf"Message done DCID (\d+) MID {mid} to RID "
          rf"{re.escape(rid_list)} response '([^']*)'")
    dcid, resp = server.wait_log(rx, timeout=timeout)[0]
    return int(dcid), resp


def log_lines(server, pattern):
    rx = re.compile(pattern)
    return [ln for ln in server.log().splitlines() if rx.search(ln)]


def new_smtp_dcid(server, dcid):
    """The `New SMTP DCID n ...` line of a delivery connection."""
    lines = log_lines(server, rf": New SMTP DCID {dcid} ")
    assert len(lines) == 1, (dcid, server.log()[-3000:])
    return lines[0]


def queue_block(server, mid):
    """`queue list` output for one MID: its line plus any indented lines
    after it (recipient details)."""
    p = server.cli("queue", "list")
    assert p.returncode == 0, p.stderr
    out, inside = [], False
    for ln in p.stdout.splitlines():
        if ln and not ln[0].isspace():
            inside = ln.split()[0] == str(mid)
        if inside:
            out.append(ln)
    return "\n".join(out)


def strip_trace(data, original):
    """`data` as a next hop got it must be `original` with only header
    fields (our Received, maybe more trace) prepended; returns the
    prepended part."""
    assert data.endswith(original), (
        "message changed on the way:\n" + repr(data[:2000]))
    prefix = data[:len(data) - len(original)]
    if prefix:
        assert prefix.endswith(b"\r\n"), prefix
        for ln in prefix[:-2].split(b"\r\n"):
            assert re.match(rb"^([!-9;-~]+:|[ \t])", ln), (
                "not a header field line: %r" % ln)
    return prefix


def wait_maildir_new(server, domain, user, count=1, timeout=20.0):
    return server.wait_maildir(domain, user, count=count, timeout=timeout)


def parse_mail(path):
    with open(path, "rb") as fh:
        return email.message_from_bytes(fh.read(), policy=email.policy.compat32)


def dsn_parts(msg):
    """(delivery-status text, rfc822-headers text) of a DSN."""
    assert msg.get_content_type() == "multipart/report", \
        msg.get_content_type()
    assert msg.get_param("report-type") == "delivery-status", \
        msg.get("Content-Type")
    status = headers = None
    for part in msg.walk():
        ct = part.get_content_type()
        if ct == "message/delivery-status":
            # compat32 parses it as a list of header blocks
            pl = part.get_payload()
            if isinstance(pl, list):
                status = "\n".join(p.as_string() for p in pl)
            else:
                status = part.get_payload(decode=True).decode("utf-8",
                                                             "replace")
        elif ct == "text/rfc822-headers":
            headers = part.get_payload(decode=True).decode("utf-8", "replace")
    assert status is not None, "no message/delivery-status part"
    return status, headers


def text_of(msg):
    """All text/* parts of a message, decoded and joined."""
    out = []
    for part in msg.walk():
        if part.get_content_maintype() == "text":
            pl = part.get_payload(decode=True)
            if pl is not None:
                out.append(pl.decode(part.get_content_charset() or "utf-8",
                                     "replace"))
    return "\n".join(out)


def squash(text):
    return re.sub(r"\s+", " ", text).strip()


def wait_queued_attempts(server, mid, n=1, timeout=20.0):
    """Wait until `queue list` shows `attempts k` with k >= n for mid."""
    def ok():
        m = re.search(r"attempts (\d+)", queue_block(server, mid))
        return m and int(m.group(1)) >= n
    wait_for(ok, timeout, f"MID {mid} with {n} attempts in `queue list`")
    return queue_block(server, mid)


__all__ = ["PARTNER", "EHLO_NAME", "RELAY_USER", "RELAY_PASSWORD", "PKI",
           "CertPair", "make_pki", "pki", "SMTPPeer", "peer_factory",
           "Received", "reserve_port", "SmtpSink", "sink_factory",
           "delivery_config", "start_delivery_server", "make_message",
           "send", "rids", "wait_done", "log_lines", "new_smtp_dcid",
           "queue_block", "strip_trace", "parse_mail", "dsn_parts",
           "text_of", "squash", "wait_queued_attempts", "queue_count"]
