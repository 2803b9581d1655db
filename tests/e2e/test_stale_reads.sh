# test_stale_reads.sh: a file replaced while an older reader holds it open
# (writes are committed at close, so that reader keeps its version) is read
# whole by the next reader. The kernel keeps one inode per path, and before
# fs/ops.c's fix it took the old version's size from that reader twice
# over: from a GETATTR answered through its handle, and from its short read
# at its version's end (through the page cache); a read right after then
# stopped at the old length (10 times in 10, each case). Now a reader's
# GETATTR answers for the file its path names, and readers use direct_io.
source "$(dirname "$0")/lib.sh"

vfs_mount
mkdir -p "$MNT/datasets/s/images"
D=$MNT/datasets/s/images

# CASE: "fstat" (the old reader reads at its end: the kernel first asks for
# the size through that reader's handle) or "short" (the path's size is
# fresh, then the old reader reads on to its end).
# Prints how many of 10 replacements a new reader saw whole, and what the
# old reader read.
replace_under_reader() {
    python3 - "$D" "$1" <<'PY'
import os, sys
d, case = sys.argv[1], sys.argv[2]
p = os.path.join(d, case + ".bin")
whole, old = 0, set()
for t in range(10):
    v2 = bytes([ord("b") + t]) * 300000
    open(p, "wb").write(b"a" * 5000)
    r = os.open(p, os.O_RDONLY)
    os.read(r, 100)
    with open(p, "wb") as w:
        w.write(v2)
    if case == "short":
        os.stat(p)
        old.add(os.pread(r, 65536, 4096).decode())
    else:
        old.add(os.pread(r, 65536, 5000).decode())
    os.close(r)
    f = os.open(p, os.O_RDONLY)
    # one read(2) as large as the file, and its size as ls -l shows it
    whole += os.read(f, 1 << 20) == v2 and os.fstat(f).st_size == len(v2)
    os.close(f)
print(whole, ",".join(sorted(x[:1] + str(len(x)) for x in old)))
PY
}

check_eq "after the old reader's fstat, the next reader gets the new version whole" \
    "10 0" "$(replace_under_reader fstat)"
check_eq "after the old reader's short read, the next reader gets the new version whole" \
    "10 a904" "$(replace_under_reader short)"
# the old reader itself kept its version (904 bytes of "a" from offset 4096,
# nothing past 5000): the snapshot rule of conform.py
check "ls -l shows the new size" sh -c "ls -l '$D/short.bin' | grep -q ' 300000 '"
check "the daemon still answers" test -f "$MNT/README"
vfs_umount
vfs_done
