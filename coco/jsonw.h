/* jsonw: the one JSON writer for every file visionfs generates.
 *
 * Output grows on the heap up to a limit, so no input can overflow it, and
 * every string is escaped completely: quotes, backslashes, every control
 * character, DEL, U+2028/U+2029 (JavaScript line breaks) as \uXXXX, and
 * invalid UTF-8 as U+FFFD. Commas and nesting are tracked by the writer, so a
 * caller only says what comes next. Errors are sticky: after the first one
 * (out of memory, over the limit, a misuse such as a value where a key is
 * due) every call is a no-op and jsonw_finish returns NULL, so a caller never
 * writes a half document; it checks once, at the end.
 *
 * Usage:
 *   jsonw w;
 *   jsonw_init(&w, JSONW_PRETTY);
 *   jsonw_obj(&w);
 *   jsonw_kstr(&w, "state", "ready");
 *   jsonw_kint(&w, "images", 40);
 *   jsonw_end(&w);
 *   char *text = jsonw_finish(&w, &len);   // free(text); NULL on error
 */
#ifndef VFS_JSONW_H
#define VFS_JSONW_H

#include <stddef.h>

/* Deepest nesting the writer tracks; deeper is a misuse (JSONW_EDEPTH). */
#define JSONW_MAX_DEPTH 64
/* Default output limit: far above any status file, well below memory. */
#define JSONW_DEFAULT_LIMIT ((size_t)256 << 20)

typedef enum {
    JSONW_OK = 0,
    JSONW_ENOMEM,  /* allocation failed */
    JSONW_ELIMIT,  /* the output would exceed the limit */
    JSONW_EDEPTH,  /* nesting deeper than JSONW_MAX_DEPTH */
    JSONW_EMISUSE, /* a key outside an object, a value where a key is due, ... */
} jsonw_status;

enum { JSONW_COMPACT = 0, JSONW_PRETTY = 1 };

typedef struct jsonw {
    char *buf; /* NUL-terminated output so far (owned) */
    size_t len, cap, limit;
    jsonw_status err;
    int pretty;
    int depth;
    int key_due;                           /* inside an object, after a value */
    unsigned char is_obj[JSONW_MAX_DEPTH]; /* per open container */
    unsigned char count[JSONW_MAX_DEPTH];  /* 0: empty so far, 1: has members */
} jsonw;

/* Starts an empty writer (no allocation yet). */
void jsonw_init(jsonw *w, int pretty);
/* Changes the output limit (bytes, without the NUL); default JSONW_DEFAULT_LIMIT. */
void jsonw_set_limit(jsonw *w, size_t limit);
/* Frees the output; w may be initialised again. */
void jsonw_release(jsonw *w);

/* Containers. jsonw_end closes the innermost one. */
void jsonw_obj(jsonw *w);
void jsonw_arr(jsonw *w);
void jsonw_end(jsonw *w);

/* A member name (objects only); the next call writes its value. */
void jsonw_key(jsonw *w, const char *key);

/* Values. s may be NULL (written as null). jsonw_num writes null for NaN and
 * infinities (JSON has neither) and otherwise the shortest text that reads
 * back as the same double. */
void jsonw_str(jsonw *w, const char *s);
void jsonw_strn(jsonw *w, const char *s, size_t n);
void jsonw_int(jsonw *w, long long v);
void jsonw_uint(jsonw *w, unsigned long long v);
void jsonw_num(jsonw *w, double v);
/* A number rounded to `decimals` places (metrics are reported at 4). */
void jsonw_numr(jsonw *w, double v, int decimals);
void jsonw_bool(jsonw *w, int v);
void jsonw_null(jsonw *w);

/* key + value in one call. */
void jsonw_kstr(jsonw *w, const char *key, const char *s);
void jsonw_kint(jsonw *w, const char *key, long long v);
void jsonw_knum(jsonw *w, const char *key, double v);
void jsonw_kbool(jsonw *w, const char *key, int v);

/* The status so far (sticky). */
jsonw_status jsonw_error(const jsonw *w);
const char *jsonw_status_name(jsonw_status s);

/* Ends the document: every container must be closed. Returns the text
 * (NUL-terminated, a newline appended in pretty mode), which the caller
 * frees, and its length in *len (may be NULL); the writer is left empty.
 * On any error returns NULL, frees the output and keeps the status. */
char *jsonw_finish(jsonw *w, size_t *len);

#endif
