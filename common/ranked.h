/* ranked.h: scores best first, equal scores by their index. Every list a
 * user reads best first (predict/ answers, the worker's shards, a report's
 * predictions, a detector's matching to ground truth) is put in this one
 * order, so equal scores always come out the same way. */
#ifndef VFS_RANKED_H
#define VFS_RANKED_H

#include <stddef.h>
#include <stdlib.h>

typedef struct ranked {
    double score; /* a float score widens exactly, keeping its order */
    int index;
} ranked;

static inline int ranked_cmp(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->score != y->score)
        return x->score < y->score ? 1 : -1;
    return (x->index > y->index) - (x->index < y->index);
}

static inline void ranked_sort(ranked *r, size_t n) { qsort(r, n, sizeof *r, ranked_cmp); }

#endif
