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


def main():
    r = sys.argv[1]
    pf = rows(os.path.join(r, "source-pf-*.txt"))
    pn = rows(os.path.join(r, "source-pn-*.txt"))
    keys = sorted({(int(d["size"]), int(d["conc"])) for d in pf + pn})
    print(f"{'size':>6} {'sessions':>8} {'postfix msg/s':>14} {'postern msg/s':>14}"
          f" {'ratio':>6} {'postfix ms/msg':>15} {'postern ms/msg':>15}")
    for size, conc in keys:
        a, b = (median(x, "msgs_per_s", size=size, conc=conc)
                for x in (pf, pn))
        ca, cb = (median(x, "server_ms_per_item", size=size, conc=conc)
                  for x in (pf, pn))
        print(f"{size:>6} {conc:>8} {a:>14.0f} {b:>14.0f} {b / a:>6.2f}"
              f" {ca:>15.3f} {cb:>15.3f}")
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
