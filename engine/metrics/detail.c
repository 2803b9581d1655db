/* detail.c: owned copies of an evaluation's per-image detail (detail.h).
 *
 * Design: a copy is one struct whose arrays each come from their own
 * allocation; free releases each (the struct's const pointers are cast back,
 * since only this file allocates them). */
#include "detail.h"

#include <stdlib.h>
#include <string.h>

static void *dup_mem(const void *p, size_t n, int *ok)
{
    if (!p || n == 0)
        return NULL;
    void *q = malloc(n);
    if (!q) {
        *ok = 0;
        return NULL;
    }
    memcpy(q, p, n);
    return q;
}

static const char **dup_strs(const char *const *s, int n, int *ok)
{
    if (!s)
        return NULL;
    const char **out = calloc((size_t)n + 1, sizeof *out);
    if (!out) {
        *ok = 0;
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        out[i] = strdup(s[i] ? s[i] : "");
        if (!out[i])
            *ok = 0;
    }
    return out;
}

static void free_strs(const char *const *s, int n)
{
    if (!s)
        return;
    for (int i = 0; i < n; i++)
        free((void *)s[i]);
    free((void *)s);
}

eng_eval_detail *eng_eval_detail_copy(const eng_eval_detail *src)
{
    eng_eval_detail *d = calloc(1, sizeof *d);
    if (!d || src->n < 0 || src->ncat < 0) {
        free(d);
        return NULL;
    }
    int ok = 1;
    size_t n = (size_t)src->n, nc = (size_t)src->n * (size_t)src->ncat;
    *d = *src;
    d->categories = dup_strs(src->categories, src->ncat, &ok);
    d->paths = dup_strs(src->paths, src->n, &ok);
    d->ids = dup_mem(src->ids, n * sizeof *src->ids, &ok);
    d->widths = dup_mem(src->widths, n * sizeof *src->widths, &ok);
    d->heights = dup_mem(src->heights, n * sizeof *src->heights, &ok);
    d->scores = dup_mem(src->scores, nc * sizeof *src->scores, &ok);
    d->truth = dup_mem(src->truth, nc * sizeof *src->truth, &ok);
    d->gt = dup_mem(src->gt, (size_t)src->ngt * sizeof *src->gt, &ok);
    d->pred = dup_mem(src->pred, (size_t)src->npred * sizeof *src->pred, &ok);
    if (!ok) {
        eng_eval_detail_free(d);
        return NULL;
    }
    return d;
}

void eng_eval_detail_free(eng_eval_detail *d)
{
    if (!d)
        return;
    free_strs(d->categories, d->ncat);
    free_strs(d->paths, d->n);
    free((void *)d->ids);
    free((void *)d->widths);
    free((void *)d->heights);
    free((void *)d->scores);
    free((void *)d->truth);
    free((void *)d->gt);
    free((void *)d->pred);
    free(d);
}
