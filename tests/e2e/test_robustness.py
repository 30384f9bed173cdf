"""Untrusted input never crashes or hangs the server: random bytes,
half-open connections and abrupt disconnects mid-transaction, then a real
message still goes through and the log shows no crash."""
import random
import smtplib
import socket
import time


def test_random_bytes_and_abrupt_disconnects_do_not_hurt(server_factory):
    srv = server_factory().start()
    rnd = random.Random(5321)
    pieces = [b"MAIL FROM:<a@example.com>\r\n", b"RCPT TO:<bob@example.com>\r\n",
              b"DATA\r\n", b"BDAT 10\r\n", b"\r\n.\r\n", b"\r", b"\n", b".",
              b"EHLO x\r\n", b"\x00", b"\xff" * 600, b"STARTTLS\r\n",
              b"AUTH PLAIN\r\n", b"RSET\r\n"]
    deadline = time.monotonic() + 8
    sessions = 0
    while time.monotonic() < deadline and sessions < 300:
        sessions += 1
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        try:
            s.recv(512)
            for _ in range(rnd.randint(1, 30)):
                if rnd.random() < 0.5:
                    s.sendall(rnd.choice(pieces))
                else:
                    s.sendall(bytes(rnd.getrandbits(8)
                                    for _ in range(rnd.randint(1, 200))))
            if rnd.random() < 0.5:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                             b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST
        except OSError:
            pass
        finally:
            s.close()
    # the server still serves real mail, promptly
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as c:
        c.sendmail("a@example.com", ["carol@example.com"],
                   b"Subject: after the storm\r\n\r\nstill here\r\n")
    srv.wait_maildir("example.com", "carol")
    assert "exited" not in srv.log(), srv.log()[-2000:]
    assert srv.proc.poll() is None
