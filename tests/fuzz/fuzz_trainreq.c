/* fuzz_trainreq.c: libFuzzer target for the train.json parser
 * (fs/trainreq.c), both shapes (the short form and Azure's body). Traps
 * when a request is taken with a name the name rule refuses or a budget out
 * of range, when a refusal says nothing, and when the normalised form that
 * fs_trainreq_format writes does not parse back to the same request. */
#include "trainreq.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fs_trainreq r, back;
    fs_trainreq_diag d;
    memset(&d, 0, sizeof d);
    fs_trainreq_status st = fs_trainreq_parse((const char *)data, size, &r, &d);
    if (st != FS_TRQ_OK) {
        if (d.msg[0] == '\0' || memchr(d.msg, '\0', sizeof d.msg) == NULL)
            abort(); /* a refusal names what is wrong */
        return 0;
    }
    if (!fs_trainreq_name_ok(r.dataset) ||
        (r.test_dataset[0] && !fs_trainreq_name_ok(r.test_dataset)))
        abort();
    if (!(r.budget_seconds > 0) || r.budget_seconds > FS_TRQ_MAX_BUDGET_S)
        abort();
    char buf[512];
    int n = fs_trainreq_format(&r, buf, sizeof buf);
    if (n < 0 || (size_t)n >= sizeof buf)
        abort(); /* names are at most 64 bytes: the short form always fits */
    memset(&d, 0, sizeof d);
    if (fs_trainreq_parse(buf, (size_t)n, &back, &d) != FS_TRQ_OK)
        abort();
    if (strcmp(r.dataset, back.dataset) != 0 || strcmp(r.test_dataset, back.test_dataset) != 0)
        abort();
    if ((r.kind == NULL) != (back.kind == NULL) || (r.kind && strcmp(r.kind, back.kind) != 0))
        abort();
    if (fabs(back.budget_seconds - r.budget_seconds) > 1e-5 * r.budget_seconds)
        abort(); /* budget_minutes is written with 6 significant digits */
    return 0;
}
