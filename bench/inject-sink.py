#!/usr/bin/python3
"""A minimal SMTP sink with STARTTLS for the injection benchmark
(bench-inject.sh): smtp-sink has no TLS, and the STARTTLS-vs-plaintext
figure of `postern send` needs a peer that offers it.  asyncio, one
process per CPU on one SO_REUSEPORT port, accepts everything, stores
nothing.  Usage: inject-sink.py PORT CERT KEY   (loopback only)"""
import asyncio
import os
import signal
import socket
import ssl
import sys

EHLO = (b"250-sink.bench\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
        b"250-SIZE 100000000\r\n")


async def session(reader, writer, ctx):
    """Replies are gathered while pipelined commands are buffered and
    sent in one write, as Postfix's smtpd does (one TLS record, not one
    per reply)."""
    tls = False
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP,
                                               socket.TCP_NODELAY, 1)
    out = bytearray(b"220 sink.bench ESMTP\r\n")
    while True:
        if out and not reader._buffer:
            writer.write(bytes(out))
            out.clear()
            await writer.drain()
        line = await reader.readline()
        if not line:
            break
        verb = line[:4].upper()
        if verb in (b"EHLO", b"HELO"):
            out += EHLO + (b"250 STARTTLS\r\n" if not tls else
                           b"250 ENHANCEDSTATUSCODES\r\n")
        elif verb == b"STAR" and not tls:
            writer.write(bytes(out) + b"220 2.0.0 Ready to start TLS\r\n")
            out.clear()
            await writer.drain()
            await writer.start_tls(ctx)
            tls = True
        elif verb == b"DATA":
            writer.write(bytes(out) + b"354 go ahead\r\n")
            out.clear()
            await writer.drain()
            await reader.readuntil(b"\r\n.\r\n")
            out += b"250 2.0.0 Ok\r\n"
        elif verb == b"QUIT":
            writer.write(bytes(out) + b"221 2.0.0 Bye\r\n")
            await writer.drain()
            break
        else:
            out += b"250 2.0.0 Ok\r\n"
    writer.close()


async def serve(sock, ctx):
    srv = await asyncio.start_server(
        lambda r, w: session(r, w, ctx), sock=sock, limit=1 << 20)
    async with srv:
        await srv.serve_forever()


def main():
    port, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(1024)
    kids = []
    for _ in range(max(1, (os.cpu_count() or 1)) - 1):
        pid = os.fork()
        if pid == 0:
            kids = None
            break
        kids.append(pid)
    if kids:
        def stop(signo, frame):
            for k in kids:
                os.kill(k, signal.SIGTERM)
            os._exit(0)
        signal.signal(signal.SIGTERM, stop)
    try:
        asyncio.run(serve(s, ctx))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
