/* test_fs_trainreq.c: train.json parsing, short form and Azure's body, and a
 * table of broken requests each asserting the status and the key named. */
#include "check.h"
#include "trainreq.h"

#include <string.h>

static fs_trainreq_status parse(const char *s, fs_trainreq *r, fs_trainreq_diag *d)
{
    return fs_trainreq_parse(s, strlen(s), r, d);
}

int main(void)
{
    fs_trainreq r;
    fs_trainreq_diag d;

    CHECK(parse("{\"dataset\": \"flowers\", \"kind\": \"classifier\", \"budget_minutes\": 2.5, "
                "\"test_dataset\": \"flowers-test\"}",
                &r, &d) == FS_TRQ_OK);
    CHECK(strcmp(r.dataset, "flowers") == 0);
    CHECK(strcmp(r.test_dataset, "flowers-test") == 0);
    CHECK(r.kind && strcmp(r.kind, "classifier") == 0);
    CHECK_NEAR(r.budget_seconds, 150.0, 1e-9);
    CHECK(!r.azure_form);

    /* defaults: kind from the dataset, 10 minutes, no test set */
    CHECK(parse("{\"dataset\": \"a.b_c-1\"}", &r, &d) == FS_TRQ_OK);
    CHECK(r.kind == NULL);
    CHECK_NEAR(r.budget_seconds, FS_TRQ_DEFAULT_BUDGET_S, 1e-9);
    CHECK(r.test_dataset[0] == '\0');
    CHECK(parse("{\"dataset\": \"x\", \"kind\": \"detector\", \"test_dataset\": null}", &r, &d) ==
          FS_TRQ_OK);
    CHECK(r.kind && strcmp(r.kind, "detector") == 0);

    /* Azure's body, unchanged, with extra fields */
    CHECK(parse("{\"trainingParameters\": {\"trainingDatasetName\": \"train\", "
                "\"timeBudgetInHours\": 0.2, \"modelKind\": \"Generic-Detector\"}, "
                "\"evaluationParameters\": {\"testDatasetName\": \"test\"}, \"extra\": 1}",
                &r, &d) == FS_TRQ_OK);
    CHECK(r.azure_form);
    CHECK(strcmp(r.dataset, "train") == 0 && strcmp(r.test_dataset, "test") == 0);
    CHECK(r.kind && strcmp(r.kind, "detector") == 0);
    CHECK_NEAR(r.budget_seconds, 720.0, 1e-6);
    CHECK(parse("{\"trainingParameters\": {\"trainingDatasetName\": \"t\", \"modelKind\": "
                "\"Generic-Classifier\"}}",
                &r, &d) == FS_TRQ_OK);
    CHECK(r.kind && strcmp(r.kind, "classifier") == 0 && r.test_dataset[0] == '\0');

    /* the normalised form round-trips */
    char buf[512];
    CHECK(parse("{\"dataset\": \"d\", \"kind\": \"classifier\", \"budget_minutes\": 3, "
                "\"test_dataset\": \"e\"}",
                &r, &d) == FS_TRQ_OK);
    int n = fs_trainreq_format(&r, buf, sizeof buf);
    CHECK(n > 0 && (size_t)n < sizeof buf);
    fs_trainreq r2;
    CHECK(fs_trainreq_parse(buf, (size_t)n, &r2, &d) == FS_TRQ_OK);
    CHECK(strcmp(r2.dataset, "d") == 0 && strcmp(r2.test_dataset, "e") == 0);
    CHECK(r2.kind && strcmp(r2.kind, "classifier") == 0 && r2.budget_seconds == 180.0);
    char tiny[8];
    CHECK(fs_trainreq_format(&r, tiny, sizeof tiny) == n && strlen(tiny) == 7);

    /* broken requests: status and the subject the message names */
    static const struct {
        const char *json;
        fs_trainreq_status st;
        const char *names;
    } bad[] = {
        {"", FS_TRQ_EJSON, "empty"},
        {"not json", FS_TRQ_EJSON, "not valid JSON"},
        {"{\"dataset\": \"x\"", FS_TRQ_EJSON, "not valid JSON"},
        {"[1, 2]", FS_TRQ_EJSON, "must be a JSON object"},
        {"\"dataset\"", FS_TRQ_EJSON, "must be a JSON object"},
        {"{}", FS_TRQ_EFIELD, "\"dataset\": missing"},
        {"{\"dataset\": 3}", FS_TRQ_EFIELD, "\"dataset\": must be a string"},
        {"{\"dataset\": \"\"}", FS_TRQ_EFIELD, "not a dataset name"},
        {"{\"dataset\": \"../etc\"}", FS_TRQ_EFIELD, "not a dataset name"},
        {"{\"dataset\": \".hidden\"}", FS_TRQ_EFIELD, "not a dataset name"},
        {"{\"dataset\": \"a b\"}", FS_TRQ_EFIELD, "not a dataset name"},
        {"{\"dataset\": \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
         FS_TRQ_EFIELD, "not a dataset name"},
        {"{\"dataset\": \"x\", \"kind\": \"segmenter\"}", FS_TRQ_EFIELD, "\"kind\": \"segmenter\""},
        {"{\"dataset\": \"x\", \"kind\": 1}", FS_TRQ_EFIELD, "\"kind\""},
        {"{\"dataset\": \"x\", \"budget_minutes\": 0}", FS_TRQ_EFIELD, "\"budget_minutes\""},
        {"{\"dataset\": \"x\", \"budget_minutes\": -3}", FS_TRQ_EFIELD, "\"budget_minutes\""},
        {"{\"dataset\": \"x\", \"budget_minutes\": \"10\"}", FS_TRQ_EFIELD,
         "\"budget_minutes\": must be a number"},
        {"{\"dataset\": \"x\", \"budget_minutes\": 1e9}", FS_TRQ_EFIELD, "more than 7 days"},
        {"{\"dataset\": \"x\", \"test_dataset\": 5}", FS_TRQ_EFIELD, "\"test_dataset\""},
        {"{\"trainingParameters\": 1}", FS_TRQ_EFIELD, "\"trainingParameters\""},
        {"{\"trainingParameters\": {}}", FS_TRQ_EFIELD, "trainingDatasetName\": missing"},
        {"{\"trainingParameters\": {\"trainingDatasetName\": \"t\", \"modelKind\": "
         "\"Generic-Segmenter\"}}",
         FS_TRQ_EFIELD, "modelKind\": \"Generic-Segmenter\""},
        {"{\"trainingParameters\": {\"trainingDatasetName\": \"t\", \"timeBudgetInHours\": 0}}",
         FS_TRQ_EFIELD, "timeBudgetInHours"},
        {"{\"trainingParameters\": {\"trainingDatasetName\": \"t\"}, \"evaluationParameters\": 2}",
         FS_TRQ_EFIELD, "\"evaluationParameters\""},
        {"{\"trainingParameters\": {\"trainingDatasetName\": \"t\"}, \"evaluationParameters\": "
         "{\"testDatasetName\": \"a/b\"}}",
         FS_TRQ_EFIELD, "testDatasetName"},
        /* a key given twice: refused, not silently the first */
        {"{\"dataset\": \"a\", \"dataset\": \"b\"}", FS_TRQ_EFIELD, "\"dataset\" is given twice"},
        {"{\"dataset\": \"a\", \"budget_minutes\": 1, \"Budget_Minutes\": 99}", FS_TRQ_EFIELD,
         "given twice"},
        {"{\"trainingParameters\": {\"trainingDatasetName\": \"t\", \"timeBudgetInHours\": 1, "
         "\"timeBudgetInHours\": 9}}",
         FS_TRQ_EFIELD, "\"timeBudgetInHours\" is given twice"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&d, 0, sizeof d);
        fs_trainreq_status st = parse(bad[i].json, &r, &d);
        CHECK_MSG(st == bad[i].st, "case %zu: status %d", i, (int)st);
        CHECK_MSG(strstr(d.msg, bad[i].names) != NULL, "case %zu: message '%s'", i, d.msg);
    }
    CHECK(fs_trainreq_parse(NULL, 0, &r, NULL) == FS_TRQ_EJSON);
    CHECK(fs_trainreq_name_ok("abc") && !fs_trainreq_name_ok(NULL));
    return check_report("test_fs_trainreq");
}
