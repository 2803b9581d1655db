/* stale_reads.h: paths whose size the kernel may have cached too small
 * because a reader of an older version read to its end (stale_reads.c). */
#ifndef VFS_STALE_READS_H
#define VFS_STALE_READS_H

/* Remembers that path's cached size may be wrong. */
void fs_stale_mark(const char *path);

/* 1 (and forgets it) when path was marked since it was last taken. */
int fs_stale_take(const char *path);

#endif
