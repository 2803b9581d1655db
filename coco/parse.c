/* parse.c: reads COCO JSON bytes into a coco_dataset.
 *
 * Design: a single-pass recursive-descent JSON reader written for this one
 * shape. It checks the full JSON grammar (RFC 8259; a leading UTF-8 BOM is
 * allowed) but builds no tree: the three top-level arrays are read straight
 * into record arrays, known fields are picked by name, everything else is
 * validated and skipped. Depth, size and entry counts are bounded so hostile
 * input costs at most linear time and bounded stack. Field-level problems
 * (missing or mistyped fields) do not fail the parse: they are recorded with
 * their JSON path for coco_validate. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strtod_l: numbers read the same whatever the process locale */
#endif
#include "coco_int.h"

#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Whatever the caller's limits say, nesting stays within these: recursion
 * is bounded (each level is a few stack frames), and a COCO file needs 4
 * levels (top object, array, entry, bbox). */
#define DEPTH_CAP 1000
#define DEPTH_FLOOR 4
/* Records keep their array index in a uint32_t and the id maps store
 * index + 1 in one, so no file holds more entries than this. */
#define ENTRIES_CAP ((size_t)UINT32_MAX - 1)
/* Up to 19 decimal digits always fit a uint64_t (10^19 < 2^64). */
#define U64_SAFE_DIGITS 19
/* Clinger's exact fast path: a mantissa of at most 15 digits and at most
 * 2^53 is exact in a double, and so is 10^e for e up to 22; one product or
 * quotient of two exact doubles is correctly rounded. */
#define CLINGER_MAX_DIGITS 15
#define CLINGER_MAX_MANTISSA ((uint64_t)1 << 53)
#define CLINGER_MAX_POW10 22
/* Exponent digits stop accumulating here: any larger exponent already fails
 * the fast path, and the sum cannot overflow a long. */
#define EXPONENT_CAP 10000
/* An integral double below this (2^63 is about 9.223e18) converts to int64_t
 * without overflow. */
#define INT64_SAFE_DOUBLE 9.2e18
/* One step of the escape decoder writes at most 4 bytes (one UTF-8
 * sequence); the scratch buffer keeps this much room ahead. */
#define ESCAPE_STEP_ROOM 8

typedef enum jtype { J_NONE = 0, J_STR, J_NUM, J_OBJ, J_ARR, J_TRUE, J_FALSE, J_NULL } jtype;

typedef struct jval {
    jtype type;
    const char *s; /* J_STR: decoded bytes (valid until the next string) */
    size_t len;
    int has_nul;
    double d;   /* J_NUM */
    int is_int; /* J_NUM with an integral value that fits int64 */
    int64_t i;
} jval;

typedef struct parser {
    const char *base, *p, *end;
    int depth, max_depth;
    size_t entries, max_entries;
    coco_dataset *ds;
    coco_diag *diag;
    coco_status st;
    char *sbuf;
    size_t scap;
    locale_t c_locale; /* made on the first number that needs strtod */
} parser;

static const char *jtype_name(jtype t)
{
    switch (t) {
    case J_STR: return "a string";
    case J_NUM: return "a number";
    case J_OBJ: return "an object";
    case J_ARR: return "an array";
    case J_TRUE:
    case J_FALSE: return "a boolean";
    case J_NULL: return "null";
    case J_NONE: break;
    }
    return "nothing";
}

/* Fails the parse with st and a message carrying line and column. */
static int perr(parser *pr, coco_status st, const char *what)
{
    if (pr->st != COCO_OK)
        return -1;
    size_t line = 1, col = 1;
    const char *stop = pr->p < pr->end ? pr->p : pr->end;
    for (const char *q = pr->base; q < stop; q++) {
        if (*q == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    pr->st = st;
    if (pr->diag) {
        pr->diag->offset = (size_t)(stop - pr->base);
        coco_fail(pr->diag, st, "%s at line %zu, column %zu (byte %zu)", what, line, col,
                  (size_t)(stop - pr->base));
    }
    return -1;
}

static void skip_ws(parser *pr)
{
    const char *p = pr->p, *e = pr->end;
    while (p < e && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    pr->p = p;
}

static int sbuf_reserve(parser *pr, size_t need)
{
    if (need <= pr->scap)
        return 0;
    size_t nc = pr->scap ? pr->scap : 256;
    while (nc < need)
        nc *= 2;
    char *nb = realloc(pr->sbuf, nc);
    if (!nb) {
        pr->st = COCO_ENOMEM;
        coco_fail(pr->diag, COCO_ENOMEM, "out of memory reading a string");
        return -1;
    }
    pr->sbuf = nb;
    pr->scap = nc;
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int read_hex4(parser *pr, const char *q, unsigned *out)
{
    if (pr->end - q < 4)
        return -1;
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        int h = hexval(q[k]);
        if (h < 0)
            return -1;
        v = (v << 4) | (unsigned)h;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* At '"'. Fills v (J_STR); the bytes point into the input when there is no
 * escape, else into the scratch buffer. */
static int parse_string(parser *pr, jval *v)
{
    const char *p = pr->p + 1, *e = pr->end;
    const char *start = p;
    while (p < e && *p != '"' && *p != '\\' && (unsigned char)*p >= 0x20)
        p++;
    if (p >= e) {
        pr->p = p;
        return perr(pr, COCO_EJSON, "invalid json: unterminated string");
    }
    v->type = J_STR;
    v->has_nul = 0;
    if (*p == '"') {
        v->s = start;
        v->len = (size_t)(p - start);
        pr->p = p + 1;
        return 0;
    }
    if ((unsigned char)*p < 0x20) {
        pr->p = p;
        return perr(pr, COCO_EJSON, "invalid json: control character in string");
    }
    /* slow path: decode escapes */
    size_t o = (size_t)(p - start);
    if (sbuf_reserve(pr, o + 64))
        return -1;
    memcpy(pr->sbuf, start, o);
    while (p < e && *p != '"') {
        if (sbuf_reserve(pr, o + ESCAPE_STEP_ROOM))
            return -1;
        unsigned char c = (unsigned char)*p;
        if (c < 0x20) {
            pr->p = p;
            return perr(pr, COCO_EJSON, "invalid json: control character in string");
        }
        if (c != '\\') {
            pr->sbuf[o++] = (char)c;
            p++;
            continue;
        }
        if (e - p < 2) {
            pr->p = p;
            return perr(pr, COCO_EJSON, "invalid json: unterminated string");
        }
        char x = p[1];
        p += 2;
        switch (x) {
        case '"': pr->sbuf[o++] = '"'; break;
        case '\\': pr->sbuf[o++] = '\\'; break;
        case '/': pr->sbuf[o++] = '/'; break;
        case 'b': pr->sbuf[o++] = '\b'; break;
        case 'f': pr->sbuf[o++] = '\f'; break;
        case 'n': pr->sbuf[o++] = '\n'; break;
        case 'r': pr->sbuf[o++] = '\r'; break;
        case 't': pr->sbuf[o++] = '\t'; break;
        case 'u': {
            unsigned cp;
            if (read_hex4(pr, p, &cp)) {
                pr->p = p;
                return perr(pr, COCO_EJSON, "invalid json: bad \\u escape");
            }
            p += 4;
            if (cp >= 0xd800 && cp <= 0xdbff) {
                unsigned lo;
                if (e - p >= 6 && p[0] == '\\' && p[1] == 'u' && !read_hex4(pr, p + 2, &lo) &&
                    lo >= 0xdc00 && lo <= 0xdfff) {
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                    p += 6;
                } else {
                    cp = 0xfffd; /* lone high surrogate */
                }
            } else if (cp >= 0xdc00 && cp <= 0xdfff) {
                cp = 0xfffd; /* lone low surrogate */
            }
            if (cp == 0)
                v->has_nul = 1;
            o += put_utf8(pr->sbuf + o, cp);
            break;
        }
        default: pr->p = p - 1; return perr(pr, COCO_EJSON, "invalid json: bad escape in string");
        }
    }
    if (p >= e) {
        pr->p = p;
        return perr(pr, COCO_EJSON, "invalid json: unterminated string");
    }
    pr->sbuf[o] = 0;
    v->s = pr->sbuf;
    v->len = o;
    pr->p = p + 1;
    return 0;
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

static int parse_number(parser *pr, jval *v)
{
    const char *p = pr->p, *e = pr->end, *start = p;
    int neg = 0, frac = 0;
    if (p < e && *p == '-') {
        neg = 1;
        p++;
    }
    if (p >= e || !is_digit(*p)) {
        pr->p = p;
        return perr(pr, COCO_EJSON, "invalid json: bad number");
    }
    const char *digits = p;
    if (*p == '0')
        p++;
    else
        while (p < e && is_digit(*p))
            p++;
    size_t ndig = (size_t)(p - digits);
    if (p < e && *p == '.') {
        frac = 1;
        p++;
        if (p >= e || !is_digit(*p)) {
            pr->p = p;
            return perr(pr, COCO_EJSON, "invalid json: bad number");
        }
        while (p < e && is_digit(*p))
            p++;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        frac = 1;
        p++;
        if (p < e && (*p == '+' || *p == '-'))
            p++;
        if (p >= e || !is_digit(*p)) {
            pr->p = p;
            return perr(pr, COCO_EJSON, "invalid json: bad number");
        }
        while (p < e && is_digit(*p))
            p++;
    }
    v->type = J_NUM;
    if (!frac && ndig <= U64_SAFE_DIGITS) {
        uint64_t x = 0;
        for (const char *q = digits; q < digits + ndig; q++)
            x = x * 10 + (uint64_t)(*q - '0'); /* cannot wrap: see U64_SAFE_DIGITS */
        if (x <= (uint64_t)INT64_MAX) {
            v->i = neg ? -(int64_t)x : (int64_t)x;
            v->d = (double)v->i;
            v->is_int = 1;
            pr->p = p;
            return 0;
        }
    }
    /* exact fast path (Clinger): mantissa below 2^53 and a power of ten
     * that is itself exact give a correctly rounded quotient/product */
    {
        uint64_t m = 0;
        int nd = 0, fd = 0, ok = 1;
        const char *q = digits;
        for (; q < e && is_digit(*q); q++, nd++)
            m = m * 10 + (uint64_t)(*q - '0');
        if (q < p && *q == '.')
            for (q++; q < e && is_digit(*q); q++, nd++, fd++)
                m = m * 10 + (uint64_t)(*q - '0');
        long ex = 0;
        if (q < p && (*q == 'e' || *q == 'E')) {
            int eneg = 0;
            q++;
            if (*q == '+' || *q == '-')
                eneg = *q++ == '-';
            for (; q < p && ex < EXPONENT_CAP; q++)
                ex = ex * 10 + (*q - '0');
            if (eneg)
                ex = -ex;
        }
        ex -= fd;
        if (nd > CLINGER_MAX_DIGITS || m > CLINGER_MAX_MANTISSA || ex > CLINGER_MAX_POW10 ||
            ex < -CLINGER_MAX_POW10)
            ok = 0;
        if (ok) {
            static const double p10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                         1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                         1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
            _Static_assert(sizeof p10 / sizeof p10[0] == CLINGER_MAX_POW10 + 1,
                           "p10 holds every exact power of ten");
            double d = (double)m;
            d = ex >= 0 ? d * p10[ex] : d / p10[-ex];
            v->d = neg ? -d : d;
            v->is_int = 0;
            if (v->d == floor(v->d) && fabs(v->d) < INT64_SAFE_DOUBLE) {
                v->is_int = 1;
                v->i = (int64_t)v->d;
            }
            pr->p = p;
            return 0;
        }
    }
    size_t n = (size_t)(p - start);
    char small[128];
    char *buf = small;
    if (n >= sizeof small) {
        buf = malloc(n + 1);
        if (!buf) {
            pr->st = COCO_ENOMEM;
            coco_fail(pr->diag, COCO_ENOMEM, "out of memory reading a number");
            return -1;
        }
    }
    memcpy(buf, start, n);
    buf[n] = 0;
    if (!pr->c_locale)
        pr->c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    v->d = pr->c_locale ? strtod_l(buf, NULL, pr->c_locale) : strtod(buf, NULL);
    if (buf != small)
        free(buf);
    v->is_int = 0;
    if (isfinite(v->d) && v->d == floor(v->d) && fabs(v->d) < INT64_SAFE_DOUBLE) {
        v->is_int = 1;
        v->i = (int64_t)v->d;
    }
    pr->p = p;
    return 0;
}

static int literal(parser *pr, const char *word, size_t n, jtype t, jval *v)
{
    if ((size_t)(pr->end - pr->p) < n || memcmp(pr->p, word, n) != 0)
        return perr(pr, COCO_EJSON, "invalid json: unexpected character");
    pr->p += n;
    v->type = t;
    return 0;
}

static int skip_container(parser *pr, jval *v);

/* Reads any value; containers are validated and skipped (v->type set). */
static int parse_value(parser *pr, jval *v)
{
    skip_ws(pr);
    if (pr->p >= pr->end)
        return perr(pr, COCO_EJSON, "invalid json: unexpected end of input");
    switch (*pr->p) {
    case '"': return parse_string(pr, v);
    case '{':
    case '[': return skip_container(pr, v);
    case 't': return literal(pr, "true", 4, J_TRUE, v);
    case 'f': return literal(pr, "false", 5, J_FALSE, v);
    case 'n': return literal(pr, "null", 4, J_NULL, v);
    default:
        if (*pr->p == '-' || is_digit(*pr->p))
            return parse_number(pr, v);
        return perr(pr, COCO_EJSON, "invalid json: unexpected character");
    }
}

static int enter(parser *pr)
{
    if (++pr->depth > pr->max_depth) {
        char msg[96];
        snprintf(msg, sizeof msg, "json nested deeper than %d levels", pr->max_depth);
        return perr(pr, COCO_ETOODEEP, msg);
    }
    return 0;
}

/* Generic walk over an object or array. For objects, on_key (if set) is
 * called at each key with the parser positioned at the value; it must
 * consume the value. For arrays on_elem does the same per element. */
typedef int (*key_fn)(parser *pr, void *ctx, const char *key, size_t klen);
typedef int (*elem_fn)(parser *pr, void *ctx, size_t index);

static int walk_object(parser *pr, key_fn on_key, void *ctx)
{
    /* at '{' */
    if (enter(pr))
        return -1;
    pr->p++;
    skip_ws(pr);
    if (pr->p < pr->end && *pr->p == '}') {
        pr->p++;
        pr->depth--;
        return 0;
    }
    for (;;) {
        skip_ws(pr);
        if (pr->p >= pr->end || *pr->p != '"')
            return perr(pr, COCO_EJSON, "invalid json: expected a key string");
        jval k;
        if (parse_string(pr, &k))
            return -1;
        skip_ws(pr);
        if (pr->p >= pr->end || *pr->p != ':')
            return perr(pr, COCO_EJSON, "invalid json: expected ':' after a key");
        pr->p++;
        skip_ws(pr);
        if (on_key) {
            if (on_key(pr, ctx, k.s, k.len))
                return -1;
        } else {
            jval v;
            if (parse_value(pr, &v))
                return -1;
        }
        skip_ws(pr);
        if (pr->p >= pr->end)
            return perr(pr, COCO_EJSON, "invalid json: unexpected end of input in an object");
        if (*pr->p == ',') {
            pr->p++;
            continue;
        }
        if (*pr->p == '}') {
            pr->p++;
            pr->depth--;
            return 0;
        }
        return perr(pr, COCO_EJSON, "invalid json: expected ',' or '}' in an object");
    }
}

static int walk_array(parser *pr, elem_fn on_elem, void *ctx)
{
    /* at '[' */
    if (enter(pr))
        return -1;
    pr->p++;
    skip_ws(pr);
    if (pr->p < pr->end && *pr->p == ']') {
        pr->p++;
        pr->depth--;
        return 0;
    }
    for (size_t i = 0;; i++) {
        skip_ws(pr);
        if (pr->p >= pr->end)
            return perr(pr, COCO_EJSON, "invalid json: unexpected end of input in an array");
        if (on_elem) {
            if (on_elem(pr, ctx, i))
                return -1;
        } else {
            jval v;
            if (parse_value(pr, &v))
                return -1;
        }
        skip_ws(pr);
        if (pr->p >= pr->end)
            return perr(pr, COCO_EJSON, "invalid json: unexpected end of input in an array");
        if (*pr->p == ',') {
            pr->p++;
            continue;
        }
        if (*pr->p == ']') {
            pr->p++;
            pr->depth--;
            return 0;
        }
        return perr(pr, COCO_EJSON, "invalid json: expected ',' or ']' in an array");
    }
}

static int skip_container(parser *pr, jval *v)
{
    if (*pr->p == '{') {
        v->type = J_OBJ;
        return walk_object(pr, NULL, NULL);
    }
    v->type = J_ARR;
    return walk_array(pr, NULL, NULL);
}

/* ---- records --------------------------------------------------------------- */

static int key_is(const char *k, size_t n, const char *name)
{
    size_t m = strlen(name);
    return n == m && memcmp(k, name, m) == 0;
}

static void *grow_array(parser *pr, void **arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return (char *)*arr + n * elem;
    size_t nc = *cap ? *cap * 2 : 256;
    void *na = realloc(*arr, nc * elem);
    if (!na) {
        pr->st = COCO_ENOMEM;
        coco_fail(pr->diag, COCO_ENOMEM, "out of memory reading the annotation file");
        return NULL;
    }
    *arr = na;
    *cap = nc;
    return (char *)na + n * elem;
}

static int count_entry(parser *pr)
{
    if (++pr->entries > pr->max_entries) {
        char msg[128];
        snprintf(msg, sizeof msg, "more than %zu images, annotations and categories",
                 pr->max_entries);
        return perr(pr, COCO_ELIMIT, msg);
    }
    return 0;
}

/* A field as seen in one object: absent, or its parsed value. */
typedef struct field {
    jtype type;
    int is_int;
    int64_t i;
    double d;
    const char *s; /* arena copy for strings we keep */
    size_t len;
    int has_nul;
    int n_elems;  /* bbox: element count */
    int all_nums; /* bbox: every element a number */
    double box[4];
} field;

static int read_field(parser *pr, field *f, int keep_string)
{
    jval v = {0};
    if (parse_value(pr, &v))
        return -1;
    f->type = v.type;
    f->is_int = v.is_int;
    f->i = v.i;
    f->d = v.d;
    f->has_nul = v.has_nul;
    f->s = NULL;
    f->len = 0;
    if (v.type == J_STR && keep_string) {
        f->s = coco_arena_dup(&pr->ds->arena, v.s, v.len);
        if (!f->s) {
            pr->st = COCO_ENOMEM;
            coco_fail(pr->diag, COCO_ENOMEM, "out of memory reading a string");
            return -1;
        }
        f->len = v.len;
    }
    return 0;
}

static int bbox_elem(parser *pr, void *ctx, size_t index)
{
    field *f = ctx;
    jval v = {0};
    if (parse_value(pr, &v))
        return -1;
    f->n_elems++;
    if (v.type != J_NUM)
        f->all_nums = 0;
    else if (index < 4)
        f->box[index] = v.d;
    return 0;
}

static int read_bbox(parser *pr, field *f)
{
    skip_ws(pr);
    memset(f, 0, sizeof *f);
    if (pr->p < pr->end && *pr->p == '[') {
        f->type = J_ARR;
        f->all_nums = 1;
        return walk_array(pr, bbox_elem, f);
    }
    return read_field(pr, f, 0);
}

static void field_problem(parser *pr, const char *path, coco_subject subj, int has_id, int64_t id,
                          coco_code code, const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 8, 9)));

static void field_problem(parser *pr, const char *path, coco_subject subj, int has_id, int64_t id,
                          coco_code code, const char *hint, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    coco_plist_addv(&pr->ds->problems, COCO_ERROR, code, subj, has_id, id, path, hint, fmt, ap);
    va_end(ap);
}

/* Checks an integer field; returns 1 when usable. */
static int want_int(parser *pr, const field *f, const char *arr, size_t idx, const char *name,
                    int required, coco_subject subj, int has_id, int64_t id, int positive)
{
    char path[96];
    snprintf(path, sizeof path, "%s[%zu].%s", arr, idx, name);
    if (f->type == J_NONE) {
        const char *hint = "give every entry a unique integer 'id'";
        if (!strcmp(name, "width") || !strcmp(name, "height"))
            hint = "add 'width' and 'height': the image's size in pixels";
        else if (!strcmp(name, "image_id"))
            hint = "add 'image_id': the id of the image this label belongs to";
        else if (!strcmp(name, "category_id"))
            hint = "add 'category_id': the id of one of the categories";
        if (required)
            field_problem(pr, path, subj, has_id, id, COCO_CODE_ANNOTATIONS_INVALID, hint,
                          "%s: missing required field '%s'", path, name);
        return 0;
    }
    if (f->type != J_NUM || !f->is_int || (positive && f->i <= 0)) {
        char got[64];
        if (f->type == J_NUM)
            snprintf(got, sizeof got, "%.17g", f->d);
        else
            snprintf(got, sizeof got, "%s", jtype_name(f->type));
        field_problem(pr, path, subj, has_id, id, COCO_CODE_ANNOTATIONS_INVALID,
                      positive ? "write it as a whole number above 0"
                               : "write it as a whole number",
                      "%s: '%s' must be %s, got %s", path, name,
                      positive ? "a positive integer" : "an integer", got);
        return 0;
    }
    return 1;
}

/* Checks a string field; returns 1 when usable. */
static int want_string(parser *pr, const field *f, const char *arr, size_t idx, const char *name,
                       int required, coco_subject subj, int has_id, int64_t id, coco_code code,
                       const char *hint)
{
    char path[96];
    snprintf(path, sizeof path, "%s[%zu].%s", arr, idx, name);
    if (f->type == J_NONE || (f->type == J_NULL && !required)) {
        if (required)
            field_problem(pr, path, subj, has_id, id, code, hint, "%s: missing required field '%s'",
                          path, name);
        return 0;
    }
    if (f->type != J_STR) {
        field_problem(pr, path, subj, has_id, id, code, hint, "%s: '%s' must be a string, got %s",
                      path, name, jtype_name(f->type));
        return 0;
    }
    if (required && f->len == 0) {
        field_problem(pr, path, subj, has_id, id, code, hint, "%s: '%s' is empty", path, name);
        return 0;
    }
    return 1;
}

static int not_object(parser *pr, const char *arr, size_t idx)
{
    jval v = {0};
    if (parse_value(pr, &v))
        return -1;
    char path[64];
    snprintf(path, sizeof path, "%s[%zu]", arr, idx);
    field_problem(pr, path, COCO_SUBJECT_NONE, 0, 0, COCO_CODE_ANNOTATIONS_INVALID,
                  "each entry must be a JSON object {...}", "%s: expected an object, got %s", path,
                  jtype_name(v.type));
    return 0;
}

/* image ------------------------------------------------------------------- */

typedef struct image_fields {
    field id, width, height, file_name, absolute_url, coco_url;
} image_fields;

static int image_key(parser *pr, void *ctx, const char *k, size_t n)
{
    image_fields *f = ctx;
    if (key_is(k, n, "id"))
        return read_field(pr, &f->id, 0);
    if (key_is(k, n, "width"))
        return read_field(pr, &f->width, 0);
    if (key_is(k, n, "height"))
        return read_field(pr, &f->height, 0);
    if (key_is(k, n, "file_name"))
        return read_field(pr, &f->file_name, 1);
    if (key_is(k, n, "absolute_url"))
        return read_field(pr, &f->absolute_url, 1);
    if (key_is(k, n, "coco_url"))
        return read_field(pr, &f->coco_url, 1);
    jval v;
    return parse_value(pr, &v);
}

static int image_elem(parser *pr, void *ctx, size_t idx)
{
    (void)ctx;
    if (count_entry(pr))
        return -1;
    if (*pr->p != '{')
        return not_object(pr, "images", idx);
    image_fields f;
    memset(&f, 0, sizeof f);
    if (walk_object(pr, image_key, &f))
        return -1;
    coco_dataset *ds = pr->ds;
    coco_image *im =
        grow_array(pr, (void **)&ds->images, &ds->cap_images, ds->n_images, sizeof *im);
    if (!im)
        return -1;
    memset(im, 0, sizeof *im);
    im->index = (uint32_t)idx;
    if (want_int(pr, &f.id, "images", idx, "id", 1, COCO_SUBJECT_IMAGE, 0, 0, 0)) {
        im->id = f.id.i;
        im->flags |= COCO_HAS_ID;
    }
    int hid = !!(im->flags & COCO_HAS_ID);
    int url_ok = 0;
    const field *url = NULL;
    if (want_string(pr, &f.absolute_url, "images", idx, "absolute_url", 0, COCO_SUBJECT_IMAGE, hid,
                    im->id, COCO_CODE_INVALID_ANNOTATION_URI,
                    "write the url as a string like \"https://host/a.jpg\" or remove it"))
        url = &f.absolute_url;
    if (want_string(pr, &f.coco_url, "images", idx, "coco_url", 0, COCO_SUBJECT_IMAGE, hid, im->id,
                    COCO_CODE_INVALID_ANNOTATION_URI,
                    "write the url as a string like \"https://host/a.jpg\" or remove it") &&
        !url)
        url = &f.coco_url;
    if (url && url->len) {
        im->url = url->s;
        url_ok = 1;
        if (url == &f.coco_url)
            im->flags |= COCO_URL_IS_COCO;
        if (url->has_nul)
            im->flags |= COCO_URL_NUL;
    }
    if ((f.file_name.type == J_NONE || f.file_name.type == J_NULL) && url_ok) {
        /* the url alone is enough: the file is fetched */
    } else if (want_string(pr, &f.file_name, "images", idx, "file_name", 1, COCO_SUBJECT_IMAGE, hid,
                           im->id, COCO_CODE_ANNOTATIONS_INVALID,
                           "give the image's path in the dataset folder, e.g. \"images/a.jpg\", "
                           "or an absolute_url")) {
        im->file_name = f.file_name.s;
        im->file_name_len = f.file_name.len;
        im->flags |= COCO_HAS_NAME;
        if (f.file_name.has_nul)
            im->flags |= COCO_NAME_NUL;
    }
    int w = want_int(pr, &f.width, "images", idx, "width", 1, COCO_SUBJECT_IMAGE, hid, im->id, 1);
    int h = want_int(pr, &f.height, "images", idx, "height", 1, COCO_SUBJECT_IMAGE, hid, im->id, 1);
    if (w && h) {
        im->width = f.width.i;
        im->height = f.height.i;
        im->flags |= COCO_HAS_SIZE;
    }
    ds->n_images++;
    return 0;
}

/* annotation ---------------------------------------------------------------- */

typedef struct ann_fields {
    field id, image_id, category_id, bbox, area;
} ann_fields;

static int ann_key(parser *pr, void *ctx, const char *k, size_t n)
{
    ann_fields *f = ctx;
    if (key_is(k, n, "id"))
        return read_field(pr, &f->id, 0);
    if (key_is(k, n, "image_id"))
        return read_field(pr, &f->image_id, 0);
    if (key_is(k, n, "category_id"))
        return read_field(pr, &f->category_id, 0);
    if (key_is(k, n, "bbox"))
        return read_bbox(pr, &f->bbox);
    if (key_is(k, n, "area"))
        return read_field(pr, &f->area, 0);
    jval v;
    return parse_value(pr, &v);
}

static int ann_elem(parser *pr, void *ctx, size_t idx)
{
    (void)ctx;
    if (count_entry(pr))
        return -1;
    if (*pr->p != '{')
        return not_object(pr, "annotations", idx);
    ann_fields f;
    memset(&f, 0, sizeof f);
    if (walk_object(pr, ann_key, &f))
        return -1;
    coco_dataset *ds = pr->ds;
    coco_annotation *a = grow_array(pr, (void **)&ds->anns, &ds->cap_anns, ds->n_anns, sizeof *a);
    if (!a)
        return -1;
    memset(a, 0, sizeof *a);
    a->index = (uint32_t)idx;
    const coco_subject S = COCO_SUBJECT_ANNOTATION;
    if (want_int(pr, &f.id, "annotations", idx, "id", 1, S, 0, 0, 0)) {
        a->id = f.id.i;
        a->flags |= COCO_HAS_ID;
    }
    int hid = !!(a->flags & COCO_HAS_ID);
    if (want_int(pr, &f.image_id, "annotations", idx, "image_id", 1, S, hid, a->id, 0)) {
        a->image_id = f.image_id.i;
        a->flags |= COCO_HAS_IMAGE_ID;
    }
    if (want_int(pr, &f.category_id, "annotations", idx, "category_id", 1, S, hid, a->id, 0)) {
        a->category_id = f.category_id.i;
        a->flags |= COCO_HAS_CAT_ID;
    }
    char path[96];
    snprintf(path, sizeof path, "annotations[%zu].bbox", idx);
    const field *b = &f.bbox;
    if (b->type == J_NONE || b->type == J_NULL || (b->type == J_ARR && b->n_elems == 0)) {
        /* no box: a classification label */
    } else if (b->type != J_ARR || b->n_elems != 4 || !b->all_nums) {
        char got[64];
        if (b->type != J_ARR)
            snprintf(got, sizeof got, "%s", jtype_name(b->type));
        else if (!b->all_nums)
            snprintf(got, sizeof got, "an array holding a non-number");
        else
            snprintf(got, sizeof got, "an array of %d numbers", b->n_elems);
        field_problem(pr, path, S, hid, a->id, COCO_CODE_ANNOTATIONS_INVALID,
                      "write the box as [left, top, width, height], relative (0..1) or in pixels",
                      "%s: 'bbox' must be 4 numbers [left, top, width, height], got %s", path, got);
        a->flags |= COCO_BAD_BBOX;
    } else if (!isfinite(b->box[0]) || !isfinite(b->box[1]) || !isfinite(b->box[2]) ||
               !isfinite(b->box[3])) {
        field_problem(pr, path, S, hid, a->id, COCO_CODE_ANNOTATIONS_INVALID,
                      "write the box with ordinary numbers", "%s: 'bbox' holds a number too large",
                      path);
        a->flags |= COCO_BAD_BBOX;
    } else {
        memcpy(a->bbox, b->box, sizeof a->bbox);
        a->has_bbox = 1;
        a->flags |= COCO_HAS_BBOX;
    }
    if (f.area.type != J_NONE && f.area.type != J_NULL) {
        snprintf(path, sizeof path, "annotations[%zu].area", idx);
        if (f.area.type != J_NUM || !isfinite(f.area.d) || f.area.d < 0)
            field_problem(pr, path, S, hid, a->id, COCO_CODE_ANNOTATIONS_INVALID,
                          "write the area as a number >= 0 (or remove it)",
                          "%s: 'area' must be a number >= 0, got %s", path,
                          f.area.type == J_NUM ? "a negative or huge number"
                                               : jtype_name(f.area.type));
        else {
            a->area = f.area.d;
            a->flags |= COCO_HAS_AREA;
        }
    }
    ds->n_anns++;
    return 0;
}

/* category ------------------------------------------------------------------ */

typedef struct cat_fields {
    field id, name;
} cat_fields;

static int cat_key(parser *pr, void *ctx, const char *k, size_t n)
{
    cat_fields *f = ctx;
    if (key_is(k, n, "id"))
        return read_field(pr, &f->id, 0);
    if (key_is(k, n, "name"))
        return read_field(pr, &f->name, 1);
    jval v;
    return parse_value(pr, &v);
}

static int cat_elem(parser *pr, void *ctx, size_t idx)
{
    (void)ctx;
    if (count_entry(pr))
        return -1;
    if (*pr->p != '{')
        return not_object(pr, "categories", idx);
    cat_fields f;
    memset(&f, 0, sizeof f);
    if (walk_object(pr, cat_key, &f))
        return -1;
    coco_dataset *ds = pr->ds;
    coco_category *c = grow_array(pr, (void **)&ds->cats, &ds->cap_cats, ds->n_cats, sizeof *c);
    if (!c)
        return -1;
    memset(c, 0, sizeof *c);
    c->index = (uint32_t)idx;
    if (want_int(pr, &f.id, "categories", idx, "id", 1, COCO_SUBJECT_CATEGORY, 0, 0, 0)) {
        c->id = f.id.i;
        c->flags |= COCO_HAS_ID;
    }
    int hid = !!(c->flags & COCO_HAS_ID);
    if (want_string(pr, &f.name, "categories", idx, "name", 1, COCO_SUBJECT_CATEGORY, hid, c->id,
                    COCO_CODE_ANNOTATIONS_INVALID, "give every category a non-empty name")) {
        c->name = f.name.s;
        c->flags |= COCO_HAS_NAME;
        if (f.name.has_nul)
            c->flags |= COCO_NAME_NUL;
    }
    ds->n_cats++;
    return 0;
}

/* top level ------------------------------------------------------------------- */

typedef struct top_state {
    jtype images, annotations, categories; /* type seen for each key */
} top_state;

static int top_array(parser *pr, jtype *seen, const char *name, elem_fn fn)
{
    if (*seen != J_NONE) {
        char path[32];
        snprintf(path, sizeof path, "%s", name);
        field_problem(pr, path, COCO_SUBJECT_NONE, 0, 0, COCO_CODE_ANNOTATIONS_INVALID,
                      "keep one list of each kind in the file",
                      "%s: appears twice at the top level; the second list is ignored", name);
        jval v;
        return parse_value(pr, &v);
    }
    if (pr->p < pr->end && *pr->p == '[') {
        *seen = J_ARR;
        return walk_array(pr, fn, NULL);
    }
    jval v = {0};
    if (parse_value(pr, &v))
        return -1;
    *seen = v.type;
    return 0;
}

static int top_key(parser *pr, void *ctx, const char *k, size_t n)
{
    top_state *t = ctx;
    if (key_is(k, n, "images"))
        return top_array(pr, &t->images, "images", image_elem);
    if (key_is(k, n, "annotations"))
        return top_array(pr, &t->annotations, "annotations", ann_elem);
    if (key_is(k, n, "categories"))
        return top_array(pr, &t->categories, "categories", cat_elem);
    if (key_is(k, n, "task")) {
        jval v = {0};
        if (parse_value(pr, &v))
            return -1;
        if (v.type == J_STR) {
            /* "detection", "objectDetection", "imageObjectDetection", ... */
            char low[64];
            size_t m = v.len < sizeof low - 1 ? v.len : sizeof low - 1;
            for (size_t i = 0; i < m; i++)
                low[i] = (char)((v.s[i] >= 'A' && v.s[i] <= 'Z') ? v.s[i] + 32 : v.s[i]);
            low[m] = 0;
            if (strstr(low, "detect"))
                pr->ds->task_kind = COCO_KIND_DETECTION;
            else if (strstr(low, "multilabel") || strstr(low, "multi-label"))
                pr->ds->task_kind = COCO_KIND_MULTILABEL;
            else if (strstr(low, "classif"))
                pr->ds->task_kind = COCO_KIND_CLASSIFICATION;
        }
        return 0;
    }
    jval v;
    return parse_value(pr, &v);
}

coco_status coco_dataset_parse(const char *json, size_t len, const coco_limits *lim,
                               coco_dataset **out, coco_diag *diag)
{
    if (diag) {
        diag->status = COCO_OK;
        diag->offset = 0;
        diag->msg[0] = 0;
    }
    if (!out || (!json && len))
        return coco_fail(diag, COCO_EINVAL, "coco_dataset_parse: null argument");
    *out = NULL;
    size_t max_bytes = lim && lim->max_bytes ? lim->max_bytes : COCO_DEFAULT_MAX_BYTES;
    int max_depth = lim && lim->max_depth > 0 ? lim->max_depth : COCO_DEFAULT_MAX_DEPTH;
    if (max_depth > DEPTH_CAP)
        max_depth = DEPTH_CAP;
    if (max_depth < DEPTH_FLOOR)
        max_depth = DEPTH_FLOOR;
    size_t max_entries = lim && lim->max_entries ? lim->max_entries : COCO_DEFAULT_MAX_ENTRIES;
    if (max_entries > ENTRIES_CAP)
        max_entries = ENTRIES_CAP;
    if (len > max_bytes)
        return coco_fail(diag, COCO_ETOOBIG,
                         "annotation file is %zu bytes, more than the %zu allowed", len, max_bytes);

    parser pr = {0};
    pr.base = json ? json : "";
    pr.p = pr.base;
    pr.end = pr.base + len;
    pr.max_depth = max_depth;
    pr.max_entries = max_entries;
    pr.diag = diag;
    pr.ds = calloc(1, sizeof *pr.ds);
    if (!pr.ds)
        return coco_fail(diag, COCO_ENOMEM, "out of memory");
    pr.ds->n_sources = 1;

    if (len >= 3 && (unsigned char)json[0] == 0xef && (unsigned char)json[1] == 0xbb &&
        (unsigned char)json[2] == 0xbf)
        pr.p += 3;
    skip_ws(&pr);
    top_state top = {0};
    int rc;
    jtype top_type = J_OBJ;
    if (pr.p >= pr.end) {
        rc = perr(&pr, COCO_EJSON, "invalid json: the file is empty");
    } else if (*pr.p == '{') {
        rc = walk_object(&pr, top_key, &top);
    } else {
        jval v = {0};
        rc = parse_value(&pr, &v);
        top_type = v.type;
    }
    if (!rc) {
        skip_ws(&pr);
        if (pr.p < pr.end)
            rc = perr(&pr, COCO_EJSON, "invalid json: extra content after the top-level value");
    }
    if (!rc && top_type != J_OBJ) {
        pr.st = COCO_ENOTCOCO;
        coco_fail(diag, COCO_ENOTCOCO,
                  "the top level is %s, not an object with 'images', 'annotations' and "
                  "'categories'",
                  jtype_name(top_type));
        rc = -1;
    }
    if (!rc) {
        const char *names[3] = {"images", "annotations", "categories"};
        jtype seen[3] = {top.images, top.annotations, top.categories};
        for (int k = 0; k < 3 && !rc; k++) {
            if (seen[k] == J_ARR)
                continue;
            pr.st = COCO_ENOTCOCO;
            if (seen[k] == J_NONE)
                coco_fail(diag, COCO_ENOTCOCO,
                          "'%s' is missing: a COCO file needs 'images', "
                          "'annotations' and 'categories' arrays",
                          names[k]);
            else
                coco_fail(diag, COCO_ENOTCOCO, "'%s' is %s, not an array", names[k],
                          jtype_name(seen[k]));
            rc = -1;
        }
    }
    if (!rc && (coco_dataset_index(pr.ds) != COCO_OK || pr.ds->problems.oom)) {
        pr.st = COCO_ENOMEM;
        coco_fail(diag, COCO_ENOMEM, "out of memory indexing the annotation file");
        rc = -1;
    }
    free(pr.sbuf);
    if (pr.c_locale)
        freelocale(pr.c_locale);
    if (rc) {
        coco_dataset_free(pr.ds);
        return pr.st != COCO_OK ? pr.st : COCO_EJSON;
    }
    *out = pr.ds;
    return COCO_OK;
}
