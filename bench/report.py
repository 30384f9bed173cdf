#!/usr/bin/env python3
"""The summary of `make bench` (bench/README.md): medians, min-max, ratios.

usage: report.py RESULTS_DIR [SECTION...]

Reads the section files RESULTS_DIR/NAME.txt that bench/lib.sh `record`
writes: a first line "# title", then one line per run,
    section=S side=postfix round=2 size=4096 sessions=10 -- msgs_per_s=612.3 ...
Before "--": what identifies the run; after: its figures.  Runs that
differ only in side= and round= form one row per figure; for each side the
median over its rounds with [min-max] and the number of runs counted; a
run whose figures hold a non-number (unfinished=stalled) is listed but not
counted.  With two sides the last column is the ratio of the medians,
second side / first side (postern / postfix).
Sections are printed in the order of SECTION..., else in the order of
RESULTS_DIR/order (one name a line, written by bench/run-bench.sh), else
by name.
"""
import os
import statistics
import sys


def parse(line):
    """(identity dict, figures dict) of one result line, or None."""
    if not line.startswith("section=") or " -- " not in line:
        return None
    head, tail = line.split(" -- ", 1)
    ident = dict(t.split("=", 1) for t in head.split() if "=" in t)
    figs = dict(t.split("=", 1) for t in tail.split() if "=" in t)
    return ident, figs


def number(v):
    try:
        return float(v)
    except ValueError:
        return None


def fmt(v):
    if v != v:
        return "-"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def load(path):
    """Title and rows of one section file, grouped by identity."""
    title, groups = os.path.basename(path)[:-4], {}
    for line in open(path):
        line = line.strip()
        if line.startswith("# "):
            title = line[2:]
            continue
        p = parse(line)
        if p is None:
            continue
        ident, figs = p
        side = ident.pop("side", "-")
        ident.pop("round", None)
        ident.pop("section", None)
        key = " ".join(f"{k}={v}" for k, v in ident.items())
        g = groups.setdefault(key, {})
        g.setdefault(side, []).append(figs)
    return title, groups


def cell(runs, fig):
    """'median [min-max] n' of FIG over the runs that have a number."""
    v = [number(r[fig]) for r in runs if fig in r]
    v = [x for x in v if x is not None]
    bad = sum(1 for r in runs if any(number(x) is None for x in r.values()))
    if not v:
        return float("nan"), "-" + (f" ({bad} unfinished)" if bad else "")
    m = statistics.median(v)
    s = f"{fmt(m)} [{fmt(min(v))}-{fmt(max(v))}] n={len(v)}"
    if bad:
        s += f" +{bad} unfinished"
    return m, s


def section(path):
    title, groups = load(path)
    print(f"\n{title}")
    if not groups:
        print("  (no runs)")
        return
    sides = []
    for g in groups.values():
        for s in g:
            if s not in sides:
                sides.append(s)
    kw = max(len(k) for k in groups)
    rows = []
    for key, g in groups.items():
        figs = []
        for runs in g.values():
            for r in runs:
                for f in r:
                    if f not in figs and number(r[f]) is not None:
                        figs.append(f)
        for i, f in enumerate(figs or ["unfinished"]):
            cells = [cell(g.get(s, []), f) for s in sides]
            ratio = ""
            if len(sides) == 2:
                a, b = cells[0][0], cells[1][0]
                ratio = f"{b / a:.3g}" if a == a and b == b and a else "-"
            rows.append((key if i == 0 else "", f, [c[1] for c in cells],
                         ratio))
    fw = max(len(r[1]) for r in rows)
    cw = [max([len(s)] + [len(r[2][i]) for r in rows])
          for i, s in enumerate(sides)]
    print(f"  {'':<{kw}}  {'':<{fw}}" + "".join(
        f"  {s:>{cw[i]}}" for i, s in enumerate(sides))
        + ("  ratio" if len(sides) == 2 else ""))
    for key, f, cells, ratio in rows:
        print(f"  {key:<{kw}}  {f:<{fw}}" + "".join(
            f"  {c:>{cw[i]}}" for i, c in enumerate(cells))
            + (f"  {ratio:>5}" if len(sides) == 2 else ""))
    for key, g in groups.items():
        for s, runs in g.items():
            for r in runs:
                if "unfinished" in r:
                    print(f"  note: {s} {key}: a run unfinished "
                          f"({r['unfinished']})")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    d = sys.argv[1]
    names = sys.argv[2:]
    if not names and os.path.exists(os.path.join(d, "order")):
        names = [n.strip() for n in open(os.path.join(d, "order"))
                 if n.strip()]
    if not names:
        names = sorted(f[:-4] for f in os.listdir(d) if f.endswith(".txt"))
    for n in names:
        path = os.path.join(d, n + ".txt")
        if os.path.exists(path):
            section(path)
    first = "baseline" if os.environ.get("BENCH_BASELINE_BIN") else "postfix"
    print(f"\nratio = postern / {first} (medians); higher is better for "
          "*_per_s, lower for cpu_*, lat_*, sess_*, *_kib_*, *_mib")


if __name__ == "__main__":
    main()
