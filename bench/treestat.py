#!/usr/bin/env python3
"""CPU time and memory of a server's whole process tree (bench/README.md).

usage: treestat.py cpu PID   prints cpu_s=SECONDS: user + system time of
                             PID and every descendant, including the
                             children they already reaped (cutime/cstime):
                             Postfix's smtpd processes exit after 100
                             sessions and their CPU time must still count
       treestat.py pids PID  prints PID and its descendants, one line
       treestat.py mem PID   prints procs=N rss_kib=N pss_kib=N: the sum of
                             VmRSS (shared pages counted once per process)
                             and of Pss (each shared page split among the
                             processes that map it: the real total)
Reads /proc only; a process that exits while it is read is skipped.
"""
import os
import sys

HZ = os.sysconf("SC_CLK_TCK")


def stat_fields(pid):
    """The fields of /proc/PID/stat after the command name, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    return s[s.rindex(")") + 2:].split()


def tree(root):
    """ROOT and all its descendants (pids), from the ppid of every task."""
    kids = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            f = stat_fields(name)
            if f is not None:
                kids.setdefault(int(f[1]), []).append(int(name))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, ()))
    return out


def cpu_seconds(root):
    ticks = 0
    for pid in tree(root):
        f = stat_fields(pid)
        if f is not None:
            # stat fields 14-17 (utime stime cutime cstime) are f[11:15]
            ticks += sum(int(x) for x in f[11:15])
    return ticks / HZ


def kib(path, key):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def memory(root):
    pids = tree(root)
    rss = sum(kib(f"/proc/{p}/status", "VmRSS") for p in pids)
    pss = sum(kib(f"/proc/{p}/smaps_rollup", "Pss") for p in pids)
    return len(pids), rss, pss


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("cpu", "mem", "pids") \
            or not sys.argv[2].isdigit():
        sys.exit(__doc__)
    pid = int(sys.argv[2])
    if not os.path.exists(f"/proc/{pid}"):
        sys.exit(f"treestat: no process {pid}")
    if sys.argv[1] == "pids":
        print(" ".join(str(p) for p in tree(pid)))
    elif sys.argv[1] == "cpu":
        print(f"cpu_s={cpu_seconds(pid):.2f}")
    else:
        n, rss, pss = memory(pid)
        print(f"procs={n} rss_kib={rss} pss_kib={pss}")


if __name__ == "__main__":
    main()
