/* test_jsonw.c: the bounded JSON writer. Every hostile string comes back
 * from cJSON as written (invalid UTF-8 as U+FFFD), the output never holds a
 * raw control character, misuse and the size limit fail cleanly (NULL, no
 * half document), numbers read back exactly. */
#include "check.h"
#include "jsonw.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* {"s": s} written and parsed back; returns the decoded string (static). */
static const char *round_trip(const char *s, size_t n, char **text_out)
{
    static char back[4096];
    jsonw w;
    jsonw_init(&w, JSONW_COMPACT);
    jsonw_obj(&w);
    jsonw_key(&w, "s");
    jsonw_strn(&w, s, n);
    jsonw_end(&w);
    char *text = jsonw_finish(&w, NULL);
    back[0] = '\0';
    if (!text)
        return NULL;
    cJSON *j = cJSON_Parse(text);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "s");
    if (cJSON_IsString(v))
        snprintf(back, sizeof back, "%s", v->valuestring);
    cJSON_Delete(j);
    if (text_out)
        *text_out = text;
    else
        free(text);
    return j ? back : NULL;
}

static int has_raw_control(const char *t)
{
    for (; *t; t++)
        if ((unsigned char)*t < 0x20 || *t == 0x7f)
            return 1;
    return 0;
}

static void test_strings(void)
{
    /* every control character, quotes, backslashes: escaped and read back */
    char all[64];
    size_t n = 0;
    for (int c = 1; c < 0x20; c++)
        all[n++] = (char)c;
    all[n++] = '"';
    all[n++] = '\\';
    all[n++] = 0x7f;
    all[n] = '\0';
    char *text = NULL;
    const char *back = round_trip(all, n, &text);
    CHECK(back && strcmp(back, all) == 0);
    CHECK(text && !has_raw_control(text));
    free(text);

    /* 240 control characters (issue 10's crash) */
    char ctl[241];
    memset(ctl, 1, 240);
    ctl[240] = '\0';
    back = round_trip(ctl, 240, &text);
    CHECK(back && strcmp(back, ctl) == 0);
    CHECK(text && strlen(text) == 240 * 6 + strlen("{\"s\":\"\"}"));
    free(text);

    /* U+2028/U+2029 escaped (JavaScript line breaks), read back as UTF-8 */
    const char *ls = "a\xe2\x80\xa8"
                     "b\xe2\x80\xa9";
    back = round_trip(ls, strlen(ls), &text);
    CHECK(back && strcmp(back, ls) == 0);
    CHECK(text && strstr(text, "\\u2028") && strstr(text, "\\u2029"));
    free(text);

    /* valid multi-byte UTF-8 passes through unchanged */
    const char *utf = "caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x98\x80";
    back = round_trip(utf, strlen(utf), &text);
    CHECK(back && strcmp(back, utf) == 0);
    CHECK(text && strstr(text, utf) != NULL);
    free(text);

    /* invalid UTF-8: stray continuation, overlong, surrogate, past U+10FFFF,
     * truncated sequence: each bad byte becomes U+FFFD */
    static const struct {
        const char *in, *out;
    } bad[] = {
        {"a\x80z", "a\xef\xbf\xbdz"},
        {"\xc0\x80", "\xef\xbf\xbd\xef\xbf\xbd"},
        {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"ab\xe2\x82", "ab\xef\xbf\xbd\xef\xbf\xbd"},
        {"\xff\xfe", "\xef\xbf\xbd\xef\xbf\xbd"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        back = round_trip(bad[i].in, strlen(bad[i].in), NULL);
        CHECK_MSG(back && strcmp(back, bad[i].out) == 0, "case %zu", i);
    }
    /* printf directives are just characters */
    back = round_trip("%n%s%x", 6, NULL);
    CHECK(back && strcmp(back, "%n%s%x") == 0);
}

static void test_structure(void)
{
    jsonw w;
    jsonw_init(&w, JSONW_PRETTY);
    jsonw_obj(&w);
    jsonw_kstr(&w, "a", "x");
    jsonw_key(&w, "list");
    jsonw_arr(&w);
    jsonw_int(&w, -5);
    jsonw_uint(&w, 18446744073709551615ull);
    jsonw_num(&w, 0.1);
    jsonw_num(&w, NAN);
    jsonw_bool(&w, 1);
    jsonw_null(&w);
    jsonw_str(&w, NULL);
    jsonw_obj(&w);
    jsonw_end(&w);
    jsonw_arr(&w);
    jsonw_end(&w);
    jsonw_end(&w);
    jsonw_key(&w, "r");
    jsonw_numr(&w, 0.689796, 4);
    jsonw_end(&w);
    size_t len = 0;
    char *text = jsonw_finish(&w, &len);
    CHECK(text && len == strlen(text) && text[len - 1] == '\n');
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    CHECK(j != NULL);
    const cJSON *list = cJSON_GetObjectItem(j, "list");
    CHECK(cJSON_GetArraySize(list) == 9);
    CHECK(cJSON_GetArrayItem(list, 0)->valuedouble == -5);
    CHECK(cJSON_GetArrayItem(list, 2)->valuedouble == 0.1); /* exact round trip */
    CHECK(cJSON_IsNull(cJSON_GetArrayItem(list, 3)));       /* NaN is not JSON */
    CHECK(cJSON_IsTrue(cJSON_GetArrayItem(list, 4)));
    CHECK(cJSON_IsNull(cJSON_GetArrayItem(list, 6)));
    CHECK(cJSON_GetObjectItem(j, "r")->valuedouble == 0.6898);
    CHECK(text && strstr(text, "\"r\": 0.6898") != NULL);
    cJSON_Delete(j);
    free(text);

    /* empty containers stay on one line; compact output has no spaces */
    jsonw_init(&w, JSONW_COMPACT);
    jsonw_obj(&w);
    jsonw_key(&w, "e");
    jsonw_arr(&w);
    jsonw_end(&w);
    jsonw_kint(&w, "n", 1);
    jsonw_end(&w);
    text = jsonw_finish(&w, NULL);
    CHECK(text && strcmp(text, "{\"e\":[],\"n\":1}") == 0);
    free(text);
}

static void test_misuse(void)
{
    jsonw w;
    /* a value where a name is due */
    jsonw_init(&w, JSONW_COMPACT);
    jsonw_obj(&w);
    jsonw_int(&w, 1);
    CHECK(jsonw_error(&w) == JSONW_EMISUSE);
    jsonw_end(&w);
    CHECK(jsonw_finish(&w, NULL) == NULL);
    /* a name in an array */
    jsonw_init(&w, JSONW_COMPACT);
    jsonw_arr(&w);
    jsonw_key(&w, "k");
    CHECK(jsonw_finish(&w, NULL) == NULL && jsonw_error(&w) == JSONW_EMISUSE);
    /* unclosed container */
    jsonw_init(&w, JSONW_COMPACT);
    jsonw_obj(&w);
    CHECK(jsonw_finish(&w, NULL) == NULL);
    /* a name without its value at the end of an object */
    jsonw_init(&w, JSONW_COMPACT);
    jsonw_obj(&w);
    jsonw_key(&w, "k");
    jsonw_end(&w);
    CHECK(jsonw_finish(&w, NULL) == NULL);
    /* two documents */
    jsonw_init(&w, JSONW_COMPACT);
    jsonw_int(&w, 1);
    jsonw_int(&w, 2);
    CHECK(jsonw_finish(&w, NULL) == NULL);
    /* too deep */
    jsonw_init(&w, JSONW_COMPACT);
    for (int i = 0; i < JSONW_MAX_DEPTH + 1; i++)
        jsonw_arr(&w);
    CHECK(jsonw_error(&w) == JSONW_EDEPTH);
    CHECK(jsonw_finish(&w, NULL) == NULL);
    /* nothing at all */
    jsonw_init(&w, JSONW_COMPACT);
    CHECK(jsonw_finish(&w, NULL) == NULL);
    CHECK(strcmp(jsonw_status_name(JSONW_ELIMIT), "output over its size limit") == 0);
}

static void test_limit(void)
{
    /* a limit reached mid-document: no output, the status says why */
    jsonw w;
    jsonw_init(&w, JSONW_COMPACT);
    jsonw_set_limit(&w, 100);
    jsonw_arr(&w);
    for (int i = 0; i < 100; i++)
        jsonw_str(&w, "0123456789");
    jsonw_end(&w);
    CHECK(jsonw_error(&w) == JSONW_ELIMIT);
    CHECK(w.len <= 100);
    CHECK(jsonw_finish(&w, NULL) == NULL);
    /* exactly at the limit is fine */
    jsonw_init(&w, JSONW_COMPACT);
    jsonw_set_limit(&w, 4);
    jsonw_str(&w, "ab");
    char *t = jsonw_finish(&w, NULL);
    CHECK(t && strcmp(t, "\"ab\"") == 0);
    free(t);
    /* a large document grows past the first buffer */
    jsonw_init(&w, JSONW_COMPACT);
    jsonw_arr(&w);
    for (int i = 0; i < 100000; i++)
        jsonw_int(&w, i);
    jsonw_end(&w);
    size_t len = 0;
    t = jsonw_finish(&w, &len);
    cJSON *j = t ? cJSON_ParseWithLength(t, len) : NULL;
    CHECK(cJSON_GetArraySize(j) == 100000);
    cJSON_Delete(j);
    free(t);
}

int main(void)
{
    test_strings();
    test_structure();
    test_misuse();
    test_limit();
    return check_report("test_jsonw");
}
