/* test_fs_models.c: the models/ area's hooks without a mount: creation and
 * its generated files, which paths are read-only or hidden, refusal of bad
 * train.json and model files (the hook's -EINVAL and the reason in status),
 * rename, rmdir rules, and the restart of a run that was "training" when
 * the daemon stopped (here it fails for a missing dataset, which needs no
 * backbone, and the restart is counted). */
#include "area.h"
#include "check.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[256];

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    fputs(text, f);
    fclose(f);
}

static const char *read_store(const char *rel)
{
    static char buf[8192];
    char path[512];
    snprintf(path, sizeof path, "%s/models/%s", root, rel);
    FILE *f = fopen(path, "rb");
    if (!f)
        return "";
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static int exists(const char *rel)
{
    char path[512];
    struct stat st;
    snprintf(path, sizeof path, "%s/models/%s", root, rel);
    return stat(path, &st) == 0;
}

/* Runs validate_write on a temp file holding text. */
static int validate(const char *rel, const char *text, char *why, size_t n)
{
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s/candidate", root);
    write_file(tmp, text);
    why[0] = '\0';
    int rc = fs_area_models.validate_write(rel, tmp, why, n);
    unlink(tmp);
    return rc;
}

static int wait_for(const char *rel, const char *prefix)
{
    for (int i = 0; i < 200; i++) {
        if (strncmp(read_store(rel), prefix, strlen(prefix)) == 0)
            return 1;
        usleep(50000);
    }
    return 0;
}

int main(void)
{
    snprintf(root, sizeof root, "/tmp/vfs-test-models.XXXXXX");
    if (!mkdtemp(root))
        CHECK_SKIP("no temp dir");
    CHECK(fs_store_open(root) == 0);
    const fs_area *a = &fs_area_models;
    a->start();

    /* a new model and its generated files */
    CHECK(a->mkdir_item("m") == 0);
    CHECK(strcmp(read_store("m/status"), "notStarted\n") == 0);
    CHECK(strstr(read_store("m/status.json"), "\"notStarted\"") != NULL);
    CHECK(strstr(read_store("m/log"), "model \"m\" created") != NULL);
    CHECK(a->mkdir_item("m") == -EEXIST);

    /* read-only and hidden paths */
    static const struct {
        const char *rel;
        int ro;
    } ro[] = {
        {"m/status", 1},
        {"m/status.json", 1},
        {"m/log", 1},
        {"m/evaluation.json", 1},
        {"m/train.json", 0},
        {"m/model.safetensors", 0},
        {"m/predict/a.png", 0},
        {"m/evaluations/test", 0},
        {"m/evaluations/test/status", 1},
        {"m/notes.txt", 0},
        {"m", 0},
    };
    for (size_t i = 0; i < sizeof ro / sizeof ro[0]; i++)
        CHECK_MSG(a->is_readonly(ro[i].rel) == ro[i].ro, "%s", ro[i].rel);
    CHECK(!a->is_visible("m/predict"));
    CHECK(!a->is_visible("m/predict/a.png"));
    CHECK(!a->is_visible("m/evaluations"));
    CHECK(a->is_visible("m/status"));
    CHECK(a->is_visible("m/predictions")); /* only predict/ itself is gated */
    CHECK(a->max_size("m/model.safetensors") >= ((int64_t)512 << 20));

    /* refused requests: -EINVAL, the reason in status and status.json */
    char why[512];
    static const struct {
        const char *json;
        const char *status;
    } bad[] = {
        {"not json", "failed: invalidRequest: train.json: not valid JSON"},
        {"[]", "failed: invalidRequest: train.json: must be a JSON object"},
        {"{\"dataset\": \"nope\"}", "failed: datasetNotFound: dataset \"nope\" does not exist"},
        {"{\"trainingParameters\": {\"trainingDatasetName\": \"gone\"}}",
         "failed: datasetNotFound: dataset \"gone\""},
        {"{\"dataset\": \"x\", \"kind\": \"segmenter\"}", "failed: invalidRequest: \"kind\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_MSG(validate("m/train.json", bad[i].json, why, sizeof why) == -EINVAL, "case %zu", i);
        CHECK_MSG(strncmp(read_store("m/status"), bad[i].status, strlen(bad[i].status)) == 0,
                  "case %zu: status %s", i, read_store("m/status"));
        CHECK_MSG(why[0] != '\0', "case %zu: no reason for the log", i);
    }
    CHECK(strstr(read_store("m/status.json"), "\"code\":") != NULL);
    CHECK(strstr(read_store("m/log"), "train.json refused") != NULL);

    /* a model file that is not one */
    CHECK(validate("m/model.safetensors", "garbage garbage garbage", why, sizeof why) == -EINVAL);
    CHECK(strncmp(read_store("m/status"), "failed: invalidModel: model.safetensors", 39) == 0);
    CHECK(!exists("m/model.safetensors"));
    char hdr[64] = {16, 0, 0, 0, 0, 0, 0, 0};
    memcpy(hdr + 8, "{\"a\": 1}        ", 16);
    CHECK(validate("m/model.safetensors", hdr, why, sizeof why) == -EINVAL);

    /* evaluations/ takes folders only */
    CHECK(validate("m/evaluations/x.txt", "hello", why, sizeof why) == -EACCES);
    /* other files pass */
    CHECK(validate("m/notes.txt", "hello", why, sizeof why) == 0);

    /* mv: the record follows the folder */
    CHECK(a->rename_item("m", "n") == 0);
    CHECK(exists("n/status") && !exists("m"));
    CHECK(validate("n/train.json", "{}", why, sizeof why) == -EINVAL);
    CHECK_MSG(strncmp(read_store("n/status"), "failed: invalidRequest: \"dataset\": missing", 42) ==
                  0,
              "%s", read_store("n/status"));

    /* rmdir: refused while user files remain, then the whole folder goes */
    char path[512];
    snprintf(path, sizeof path, "%s/models/n/train.json", root);
    write_file(path, "{\"dataset\": \"x\"}");
    CHECK(a->rmdir_item("n") == -ENOTEMPTY);
    unlink(path);
    snprintf(path, sizeof path, "%s/models/n/notes.txt", root);
    write_file(path, "mine");
    CHECK(a->rmdir_item("n") == -ENOTEMPTY); /* notes.txt is the user's too */
    unlink(path);
    CHECK(a->rmdir_item("n") == 0);
    CHECK(!exists("n"));
    CHECK(a->mkdir_item("n") == 0);
    CHECK(strcmp(read_store("n/status"), "notStarted\n") == 0);

    /* a run that was training when the daemon died restarts at start */
    a->stop();
    snprintf(path, sizeof path, "%s/models/k", root);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/models/k/.vfs-state.json", root);
    write_file(path, "{\"state\": \"training\", \"version\": 1, \"restarts\": 0, "
                     "\"request\": {\"dataset\": \"vanished\", \"budget_minutes\": 1}}");
    snprintf(path, sizeof path, "%s/models/k/train.json", root);
    write_file(path, "{\"dataset\": \"vanished\", \"budget_minutes\": 1}");
    snprintf(path, sizeof path, "%s/models/u", root);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/models/u/.vfs-state.json", root);
    write_file(path, "{\"state\": \"training\", \"request\": {\"dataset\": 7}}");
    a->start();
    CHECK(wait_for("k/status", "failed: datasetNotFound"));
    CHECK(wait_for("u/status", "failed: unknown: the run interrupted"));
    CHECK(strstr(read_store("k/status.json"), "\"restarts\": 1") != NULL);
    CHECK(strstr(read_store("k/log"), "restarting it") != NULL);
    /* the state file follows the status (another thread may publish the
     * status between the two writes) */
    int persisted = 0;
    for (int i = 0; i < 500 && !persisted; i++) {
        persisted = strstr(read_store("k/.vfs-state.json"), "\"failed\"") != NULL;
        if (!persisted)
            usleep(10000);
    }
    CHECK(persisted);
    /* state survives a stop and start */
    a->stop();
    a->start();
    CHECK(strncmp(read_store("n/status"), "notStarted", 10) == 0);
    CHECK(strncmp(read_store("k/status"), "failed: datasetNotFound", 23) == 0);
    a->stop();

    fs_remove_tree(root);
    return check_report("test_fs_models");
}
