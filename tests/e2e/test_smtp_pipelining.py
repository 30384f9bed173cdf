"""RFC 2920 pipelining: commands sent in one write are answered in order."""
from conftest import RawSMTP, queued_mid, read_bytes, settle

USERS = ("alice", "bob", "carol")


def body(subject):
    return (f"From: dave@example.com\r\nTo: team@example.com\r\n"
            f"Subject: {subject}\r\n\r\nline one\r\nline two\r\n")


def test_mail_rcpts_data_in_one_write(server):
    with RawSMTP(server.port) as c:
        c.ehlo()
        c.send("MAIL FROM:<dave@example.com>\r\n" +
               "".join(f"RCPT TO:<{u}@example.com>\r\n" for u in USERS) +
               "DATA\r\n")
        replies = [c.reply() for _ in range(5)]
        assert [r[:3] for r in replies] == ["250", "250", "250", "250", "354"]
        assert replies[0] == "250 2.1.0 Ok"
        assert replies[1:4] == ["250 2.1.5 Ok"] * 3
        assert replies[4].startswith("354 ")
        c.send(body("pipelined") + ".\r\n")
        mid = queued_mid(c.reply())
        assert c.cmd("QUIT") == "221 2.0.0 Bye"
    for u in USERS:
        files = server.wait_maildir("example.com", u)
        assert len(files) == 1
        data = read_bytes(files[0]).decode()
        assert "Subject: pipelined\n" in data
        assert data.endswith("\n\nline one\nline two\n")
    server.wait_log(rf"Message finished MID {mid} done$")


def test_whole_session_in_one_write(server):
    with RawSMTP(server.port) as c:
        c.send("EHLO client.test\r\nMAIL FROM:<dave@example.com>\r\n"
               "RCPT TO:<bob@example.com>\r\nDATA\r\n" + body("oneshot") +
               ".\r\nQUIT\r\n")
        ehlo = c.reply()
        assert ehlo.startswith("250-mx.test.example\n")
        assert "250-PIPELINING" in ehlo
        assert c.reply() == "250 2.1.0 Ok"
        assert c.reply() == "250 2.1.5 Ok"
        assert c.reply().startswith("354 ")
        queued_mid(c.reply())
        assert c.reply() == "221 2.0.0 Bye"
        assert c.closed()
        assert c.buf == b""
    files = server.wait_maildir("example.com", "bob")
    assert "Subject: oneshot\n" in read_bytes(files[0]).decode()


def test_two_transactions_in_one_write(server):
    """The second transaction waits behind the commit of the first."""
    with RawSMTP(server.port) as c:
        c.ehlo()
        one = ("MAIL FROM:<dave@example.com>\r\nRCPT TO:<bob@example.com>\r\n"
               "DATA\r\n" + body("first") + ".\r\n")
        two = ("MAIL FROM:<dave@example.com>\r\nRCPT TO:<carol@example.com>\r\n"
               "DATA\r\n" + body("second") + ".\r\n")
        c.send(one + two + "NOOP\r\n")
        mids = []
        for _ in range(2):
            assert c.reply() == "250 2.1.0 Ok"
            assert c.reply() == "250 2.1.5 Ok"
            assert c.reply().startswith("354 ")
            mids.append(queued_mid(c.reply()))
        assert c.reply() == "250 2.0.0 Ok"
        assert mids[1] > mids[0]
    assert "Subject: first\n" in read_bytes(
        server.wait_maildir("example.com", "bob")[0]).decode()
    assert "Subject: second\n" in read_bytes(
        server.wait_maildir("example.com", "carol")[0]).decode()
    settle(server)


def test_pipelined_errors_keep_order(server):
    with RawSMTP(server.port) as c:
        c.ehlo()
        c.send("MAIL FROM:<dave@example.com>\r\nRCPT TO:<x@remote.example>\r\n"
               "RCPT TO:<bob@example.com>\r\nBOGUS\r\nNOOP\r\nRSET\r\n")
        assert [c.reply()[:3] for _ in range(6)] == [
            "250", "250", "250", "500", "250", "250"]
