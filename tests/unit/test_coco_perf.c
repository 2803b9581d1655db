/* test_coco_perf.c: parses and validates synthetic COCO files of 10,000 and
 * 200,000 images (1.5 boxes per image, 80 categories) and prints the time.
 * It asserts the counts and the ready state, and only a generous time bound
 * (sanitizer builds are slow): the printed figures are the measurement. */
#define _POSIX_C_SOURCE 200809L
#include "check.h"
#include "coco.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Returns a new COCO document (pixel boxes) and its length. */
static char *make_coco(size_t n_images, size_t *len)
{
    size_t cap = 512 + n_images * 420;
    char *s = malloc(cap);
    size_t o = 0;
    o += (size_t)snprintf(s + o, cap - o, "{\"info\":{\"description\":\"synthetic\"},\"images\":[");
    for (size_t i = 0; i < n_images; i++)
        o += (size_t)snprintf(s + o, cap - o,
                              "%s{\"id\":%zu,\"file_name\":\"images/img_%07zu.jpg\",\"width\":640,"
                              "\"height\":480,\"absolute_url\":\"https://example.blob.core."
                              "windows.net/data/img_%07zu.jpg\"}",
                              i ? "," : "", i + 1, i, i);
    o += (size_t)snprintf(s + o, cap - o, "],\"annotations\":[");
    size_t aid = 1;
    for (size_t i = 0; i < n_images; i++) {
        int boxes = (i % 2) ? 2 : 1;
        for (int b = 0; b < boxes; b++, aid++)
            o += (size_t)snprintf(s + o, cap - o,
                                  "%s{\"id\":%zu,\"image_id\":%zu,\"category_id\":%zu,"
                                  "\"bbox\":[%d.5,%d.25,120.0,88.5],\"area\":10620.0,"
                                  "\"iscrowd\":0}",
                                  aid > 1 ? "," : "", aid, i + 1, (i + (size_t)b) % 80 + 1,
                                  (int)(i % 400), (int)(i % 300));
    }
    o += (size_t)snprintf(s + o, cap - o, "],\"categories\":[");
    for (int c = 0; c < 80; c++)
        o += (size_t)snprintf(s + o, cap - o, "%s{\"id\":%d,\"name\":\"class_%02d\"}", c ? "," : "",
                              c + 1, c);
    o += (size_t)snprintf(s + o, cap - o, "]}");
    *len = o;
    return s;
}

static void run(size_t n_images)
{
    size_t len;
    char *json = make_coco(n_images, &len);
    coco_dataset *ds = NULL;
    coco_diag d = {0};
    double t0 = now_ms();
    coco_status st = coco_dataset_parse(json, len, NULL, &ds, &d);
    double t1 = now_ms();
    CHECK_MSG(st == COCO_OK, "%s", d.msg);
    if (st != COCO_OK) {
        free(json);
        return;
    }
    coco_report *r = NULL;
    CHECK(coco_validate(ds, NULL, &r) == COCO_OK);
    double t2 = now_ms();
    char *js = coco_report_to_json(r);
    double t3 = now_ms();
    const coco_summary *s = coco_report_summary(r);
    size_t boxes = n_images + n_images / 2;
    CHECK(s->images == n_images && s->boxes == boxes && s->categories == 80);
    CHECK_MSG(s->state == COCO_STATE_READY && s->errors == 0, "state %d errors %zu", s->state,
              s->errors);
    CHECK(s->units == COCO_UNITS_PIXELS && s->kind == COCO_KIND_DETECTION);
    CHECK(js != NULL);
    printf(
        "%zu images (%.1f MB): parse %.1f ms (%.0f MB/s), validate %.1f ms, status.json %.1f ms\n",
        n_images, (double)len / 1048576.0, t1 - t0, (double)len / 1048576.0 / ((t1 - t0) / 1e3),
        t2 - t1, t3 - t2);
    /* generous: a 200,000-image file must not take seconds even under sanitizers */
    CHECK_MSG(t2 - t0 < 20000.0, "parse+validate took %.0f ms", t2 - t0);
    free(js);
    coco_report_free(r);
    coco_dataset_free(ds);
    free(json);
}

int main(void)
{
    run(10000);
    run(200000);
    return check_report("test_coco_perf");
}
