# test_plain_folder.sh: what pjdfstest found where a dataset's images/ did
# not behave as a plain folder (issue 10 item 7): files and folders belong to
# the user who made them, with exactly the mode asked for, and keep their
# owner through truncate(1) (mkdir/00, open/00, open/26, ftruncate/05); a
# file keeps its inode number over time and through rename (rename/09, 10);
# a new file has a link count of 1 at once (link/00).
# The daemon runs as root under umask 022; the other user is nobody.
source "$(dirname "$0")/lib.sh"

if [ "$(id -u)" != 0 ] || ! id nobody >/dev/null 2>&1 || ! command -v runuser >/dev/null; then
    echo "skipped: needs root, the user nobody and runuser"
    exit 77
fi
chmod 755 "$T" # nobody must reach the mount point
as_nobody() { runuser -u nobody -- "$@"; }
owner() { stat -c '%U %a' "$1"; }
# mk_dir PATH MODE and mk_file PATH MODE: under umask 0, so the mode asked
# for is the mode given (coreutils' mkdir -m would chmod afterwards)
mk_dir() { python3 -c 'import os, sys; os.umask(0); os.mkdir(sys.argv[1], int(sys.argv[2], 8))' "$@"; }
mk_file() {
    python3 -c 'import os, sys; os.umask(0); os.close(os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY, int(sys.argv[2], 8)))' "$@"
}

umask 022
vfs_mount -o allow_other,default_permissions
I=$MNT/datasets/d/images
mkdir -p "$I"
chmod 777 "$I"

mk_dir "$I/r777" 0777
check_eq "root's mkdir 0777 under umask 0 (the daemon's umask is 022): 0777" "root 777" \
    "$(owner "$I/r777")"
mk_file "$I/r000" 0000
check_eq "root's file created with mode 0: 000, not 400" "root 0" "$(owner "$I/r000")"
mk_file "$I/r151" 0151
check_eq "root's file created with mode 0151: 151" "root 151" "$(owner "$I/r151")"

check "nobody may mkdir in a 0777 folder" as_nobody python3 -c \
    'import os, sys; os.umask(0); os.mkdir(sys.argv[1], 0o751)' "$I/n"
check_eq "nobody's folder is nobody's, mode 751" "nobody 751" "$(owner "$I/n")"
check_eq "in the store too" "nobody 751" "$(owner "$STORE/datasets/d/images/n")"
check "nobody may create a file in it" as_nobody sh -c "printf 0123456789 > '$I/n/f.bin'"
check_eq "nobody's file is nobody's" "nobody 644" "$(owner "$I/n/f.bin")"
check "nobody truncates it" as_nobody truncate -s 3 "$I/n/f.bin"
check_eq "truncate keeps the owner and the mode" "nobody 644" "$(owner "$I/n/f.bin")"
check "and nobody may truncate it again" as_nobody truncate -s 5 "$I/n/f.bin"
check_eq "size after the second truncate" 5 "$(stat -c %s "$I/n/f.bin")"
truncate -s 2 "$I/n/f.bin"
check_eq "a truncate by root keeps the owner too" "nobody 644" "$(owner "$I/n/f.bin")"
echo data > "$I/rootfile.bin"
chmod 666 "$I/rootfile.bin"
check "nobody may write over root's 0666 file" as_nobody sh -c "echo x > '$I/rootfile.bin'"
# the kernel may show the replaced file's cached owner and inode for up to
# the 1 s attribute timeout (a write invalidates only size and times)
sleep 1.1
check_eq "which becomes nobody's (file:// urls in it are read with its owner's rights)" \
    "nobody 666" "$(owner "$I/rootfile.bin")"
check "nobody may still remove the file and the folder" as_nobody rm -r "$I/n"

# a set-group-ID folder passes its group (and, to folders, the bit) on
mkdir "$I/g"
chgrp "$(id -gn nobody)" "$I/g" 2>/dev/null || chgrp 65534 "$I/g"
chmod 2777 "$I/g"
G=$(stat -c %g "$I/g")
mk_dir "$I/g/sub" 0755
check_eq "root's folder in a set-group-ID folder: its group and the bit" "$G 2755" \
    "$(stat -c '%g %a' "$I/g/sub")"
mk_file "$I/g/f" 0644
check_eq "root's file in a set-group-ID folder: its group" "$G 644" "$(stat -c '%g %a' "$I/g/f")"

# inode numbers: the store's, stable past the 1 s entry timeout and
# through rename (libfuse's own numbers changed whenever the kernel forgot
# a name)
mkdir "$I/a" "$I/b"
echo one > "$I/a/f.bin"
ino=$(stat -c %i "$I/a/f.bin")
check_eq "the inode shown is the store file's" "$(stat -c %i "$STORE/datasets/d/images/a/f.bin")" "$ino"
sleep 1.5
check_eq "the same inode after the entry timeout" "$ino" "$(stat -c %i "$I/a/f.bin")"
mv "$I/a/f.bin" "$I/b/g.bin"
check_eq "the same inode after a rename to another folder" "$ino" "$(stat -c %i "$I/b/g.bin")"
sleep 1.5
check_eq "and after the entry timeout" "$ino" "$(stat -c %i "$I/b/g.bin")"
dino=$(stat -c %i "$I/a")
sleep 1.5
check_eq "a folder keeps its inode too" "$dino" "$(stat -c %i "$I/a")"
check_eq "ls -i lists the inode stat shows" "$ino" "$(ls -i "$I/b" | awk '$2 == "g.bin" {print $1}')"
check "README has an inode number" test "$(stat -c %i "$MNT/README")" -ne 0

# link counts: a new file has one name from its create on (the kernel kept
# the create's answer, nlink 0 of the unnamed temp, for 1 s); unlinked while
# open, none
check_eq "nlink of a new file: while open, right after close, after unlink while open" "1 1 1 0" \
    "$(python3 -c 'import os, sys
p = sys.argv[1]
fd = os.open(p, os.O_CREAT | os.O_WRONLY, 0o644)
a = os.fstat(fd).st_nlink
b = os.stat(p).st_nlink
os.close(fd)
c = os.stat(p).st_nlink
fd = os.open(p, os.O_WRONLY)
os.unlink(p)
d = os.fstat(fd).st_nlink
os.close(fd)
print(a, b, c, d)' "$I/nl.bin")"

check "the daemon still answers" test -f "$MNT/datasets/d/status"
vfs_umount
vfs_done
