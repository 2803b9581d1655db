/* fuzz_http.c: libFuzzer target for the REST API's JSON handling: a request
 * body through http_body_object (the one parse, Azure's keys matched without
 * case, modelKind spelled as the kinds' table) and back out as JSON. Traps
 * when a body is taken as an object but does not print, or when a 400
 * answer has no body. */
#include "http_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *no_arg(const http_req *r, const char *name)
{
    (void)r;
    (void)name;
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *body = malloc(size + 1);
    if (!body)
        return 0;
    memcpy(body, data, size);
    body[size] = '\0';
    http_req r = {.method = "PUT",
                  .path = "/computervision/models/m",
                  .content_type = "application/json",
                  .host = "",
                  .body = body,
                  .len = size,
                  .arg = no_arg,
                  .header = no_arg};
    http_resp out;
    memset(&out, 0, sizeof out);
    cJSON *j = http_body_object(&r, &out);
    if (j) {
        char *s = cJSON_PrintUnformatted(j);
        if (!s)
            __builtin_trap();
        free(s);
        cJSON_Delete(j);
    } else if (out.status != 400 || !out.body) {
        __builtin_trap();
    }
    free(out.body);
    free(body);
    return 0;
}
