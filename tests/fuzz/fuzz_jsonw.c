/* fuzz_jsonw.c: libFuzzer target for the JSON writer, as a round trip. The
 * input is a program of writer calls (one op byte, then its operand); the
 * target builds the expected value with cJSON next to it, and whatever the
 * writer produces must parse back to exactly that value. Strings expected
 * are the input bytes with invalid UTF-8 replaced by U+FFFD, worked out here
 * by a decoder of our own independent of the writer's. Traps on any
 * difference, on a raw control character in the output, and on a document
 * that the writer accepted but cJSON cannot parse. */
#include "jsonw.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The expected decoding of n bytes: valid UTF-8 kept, else U+FFFD per byte. */
static char *expected_string(const uint8_t *s, size_t n)
{
    char *out = malloc(n * 3 + 1);
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        uint32_t c = s[i], cp = 0;
        size_t len = c < 0x80                ? 1
                     : c >= 0xc2 && c < 0xe0 ? 2
                     : c >= 0xe0 && c < 0xf0 ? 3
                     : c >= 0xf0 && c < 0xf5 ? 4
                                             : 0;
        int ok = len > 0 && i + len <= n;
        if (ok && len > 1) {
            cp = c & (0xffu >> (len + 1));
            for (size_t k = 1; k < len; k++) {
                if ((s[i + k] & 0xc0) != 0x80)
                    ok = 0;
                cp = (cp << 6) | (s[i + k] & 0x3fu);
            }
            if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
                (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
                ok = 0;
        }
        if (ok) {
            memcpy(out + o, s + i, len);
            o += len;
            i += len;
        } else {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        }
    }
    out[o] = '\0';
    return out;
}

typedef struct {
    const uint8_t *p;
    size_t n;
} input;

static int take(input *in, uint8_t *b)
{
    if (!in->n)
        return 0;
    *b = *in->p++;
    in->n--;
    return 1;
}

/* A string operand: a length byte, then that many bytes (no NUL: the
 * writer takes C strings for names; NUL inside values is covered by strn). */
static size_t take_str(input *in, char *buf, size_t cap)
{
    uint8_t len = 0;
    take(in, &len);
    size_t k = 0;
    while (k < len && k + 1 < cap && in->n) {
        uint8_t c;
        take(in, &c);
        buf[k++] = c ? (char)c : 'x';
    }
    buf[k] = '\0';
    return k;
}

/* a and b hold the same values in the same order (cJSON_Compare walks
 * objects twice per level, exponential in the depth). */
static int same(const cJSON *a, const cJSON *b)
{
    if ((a->type & 0xff) != (b->type & 0xff))
        return 0;
    if ((a->string == NULL) != (b->string == NULL) ||
        (a->string && strcmp(a->string, b->string) != 0))
        return 0;
    if (cJSON_IsString(a))
        return strcmp(a->valuestring, b->valuestring) == 0;
    if (cJSON_IsNumber(a))
        return a->valuedouble == b->valuedouble;
    const cJSON *x = a->child, *y = b->child;
    for (; x && y; x = x->next, y = y->next)
        if (!same(x, y))
            return 0;
    return x == NULL && y == NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    input in = {data, size};
    jsonw w;
    jsonw_init(&w, size & 1 ? JSONW_PRETTY : JSONW_COMPACT);
    cJSON *stack[JSONW_MAX_DEPTH + 1];
    int depth = 0, keys = 0, done = 0;
    cJSON *root = NULL;
    char key[300] = "", buf[300];
    uint8_t op;
    while (!done && take(&in, &op)) {
        cJSON *parent = depth ? stack[depth - 1] : NULL;
        int in_obj = parent && cJSON_IsObject(parent);
        if (in_obj) { /* a unique name before every member */
            size_t k = take_str(&in, buf, 200);
            snprintf(key, sizeof key, "%d:%.*s", keys++, (int)k, buf);
            jsonw_key(&w, key);
        }
        cJSON *v = NULL;
        switch (op % 8) {
        case 0:
        case 1:
            if (depth == JSONW_MAX_DEPTH) {
                v = cJSON_CreateNull();
                jsonw_null(&w);
                break;
            }
            v = op % 8 ? cJSON_CreateArray() : cJSON_CreateObject();
            if (op % 8)
                jsonw_arr(&w);
            else
                jsonw_obj(&w);
            break;
        case 2: {
            size_t k = take_str(&in, buf, sizeof buf);
            char *e = expected_string((const uint8_t *)buf, k);
            v = cJSON_CreateString(e);
            free(e);
            jsonw_strn(&w, buf, k);
            break;
        }
        case 3: {
            int64_t x = 0;
            for (int i = 0; i < 8; i++) {
                uint8_t b = 0;
                take(&in, &b);
                x = (int64_t)(((uint64_t)x << 8) | b);
            }
            v = cJSON_CreateNumber((double)x);
            jsonw_int(&w, (long long)x);
            break;
        }
        case 4: {
            double d = 0;
            uint8_t b[8] = {0};
            for (int i = 0; i < 8; i++)
                take(&in, &b[i]);
            memcpy(&d, b, 8);
            v = isfinite(d) ? cJSON_CreateNumber(d) : cJSON_CreateNull();
            jsonw_num(&w, d);
            break;
        }
        case 5:
            v = cJSON_CreateBool(op & 8);
            jsonw_bool(&w, op & 8);
            break;
        case 6:
            v = cJSON_CreateNull();
            jsonw_null(&w);
            break;
        case 7: /* close the innermost container, or stop at the top */
            if (in_obj) {
                v = cJSON_CreateNull(); /* the name is written: give it a value */
                jsonw_null(&w);
                break;
            }
            if (!depth) {
                done = 1;
                continue;
            }
            jsonw_end(&w);
            depth--;
            if (!depth)
                done = 1;
            continue;
        }
        if (parent) {
            if (in_obj) {
                char *ekey = expected_string((const uint8_t *)key, strlen(key));
                cJSON_AddItemToObject(parent, ekey, v);
                free(ekey);
            } else
                cJSON_AddItemToArray(parent, v);
        } else {
            root = v;
        }
        if (cJSON_IsObject(v) || cJSON_IsArray(v))
            stack[depth++] = v;
        else if (!depth)
            done = 1;
    }
    if (!root) {
        jsonw_release(&w);
        return 0;
    }
    while (depth > 0) { /* close what the input left open */
        jsonw_end(&w);
        depth--;
    }
    if (jsonw_error(&w) != JSONW_OK)
        __builtin_trap(); /* every program above is well-formed */
    size_t len = 0;
    char *text = jsonw_finish(&w, &len);
    if (!text)
        __builtin_trap();
    for (size_t i = 0; i < len; i++)
        if (((unsigned char)text[i] < 0x20 && text[i] != '\n') || text[i] == 0x7f)
            __builtin_trap();
    cJSON *back = cJSON_ParseWithLength(text, len);
    if (!back || !same(root, back))
        __builtin_trap();
    cJSON_Delete(back);
    cJSON_Delete(root);
    free(text);
    return 0;
}
