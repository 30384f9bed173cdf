#!/usr/bin/env python3
"""Ratios Postern/Postfix from the result files of bench/run-bench.sh."""
import glob
import os
import statistics
import sys


def rows(pattern):
    out = []
    for fn in glob.glob(pattern):
        for line in open(fn):
            d = dict(t.split("=", 1) for t in line.split() if "=" in t)
            if "msgs_per_s" in d or "kib_per_conn" in d or \
                    "sessions_per_s" in d:
                out.append(d)
    return out


def median(rs, key, **where):
    """Median of `key` over the rows whose fields equal `where` (ints)."""
    v = [float(d[key]) for d in rs if key in d
         and all(int(d[k]) == x for k, x in where.items())]
    return statistics.median(v) if v else float("nan")


def relay_rows(pattern):
    """Every result line of the relay runs, drained or not."""
    out = []
    for fn in sorted(glob.glob(pattern)):
        for line in open(fn):
            d = dict(t.split("=", 1) for t in line.split() if "=" in t)
            if "label" in d and "conc" in d and "size" in d:
                out.append(d)
    return out


def drained(d):
    """A relay run counts only if smtp-source succeeded, the sink received
    every message and the server's queue was empty at the end (srcload.py
    reports queue_left=-1 when its own deadline passed before it looked)."""
    try:
        return ("unfinished" not in d and int(d["rc"]) == 0
                and int(d["sink_count"]) >= int(d["count"])
                and int(d["queue_left"]) == 0 and "e2e_msgs_per_s" in d)
    except (KeyError, ValueError):
        return False


def why_not(d):
    how = {"stalled": "stalled (no delivery for RELAY_STALL s)",
           "timeout": "timed out (RELAY_MAX_SECONDS)",
           "failed": "run-source.sh failed"}.get(d.get("unfinished"),
                                                  "not drained")
    if d.get("rc", "0") != "0":
        how += f", smtp-source rc={d['rc']}"
    q = d.get("queue_left", "-1")
    q = "queue not checked" if q == "-1" else f"{q} still queued"
    return (f"{d['label']}: {how} after {d.get('secs_total', '?')} s: sink "
            f"got {d.get('sink_count', '?')} of {d.get('count', '?')}, {q}")


def relay(r):
    pf = relay_rows(os.path.join(r, "source-relay-pf-*.txt"))
    pn = relay_rows(os.path.join(r, "source-relay-pn-*.txt"))
    if not pf and not pn:
        return
    okf, okn = ([d for d in x if drained(d)] for x in (pf, pn))
    print(f"\nrelay end to end to smtp-sink (msg/s until the queue is empty;"
          f" only runs that drained)")
    print(f"{'size':>6} {'sessions':>8} {'postfix msg/s':>14}"
          f" {'postern msg/s':>14} {'ratio':>6} {'postfix ms/msg':>15}"
          f" {'postern ms/msg':>15} {'drained pf/pn':>14}")
    for size, conc in sorted({(int(d["size"]), int(d["conc"]))
                              for d in pf + pn}):
        n = [(sum(1 for d in x if int(d["size"]) == size
                  and int(d["conc"]) == conc)) for x in (pf, pn)]
        a, b = (median(x, "e2e_msgs_per_s", size=size, conc=conc)
                for x in (okf, okn))
        ca, cb = (median(x, "server_ms_per_item", size=size, conc=conc)
                  for x in (okf, okn))
        k = [sum(1 for d in x if int(d["size"]) == size
                 and int(d["conc"]) == conc) for x in (okf, okn)]

        def fig(v, w, p):
            return f"{'unfinished':>{w}}" if v != v else f"{v:>{w}.{p}f}"
        ratio = f"{b / a:>6.2f}" if a == a and b == b else f"{'-':>6}"
        print(f"{size:>6} {conc:>8} {fig(a, 14, 0)} {fig(b, 14, 0)} {ratio}"
              f" {fig(ca, 15, 3)} {fig(cb, 15, 3)}"
              f" {f'{k[0]}/{n[0]} {k[1]}/{n[1]}':>14}")
    for d in pf + pn:
        if not drained(d):
            print("  " + why_not(d))


def main():
    r = sys.argv[1]
    pf = rows(os.path.join(r, "source-pf-*.txt"))
    pn = rows(os.path.join(r, "source-pn-*.txt"))
    keys = sorted({(int(d["size"]), int(d["conc"])) for d in pf + pn})
    if keys:
        print(f"{'size':>6} {'sessions':>8} {'postfix msg/s':>14} {'postern msg/s':>14}"
              f" {'ratio':>6} {'postfix ms/msg':>15} {'postern ms/msg':>15}")
    for size, conc in keys:
        a, b = (median(x, "msgs_per_s", size=size, conc=conc)
                for x in (pf, pn))
        ca, cb = (median(x, "server_ms_per_item", size=size, conc=conc)
                  for x in (pf, pn))
        print(f"{size:>6} {conc:>8} {a:>14.0f} {b:>14.0f} {b / a:>6.2f}"
              f" {ca:>15.3f} {cb:>15.3f}")
    relay(r)
    tpf = rows(os.path.join(r, "tls-pf-*.txt"))
    tpn = rows(os.path.join(r, "tls-pn-*.txt"))
    if tpf or tpn:
        print(f"\n{'starttls':>8} {'clients':>8} {'postfix sess/s':>15}"
              f" {'postern sess/s':>15} {'ratio':>6} {'postfix ms/sess':>16}"
              f" {'postern ms/sess':>16}")
    for tls, w in sorted({(int(d["tls"]), int(d["workers"]))
                          for d in tpf + tpn}):
        a, b = (median(x, "sessions_per_s", tls=tls, workers=w)
                for x in (tpf, tpn))
        ca, cb = (median(x, "server_ms_per_item", tls=tls, workers=w)
                  for x in (tpf, tpn))
        print(f"{'yes' if tls else 'no':>8} {w:>8} {a:>15.0f} {b:>15.0f}"
              f" {b / a:>6.2f} {ca:>16.3f} {cb:>16.3f}")
    for d in rows(os.path.join(r, "idle-10k.txt")):
        print(f"postern: {d['conns']} idle connections at once: server tree "
              f"PSS {d['pss_after_mib']} MiB, RSS {d['rss_after_mib']} MiB "
              f"({d['pss_kib_per_conn']} KiB per connection)")
    for label in ("idle-pf", "idle-pn"):
        for d in rows(os.path.join(r, label + ".txt")):
            total = (int(d["pss_after_kib"]) - int(d["pss_before_kib"])) / 1024
            print(f"{label}: {d['conns']} idle connections: "
                  f"{d['pss_kib_per_conn']} KiB PSS per connection "
                  f"(RSS {d['rss_kib_per_conn']}), server tree PSS "
                  f"{int(d['pss_after_kib']) / 1024:.1f} MiB total, "
                  f"+{total:.1f} MiB for the connections")


if __name__ == "__main__":
    main()
