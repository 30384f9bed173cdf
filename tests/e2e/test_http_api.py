"""The HTTPS injection API (docs/http-api.md) through the real binary:
POST /v1/messages with message/rfc822 and JSON from Python's urllib and
http.client and from curl, the refusals (bad JSON 400, wrong credentials
401, unverified identity 403 with SPEC's 554 text, over-size 413, quota
429, plaintext HTTP refused), GET /v1/messages/MID for its sender only,
`postern send --http`, and kill -9 during injection: every message that
got its 201 is delivered after the restart.

One daemon (module scope) serves the tests that only add messages; the
crash test has its own."""
import base64
import email
import email.policy
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

from conftest import (BASE_CONFIG, BIN, SANITIZER_RE, Server, _esc,
                      free_port, run, wait_for)

MAX_SIZE = 200000


def api_config(http_port, extra=""):
    t = BASE_CONFIG.replace(
        'relayed  = {{ action = "relay";  max_recipients = 100; }};',
        'relayed  = {{ action = "relay";  max_recipients = 100; '
        'max_message_size = %d; }};' % MAX_SIZE)
    assert "max_message_size" in t, "BASE_CONFIG changed"
    t += ('http = {{ address = "127.0.0.1"; port = %d; }};\n' % http_port)
    t += "limits = {{ auth_failures = 50; }};\n"
    t += _esc(extra)
    return t


def add_user(s, name, *args):
    p = s.cli("user", "add", name, *args)
    assert p.returncode == 0, p.stderr
    return re.search(r"^password: (\S+)$", p.stdout, re.M).group(1)


def ctx():
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


def basic(user, pw):
    return "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()


def start_api(d, extra=""):
    port = free_port()
    s = Server(str(d), config=api_config(port, extra))
    s.http = port
    s.start()
    s.wait_log(r"postern \S+ starting")
    assert wait_for_port(port)
    return s


def wait_for_port(port, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def check_clean(s):
    s.stop()
    text = s.stderr() + s.log()
    assert not SANITIZER_RE.search(text), text[-4000:]


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    s = start_api(tmp_path_factory.mktemp("api"))
    s.pw = add_user(s, "alice", "--identity", "example.org")
    s.bob_pw = add_user(s, "bob", "--identity", "bob.example")
    s.quota_pw = add_user(s, "quota", "--identity", "example.org",
                          "--max-24-hour-send", "1")
    yield s
    check_clean(s)


def post(s, body, ctype, auth=None, query="", conn=None):
    """POST /v1/messages with http.client; (status, json)."""
    c = conn or http.client.HTTPSConnection("127.0.0.1", s.http,
                                            context=ctx(), timeout=20)
    headers = {"Content-Type": ctype}
    if auth is not None:
        headers["Authorization"] = auth
    c.request("POST", "/v1/messages" + query, body=body, headers=headers)
    r = c.getresponse()
    data = r.read()
    if conn is None:
        c.close()
    return r.status, json.loads(data)


def get_state(s, mid, auth):
    c = http.client.HTTPSConnection("127.0.0.1", s.http, context=ctx(),
                                    timeout=20)
    c.request("GET", f"/v1/messages/{mid}", headers={"Authorization": auth})
    r = c.getresponse()
    data = json.loads(r.read())
    c.close()
    return r.status, data


def find_mail(s, user, needle, timeout=20):
    """The maildir file of example.com/<user> containing needle."""
    def hit():
        for f in s.maildir_files("example.com", user):
            with open(f, "rb") as fh:
                data = fh.read()
            if needle.encode() in data:
                return data
        return None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = hit()
        if data is not None:
            return data
        time.sleep(0.05)
    raise AssertionError(f"no mail for {user} with {needle!r}\n" +
                         s.log()[-3000:])


RAW = ("From: Alice <alice@example.org>\r\nTo: bob@example.com\r\n"
       "Subject: {subject}\r\n\r\nhello over HTTPS\r\n")


def test_raw_message_with_urllib(api):
    body = RAW.format(subject="raw urllib").encode()
    req = urllib.request.Request(
        f"https://127.0.0.1:{api.http}/v1/messages", data=body,
        headers={"Content-Type": "message/rfc822",
                 "Authorization": basic("alice", api.pw)})
    with urllib.request.urlopen(req, context=ctx(), timeout=20) as r:
        assert r.status == 201
        doc = json.loads(r.read())
    mid = doc["mid"]
    assert doc["reply"] == f"250 2.0.0 Ok: queued as {mid}"
    data = find_mail(api, "bob", "raw urllib").decode()
    assert re.search(r"by mx\.test\.example \(Postern\) with HTTPSA id %d"
                     % mid, data), data
    api.wait_log(rf"ICID (\d+) HTTP POST /v1/messages 201 MID {mid}$")
    log = api.log()
    icid = re.search(rf"Start MID {mid} ICID (\d+)", log).group(1)
    assert re.search(rf"New HTTP ICID {icid} interface http "
                     rf"\(127\.0\.0\.1:{api.http}\) address 127\.0\.0\.1$",
                     log, re.M)
    assert f"ICID {icid} AUTH success user alice mechanism Basic" in log
    assert re.search(rf"MID {mid} ready \d+ bytes from <alice@example\.org>",
                     log)


def test_json_non_ascii_and_attachment_with_http_client(api):
    pdf = bytes(range(256)) * 4
    doc = {"from": "Alice Ærø <alice@example.org>",
           "to": ["bob@example.com"], "cc": "carol@example.com",
           "bcc": ["dave@example.com"],
           "subject": "Grüße aus Köln ☃", "text": "Grüße, ünïcode ✓\n",
           "html": "<p>Grüße</p>",
           "attachments": [{"filename": "résumé.bin",
                            "content": base64.b64encode(pdf).decode()}]}
    st, out = post(api, json.dumps(doc).encode(), "application/json",
                   basic("alice", api.pw))
    assert st == 201, out
    for user in ("bob", "carol", "dave"):       # dave: Bcc, envelope only
        data = find_mail(api, user, "=?UTF-8?")
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert msg["Subject"] == "Grüße aus Köln ☃"
    assert "Bcc" not in msg and "dave" not in str(msg["To"])
    parts = {p.get_filename(): p for p in msg.iter_attachments()}
    assert parts["résumé.bin"].get_content() == pdf
    body = msg.get_body(("plain",)).get_content()
    assert "Grüße, ünïcode ✓" in body


def test_curl_raw_with_envelope_parameters_and_bearer_json(api, tmp_path):
    if shutil.which("curl") is None:
        pytest.skip("curl missing")
    f = tmp_path / "m.eml"
    f.write_bytes(RAW.format(subject="curl raw").encode())
    p = subprocess.run(
        ["curl", "-sk", "-u", f"alice:{api.pw}", "-H",
         "Content-Type: message/rfc822", "--data-binary", f"@{f}",
         f"https://127.0.0.1:{api.http}/v1/messages"
         "?from=alice@example.org&to=erin@example.com"],
        capture_output=True, text=True, timeout=30)
    assert json.loads(p.stdout)["mid"] > 0, p.stdout + p.stderr
    find_mail(api, "erin", "curl raw")      # ?to= is the whole envelope
    p = subprocess.run(
        ["curl", "-sk", "-o", "/dev/stdout", "-w", "\n%{http_code}",
         "-H", f"Authorization: Bearer alice:{api.pw}",
         "-H", "Content-Type: application/json", "-d",
         json.dumps({"from": "alice@example.org", "to": "bob@example.com",
                     "subject": "curl json", "text": "x"}),
         f"https://127.0.0.1:{api.http}/v1/messages"],
        capture_output=True, text=True, timeout=30)
    body, code = p.stdout.rsplit("\n", 1)
    assert code == "201", p.stdout
    find_mail(api, "bob", "curl json")
    assert "mechanism Bearer" in api.log()


@pytest.mark.parametrize("body", [b'{"from":', b'[1,2]',
                                  b'{"from":"alice@example.org","to":[1]}',
                                  b'{"from":"a@example.org","from":"b@x.org",'
                                  b'"to":"bob@example.com","text":"x"}',
                                  b'{"from":"alice@example.org",'
                                  b'"to":"bob@example.com","bogus":1}'])
def test_bad_json_is_400(api, body):
    st, out = post(api, body, "application/json", basic("alice", api.pw))
    assert st == 400, out
    assert out["code"] == 501 and out["enhanced"] == "5.5.4", out
    assert out["reply"].startswith("501 5.5.4 Bad request: "), out


def test_wrong_or_missing_credentials_are_401(api):
    body = RAW.format(subject="x").encode()
    st, out = post(api, body, "message/rfc822", basic("alice", "wrong"))
    assert st == 401
    assert out["reply"] == "535 5.7.8 Authentication credentials invalid"
    st, out = post(api, body, "message/rfc822", None)
    assert st == 401 and out["reply"].startswith("530 5.7.0")
    api.wait_log(r"ICID \d+ AUTH failed user alice mechanism Basic$")


def test_unverified_identity_is_403_with_the_554_text(api):
    body = RAW.format(subject="x").replace(
        "alice@example.org", "boss@other.example").encode()
    st, out = post(api, body, "message/rfc822", basic("alice", api.pw))
    assert st == 403
    assert out["reply"] == (
        "554 5.7.1 Message rejected: Email address is not verified. The "
        "following identities failed the check: boss@other.example")
    assert out["code"] == 554 and out["enhanced"] == "5.7.1"


def test_oversize_is_413(api):
    body = RAW.format(subject="big").encode()
    body += (("y" * 998 + "\r\n") * (MAX_SIZE // 1000 + 2)).encode()
    st, out = post(api, body, "message/rfc822", basic("alice", api.pw))
    assert st == 413
    assert out["reply"] == ("552 5.3.4 Message size exceeds fixed maximum "
                            "message size")


def test_quota_is_429(api):
    body = RAW.format(subject="quota").encode()
    st, out = post(api, body, "message/rfc822", basic("quota", api.quota_pw))
    assert st == 201, out
    st, out = post(api, body, "message/rfc822", basic("quota", api.quota_pw))
    assert st == 429
    assert out["reply"] == ("554 5.7.0 Throttling failure: Daily message "
                            "quota exceeded.")


def test_plain_http_is_refused(api):
    with socket.create_connection(("127.0.0.1", api.http), timeout=10) as c:
        c.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Length: 0\r\n\r\n")
        data = b""
        while True:
            chunk = c.recv(4096)
            if not chunk:
                break
            data += chunk
    assert b"HTTP/1." not in data
    api.wait_log(r"ICID \d+ TLS failed: not a TLS handshake")


def test_state_query_only_for_its_sender(api):
    st, out = post(api, RAW.format(subject="state").encode(),
                   "message/rfc822", basic("alice", api.pw))
    assert st == 201
    mid = out["mid"]
    find_mail(api, "bob", "Subject: state")

    def finished():
        st, doc = get_state(api, mid, basic("alice", api.pw))
        return doc if st == 200 and doc["state"] == "finished" else None
    doc = wait_for(finished, what="finished state")
    assert doc["mid"] == mid
    assert doc["recipients"] == [{"rid": 0, "to": "bob@example.com",
                                  "status": "delivered", "attempts": 0,
                                  "last_reply": "delivered to maildir"}] \
        or doc["recipients"][0]["status"] == "delivered", doc
    st, doc = get_state(api, mid, basic("bob", api.bob_pw))
    assert st == 404, doc
    st, doc = get_state(api, 999999999, basic("alice", api.pw))
    assert st == 404


def test_send_http(api):
    env = dict(os.environ, SMTP_USER="alice", SMTP_PASSWORD=api.pw)
    p = subprocess.run(
        [BIN, "send", "-c", api.conf, "--http",
         f"https://127.0.0.1:{api.http}", "--insecure",
         "--from", "alice@example.org", "--to", "bob@example.com",
         "--subject", "send http", "--body", "hi"],
        capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == (f"Opened HTTPS connection to 127.0.0.1, port "
                        f"{api.http}, user=\"alice\", password=\"****\"")
    assert lines[1] == ("Sending message From: alice@example.org "
                        "To: bob@example.com")
    assert re.fullmatch(r"OK - in \d+\.\d{3} seconds", lines[2])
    find_mail(api, "bob", "send http")
    p = subprocess.run(
        [BIN, "send", "-c", api.conf, "--http",
         f"https://127.0.0.1:{api.http}", "--insecure",
         "--from", "boss@other.example", "--to", "bob@example.com",
         "--body", "hi", "--count", "3", "--concurrency", "2"],
        capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 1
    assert "554 5.7.1 Message rejected: Email address is not verified" \
        in p.stderr
    assert re.search(r"^fix: .*postern user modify alice --add-identity "
                     r"boss@other\.example", p.stderr, re.M), p.stderr


def test_kill9_during_injection_loses_no_acknowledged_message(
        tmp_path_factory):
    s = start_api(tmp_path_factory.mktemp("crash"))
    pw = add_user(s, "alice", "--identity", "example.org")
    acked, stop = [], threading.Event()

    def client(n):
        i = 0
        while not stop.is_set() and i < 400:
            subject = f"crash-{n}-{i}"
            try:
                st, out = post(s, RAW.format(subject=subject).encode(),
                               "message/rfc822", basic("alice", pw))
            except (OSError, http.client.HTTPException, ValueError):
                return
            if st == 201:
                acked.append(subject)
            i += 1
    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    wait_for(lambda: len(acked) >= 30, what="30 messages acknowledged")
    s.kill9()
    stop.set()
    for t in threads:
        t.join(30)
    got = list(acked)
    s.start()
    s.wait_log(r"postern \S+ starting", count=2)

    def all_delivered():
        have = set()
        for f in s.maildir_files("example.com", "bob"):
            with open(f, "rb") as fh:
                m = re.search(rb"^Subject: (crash-\d+-\d+)", fh.read(),
                              re.M)
            if m:
                have.add(m.group(1).decode())
        return set(got) <= have
    wait_for(all_delivered, timeout=60, what="every acknowledged message")
    check_clean(s)
