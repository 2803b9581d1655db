/* test_core.c: tensors and diagnostics of engine/core. */
#include "check.h"
#include "engine.h"

#include <cjson/cJSON.h>
#include <string.h>

int main(void)
{
    int64_t dim[4] = {2, 3, 4, 5};
    eng_tensor *t = eng_tensor_new(ENG_F32, 4, dim);
    CHECK(t != NULL);
    CHECK(eng_tensor_numel(t) == 120);
    CHECK(((uintptr_t)t->data & 63) == 0);
    CHECK(eng_f32(t)[119] == 0.0f);
    eng_tensor_free(t);
    eng_tensor_free(NULL);

    int64_t huge[2] = {1 << 20, 1 << 20};
    CHECK(eng_tensor_new(ENG_F32, 2, huge) == NULL);
    int64_t neg[1] = {-1};
    CHECK(eng_tensor_new(ENG_F32, 1, neg) == NULL);

    eng_diag d;
    CHECK(eng_fail(&d, ENG_EINVAL, "node '%s' missing", "x") == ENG_EINVAL);
    CHECK(strcmp(d.msg, "node 'x' missing") == 0);

    /* JSON: by length (no NUL read past it), and where it broke */
    cJSON *j = NULL;
    const char ok[] = "{\"a\": [1, 2]}trailing bytes not read";
    CHECK(eng_json_parse(ok, 13, "x.json", &j, &d) == ENG_OK && cJSON_IsObject(j));
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(j, "a")) == 2);
    cJSON_Delete(j);
    const char bad[] = "{\"a\": 1,\n \"b\": }";
    CHECK(eng_json_parse(bad, strlen(bad), "x.json", &j, &d) == ENG_EFORMAT && j == NULL);
    CHECK_MSG(strcmp(d.msg, "x.json: not valid JSON at byte 15 (line 2)") == 0, "%s", d.msg);
    CHECK(eng_json_parse(ok, 5, "x.json", &j, &d) == ENG_EFORMAT && j == NULL); /* cut short */
    CHECK(eng_json_parse(NULL, 0, "x.json", &j, &d) == ENG_EFORMAT);
    return check_report("test_core");
}
