/* jsonw.c: the bounded JSON writer (see jsonw.h). The output buffer doubles
 * as it grows, capped by the limit; every byte of a string goes through one
 * escaping loop that validates UTF-8, so what comes out always parses. */
#include "jsonw.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void jsonw_init(jsonw *w, int pretty)
{
    memset(w, 0, sizeof *w);
    w->limit = JSONW_DEFAULT_LIMIT;
    w->pretty = pretty;
}

void jsonw_set_limit(jsonw *w, size_t limit) { w->limit = limit; }

void jsonw_release(jsonw *w)
{
    free(w->buf);
    w->buf = NULL;
    w->len = w->cap = 0;
}

jsonw_status jsonw_error(const jsonw *w) { return w->err; }

const char *jsonw_status_name(jsonw_status s)
{
    switch (s) {
    case JSONW_OK: return "ok";
    case JSONW_ENOMEM: return "out of memory";
    case JSONW_ELIMIT: return "output over its size limit";
    case JSONW_EDEPTH: return "nesting too deep";
    case JSONW_EMISUSE: return "writer misuse";
    }
    return "unknown";
}

static void fail(jsonw *w, jsonw_status s)
{
    if (!w->err)
        w->err = s;
}

/* Appends n raw bytes; the buffer stays NUL-terminated. */
static void put(jsonw *w, const char *s, size_t n)
{
    if (w->err)
        return;
    if (n > w->limit || w->len > w->limit - n) {
        fail(w, JSONW_ELIMIT);
        return;
    }
    if (w->len + n + 1 > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->len + n + 1)
            cap *= 2;
        char *b = realloc(w->buf, cap);
        if (!b) {
            fail(w, JSONW_ENOMEM);
            return;
        }
        w->buf = b;
        w->cap = cap;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = '\0';
}

static void puts_(jsonw *w, const char *s) { put(w, s, strlen(s)); }

static void newline(jsonw *w)
{
    if (!w->pretty)
        return;
    put(w, "\n", 1);
    for (int i = 0; i < w->depth; i++)
        put(w, "  ", 2);
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
    unsigned cp = c & (0x7fu >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3fu);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* A JSON string literal of n bytes at s. */
static void escape(jsonw *w, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    put(w, "\"", 1);
    size_t i = 0;
    while (i < n && !w->err) {
        size_t j = i; /* a run of bytes that need no escape */
        while (j < n && p[j] >= 0x20 && p[j] < 0x7f && p[j] != '"' && p[j] != '\\')
            j++;
        put(w, s + i, j - i);
        i = j;
        if (i >= n)
            break;
        unsigned char c = p[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            put(w, e, 2);
            i++;
        } else if (c == '\n') {
            put(w, "\\n", 2);
            i++;
        } else if (c == '\t') {
            put(w, "\\t", 2);
            i++;
        } else if (c < 0x80) { /* other control characters and DEL */
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            put(w, e, 6);
            i++;
        } else {
            size_t l = utf8_len(p + i, n - i);
            if (!l) {
                put(w, "\\ufffd", 6);
                i++;
            } else if (l == 3 && c == 0xe2 && p[i + 1] == 0x80 &&
                       (p[i + 2] == 0xa8 || p[i + 2] == 0xa9)) {
                put(w, p[i + 2] == 0xa8 ? "\\u2028" : "\\u2029", 6);
                i += 3;
            } else {
                put(w, s + i, l);
                i += l;
            }
        }
    }
    put(w, "\"", 1);
}

/* Before a member name or an array element: the comma and the indent. */
static void separate(jsonw *w)
{
    int d = w->depth - 1;
    if (w->count[d])
        put(w, ",", 1);
    w->count[d] = 1;
    newline(w);
}

/* Before any value: checks that a value may come here. */
static int value_begins(jsonw *w)
{
    if (w->err)
        return 0;
    if (w->depth == 0) {
        if (w->len) { /* one document per writer */
            fail(w, JSONW_EMISUSE);
            return 0;
        }
        return 1;
    }
    if (w->is_obj[w->depth - 1]) {
        if (w->key_due) { /* a member's value needs its name first */
            fail(w, JSONW_EMISUSE);
            return 0;
        }
        w->key_due = 1; /* the name is spent */
        return 1;
    }
    separate(w);
    return !w->err;
}

void jsonw_key(jsonw *w, const char *key)
{
    if (w->err)
        return;
    if (w->depth == 0 || !w->is_obj[w->depth - 1] || !w->key_due) {
        fail(w, JSONW_EMISUSE);
        return;
    }
    separate(w);
    w->key_due = 0;
    escape(w, key ? key : "", key ? strlen(key) : 0);
    put(w, w->pretty ? ": " : ":", w->pretty ? 2 : 1);
}

static void open_container(jsonw *w, int obj)
{
    if (!value_begins(w))
        return;
    if (w->depth >= JSONW_MAX_DEPTH) {
        fail(w, JSONW_EDEPTH);
        return;
    }
    put(w, obj ? "{" : "[", 1);
    w->is_obj[w->depth] = (unsigned char)obj;
    w->count[w->depth] = 0;
    w->depth++;
    w->key_due = obj;
}

void jsonw_obj(jsonw *w) { open_container(w, 1); }
void jsonw_arr(jsonw *w) { open_container(w, 0); }

void jsonw_end(jsonw *w)
{
    if (w->err)
        return;
    if (w->depth == 0 || (w->is_obj[w->depth - 1] && !w->key_due)) {
        fail(w, JSONW_EMISUSE); /* nothing open, or a name without its value */
        return;
    }
    int obj = w->is_obj[w->depth - 1];
    int had = w->count[w->depth - 1];
    w->depth--;
    if (had)
        newline(w);
    put(w, obj ? "}" : "]", 1);
    /* the enclosing container wants a name next if it is an object */
    w->key_due = w->depth > 0 && w->is_obj[w->depth - 1];
}

void jsonw_strn(jsonw *w, const char *s, size_t n)
{
    if (!s) {
        jsonw_null(w);
        return;
    }
    if (value_begins(w))
        escape(w, s, n);
}

void jsonw_str(jsonw *w, const char *s) { jsonw_strn(w, s, s ? strlen(s) : 0); }

static void value_text(jsonw *w, const char *text)
{
    if (value_begins(w))
        puts_(w, text);
}

void jsonw_int(jsonw *w, long long v)
{
    char t[32];
    snprintf(t, sizeof t, "%lld", v);
    value_text(w, t);
}

void jsonw_uint(jsonw *w, unsigned long long v)
{
    char t[32];
    snprintf(t, sizeof t, "%llu", v);
    value_text(w, t);
}

void jsonw_num(jsonw *w, double v)
{
    if (!isfinite(v)) {
        jsonw_null(w);
        return;
    }
    char t[40];
    /* the shortest of %.15g..%.17g that reads back exactly: DBL_DIG (15)
     * digits always survive text -> double -> text, DBL_DECIMAL_DIG (17)
     * always give the same double back */
    for (int prec = DBL_DIG; prec <= DBL_DECIMAL_DIG; prec++) {
        snprintf(t, sizeof t, "%.*g", prec, v);
        if (strtod(t, NULL) == v)
            break;
    }
    for (char *p = t; *p; p++)
        if (*p == ',')
            *p = '.'; /* whatever the locale */
    value_text(w, t);
}

void jsonw_numr(jsonw *w, double v, int decimals)
{
    if (!isfinite(v)) {
        jsonw_null(w);
        return;
    }
    if (decimals < 0 || decimals > DBL_DIG) { /* more is not rounding, just noise */
        jsonw_num(w, v);
        return;
    }
    double scale = pow(10.0, decimals);
    double r = round(v * scale) / scale;
    if (r == 0.0)
        r = 0.0; /* no "-0" */
    jsonw_num(w, r);
}

void jsonw_bool(jsonw *w, int v) { value_text(w, v ? "true" : "false"); }
void jsonw_null(jsonw *w) { value_text(w, "null"); }

void jsonw_kstr(jsonw *w, const char *key, const char *s)
{
    jsonw_key(w, key);
    jsonw_str(w, s);
}

void jsonw_kint(jsonw *w, const char *key, long long v)
{
    jsonw_key(w, key);
    jsonw_int(w, v);
}

void jsonw_knum(jsonw *w, const char *key, double v)
{
    jsonw_key(w, key);
    jsonw_num(w, v);
}

void jsonw_kbool(jsonw *w, const char *key, int v)
{
    jsonw_key(w, key);
    jsonw_bool(w, v);
}

char *jsonw_finish(jsonw *w, size_t *len)
{
    if (!w->err && (w->depth != 0 || w->len == 0))
        fail(w, JSONW_EMISUSE); /* unclosed containers, or no document */
    if (!w->err && w->pretty)
        put(w, "\n", 1);
    if (w->err) {
        jsonw_release(w);
        if (len)
            *len = 0;
        return NULL;
    }
    char *out = w->buf;
    if (len)
        *len = w->len;
    w->buf = NULL;
    w->len = w->cap = 0;
    return out;
}
