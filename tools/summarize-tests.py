#!/usr/bin/env python3
"""Add up the results of every test stage in a folder and print the closing
line "N passed, N failed" (with ", N skipped").  Reads meson's testlog.json
files (cmocka executables: the per-case counts from their output; other
tests: one each) and pytest's JUnit XML files.  Exit 1 if anything failed
or if nothing ran at all."""
import json
import os
import re
import sys
import xml.etree.ElementTree as ET


def meson_counts(path):
    p = f = s = 0
    with open(path) as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            t = json.loads(line)
            out = (t.get("stdout") or "") + (t.get("stderr") or "")
            cp = re.search(r"\[  PASSED  \] (\d+) test", out)
            cf = re.search(r"\[  FAILED  \] (\d+) test", out)
            ok = t.get("result") in ("OK", "EXPECTEDFAIL")
            if t.get("result") == "SKIP":
                s += 1
            elif cp or cf:
                p += int(cp.group(1)) if cp else 0
                f += int(cf.group(1)) if cf else 0
                if not ok and not cf:
                    f += 1
            elif ok:
                p += 1
            else:
                f += 1
    return p, f, s


def junit_counts(path):
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    p = f = s = 0
    for su in suites:
        tests = int(su.get("tests", 0))
        fail = int(su.get("failures", 0)) + int(su.get("errors", 0))
        skip = int(su.get("skipped", 0))
        p += tests - fail - skip
        f += fail
        s += skip
    return p, f, s


def main():
    d = sys.argv[1]
    tp = tf = ts = 0
    for name in sorted(os.listdir(d)):
        path = os.path.join(d, name)
        if name.endswith(".json"):
            p, f, s = meson_counts(path)
        elif name.endswith(".xml"):
            p, f, s = junit_counts(path)
        else:
            continue
        print(f"  {name:24s} {p} passed, {f} failed, {s} skipped")
        tp, tf, ts = tp + p, tf + f, ts + s
    if tp + tf == 0:
        tf = 1
        print("  no test ran: counted as a failure")
    print(f"{tp} passed, {tf} failed, {ts} skipped")
    return 1 if tf else 0


if __name__ == "__main__":
    sys.exit(main())
