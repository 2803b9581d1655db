/* report.c: the coco_report object: accessors, the one-line status of SPEC
 * section 3, the training rule switch and status.json.
 * Design: status.json is written by jsonw (jsonw.h) rather than a tree
 * library, so invalid UTF-8 from user names becomes U+FFFD (jq rejects
 * invalid UTF-8), large problem lists stream cheaply, and no input can
 * overflow it. */
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
    return k == COCO_KIND_DETECTION    ? "detection"
           : k == COCO_KIND_MULTILABEL ? "multilabel"
                                       : "classification";
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
        if (s->kind == COCO_KIND_MULTILABEL) {
            k = snprintf(buf, n, "ready: %zu images, %zu tags, up to %zu per image (multilabel)",
                         s->images, s->categories, s->max_labels);
            break;
        }
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

static void json_problems(jsonw *w, const char *key, const coco_problem *list, size_t n)
{
    static const char *const subj[] = {"file", "image", "annotation", "category"};
    jsonw_key(w, key);
    jsonw_arr(w);
    for (size_t i = 0; i < n; i++) {
        const coco_problem *p = &list[i];
        jsonw_obj(w);
        jsonw_kstr(w, "code", coco_code_name(p->code));
        jsonw_kstr(w, "path", p->path);
        jsonw_key(w, "id");
        if (p->has_id)
            jsonw_int(w, (long long)p->id);
        else
            jsonw_null(w);
        jsonw_kstr(w, "subject", subj[p->subject <= COCO_SUBJECT_CATEGORY ? p->subject : 0]);
        jsonw_kstr(w, "message", p->message);
        jsonw_kstr(w, "hint", p->hint);
        if (p->training_only)
            jsonw_kbool(w, "trainingOnly", 1);
        jsonw_end(w);
    }
    jsonw_end(w);
}

/* At most this many categories are listed one by one in categoryImages. */
#define REPORT_CATEGORIES_LISTED 10000

void coco_report_json_members(const coco_report *r, jsonw *w)
{
    const coco_summary *s = &r->sum;
    char line[512];
    coco_report_status_line(r, line, sizeof line);
    jsonw_kstr(w, "state", coco_state_name(s->state));
    jsonw_kstr(w, "status", line);
    jsonw_kstr(w, "kind", kind_name(s->kind));
    jsonw_kint(w, "images", (long long)s->images);
    jsonw_kint(w, "annotations", (long long)s->annotations);
    jsonw_kint(w, "categories", (long long)s->categories);
    jsonw_kint(w, "boxes", (long long)s->boxes);
    if (s->kind == COCO_KIND_MULTILABEL)
        jsonw_kint(w, "maxTagsPerImage", (long long)s->max_labels);
    jsonw_kstr(w, "boxUnits", coco_units_name(s->units));
    jsonw_kint(w, "imagesFound", (long long)s->images_found);
    jsonw_kint(w, "imagesMissing", (long long)s->images_missing);
    jsonw_kint(w, "imagesFetching", (long long)s->images_fetching);
    jsonw_kint(w, "imagesFailed", (long long)s->images_failed);
    jsonw_kint(w, "imagesBad", (long long)s->images_bad);
    size_t listed = r->n_cats < REPORT_CATEGORIES_LISTED ? r->n_cats : REPORT_CATEGORIES_LISTED;
    jsonw_key(w, "categoryImages");
    jsonw_arr(w);
    for (size_t i = 0; i < listed; i++) {
        jsonw_obj(w);
        jsonw_kint(w, "id", (long long)r->cat_ids[i]);
        jsonw_kstr(w, "name", r->cat_names[i]); /* NULL: null */
        jsonw_kint(w, "images", (long long)r->cat_images[i]);
        jsonw_end(w);
    }
    jsonw_end(w);
    jsonw_kint(w, "categoryImagesNotListed", (long long)(r->n_cats - listed));
    jsonw_kint(w, "errorCount", (long long)s->errors);
    jsonw_kint(w, "warningCount", (long long)s->warnings);
    jsonw_kint(w, "errorsNotListed", (long long)(s->errors - r->problems.n_err));
    jsonw_kint(w, "warningsNotListed", (long long)(s->warnings - r->problems.n_warn));
    json_problems(w, "errors", r->problems.err, r->problems.n_err);
    json_problems(w, "warnings", r->problems.warn, r->problems.n_warn);
}

char *coco_report_to_json(const coco_report *r)
{
    if (!r)
        return NULL;
    jsonw w;
    jsonw_init(&w, JSONW_PRETTY);
    jsonw_obj(&w);
    coco_report_json_members(r, &w);
    jsonw_end(&w);
    return jsonw_finish(&w, NULL);
}
