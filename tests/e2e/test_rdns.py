"""Reverse DNS of the client, forward-confirmed (New SMTP log line and
Received field), with answers from resolver.local_data; no network."""
import socket

import pytest

EXTRA = """resolver = { local_data = [
  "2.0.0.127.in-addr.arpa. PTR client.test.",
  "client.test. A 127.0.0.2",
  "3.0.0.127.in-addr.arpa. PTR liar.test.",
  "liar.test. A 127.0.0.9"
]; };"""


def banner_from(port, source):
    s = socket.socket()
    s.settimeout(10)
    try:
        s.bind((source, 0))
    except OSError:
        pytest.skip(f"cannot bind {source}")
    s.connect(("127.0.0.1", port))
    line = s.recv(512)
    s.sendall(b"QUIT\r\n")
    s.recv(512)
    s.close()
    return line


def test_forward_confirmed_name_is_logged_as_verified(server_factory):
    srv = server_factory(extra=EXTRA).start()
    assert banner_from(srv.port, "127.0.0.2").startswith(b"220 ")
    srv.wait_log(r"New SMTP ICID \d+ interface inbound \(127\.0\.0\.1:\d+\) "
                 r"address 127\.0\.0\.2 reverse dns host client\.test "
                 r"verified yes$")


def test_name_that_does_not_map_back_is_not_verified(server_factory):
    srv = server_factory(extra=EXTRA).start()
    assert banner_from(srv.port, "127.0.0.3").startswith(b"220 ")
    srv.wait_log(r"address 127\.0\.0\.3 reverse dns host liar\.test "
                 r"verified no$")


def test_address_without_ptr_is_unknown(server_factory):
    srv = server_factory(extra=EXTRA).start()
    assert banner_from(srv.port, "127.0.0.4").startswith(b"220 ")
    srv.wait_log(r"address 127\.0\.0\.4 reverse dns host unknown "
                 r"verified no$")


def test_received_field_names_only_a_verified_host(server_factory):
    import smtplib
    srv = server_factory(extra=EXTRA).start()
    for src, user in (("127.0.0.2", "bob"), ("127.0.0.3", "carol")):
        with smtplib.SMTP("127.0.0.1", srv.port, timeout=10,
                          source_address=(src, 0)) as s:
            s.sendmail("a@example.com", [f"{user}@example.com"],
                       b"Subject: rdns\r\n\r\nbody\r\n")
    bob = open(srv.wait_maildir("example.com", "bob")[0]).read()
    carol = open(srv.wait_maildir("example.com", "carol")[0]).read()
    assert "(client.test [127.0.0.2])" in bob
    assert "(unknown [127.0.0.3])" in carol
