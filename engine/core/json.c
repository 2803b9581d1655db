/* json.c: the one way the engine and its users parse JSON text they did not
 * write themselves: with its length (no NUL needed, none trusted) and, on
 * failure, where it broke. */
#include "core.h"

#include <cjson/cJSON.h>

eng_status eng_json_parse_prefix(const char *text, size_t len, const char *what, cJSON **out,
                                 size_t *used, eng_diag *d)
{
    *out = NULL;
    if (!text)
        return eng_fail(d, ENG_EFORMAT, "%s: no JSON", what);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        /* cJSON leaves end at the byte it could not take; it says nothing
         * else, so running out of memory reads as text it could not take
         * (a caller's own size limits keep that rare) */
        size_t at = end ? (size_t)(end - text) : 0, line = 1;
        for (size_t i = 0; i < at && i < len; i++)
            line += text[i] == '\n';
        return eng_fail(d, ENG_EFORMAT, "%s: not valid JSON at byte %zu (line %zu)", what, at,
                        line);
    }
    if (used)
        *used = (size_t)(end - text);
    *out = root;
    return ENG_OK;
}

eng_status eng_json_parse(const char *text, size_t len, const char *what, cJSON **out, eng_diag *d)
{
    return eng_json_parse_prefix(text, len, what, out, NULL, d);
}
