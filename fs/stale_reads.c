/* stale_reads.c: a reader holding an older version of a file must not
 * shrink the file for everyone else.
 *
 * A write is committed at close by linking a new file into the store, so a
 * reader that opened the file before keeps reading the version it opened.
 * The kernel, though, knows one inode per path: when that reader reads on
 * to its version's end, the short read is taken as the file's new size and
 * cached for the attribute timeout, and a `cat` of the new, longer version
 * right after returns only the old version's length of it. So ops.c marks
 * the path when a read reaches the end of a version that is no longer the
 * path's file, and the next open of that path first tells the kernel to
 * forget what it cached (fuse_invalidate_path), so that open's reads ask
 * for the size again.
 *
 * The set is small and bounded: a mark lost to a full set costs only what
 * it cost before (a size stale for the attribute timeout).
 */
#include "stale_reads.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define STALE_MAX 64

static char *marked[STALE_MAX];
static atomic_int nmarked; /* lets fs_stale_take skip the lock when empty */
static pthread_mutex_t stale_lock = PTHREAD_MUTEX_INITIALIZER;

void fs_stale_mark(const char *path)
{
    pthread_mutex_lock(&stale_lock);
    int free_slot = -1, found = 0;
    for (int i = 0; i < STALE_MAX && !found; i++) {
        if (!marked[i])
            free_slot = free_slot < 0 ? i : free_slot;
        else if (strcmp(marked[i], path) == 0)
            found = 1;
    }
    if (!found && free_slot >= 0 && (marked[free_slot] = strdup(path)) != NULL)
        atomic_fetch_add(&nmarked, 1);
    pthread_mutex_unlock(&stale_lock);
}

int fs_stale_take(const char *path)
{
    if (atomic_load(&nmarked) == 0)
        return 0;
    int found = 0;
    pthread_mutex_lock(&stale_lock);
    for (int i = 0; i < STALE_MAX && !found; i++) {
        if (marked[i] && strcmp(marked[i], path) == 0) {
            free(marked[i]);
            marked[i] = NULL;
            atomic_fetch_sub(&nmarked, 1);
            found = 1;
        }
    }
    pthread_mutex_unlock(&stale_lock);
    return found;
}
