#!/usr/bin/env python3
"""conform.py: the same fixed-seed random mix of file operations on a folder
of the mount and on a plain folder, compared result by result.

usage: conform.py MOUNT_DIR PLAIN_DIR [SEED] [OPS] [READERS]

Each operation runs on both folders; the random choices never depend on a
result, so both sides see the same sequence. Compared: the errno of every
call, what every read returns, sizes and modes from stat/fstat, mtimes
after utimens, listings, and at every checkpoint (all files closed) the
tree with a SHA-256 of every file. Reader threads read the mount's files
meanwhile; any error but ENOENT (and ESTALE, gone-folder below) is a failure.

Differences that are product rules are allowed, counted and printed:
  listing-new   a new file is listed only from its first close: it has no
                name in the store before (a refused write leaves nothing)
  gone-folder   fstat of a file unlinked while open whose folder was then
                removed answers ESTALE: libfuse's path-based API names such a
                file .fuse_hidden* inside that folder, and the folder is gone
                (libfuse's own passthrough refuses the rmdir instead)
  snapshot      a reader that opened a file before a writer did keeps the
                version it opened: writes are committed as a whole at close
                (rename), so readers see the old or the new file, never a mix
  reader-size   only with reader threads: a stat or fstat size may be one a
                reader's snapshot had (the kernel takes a short read as the
                end of the file and caches that size for the 1 s attribute
                timeout); contents at every checkpoint are still compared
                strictly. Run without readers, every size must agree.
Exit status: 0 when only those differ, 1 otherwise (each difference printed).
"""
import errno
import hashlib
import os
import random
import stat
import sys
import threading

MNT, PLAIN = sys.argv[1], sys.argv[2]
SEED = int(sys.argv[3]) if len(sys.argv) > 3 else 10
NOPS = int(sys.argv[4]) if len(sys.argv) > 4 else 3000
NREADERS = int(sys.argv[5]) if len(sys.argv) > 5 else 2

rng = random.Random(SEED)
FILES = ["f%d" % i for i in range(6)] + ["d0/g%d" % i for i in range(3)] + ["d1/h0"]
DIRS = ["d0", "d1", "d0/e"]
diffs = []
allowed = {}
counts = {}


def allow(rule):
    allowed[rule] = allowed.get(rule, 0) + 1


def run(fn):
    try:
        return ("ok", fn())
    except OSError as e:
        return ("err", errno.errorcode.get(e.errno, str(e.errno)))


class Side:
    def __init__(self, root):
        self.root = root
        self.fds = {}  # slot -> fd

    def p(self, name):
        return os.path.join(self.root, name)


A, B = Side(MNT), Side(PLAIN)
slots = {}  # slot -> (name, mode "r"/"w", wgen of the name at open)
wgen = {}  # name -> count of writer opens and truncates by path
writers_open = {}  # name -> number of open writer slots (the name they were opened under)
next_slot = [0]


TRACE = os.environ.get("CONFORM_TRACE")
cur = [""]


def record(i, what, ra, rb, rule=None):
    if TRACE:
        print("%d %s %s: %r %r" % (i, what, cur[0], ra, rb), file=sys.stderr)
    counts[what] = counts.get(what, 0) + 1
    if ra == rb:
        return
    if rule:
        allow(rule)
        return
    diffs.append("op %d %s: mount %r, plain %r" % (i, what, ra, rb))


def both(i, what, fa, fb, rule=None):
    ra, rb = run(fa), run(fb)
    record(i, what, ra, rb, rule)
    return ra, rb


def data_for(n):
    return bytes(rng.getrandbits(8) for _ in range(n))


def listing(side, d):
    try:
        return sorted(os.listdir(side.p(d)))
    except OSError as e:
        return errno.errorcode.get(e.errno)


def tree(side):
    out = {}
    for dp, dns, fns in os.walk(side.root):
        rel = os.path.relpath(dp, side.root)
        for f in fns:
            p = os.path.join(dp, f)
            st = os.lstat(p)
            with open(p, "rb") as fh:
                h = hashlib.sha256(fh.read()).hexdigest()[:16]
            out[os.path.normpath(os.path.join(rel, f))] = (st.st_size, oct(st.st_mode & 0o777), h)
        for dn in dns:
            out[os.path.normpath(os.path.join(rel, dn)) + "/"] = "dir"
    return out


def close_slot(i, s):
    name, mode, _ = slots.pop(s)
    both(i, "close", lambda: os.close(A.fds.pop(s)), lambda: os.close(B.fds.pop(s)))
    if mode == "w" and name is not None:
        writers_open[name] -= 1


def checkpoint(i):
    for s in list(slots):
        close_slot(i, s)
    ta, tb = tree(A), tree(B)
    if ta != tb:
        for k in sorted(set(ta) | set(tb)):
            if ta.get(k) != tb.get(k):
                diffs.append("checkpoint at op %d: %s: mount %r, plain %r" % (i, k, ta.get(k), tb.get(k)))
    counts["checkpoint"] = counts.get("checkpoint", 0) + 1


stop = threading.Event()
reader_errors = []
reader_reads = [0]


def reader(seed):
    r = random.Random(seed)
    while not stop.is_set():
        name = r.choice(FILES)
        try:
            with open(os.path.join(MNT, name), "rb") as fh:
                fh.read()
            reader_reads[0] += 1
        except OSError as e:
            if e.errno == errno.ESTALE:
                # gone-folder (above): the reader's file was unlinked while it
                # held it open and its folder removed before the read
                allow("gone-folder")
            elif e.errno not in (errno.ENOENT, errno.EISDIR):
                reader_errors.append("%s: %s" % (name, e))


threads = [threading.Thread(target=reader, args=(SEED * 100 + k,)) for k in range(NREADERS)]
for t in threads:
    t.start()

for i in range(NOPS):
    op = rng.choices(
        ["create", "open_rw", "open_r", "pwrite", "pread", "ftruncate", "truncate", "close",
         "rename", "unlink", "mkdir", "rmdir", "chmod", "utimens", "fstat", "stat", "list"],
        weights=[8, 4, 5, 14, 8, 3, 2, 8, 5, 4, 2, 2, 2, 2, 4, 4, 3])[0]
    name = rng.choice(FILES)
    cur[0] = name
    busy = [sl for sl in slots.values() if sl[0] == name]
    if op in ("create", "open_rw") and busy or op == "open_r" and any(sl[1] == "w" for sl in busy):
        op = "stat"  # one writer per file, and no reader beside it (private-writer)
    if op in ("create", "open_rw", "open_r"):
        if op == "create":
            flags = os.O_RDWR | os.O_CREAT | rng.choice([0, os.O_TRUNC, os.O_EXCL])
        else:
            flags = os.O_RDWR if op == "open_rw" else os.O_RDONLY
        mode = rng.choice([0o644, 0o600, 0o640])
        fa = run(lambda: os.open(A.p(name), flags, mode))
        fb = run(lambda: os.open(B.p(name), flags, mode))
        record(i, op, fa if fa[0] == "err" else "ok", fb if fb[0] == "err" else "ok")
        if fa[0] == "ok" and fb[0] == "ok":
            s = next_slot[0]
            next_slot[0] += 1
            A.fds[s], B.fds[s] = fa[1], fb[1]
            w = "r" if op == "open_r" else "w"
            slots[s] = (name, w, wgen.get(name, 0) + (1 if w == "w" else 0))
            if w == "w":
                wgen[name] = wgen.get(name, 0) + 1
                writers_open[name] = writers_open.get(name, 0) + 1
        else:
            for f in (fa, fb):
                if f[0] == "ok":
                    os.close(f[1])
    elif op in ("pwrite", "pread", "ftruncate", "fstat", "close") and slots:
        s = rng.choice(sorted(slots))
        nm, mode, g = slots[s]
        cur[0] = "slot%d(%s,%s)" % (s, nm, mode)
        if op == "pwrite":
            off = rng.randrange(0, 40000)
            data = data_for(rng.randrange(1, 9000))
            both(i, "pwrite", lambda: os.pwrite(A.fds[s], data, off),
                 lambda: os.pwrite(B.fds[s], data, off))
        elif op == "pread":
            off, n = rng.randrange(0, 45000), rng.randrange(1, 20000)
            snap = mode == "r" and wgen.get(nm, 0) != g
            both(i, "pread", lambda: hashlib.sha256(os.pread(A.fds[s], n, off)).hexdigest()[:16],
                 lambda: hashlib.sha256(os.pread(B.fds[s], n, off)).hexdigest()[:16],
                 "snapshot" if snap else None)
        elif op == "ftruncate":
            n = rng.randrange(0, 30000)
            both(i, "ftruncate", lambda: os.ftruncate(A.fds[s], n), lambda: os.ftruncate(B.fds[s], n))
        elif op == "fstat":
            snap = mode == "r" and wgen.get(nm, 0) != g
            ra = run(lambda: os.fstat(A.fds[s]).st_size)
            rb = run(lambda: os.fstat(B.fds[s]).st_size)
            gone = nm is None and ra == ("err", "ESTALE")
            sized = NREADERS > 0 and ra[0] == rb[0] == "ok"
            record(i, "fstat", ra, rb,
                   "snapshot" if snap else "gone-folder" if gone else "reader-size" if sized else None)
        else:
            close_slot(i, s)
    elif op == "truncate":
        n = rng.randrange(0, 30000)
        wgen[name] = wgen.get(name, 0) + 1
        both(i, "truncate", lambda: os.truncate(A.p(name), n), lambda: os.truncate(B.p(name), n))
    elif op == "rename":
        to = rng.choice(FILES)
        cur[0] = name + " -> " + to
        ra, rb = both(i, "rename", lambda: os.rename(A.p(name), A.p(to)),
                      lambda: os.rename(B.p(name), B.p(to)))
        if rb[0] == "ok" and name != to:
            # open fds follow their file; the replaced file's fds have no name
            for sl, (nm, w, g) in list(slots.items()):
                if nm == to:
                    slots[sl] = (None, w, g)
                    if w == "w":
                        writers_open[to] -= 1
            for sl, (nm, w, g) in list(slots.items()):
                if nm == name:
                    slots[sl] = (to, w, g)
                    if w == "w":
                        writers_open[name] -= 1
                        writers_open[to] = writers_open.get(to, 0) + 1
            wgen[to] = wgen.get(to, 0) + 1
            wgen[name] = wgen.get(name, 0) + 1
    elif op == "unlink":
        ra, rb = both(i, "unlink", lambda: os.unlink(A.p(name)), lambda: os.unlink(B.p(name)))
        if rb[0] == "ok":
            for sl, (nm, w, g) in list(slots.items()):
                if nm == name:
                    slots[sl] = (None, w, g)
                    if w == "w":
                        writers_open[name] -= 1
    elif op == "mkdir":
        d = rng.choice(DIRS)
        both(i, "mkdir", lambda: os.mkdir(A.p(d)), lambda: os.mkdir(B.p(d)))
    elif op == "rmdir":
        d = rng.choice(DIRS)
        both(i, "rmdir", lambda: os.rmdir(A.p(d)), lambda: os.rmdir(B.p(d)))
    elif op == "chmod":
        m = rng.choice([0o600, 0o640, 0o644, 0o400])
        both(i, "chmod", lambda: os.chmod(A.p(name), m), lambda: os.chmod(B.p(name), m))
        both(i, "chmod-stat", lambda: oct(os.stat(A.p(name)).st_mode & 0o777),
             lambda: oct(os.stat(B.p(name)).st_mode & 0o777))
    elif op == "utimens":
        t = (1600000000 + rng.randrange(10**6), 1600000000 + rng.randrange(10**6))
        both(i, "utimens", lambda: os.utime(A.p(name), t), lambda: os.utime(B.p(name), t))
        both(i, "utimens-stat", lambda: int(os.stat(A.p(name)).st_mtime),
             lambda: int(os.stat(B.p(name)).st_mtime))
    elif op == "stat":
        ra = run(lambda: (os.stat(A.p(name)).st_size, stat.S_IFMT(os.stat(A.p(name)).st_mode)))
        rb = run(lambda: (os.stat(B.p(name)).st_size, stat.S_IFMT(os.stat(B.p(name)).st_mode)))
        sized = NREADERS > 0 and ra[0] == rb[0] == "ok" and ra[1][1] == rb[1][1]
        record(i, "stat", ra, rb, "reader-size" if sized else None)
    elif op == "list":
        d = rng.choice(["."] + DIRS)
        la, lb = listing(A, d), listing(B, d)
        counts["list"] = counts.get("list", 0) + 1
        if la != lb:
            open_new = {os.path.basename(n) for n in writers_open if writers_open[n] > 0}
            if isinstance(la, list) and isinstance(lb, list) and set(la) <= set(lb) and \
                    set(lb) - set(la) <= open_new:
                allow("listing-new")
            else:
                diffs.append("op %d list %s: mount %r, plain %r" % (i, d, la, lb))
    if i % 250 == 249:
        checkpoint(i)

checkpoint(NOPS)
stop.set()
for t in threads:
    t.join()
print("ops %d (seed %d): %s" % (NOPS, SEED, " ".join("%s=%d" % kv for kv in sorted(counts.items()))))
print("allowed differences (product rules): %s" % (allowed or "none"))
print("reader threads: %d reads, %d errors" % (reader_reads[0], len(reader_errors)))
for e in reader_errors[:10]:
    print("reader error:", e)
for d in diffs[:40]:
    print("DIFF", d)
print("%d differences" % len(diffs))
sys.exit(1 if diffs or reader_errors else 0)
