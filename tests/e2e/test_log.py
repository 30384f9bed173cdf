"""The mail log (postern-log(7)): exact text lines, IDs, JSON format."""
import json
import re

from conftest import RawSMTP, queued_mid, read_bytes

TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z"
LINE_RE = re.compile(rf"^{TIME} (Info|Warning|Critical): \S")


def session(server, subject="Quarterly report", rcpts=("bob@example.com",),
            msgid="<q1@client.test>"):
    with RawSMTP(server.port) as c:
        c.ehlo()
        c.cmd("MAIL FROM:<alice@example.com>", expect="250 2.1.0")
        for r in rcpts:
            c.cmd(f"RCPT TO:<{r}>", expect="250 2.1.5")
        c.cmd("DATA", expect=354)
        c.send(f"From: alice@example.com\r\nSubject: {subject}\r\n"
               f"Message-ID: {msgid}\r\n\r\nbody\r\n.\r\n")
        mid = queued_mid(c.reply())
        assert c.cmd("QUIT") == "221 2.0.0 Bye"
    return mid


def icid_of(server, mid):
    return int(server.wait_log(rf"Start MID {mid} ICID (\d+)$")[0])


def info(event):
    return rf"^{TIME} Info: {event}$"


def test_text_lines_for_a_session(server):
    mid = session(server, rcpts=("bob@example.com", "carol@example.com"))
    server.wait_log(rf"Message finished MID {mid} done$")
    icid = icid_of(server, mid)
    port = server.port
    log = server.log()
    expected = [
        info(rf"New SMTP ICID {icid} interface inbound \(127\.0\.0\.1:{port}\)"
             rf" address 127\.0\.0\.1 reverse dns host \S+ verified "
             rf"(?:yes|no)"),
        info(rf"ICID {icid} RELAY SG RELAYLIST match 127\.0\.0\.1/32"),
        info(rf"Start MID {mid} ICID {icid}"),
        info(rf"MID {mid} ICID {icid} From: <alice@example\.com>"),
        info(rf"MID {mid} ICID {icid} RID 0 To: <bob@example\.com>"),
        info(rf"MID {mid} ICID {icid} RID 1 To: <carol@example\.com>"),
        info(rf"MID {mid} Message-ID '<q1@client\.test>'"),
        info(rf"MID {mid} Subject 'Quarterly report'"),
        info(rf"MID {mid} ready (\d+) bytes from <alice@example\.com>"),
        info(rf"ICID {icid} close"),
        info(rf"Delivery start (?:DCID \d+ )?MID {mid} to RID \[0, 1\].*"),
        info(rf"Message done (?:DCID \d+ )?MID {mid} to RID \[0, 1\].*"),
        info(rf"Message finished MID {mid} done"),
    ]
    positions = {}
    for rx in expected:
        server.wait_log(rx)
        m = re.search(rx, server.log(), re.M)
        positions[rx] = m.start()
        assert len(re.findall(rx, server.log(), re.M)) == 1, rx
    # the session lines come in protocol order
    order = [positions[rx] for rx in expected[:9]]
    assert order == sorted(order), log
    # delivery after "ready"
    assert positions[expected[10]] > positions[expected[8]]
    assert positions[expected[12]] > positions[expected[11]] > \
        positions[expected[10]]
    # "ready N bytes" is the spool size: maildir copy minus Return-Path,
    # with CRLF line ends
    size = int(re.search(expected[8], server.log(), re.M).group(1))
    data = read_bytes(server.wait_maildir("example.com", "bob")[0])
    rp, _, rest = data.partition(b"\n")
    assert rp == b"Return-Path: <alice@example.com>"
    assert size == len(rest.replace(b"\n", b"\r\n"))
    # every line has the postern-log(7) shape
    for ln in server.log().splitlines():
        assert LINE_RE.match(ln), ln


def test_rejected_and_aborted_lines(server):
    with RawSMTP(server.port) as c:
        c.ehlo()
        c.cmd("MAIL FROM:<alice@example.com>", expect=250)
        c.cmd("RCPT TO:<bob@example.com>", expect=250)
        c.cmd("DATA", expect=354)
        c.send(b"Subject: x\r\n\r\nbare\nlf\r\n.\r\n")
        assert c.reply().startswith("550 5.5.2")
        c.cmd("MAIL FROM:<alice@example.com>", expect=250)
        c.cmd("RSET", expect=250)
    log = server.wait_log(info(r"MID (\d+) rejected: 550 5\.5\.2 Bare LF or "
                               r"CR not allowed in message"))
    mid = int(log[0])
    server.wait_log(info(rf"Message finished MID {mid} aborted"))
    server.wait_log(info(rf"Message finished MID {mid + 1} aborted"))


def test_ids_unique_and_increasing_across_restart(server):
    first = [session(server, subject=f"a{i}") for i in range(3)]
    icids1 = [icid_of(server, m) for m in first]
    assert first == sorted(set(first))
    assert icids1 == sorted(set(icids1))
    server.wait_log(rf"Message finished MID {first[-1]} done$")
    all_icids1 = [int(x) for x in re.findall(r"New SMTP ICID (\d+) ",
                                             server.log())]
    server.stop()
    server.start()
    second = [session(server, subject=f"b{i}") for i in range(2)]
    icids2 = [icid_of(server, m) for m in second]
    assert min(second) > max(first)
    assert min(icids2) > max(all_icids1)
    assert second == sorted(set(second))
    all_icids = [int(x) for x in re.findall(r"New SMTP ICID (\d+) ",
                                            server.log())]
    assert len(all_icids) == len(set(all_icids))
    mids = [int(x) for x in re.findall(r"Start MID (\d+) ", server.log())]
    assert len(mids) == len(set(mids)) == 5
    server.wait_maildir("example.com", "bob", 5)


def test_json_format(server_factory):
    s = server_factory(log_format="json").start()
    mid = session(s, subject="Json \"quoted\" report")
    s.wait_log(rf'"event":"message_finished".*"mid":{mid}\b')
    recs = []
    for ln in s.log().splitlines():
        rec = json.loads(ln)
        assert isinstance(rec, dict)
        assert re.fullmatch(TIME, rec["time"]), rec
        assert rec["level"] in ("Info", "Warning", "Critical"), rec
        assert isinstance(rec["event"], str) and rec["event"], rec
        recs.append(rec)
    by_event = {}
    for r in recs:
        by_event.setdefault(r["event"], []).append(r)
    start = [r for r in by_event["start"] if r["mid"] == mid]
    assert len(start) == 1
    icid = start[0]["icid"]
    assert isinstance(icid, int) and isinstance(mid, int)
    new = [r for r in by_event["new_icid"] if r["icid"] == icid]
    assert len(new) == 1
    assert new[0]["ip"] == "127.0.0.1"
    assert new[0]["listener"] == "inbound"
    assert new[0]["text"].startswith(
        f"New SMTP ICID {icid} interface inbound (127.0.0.1:{s.port}) "
        "address 127.0.0.1 reverse dns host ")
    sg = [r for r in by_event["sg"] if r["icid"] == icid]
    assert sg[0]["sg"] == "RELAYLIST" and sg[0]["cidr"] == "127.0.0.1/32"
    frm = [r for r in by_event["from"] if r["mid"] == mid][0]
    assert frm["from"] == "alice@example.com" and frm["icid"] == icid
    rcpt = [r for r in by_event["rcpt"] if r["mid"] == mid][0]
    assert rcpt["rid"] == 0 and rcpt["to"] == "bob@example.com"
    subj = [r for r in by_event["subject"] if r["mid"] == mid][0]
    assert subj["subject"] == 'Json "quoted" report'
    msgid = [r for r in by_event["message_id"] if r["mid"] == mid][0]
    assert msgid["msgid"] == "<q1@client.test>"
    ready = [r for r in by_event["ready"] if r["mid"] == mid][0]
    assert isinstance(ready["size"], int) and ready["size"] > 0
    assert ready["text"] == (f"MID {mid} ready {ready['size']} bytes from "
                             "<alice@example.com>")
    assert [r for r in by_event["close"] if r["icid"] == icid]
    assert [r for r in by_event["delivery_start"] if r["mid"] == mid]
    assert [r for r in by_event["message_done"] if r["mid"] == mid]
    fin = [r for r in by_event["message_finished"] if r["mid"] == mid]
    assert fin[0]["text"] == f"Message finished MID {mid} done"


def test_ids_unique_under_concurrency(server):
    """Several workers share the ID sequences: no ICID or MID twice."""
    import threading
    results, errors = [], []

    def client(n):
        try:
            for i in range(4):
                results.append(session(server, subject=f"c{n}x{i}",
                                       msgid=f"<c{n}x{i}@client.test>"))
        except Exception as e:          # reported below
            errors.append(e)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors
    assert len(results) == len(set(results)) == 20
    server.wait_maildir("example.com", "bob", 20)
    log = server.log()
    icids = [int(x) for x in re.findall(r"New SMTP ICID (\d+) ", log)]
    assert len(icids) == len(set(icids))
    mids = [int(x) for x in re.findall(r"Start MID (\d+) ", log)]
    assert sorted(mids) == sorted(results)
