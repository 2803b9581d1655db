/* report.c: the coco_report object: accessors, the one-line status of SPEC
 * section 3, the training rule switch and status.json.
 * Design: status.json is written by a small JSON writer of ours rather than
 * a tree library, so it can replace invalid UTF-8 from user names by U+FFFD
 * (jq rejects invalid UTF-8) and stream large problem lists cheaply. */
#include "coco_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void coco_report_free(coco_report *r)
{
    if (!r)
        return;
    coco_plist_free(&r->problems);
    free(r->image_status);
    free(r->cat_images);
    free(r->cat_ids);
    free(r->cat_names);
    coco_arena_free(&r->arena);
    free(r);
}

void coco_report_update_state(coco_report *r)
{
    r->sum.errors = r->problems.total_err;
    r->sum.warnings = r->problems.total_warn;
    if (r->sum.errors)
        r->sum.state = COCO_STATE_INVALID;
    else if (r->sum.images_fetching)
        r->sum.state = COCO_STATE_FETCHING;
    else if (r->sum.images_missing)
        r->sum.state = COCO_STATE_INCOMPLETE;
    else
        r->sum.state = COCO_STATE_READY;
}

const coco_summary *coco_report_summary(const coco_report *r) { return r ? &r->sum : NULL; }

const coco_problem *coco_report_problems(const coco_report *r, coco_severity sev, size_t *n)
{
    if (!r) {
        if (n)
            *n = 0;
        return NULL;
    }
    if (n)
        *n = sev == COCO_ERROR ? r->problems.n_err : r->problems.n_warn;
    return sev == COCO_ERROR ? r->problems.err : r->problems.warn;
}

coco_image_status coco_report_image_status(const coco_report *r, size_t i)
{
    if (!r || i >= r->n_images)
        return COCO_IMAGE_INVALID;
    return (coco_image_status)r->image_status[i];
}

size_t coco_report_category_images(const coco_report *r, size_t i)
{
    return r && i < r->n_cats ? r->cat_images[i] : 0;
}

size_t coco_report_apply_training_rules(coco_report *r)
{
    if (!r || r->training_applied)
        return 0;
    r->training_applied = 1;
    coco_plist *l = &r->problems;
    size_t kept = 0;
    for (size_t i = 0; i < l->n_warn; i++) {
        coco_problem p = l->warn[i];
        if (!p.training_only) {
            l->warn[kept++] = p;
            continue;
        }
        p.severity = COCO_ERROR;
        /* append to the error list within its cap */
        if (l->n_err < COCO_MAX_STORED_PROBLEMS) {
            if (l->n_err == l->cap_err) {
                size_t nc = l->cap_err ? l->cap_err * 2 : 16;
                if (nc > COCO_MAX_STORED_PROBLEMS)
                    nc = COCO_MAX_STORED_PROBLEMS;
                coco_problem *na = realloc(l->err, nc * sizeof *na);
                if (na) {
                    l->err = na;
                    l->cap_err = nc;
                }
            }
            if (l->n_err < l->cap_err)
                l->err[l->n_err++] = p;
        }
    }
    l->n_warn = kept;
    l->total_warn -= r->training_total;
    l->total_err += r->training_total;
    coco_report_update_state(r);
    return r->training_total;
}

static const char *kind_name(coco_kind k)
{
    return k == COCO_KIND_DETECTION ? "detection" : "classification";
}

const char *coco_kind_name(coco_kind kind)
{
    return kind == COCO_KIND_UNKNOWN ? "unknown" : kind_name(kind);
}

const char *coco_units_name(coco_box_units u)
{
    switch (u) {
    case COCO_UNITS_RELATIVE: return "relative";
    case COCO_UNITS_PIXELS: return "pixels";
    case COCO_UNITS_NONE: break;
    }
    return "none";
}

const char *coco_state_name(coco_state s)
{
    switch (s) {
    case COCO_STATE_READY: return "ready";
    case COCO_STATE_INVALID: return "invalid";
    case COCO_STATE_INCOMPLETE: return "incomplete";
    case COCO_STATE_FETCHING: return "fetching";
    }
    return "invalid";
}

size_t coco_report_status_line(const coco_report *r, char *buf, size_t n)
{
    char tmp[1];
    if (!buf || !n) {
        buf = tmp;
        n = 1;
    }
    if (!r)
        return (size_t)snprintf(buf, n, "invalid: no report");
    const coco_summary *s = &r->sum;
    int k = 0;
    switch (s->state) {
    case COCO_STATE_INVALID: {
        const coco_problem *p = r->problems.n_err ? &r->problems.err[0] : NULL;
        size_t more = s->errors ? s->errors - 1 : 0;
        char extra[48] = "";
        if (more)
            snprintf(extra, sizeof extra, " (+%zu more)", more);
        if (p)
            k = snprintf(buf, n, "invalid: %s: %s%s", coco_code_name(p->code), p->message, extra);
        else
            k = snprintf(buf, n, "invalid: %zu errors", s->errors);
        break;
    }
    case COCO_STATE_FETCHING:
        k = snprintf(buf, n, "fetching: %zu/%zu",
                     s->images - s->images_fetching - s->images_missing, s->images);
        break;
    case COCO_STATE_INCOMPLETE:
        k = snprintf(buf, n, "incomplete: %zu images missing", s->images_missing);
        break;
    case COCO_STATE_READY:
        k = snprintf(buf, n, "ready: %zu images, %zu categories, %zu boxes (%s)", s->images,
                     s->categories, s->boxes, kind_name(s->kind));
        break;
    }
    /* one line: messages never hold newlines, but be sure */
    for (char *q = buf; *q; q++)
        if (*q == '\n' || *q == '\r')
            *q = ' ';
    return k > 0 ? (size_t)k : 0;
}

/* ---- JSON writer ------------------------------------------------------------ */

typedef struct sb {
    char *p;
    size_t n, cap;
    int oom;
} sb;

static void sb_put(sb *b, const char *s, size_t len)
{
    if (b->oom)
        return;
    if (b->n + len + 1 > b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 4096;
        while (nc < b->n + len + 1)
            nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->n, s, len);
    b->n += len;
    b->p[b->n] = 0;
}

static void sb_puts(sb *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_printf(sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sb *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (k > 0)
        sb_put(b, tmp, (size_t)k < sizeof tmp ? (size_t)k : sizeof tmp - 1);
}

/* Length of a valid UTF-8 sequence at s (n bytes left), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80)
        return 1;
    if ((c & 0xe0) == 0xc0) {
        len = 2;
        min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        len = 3;
        min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
        len = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    unsigned cp = c & (0x7f >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

static void sb_str(sb *b, const char *s)
{
    sb_put(b, "\"", 1);
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    size_t n = strlen((const char *)p);
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            sb_put(b, e, 2);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            sb_printf(b, "\\u%04x", c);
            i++;
        } else if (c < 0x80) {
            /* copy a run of plain ASCII at once */
            size_t j = i;
            while (j < n && p[j] >= 0x20 && p[j] < 0x7f && p[j] != '"' && p[j] != '\\')
                j++;
            sb_put(b, (const char *)p + i, j - i);
            i = j;
        } else {
            size_t l = utf8_len(p + i, n - i);
            if (l) {
                sb_put(b, (const char *)p + i, l);
                i += l;
            } else {
                sb_puts(b, "\\ufffd");
                i++;
            }
        }
    }
    sb_put(b, "\"", 1);
}

static void sb_problems(sb *b, const coco_problem *list, size_t n)
{
    sb_puts(b, "[");
    for (size_t i = 0; i < n; i++) {
        const coco_problem *p = &list[i];
        sb_puts(b, i ? ",\n    {" : "\n    {");
        sb_puts(b, "\"code\":");
        sb_str(b, coco_code_name(p->code));
        sb_puts(b, ",\"path\":");
        sb_str(b, p->path);
        sb_puts(b, ",\"id\":");
        if (p->has_id)
            sb_printf(b, "%lld", (long long)p->id);
        else
            sb_puts(b, "null");
        static const char *const subj[] = {"file", "image", "annotation", "category"};
        sb_puts(b, ",\"subject\":");
        sb_str(b, subj[p->subject <= COCO_SUBJECT_CATEGORY ? p->subject : 0]);
        sb_puts(b, ",\"message\":");
        sb_str(b, p->message);
        sb_puts(b, ",\"hint\":");
        sb_str(b, p->hint);
        if (p->training_only)
            sb_puts(b, ",\"trainingOnly\":true");
        sb_puts(b, "}");
    }
    sb_puts(b, n ? "\n  ]" : "]");
}

char *coco_report_to_json(const coco_report *r)
{
    if (!r)
        return NULL;
    const coco_summary *s = &r->sum;
    sb b = {0};
    char line[512];
    coco_report_status_line(r, line, sizeof line);
    sb_puts(&b, "{\n  \"state\": ");
    sb_str(&b, coco_state_name(s->state));
    sb_puts(&b, ",\n  \"status\": ");
    sb_str(&b, line);
    sb_puts(&b, ",\n  \"kind\": ");
    sb_str(&b, kind_name(s->kind));
    sb_printf(&b,
              ",\n  \"images\": %zu,\n  \"annotations\": %zu,\n  \"categories\": %zu,"
              "\n  \"boxes\": %zu,\n  \"boxUnits\": ",
              s->images, s->annotations, s->categories, s->boxes);
    sb_str(&b, coco_units_name(s->units));
    sb_printf(&b,
              ",\n  \"imagesFound\": %zu,\n  \"imagesMissing\": %zu,"
              "\n  \"imagesFetching\": %zu,\n  \"imagesFailed\": %zu,\n  \"imagesBad\": %zu,",
              s->images_found, s->images_missing, s->images_fetching, s->images_failed,
              s->images_bad);
    sb_puts(&b, "\n  \"categoryImages\": [");
    size_t listed = r->n_cats < 10000 ? r->n_cats : 10000;
    for (size_t i = 0; i < listed; i++) {
        sb_printf(&b, "%s{\"id\":%lld,\"name\":", i ? ",\n    " : "\n    ",
                  (long long)r->cat_ids[i]);
        if (r->cat_names[i])
            sb_str(&b, r->cat_names[i]);
        else
            sb_puts(&b, "null");
        sb_printf(&b, ",\"images\":%zu}", r->cat_images[i]);
    }
    sb_puts(&b, r->n_cats ? "\n  ],\n" : "],\n");
    sb_printf(&b, "  \"categoryImagesNotListed\": %zu,\n", r->n_cats - listed);
    sb_printf(&b, "  \"errorCount\": %zu,\n  \"warningCount\": %zu,\n", s->errors, s->warnings);
    sb_printf(&b, "  \"errorsNotListed\": %zu,\n  \"warningsNotListed\": %zu,\n",
              s->errors - r->problems.n_err, s->warnings - r->problems.n_warn);
    sb_puts(&b, "  \"errors\": ");
    sb_problems(&b, r->problems.err, r->problems.n_err);
    sb_puts(&b, ",\n  \"warnings\": ");
    sb_problems(&b, r->problems.warn, r->problems.n_warn);
    sb_puts(&b, "\n}\n");
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
