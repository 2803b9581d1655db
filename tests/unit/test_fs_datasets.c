/* test_fs_datasets.c: the datasets/ area and the store without a mount:
 * name rules, atomic writes, the area's hooks (refusal of a bad COCO file,
 * size limits, read-only generated files), the background verifier's
 * status/status.json, and the snapshot models/ trains on (paths, labels,
 * boxes converted to pixels, the 2-images-per-category training rule). */
#include "area.h"
#include "check.h"
#include "datasets.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[256];

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    fwrite(data, 1, len, f);
    fclose(f);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* A real 24-bit BMP of w x h with a seeded pattern. */
static void write_bmp(const char *path, int w, int h, int seed)
{
    int row = (w * 3 + 3) & ~3;
    size_t size = 54 + (size_t)row * h;
    uint8_t *b = calloc(1, size);
    b[0] = 'B';
    b[1] = 'M';
    uint32_t v[] = {(uint32_t)size, 0, 54, 40, (uint32_t)w, (uint32_t)h};
    memcpy(b + 2, &v[0], 4);
    memcpy(b + 10, &v[2], 4);
    memcpy(b + 14, &v[3], 4);
    memcpy(b + 18, &v[4], 4);
    memcpy(b + 22, &v[5], 4);
    uint16_t planes = 1, bpp = 24;
    memcpy(b + 26, &planes, 2);
    memcpy(b + 28, &bpp, 2);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = b + 54 + (size_t)y * row + x * 3;
            p[0] = (uint8_t)(x * 3 + seed);
            p[1] = (uint8_t)(y * 5 + seed);
            p[2] = (uint8_t)(x ^ y);
        }
    write_file(path, b, size);
    free(b);
}

/* Puts text at STORE/datasets/REL the way the FUSE core does: a temp file,
 * validate_write, rename, committed. Returns validate's result. */
static int put(const char *rel, const char *text)
{
    char tmp[4200], dst[4200], why[512] = "";
    int fd = fs_tmp_create(tmp, sizeof tmp);
    if (fd < 0)
        return fd;
    if (write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
        close(fd);
        return -EIO;
    }
    close(fd);
    int rc = fs_area_datasets.validate_write(rel, tmp, why, sizeof why);
    if (rc) {
        CHECK_MSG(why[0] != '\0', "refusal of %s gives a reason", rel);
        unlink(tmp);
        return rc;
    }
    fs_store_path(dst, sizeof dst, "datasets", rel);
    CHECK(rename(tmp, dst) == 0);
    fs_area_datasets.committed(rel);
    return 0;
}

static void put_image(const char *rel, int w, int h, int seed)
{
    char dst[4200];
    fs_store_path(dst, sizeof dst, "datasets", rel);
    write_bmp(dst, w, h, seed);
    fs_area_datasets.committed(rel);
}

static const char *status_of(const char *name)
{
    char p[4200];
    fs_store_path(p, sizeof p, "datasets", name);
    size_t used = strlen(p);
    snprintf(p + used, sizeof p - used, "/status");
    char *s = read_file(p);
    if (s) {
        char *nl = strchr(s, '\n');
        if (nl)
            *nl = '\0';
    }
    return s ? s : "";
}

static void test_names(void)
{
    static const struct {
        const char *name;
        int ok;
    } cases[] = {
        {"a", 1},
        {"pets", 1},
        {"A.b-c_9", 1},
        {"x.json", 1},
        {"", 0},
        {".hidden", 0},
        {".", 0},
        {"..", 0},
        {"a b", 0},
        {"a/b", 0},
        {"caf\xc3\xa9", 0},
        {"tab\t", 0},
        {"0123456789012345678901234567890123456789012345678901234567890123", 1},
        {"01234567890123456789012345678901234567890123456789012345678901234", 0},
        {"semi;colon", 0},
        {"star*", 0},
        {"-dash-first", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECK_MSG(fs_name_valid(cases[i].name) == cases[i].ok, "name \"%s\"", cases[i].name);
}

static void test_store(void)
{
    char p[4200];
    CHECK(fs_store_path(p, sizeof p, "datasets", "x/y") == 0);
    CHECK(strstr(p, "/datasets/x/y") != NULL);
    char small[8];
    CHECK(fs_store_path(small, sizeof small, "datasets", "x") == -ENAMETOOLONG);
    snprintf(p, sizeof p, "%s/atomic.txt", root);
    CHECK(fs_write_atomic(p, "one\n", 4) == 0);
    CHECK(strcmp(read_file(p), "one\n") == 0);
    CHECK(fs_write_atomic(p, "two two\n", 8) == 0);
    CHECK(strcmp(read_file(p), "two two\n") == 0);
    snprintf(p, sizeof p, "%s/.tmp", root);
    CHECK(rmdir(p) == 0); /* nothing left in .tmp */
    CHECK(mkdir(p, 0700) == 0);
}

static void test_hooks(void)
{
    const fs_area *a = &fs_area_datasets;
    CHECK(a->is_readonly("d/status"));
    CHECK(a->is_readonly("d/status.json"));
    CHECK(!a->is_readonly("d/ann.json"));
    CHECK(!a->is_readonly("d/images/status"));
    CHECK(a->max_size("d/ann.json") == (int64_t)512 << 20);
    CHECK(a->max_size("d/images/x.jpg") == FS_MAX_FILE_DEFAULT);
    CHECK(a->max_size("d/sub/x.json") == FS_MAX_FILE_DEFAULT);
}

static void test_lifecycle(void)
{
    const fs_area *a = &fs_area_datasets;
    CHECK(a->mkdir_item("cls") == 0);
    CHECK(strcmp(status_of("cls"), "empty") == 0);
    CHECK(fs_dataset_state("cls", NULL, NULL, 0) == FS_DS_EMPTY ||
          fs_dataset_state("cls", NULL, NULL, 0) == FS_DS_VERIFYING);
    CHECK(fs_dataset_state("nope", NULL, NULL, 0) == FS_DS_NOTFOUND);

    /* refused: not JSON, not COCO; nothing lands */
    CHECK(put("cls/ann.json", "not json at all") == -EINVAL);
    CHECK(put("cls/ann.json", "{\"images\": [], \"categories\": []}") == -EINVAL);
    CHECK(put("cls/ann.json", "[1, 2, 3]") == -EINVAL);
    char p[4200];
    fs_store_path(p, sizeof p, "datasets", "cls/ann.json");
    CHECK(access(p, F_OK) != 0);
    fs_dataset_wait("cls", 5000);
    CHECK_MSG(strncmp(status_of("cls"), "invalid: datasetAnnotationsInvalid", 34) == 0, "%s",
              status_of("cls"));

    /* a classification set: 2 cats, 3 dogs, images in a sub-folder */
    char sub[4200];
    fs_store_path(sub, sizeof sub, "datasets", "cls/images");
    CHECK(mkdir(sub, 0755) == 0);
    for (int i = 1; i <= 5; i++) {
        char rel[64];
        snprintf(rel, sizeof rel, "cls/images/i%d.bmp", i);
        put_image(rel, 64, 60, i);
    }
    const char *coco =
        "{\"images\": ["
        "{\"id\": 1, \"width\": 64, \"height\": 60, \"file_name\": \"images/i1.bmp\"},"
        "{\"id\": 2, \"width\": 64, \"height\": 60, \"file_name\": \"i2.bmp\"},"
        "{\"id\": 3, \"width\": 64, \"height\": 60, \"file_name\": \"images/i3.bmp\"},"
        "{\"id\": 4, \"width\": 64, \"height\": 60, \"file_name\": \"x/y/i4.bmp\"},"
        "{\"id\": 5, \"width\": 64, \"height\": 60, \"file_name\": \"images/i5.bmp\"}],"
        "\"annotations\": ["
        "{\"id\": 1, \"image_id\": 1, \"category_id\": 7},"
        "{\"id\": 2, \"image_id\": 2, \"category_id\": 7},"
        "{\"id\": 3, \"image_id\": 3, \"category_id\": 9},"
        "{\"id\": 4, \"image_id\": 4, \"category_id\": 9},"
        "{\"id\": 5, \"image_id\": 5, \"category_id\": 9}],"
        "\"categories\": [{\"id\": 7, \"name\": \"cat\"}, {\"id\": 9, \"name\": \"dog\"}]}";
    CHECK(put("cls/ann.json", coco) == 0);
    CHECK(fs_dataset_wait("cls", 10000) == FS_DS_READY);
    CHECK_MSG(strcmp(status_of("cls"), "ready: 5 images, 2 categories, 0 boxes (classification)") ==
                  0,
              "%s", status_of("cls"));
    char line[256], why_r[256];
    int det = -1;
    CHECK(fs_dataset_state("cls", &det, line, sizeof line) == FS_DS_READY);
    CHECK(det == 0);
    CHECK(strncmp(line, "ready: 5 images", 15) == 0);

    /* a refused write over the good file costs nothing: still ready, same
     * status line; status.json reports the refusal */
    CHECK(put("cls/ann.json", "not json at all") == -EINVAL);
    fs_dataset_wait("cls", 5000);
    CHECK(fs_dataset_wait("cls", 10000) == FS_DS_READY);
    CHECK_MSG(strcmp(status_of("cls"), "ready: 5 images, 2 categories, 0 boxes (classification)") ==
                  0,
              "after a refused write: %s", status_of("cls"));
    CHECK(fs_dataset_state("cls", NULL, line, sizeof line) == FS_DS_READY);
    fs_store_path(p, sizeof p, "datasets", "cls/status.json");
    const char *sj = read_file(p);
    /* pretty-printed: the member, then its file on the next line */
    const char *lr = sj ? strstr(sj, "\"lastRefusedWrite\": {") : NULL;
    CHECK_MSG(lr && strncmp(strchr(lr, '{') + 1 + strspn(strchr(lr, '{') + 1, " \n"),
                            "\"file\": \"ann.json\"", 18) == 0,
              "%s", sj ? sj : "(none)");
    CHECK(sj && strstr(sj, "\"time\": \"20") != NULL);
    fs_ds_snapshot *rs = NULL;
    CHECK(fs_dataset_snapshot("cls", 1, &rs, why_r, sizeof why_r) == FS_DS_READY);
    fs_dataset_snapshot_free(rs);
    /* a good write clears the note */
    CHECK(put("cls/ann.json", coco) == 0);
    CHECK(fs_dataset_wait("cls", 10000) == FS_DS_READY);
    sj = read_file(p);
    CHECK(sj && strstr(sj, "lastRefusedWrite") == NULL);

    fs_ds_snapshot *s = NULL;
    char why[256] = "";
    CHECK(fs_dataset_snapshot("cls", 1, &s, why, sizeof why) == FS_DS_READY);
    if (s) {
        CHECK(s->nimages == 5);
        CHECK(s->ncategories == 2);
        CHECK(s->detection == 0);
        CHECK(strcmp(s->categories[0], "cat") == 0 && s->category_ids[0] == 7);
        CHECK(strcmp(s->categories[1], "dog") == 0 && s->category_ids[1] == 9);
        for (int i = 0; i < s->nimages; i++) {
            const eng_sample *im = &s->images[i];
            CHECK_MSG(access(im->path, R_OK) == 0, "%s", im->path);
            CHECK(im->path[0] == '/');
            CHECK(im->width == 64 && im->height == 60);
            CHECK(im->label == (im->id <= 2 ? 0 : 1));
            CHECK(im->nboxes == 0);
        }
        fs_dataset_snapshot_free(s);
    }

    /* rename keeps it; rmdir refuses while user files remain */
    CHECK(a->rename_item("cls", "cls2") == 0);
    CHECK(fs_dataset_wait("cls2", 10000) == FS_DS_READY);
    CHECK(fs_dataset_state("cls", NULL, NULL, 0) == FS_DS_NOTFOUND);
    CHECK(a->rmdir_item("cls2") == -ENOTEMPTY);

    /* an image goes: incomplete, and no snapshot */
    fs_store_path(p, sizeof p, "datasets", "cls2/images/i5.bmp");
    CHECK(unlink(p) == 0);
    a->unlinked("cls2/images/i5.bmp");
    CHECK(fs_dataset_wait("cls2", 10000) == FS_DS_INCOMPLETE);
    s = NULL;
    CHECK(fs_dataset_snapshot("cls2", 0, &s, why, sizeof why) == FS_DS_INCOMPLETE);
    CHECK(s == NULL);
    CHECK_MSG(strstr(why, "1 images missing") != NULL || strstr(why, "1 image missing") != NULL,
              "%s", why);
}

static void test_detection(void)
{
    const fs_area *a = &fs_area_datasets;
    CHECK(a->mkdir_item("det") == 0);
    put_image("det/a.bmp", 100, 80, 1);
    put_image("det/b.bmp", 100, 80, 2);
    put_image("det/c.bmp", 100, 80, 3);
    /* relative boxes; c's box overshoots and is clipped */
    const char *coco =
        "{\"images\": ["
        "{\"id\": 1, \"width\": 100, \"height\": 80, \"file_name\": \"a.bmp\"},"
        "{\"id\": 2, \"width\": 100, \"height\": 80, \"file_name\": \"b.bmp\"},"
        "{\"id\": 3, \"width\": 100, \"height\": 80, \"file_name\": \"c.bmp\"}],"
        "\"annotations\": ["
        "{\"id\": 1, \"image_id\": 1, \"category_id\": 1, \"bbox\": [0.1, 0.25, 0.5, 0.5]},"
        "{\"id\": 2, \"image_id\": 1, \"category_id\": 2, \"bbox\": [0.5, 0.5, 0.25, 0.25]},"
        "{\"id\": 3, \"image_id\": 2, \"category_id\": 1, \"bbox\": [0.0, 0.0, 1.0, 1.0]},"
        "{\"id\": 4, \"image_id\": 3, \"category_id\": 2, \"bbox\": [0.0, 0.0, 0.5, 0.5]}],"
        "\"categories\": [{\"id\": 1, \"name\": \"ball\"}, {\"id\": 2, \"name\": \"cup\"}]}";
    CHECK(put("det/ann.json", coco) == 0);
    CHECK(fs_dataset_wait("det", 10000) == FS_DS_READY);
    CHECK_MSG(strcmp(status_of("det"), "ready: 3 images, 2 categories, 4 boxes (detection)") == 0,
              "%s", status_of("det"));
    fs_ds_snapshot *s = NULL;
    char why[256] = "";
    CHECK(fs_dataset_snapshot("det", 0, &s, why, sizeof why) == FS_DS_READY);
    if (s) {
        CHECK(s->detection == 1);
        CHECK(s->nimages == 3);
        const eng_sample *a1 = NULL;
        for (int i = 0; i < s->nimages; i++)
            if (s->images[i].id == 1)
                a1 = &s->images[i];
        CHECK(a1 && a1->nboxes == 2);
        if (a1 && a1->nboxes == 2) {
            CHECK(a1->boxes[0].category == 0);
            CHECK_NEAR(a1->boxes[0].x, 10.0, 1e-3);
            CHECK_NEAR(a1->boxes[0].y, 20.0, 1e-3);
            CHECK_NEAR(a1->boxes[0].w, 50.0, 1e-3);
            CHECK_NEAR(a1->boxes[0].h, 40.0, 1e-3);
            CHECK(a1->boxes[1].category == 1);
            CHECK_NEAR(a1->boxes[1].x, 50.0, 1e-3);
        }
        fs_dataset_snapshot_free(s);
    }
    /* training: each category needs 2 images; ball has a and b, cup a and c: fine */
    s = NULL;
    CHECK(fs_dataset_snapshot("det", 1, &s, why, sizeof why) == FS_DS_READY);
    fs_dataset_snapshot_free(s);

    /* status.json is whole JSON naming the dataset and the file */
    char p[4200];
    fs_store_path(p, sizeof p, "datasets", "det/status.json");
    char *j = read_file(p);
    CHECK(j && strstr(j, "\"dataset\": \"det\"") && strstr(j, "\"annotationFile\": \"ann.json\""));
    CHECK(j && strstr(j, "\"boxUnits\"") != NULL);
}

static void test_training_rule(void)
{
    const fs_area *a = &fs_area_datasets;
    CHECK(a->mkdir_item("one") == 0);
    put_image("one/a.bmp", 64, 64, 1);
    put_image("one/b.bmp", 64, 64, 2);
    put_image("one/c.bmp", 64, 64, 3);
    const char *coco =
        "{\"images\": ["
        "{\"id\": 1, \"width\": 64, \"height\": 64, \"file_name\": \"a.bmp\"},"
        "{\"id\": 2, \"width\": 64, \"height\": 64, \"file_name\": \"b.bmp\"},"
        "{\"id\": 3, \"width\": 64, \"height\": 64, \"file_name\": \"c.bmp\"}],"
        "\"annotations\": ["
        "{\"id\": 1, \"image_id\": 1, \"category_id\": 1},"
        "{\"id\": 2, \"image_id\": 2, \"category_id\": 1},"
        "{\"id\": 3, \"image_id\": 3, \"category_id\": 2}],"
        "\"categories\": [{\"id\": 1, \"name\": \"many\"}, {\"id\": 2, \"name\": \"lonely\"}]}";
    CHECK(put("one/ann.json", coco) == 0);
    fs_ds_state st = fs_dataset_wait("one", 10000);
    CHECK_MSG(st == FS_DS_READY, "state %d: %s", (int)st, status_of("one"));
    fs_ds_snapshot *s = NULL;
    char why[256] = "";
    CHECK(fs_dataset_snapshot("one", 0, &s, why, sizeof why) == FS_DS_READY);
    fs_dataset_snapshot_free(s);
    s = NULL;
    CHECK(fs_dataset_snapshot("one", 1, &s, why, sizeof why) == FS_DS_INVALID);
    CHECK(s == NULL);
    CHECK_MSG(strstr(why, "lonely") != NULL, "%s", why);
    /* rmdir after the user's files are gone (generated ones may stay) */
    const char *files[] = {"one/a.bmp", "one/b.bmp", "one/c.bmp", "one/ann.json"};
    for (size_t i = 0; i < 4; i++) {
        char p[4200];
        fs_store_path(p, sizeof p, "datasets", files[i]);
        CHECK(unlink(p) == 0);
        a->unlinked(files[i]);
    }
    CHECK(a->rmdir_item("one") == 0);
    CHECK(fs_dataset_state("one", NULL, NULL, 0) == FS_DS_NOTFOUND);
}

/* A thread holding a folder fd of the dataset (as the verifier does while it
 * checks one) keeps creating bookkeeping files in it. */
typedef struct creator {
    int dfd;
    atomic_int stop, made;
} creator;

static void *create_loop(void *arg)
{
    creator *c = arg;
    for (int i = 0; !atomic_load(&c->stop); i++) {
        char nm[32];
        snprintf(nm, sizeof nm, ".vfs-x%d", i);
        int fd = openat(c->dfd, nm, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (fd >= 0) {
            close(fd);
            atomic_fetch_add(&c->made, 1);
        }
    }
    return NULL;
}

/* rm -r of a dataset while something still writes into its folder: the
 * folder is moved away at once, so rmdir answers 0 and the dataset is gone
 * (it answered ENOTEMPTY when the deletion lost the race, the soak's flake,
 * and kept the record). The old code lost the race within the first 20 of
 * these rounds in 5 runs of 5. */
static void test_rmdir_while_written(void)
{
    const fs_area *a = &fs_area_datasets;
    char dir[4200];
    fs_store_path(dir, sizeof dir, "datasets", "busy");
    int failed = 0;
    for (int round = 0; round < 100; round++) {
        CHECK(a->mkdir_item("busy") == 0);
        creator c = {.dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
        CHECK(c.dfd >= 0);
        pthread_t t;
        CHECK(pthread_create(&t, NULL, create_loop, &c) == 0);
        while (atomic_load(&c.made) < 20)
            usleep(1000);
        int rc = a->rmdir_item("busy");
        atomic_store(&c.stop, 1);
        pthread_join(t, NULL);
        close(c.dfd);
        struct stat st;
        if (rc != 0 || stat(dir, &st) == 0 ||
            fs_dataset_state("busy", NULL, NULL, 0) != FS_DS_NOTFOUND) {
            CHECK_MSG(0, "round %d: rmdir_item: %s", round, strerror(-rc));
            if (++failed == 3)
                break;
        }
    }
}

/* A late notice about a removed dataset (a fetch finishing, a writer's
 * close) must not bring its record back: the verifier would check a folder
 * that is gone, and a new dataset of the same name would start from the
 * ghost's state. */
static void test_no_ghost_after_rmdir(void)
{
    const fs_area *a = &fs_area_datasets;
    char dir[4200];
    fs_store_path(dir, sizeof dir, "datasets", "ghost");
    CHECK(a->mkdir_item("ghost") == 0);
    CHECK(a->rmdir_item("ghost") == 0);
    fs_dataset_touch("ghost");
    a->unlinked("ghost/x.json");
    usleep(300 * 1000); /* the verifier would have picked it up by now */
    struct stat st;
    CHECK_MSG(stat(dir, &st) != 0, "the removed dataset's folder is back");
    CHECK(fs_dataset_state("ghost", NULL, NULL, 0) == FS_DS_NOTFOUND);
    /* the same name again starts empty */
    CHECK(a->mkdir_item("ghost") == 0);
    char line[200];
    fs_ds_state s = fs_dataset_state("ghost", NULL, line, sizeof line);
    CHECK_MSG(s == FS_DS_EMPTY, "state %d: %s", (int)s, line);
    CHECK(a->rmdir_item("ghost") == 0);
}

/* The close of a writer whose dataset has gone meanwhile (rm -r while an
 * annotation file was being closed, or mv of the dataset while it was open)
 * reaches validate_write or write_failed under a name that no longer exists.
 * It must leave no record behind: a new dataset of that name started
 * "invalid" with the old one's refused write. */
static void test_no_ghost_after_late_close(void)
{
    const fs_area *a = &fs_area_datasets;
    CHECK(a->mkdir_item("late") == 0);
    CHECK(a->rmdir_item("late") == 0);
    CHECK(put("late/ann.json", "not json") == -EINVAL);
    a->write_failed("late/big.json", EFBIG);
    CHECK(fs_dataset_state("late", NULL, NULL, 0) == FS_DS_NOTFOUND);
    /* a new dataset of the name, with an image and no annotation file */
    CHECK(a->mkdir_item("late") == 0);
    put_image("late/a.bmp", 64, 64, 1);
    char line[600];
    fs_ds_state s = fs_dataset_wait("late", 10000);
    fs_dataset_state("late", NULL, line, sizeof line);
    CHECK_MSG(s == FS_DS_EMPTY, "state %d: %s", (int)s, line);
    CHECK_MSG(strcmp(status_of("late"), "empty") == 0, "status: %s", status_of("late"));
    char p[4200];
    fs_store_path(p, sizeof p, "datasets", "late/status.json");
    const char *sj = read_file(p);
    CHECK_MSG(sj && !strstr(sj, "lastRefusedWrite"), "%s", sj ? sj : "(no status.json)");
    fs_store_path(p, sizeof p, "datasets", "late/a.bmp");
    CHECK(unlink(p) == 0);
    a->unlinked("late/a.bmp");
    CHECK(a->rmdir_item("late") == 0);
}

/* Notices about both names while a dataset is moved back and forth. */
typedef struct toucher {
    const char *names[2];
    atomic_int stop;
} toucher;

static void *touch_loop(void *arg)
{
    toucher *t = arg;
    while (!atomic_load(&t->stop)) {
        fs_dataset_touch(t->names[0]);
        fs_dataset_touch(t->names[1]);
    }
    return NULL;
}

/* The dataset of name is empty apart from one image: a fresh start. */
static void check_fresh(const char *name)
{
    char rel[64], line[600];
    snprintf(rel, sizeof rel, "%s/a.bmp", name);
    put_image(rel, 64, 64, 1);
    fs_ds_state s = fs_dataset_wait(name, 10000);
    fs_dataset_state(name, NULL, line, sizeof line);
    CHECK_MSG(s == FS_DS_EMPTY, "%s: state %d: %s", name, (int)s, line);
    CHECK_MSG(strcmp(status_of(name), "empty") == 0, "%s: status: %s", name, status_of(name));
    char p[4200];
    fs_store_path(p, sizeof p, "datasets", rel);
    CHECK(unlink(p) == 0);
    fs_area_datasets.unlinked(rel);
}

/* A notice about a dataset's new name that came while mv was under way
 * (the folder already renamed, the record not yet) made a second record of
 * that name; the renamed one then lived on after the dataset was removed,
 * and a new dataset of either name started with the old one's state (here
 * its refused annotation file). */
static void test_no_ghost_after_rename(void)
{
    const fs_area *a = &fs_area_datasets;
    CHECK(a->mkdir_item("mv1") == 0);
    CHECK(put("mv1/ann.json", "not json") == -EINVAL);
    toucher t = {.names = {"mv1", "mv2"}};
    pthread_t th;
    CHECK(pthread_create(&th, NULL, touch_loop, &t) == 0);
    /* the old code was caught within 20000 rounds in every run */
    int rc = 0, round = 0;
    for (; round < 20000 && rc == 0; round++)
        rc = a->rename_item(round % 2 ? "mv2" : "mv1", round % 2 ? "mv1" : "mv2");
    CHECK_MSG(rc == 0, "round %d: %s", round - 1, strerror(-rc));
    atomic_store(&t.stop, 1);
    pthread_join(th, NULL);
    char line[600];
    fs_ds_state s = fs_dataset_wait("mv1", 10000);
    fs_dataset_state("mv1", NULL, line, sizeof line);
    CHECK_MSG(s == FS_DS_INVALID && strstr(line, "refused"), "state %d: %s", (int)s, line);
    CHECK(a->rmdir_item("mv1") == 0);
    CHECK(a->mkdir_item("mv1") == 0);
    CHECK(a->mkdir_item("mv2") == 0);
    check_fresh("mv1");
    check_fresh("mv2");
    CHECK(a->rmdir_item("mv1") == 0);
    CHECK(a->rmdir_item("mv2") == 0);
}

int main(void)
{
    snprintf(root, sizeof root, "/tmp/vfs-test-ds.XXXXXX");
    if (!mkdtemp(root))
        CHECK_SKIP("no temp dir");
    CHECK(fs_store_open(root) == 0);
    test_names();
    test_store();
    test_hooks();
    fs_area_datasets.start();
    test_lifecycle();
    test_detection();
    test_training_rule();
    test_rmdir_while_written();
    test_no_ghost_after_rmdir();
    test_no_ghost_after_late_close();
    test_no_ghost_after_rename();
    fs_area_datasets.stop();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", root);
    return check_report("test_fs_datasets");
}
