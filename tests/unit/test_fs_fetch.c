/* test_fs_fetch.c: the downloader (fs/fetch.c) without a mount: URL
 * redaction, dataset.json checks, file:// rules, and real HTTP transfers
 * against tests/tools/faultserver.py on loopback (retry after 500 and after
 * a reset, 404, stall timeout, 30 MB bodies with and without a length, text
 * and HTML bodies, redirect loop, redirect to ftp, refused connection),
 * cancellation and stop with transfers running. Skips (77) without python3.
 */
#include "check.h"
#include "fetch.h"

#include "area.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char root[256], store[300], files[300], dsdir[400];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* A w x h 24-bit BMP with a seeded pattern. */
static int write_bmp(const char *path, int w, int h, int seed)
{
    int row = (w * 3 + 3) & ~3;
    size_t size = 54 + (size_t)row * (size_t)h;
    unsigned char *b = calloc(1, size);
    if (!b)
        return -1;
    unsigned char hdr[54] = {'B', 'M'};
#define LE32(o, v)                                                                                 \
    do {                                                                                           \
        hdr[o] = (unsigned char)(v);                                                               \
        hdr[o + 1] = (unsigned char)((v) >> 8);                                                    \
        hdr[o + 2] = (unsigned char)((v) >> 16);                                                   \
        hdr[o + 3] = (unsigned char)((v) >> 24);                                                   \
    } while (0)
    LE32(2, (unsigned)size);
    LE32(10, 54u);
    LE32(14, 40u);
    LE32(18, (unsigned)w);
    LE32(22, (unsigned)h);
    hdr[26] = 1;
    hdr[28] = 24;
    LE32(34, (unsigned)(size - 54));
#undef LE32
    memcpy(b, hdr, 54);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            unsigned char *p = b + 54 + (size_t)y * row + (size_t)x * 3;
            p[0] = (unsigned char)(x * 3 + seed);
            p[1] = (unsigned char)(y * 5 + seed);
            p[2] = (unsigned char)((x ^ y) + seed);
        }
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(b, 1, size, f) == size;
    if (f)
        fclose(f);
    free(b);
    return ok ? 0 : -1;
}

static int same_file(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int same = fa && fb;
    while (same) {
        int ca = fgetc(fa), cb = fgetc(fb);
        if (ca != cb)
            same = 0;
        if (ca == EOF || cb == EOF)
            break;
    }
    if (fa)
        fclose(fa);
    if (fb)
        fclose(fb);
    return same;
}

/* Asks until the download is no longer pending (secs at most). */
static fs_fetch_state wait_fetch(const char *url, const char *dest, char *err, size_t n,
                                 double secs)
{
    double end = now_s() + secs;
    fs_fetch_state st;
    while ((st = fs_fetch_image("ds", url, dest, NULL, err, n)) == FS_FETCH_PENDING &&
           now_s() < end)
        usleep(20000);
    return st;
}

static int count_tmp(void)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "ls -A '%s/.tmp' | wc -l", store);
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (p) {
        if (fscanf(p, "%d", &n) != 1)
            n = -1;
        pclose(p);
    }
    return n;
}

static int count_requests(const char *log, const char *what)
{
    FILE *f = fopen(log, "r");
    char line[1024];
    int n = 0;
    while (f && fgets(line, sizeof line, f))
        if (strstr(line, what))
            n++;
    if (f)
        fclose(f);
    return n;
}

static void test_redact(void)
{
    static const struct {
        const char *in, *out;
    } urls[] = {
        {"https://a.blob.core.windows.net/c/x.jpg?sv=2020&sig=abc%3D",
         "https://a.blob.core.windows.net/c/x.jpg"},
        {"http://user:pw@host:8080/p/q.png#frag", "http://host:8080/p/q.png"},
        {"http://host/p", "http://host/p"},
        {"file:///tmp/a.png?x", "file:///tmp/a.png"},
        {"https://h/c/x.jpg;sig=abc;se=1", "https://h/c/x.jpg"},
        {"https://u:p@h/p;sig=s?x=1", "https://h/p"},
        /* found by fuzz_dsjson: a "://" only after the query copied it out */
        {"s3:b/x?sig=SECRET&next=https://h/y", "s3:b/x"},
        {"x#frag=file:///etc", "x"},
        {"x;sig=S://h/p", "x"},
        {"https://user:p@ss@host/x?y", "https://host/x"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        char out[256];
        fs_fetch_redact(urls[i].in, out, sizeof out);
        CHECK_MSG(strcmp(out, urls[i].out) == 0, "%s -> %s", urls[i].in, out);
    }
    char small[12];
    fs_fetch_redact("https://host/path?sig=1", small, sizeof small);
    CHECK(strcmp(small, "https://hos") == 0);

    static const struct {
        const char *in, *out;
    } texts[] = {
        {"images[2]: download of 'https://h/a.png?sv=1&sig=S' failed: http 403",
         "images[2]: download of 'https://h/a.png' failed: http 403"},
        {"{\"m\": \"url 'HTTP://h/x?sig=1...' bad\", \"u\": \"https://h/y?z\"}",
         "{\"m\": \"url 'HTTP://h/x' bad\", \"u\": \"https://h/y\"}"},
        {"no url here? no.", "no url here? no."},
        {"two http://a/b?c http://d/e?f end", "two http://a/b http://d/e end"},
        {"'http://user:pass@host:80/a.png' failed", "'http://host:80/a.png' failed"},
        {"\"https://u@h/x;sig=S\", \"https://h2/y\"", "\"https://h/x\", \"https://h2/y\""},
        {"http://h/a@b.png?q", "http://h/a@b.png"},
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", texts[i].in);
        fs_fetch_redact_text(buf);
        CHECK_MSG(strcmp(buf, texts[i].out) == 0, "%s -> %s", texts[i].in, buf);
    }
}

static void test_dataset_json_check(void)
{
    static const struct {
        const char *json;
        int ok;
        const char *why;
    } cases[] = {
        {"{\"annotationKind\": \"imageClassification\", \"annotationFileUris\": "
         "[\"https://h/a.json?sig=S\"]}",
         1, ""},
        {"{\"annotationKind\": \"imageObjectDetection\", \"annotationFileUris\": "
         "[\"http://h/a.json\", \"file:///tmp/b.json\"]}",
         1, ""},
        {"not json", 0, "dataset.json: not valid JSON at byte 0 (line 1)"},
        {"[1]", 0, "not a JSON object"},
        {"{\"annotationFileUris\": [\"https://h/a.json\"]}", 0, "annotationKind"},
        {"{\"annotationKind\": \"segmentation\", \"annotationFileUris\": [\"https://h/a.json\"]}",
         0, "annotationKind"},
        {"{\"annotationKind\": \"imageClassification\"}", 0, "annotationFileUris"},
        {"{\"annotationKind\": \"imageClassification\", \"annotationFileUris\": []}", 0,
         "annotationFileUris"},
        {"{\"annotationKind\": \"imageClassification\", \"annotationFileUris\": "
         "[\"ftp://h/a.json?sig=S\"]}",
         0, "annotationFileUris[0]: \"ftp://h/a.json\" is not"},
        {"{\"annotationKind\": \"imageClassification\", \"annotationFileUris\": [\"https://h/a\", "
         "7]}",
         0, "annotationFileUris[1]"},
        {"{\"annotationKind\": \"imageClassification\", \"annotationFileUris\": [\"https://h/a "
         "b\"]}",
         0, "annotationFileUris[0]"},
    };
    char path[400];
    snprintf(path, sizeof path, "%s/dj.json", root);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        FILE *f = fopen(path, "w");
        fputs(cases[i].json, f);
        fclose(f);
        char why[512] = "";
        int rc = fs_fetch_dataset_json_check(path, why, sizeof why);
        CHECK_MSG((rc == 0) == cases[i].ok, "case %zu: rc %d why %s", i, rc, why);
        CHECK_MSG(cases[i].ok || strstr(why, cases[i].why), "case %zu: why '%s'", i, why);
        CHECK_MSG(!strstr(why, "sig="), "case %zu leaks the query: %s", i, why);
    }
}

static void test_file_urls(void)
{
    char src[400], url[500], dest[500], err[256];
    snprintf(src, sizeof src, "%s/local.bmp", files);
    CHECK(write_bmp(src, 60, 55, 9) == 0);
    snprintf(url, sizeof url, "file://%s", src);
    snprintf(dest, sizeof dest, "%s/.vfs-fetched/sub/local.bmp", dsdir);
    CHECK(wait_fetch(url, dest, err, sizeof err, 10) == FS_FETCH_DONE);
    CHECK(same_file(src, dest));

    static const struct {
        const char *url, *err;
    } bad[] = {
        {"file:///dev/null", "not a regular file"},
        {"file:///tmp", "not a regular file"},
        {"file:///no/such/file.png", "no such file"},
        {"ftp://127.0.0.1/x.png", "not an http, https or file url"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(dest, sizeof dest, "%s/.vfs-fetched/bad%zu", dsdir, i);
        fs_fetch_state st = wait_fetch(bad[i].url, dest, err, sizeof err, 10);
        CHECK_MSG(st == FS_FETCH_FAILED && strstr(err, bad[i].err), "%s: %d '%s'", bad[i].url, st,
                  err);
        CHECK(access(dest, F_OK) != 0);
    }
    /* a text file and an over-size file by file:// */
    snprintf(src, sizeof src, "%s/notes.txt", files);
    FILE *f = fopen(src, "w");
    fputs("just text\n", f);
    fclose(f);
    snprintf(url, sizeof url, "file://%s", src);
    snprintf(dest, sizeof dest, "%s/.vfs-fetched/notes", dsdir);
    CHECK(wait_fetch(url, dest, err, sizeof err, 10) == FS_FETCH_FAILED);
    CHECK_MSG(strstr(err, "not an image"), "%s", err);
    snprintf(src, sizeof src, "%s/huge.bmp", files);
    int fd = open(src, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0 && ftruncate(fd, (off_t)21 << 20) == 0);
    close(fd);
    snprintf(url, sizeof url, "file://%s", src);
    snprintf(dest, sizeof dest, "%s/.vfs-fetched/huge", dsdir);
    CHECK(wait_fetch(url, dest, err, sizeof err, 10) == FS_FETCH_FAILED);
    CHECK_MSG(strstr(err, "larger than 20 MB"), "%s", err);
    /* a file the user may not read (meaningless as root) */
    if (geteuid() != 0) {
        snprintf(src, sizeof src, "%s/secret.bmp", files);
        CHECK(write_bmp(src, 60, 60, 1) == 0);
        chmod(src, 0);
        snprintf(url, sizeof url, "file://%s", src);
        snprintf(dest, sizeof dest, "%s/.vfs-fetched/secret", dsdir);
        CHECK(wait_fetch(url, dest, err, sizeof err, 10) == FS_FETCH_FAILED);
        CHECK_MSG(strstr(err, "not readable"), "%s", err);
    }
}

static void test_http(int port, const char *log)
{
    char url[600], dest[600], err[256];
    struct {
        const char *path;
        fs_fetch_state st;
        const char *err;
    } cases[] = {
        {"/f/a.bmp?sv=1&sig=SECRET", FS_FETCH_DONE, NULL},
        {"/flaky/b.bmp?sig=SECRET", FS_FETCH_DONE, NULL},
        {"/reset/c.bmp", FS_FETCH_DONE, NULL},
        {"/redir/a.bmp", FS_FETCH_DONE, NULL},
        {"/missing/x.bmp?sig=SECRET", FS_FETCH_FAILED, "http 404"},
        {"/stall/s.png", FS_FETCH_FAILED, "timed out: no data for 1 s"},
        {"/big/30", FS_FETCH_FAILED, "larger than 20 MB"},
        {"/bigchunked/30", FS_FETCH_FAILED, "larger than 20 MB"},
        {"/text/t.png", FS_FETCH_FAILED, "not an image (content-type text/plain)"},
        {"/html/h.jpg", FS_FETCH_FAILED, "not an image (content-type text/html)"},
        {"/loop/0", FS_FETCH_FAILED, "too many redirects (more than 5)"},
        {"/ftp/a.bmp", FS_FETCH_FAILED, "redirected to a protocol other than http or https"},
    };
    size_t nc = sizeof cases / sizeof cases[0];
    /* all queued at once: they run in parallel */
    double t0 = now_s();
    for (size_t i = 0; i < nc; i++) {
        snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, cases[i].path);
        snprintf(dest, sizeof dest, "%s/.vfs-fetched/h%zu", dsdir, i);
        CHECK(fs_fetch_image("ds", url, dest, NULL, err, sizeof err) == FS_FETCH_PENDING);
    }
    for (size_t i = 0; i < nc; i++) {
        snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, cases[i].path);
        snprintf(dest, sizeof dest, "%s/.vfs-fetched/h%zu", dsdir, i);
        fs_fetch_state st = wait_fetch(url, dest, err, sizeof err, 30);
        CHECK_MSG(st == cases[i].st, "%s: state %d '%s'", cases[i].path, st, err);
        if (cases[i].err)
            CHECK_MSG(strstr(err, cases[i].err) != NULL, "%s: '%s'", cases[i].path, err);
        CHECK(!strstr(err, "SECRET"));
        if (st == FS_FETCH_FAILED)
            CHECK_MSG(access(dest, F_OK) != 0, "%s left a file", cases[i].path);
    }
    printf("12 transfers (retries, a 1 s stall, 2 x 30 MB) in %.2f s\n", now_s() - t0);
    char src[400];
    snprintf(src, sizeof src, "%s/a.bmp", files);
    snprintf(dest, sizeof dest, "%s/.vfs-fetched/h0", dsdir);
    CHECK(same_file(src, dest));
    CHECK_MSG(count_requests(log, "/flaky/b.bmp") == 2, "flaky asked %d times",
              count_requests(log, "/flaky/b.bmp"));
    CHECK_MSG(count_requests(log, "/missing/x.bmp") == 1, "404 is not retried");
    CHECK_MSG(count_requests(log, "/stall/s.png") == 2, "stall retried once, asked %d times",
              count_requests(log, "/stall/s.png"));
    /* asking again does not download again */
    int before = count_requests(log, "/f/a.bmp");
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, cases[0].path);
    snprintf(dest, sizeof dest, "%s/.vfs-fetched/h0", dsdir);
    CHECK(fs_fetch_image("ds", url, dest, NULL, err, sizeof err) == FS_FETCH_DONE);
    CHECK(count_requests(log, "/f/a.bmp") == before);
    /* a failure is remembered, then forgotten on request and tried again */
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, cases[4].path);
    snprintf(dest, sizeof dest, "%s/.vfs-fetched/h4", dsdir);
    before = count_requests(log, "/missing/x.bmp");
    CHECK(fs_fetch_image("ds", url, dest, NULL, err, sizeof err) == FS_FETCH_FAILED);
    CHECK(count_requests(log, "/missing/x.bmp") == before);
    fs_fetch_forget_failed("ds");
    CHECK(wait_fetch(url, dest, err, sizeof err, 10) == FS_FETCH_FAILED);
    CHECK(count_requests(log, "/missing/x.bmp") == before + 1);
    /* a refused connection, retried once */
    snprintf(url, sizeof url, "http://127.0.0.1:1/x.png");
    snprintf(dest, sizeof dest, "%s/.vfs-fetched/refused", dsdir);
    CHECK(wait_fetch(url, dest, err, sizeof err, 20) == FS_FETCH_FAILED);
    CHECK_MSG(strstr(err, "cannot connect to the server after 2 attempts"), "%s", err);
    CHECK_MSG(count_tmp() == 0, "temp files left: %d", count_tmp());
}

static void test_cancel(int port)
{
    char url[600], dest[600], err[256];
    for (int i = 0; i < 6; i++) {
        snprintf(url, sizeof url, "http://127.0.0.1:%d/stall/c%d.png", port, i);
        snprintf(dest, sizeof dest, "%s/.vfs-fetched/c%d", dsdir, i);
        CHECK(fs_fetch_image("ds", url, dest, NULL, err, sizeof err) == FS_FETCH_PENDING);
    }
    usleep(300000);
    fs_fetch_cancel("ds");
    usleep(300000);
    CHECK_MSG(count_tmp() == 0, "temp files left after cancel: %d", count_tmp());
    /* cancelled means forgotten: asking again queues it again */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/stall/c0.png", port);
    snprintf(dest, sizeof dest, "%s/.vfs-fetched/c0", dsdir);
    CHECK(fs_fetch_image("ds", url, dest, NULL, err, sizeof err) == FS_FETCH_PENDING);
    /* stop with transfers running returns at once and leaves nothing */
    usleep(200000);
    double t0 = now_s();
    fs_fetch_stop();
    double took = now_s() - t0;
    CHECK_MSG(took < 2.0, "stop took %.2f s", took);
    CHECK_MSG(count_tmp() == 0, "temp files left after stop: %d", count_tmp());
    CHECK(fs_fetch_image("ds", url, dest, NULL, err, sizeof err) == FS_FETCH_FAILED);
    CHECK(strstr(err, "not running") != NULL);
}

int main(void)
{
    test_redact();
    snprintf(root, sizeof root, "/tmp/vfs-fetch-test.XXXXXX");
    if (!mkdtemp(root))
        return 1;
    snprintf(store, sizeof store, "%s/store", root);
    snprintf(files, sizeof files, "%s/files", root);
    snprintf(dsdir, sizeof dsdir, "%s/datasets/ds", store);
    mkdir(files, 0755);
    CHECK(fs_store_open(store) == 0);
    CHECK(mkdir(dsdir, 0755) == 0);
    test_dataset_json_check();

    fs_fetch_opts o;
    fs_fetch_opts_default(&o);
    o.parallel = 4;
    o.connect_timeout_ms = 2000;
    o.timeout_ms = 20000;
    o.stall_timeout_ms = 1000;
    o.retries = 1;
    o.backoff_ms = 50;
    CHECK(fs_fetch_start_with(&o, NULL) == 0);
    test_file_urls();

    int server = -1;
    char portfile[400], log[400], script[600];
    snprintf(portfile, sizeof portfile, "%s/port", root);
    snprintf(log, sizeof log, "%s/requests.log", root);
    snprintf(script, sizeof script, "%s/tests/tools/faultserver.py", VFS_SOURCE_DIR);
    char a[400];
    snprintf(a, sizeof a, "%s/a.bmp", files);
    write_bmp(a, 64, 60, 1);
    snprintf(a, sizeof a, "%s/b.bmp", files);
    write_bmp(a, 64, 60, 2);
    snprintf(a, sizeof a, "%s/c.bmp", files);
    write_bmp(a, 64, 60, 3);
    if (access("/usr/bin/python3", X_OK) == 0 || system("command -v python3 >/dev/null") == 0) {
        pid_t pid = fork();
        if (pid == 0) {
            execlp("python3", "python3", script, files, portfile, log, (char *)NULL);
            _exit(127);
        }
        server = (int)pid;
    }
    int port = 0;
    for (int i = 0; server > 0 && i < 100 && !port; i++) {
        FILE *f = fopen(portfile, "r");
        if (f) {
            if (fscanf(f, "%d", &port) != 1)
                port = 0;
            fclose(f);
        }
        if (!port)
            usleep(100000);
    }
    int skipped = 0;
    if (port) {
        test_http(port, log);
        test_cancel(port);
    } else {
        printf("no python3 fault server: http tests skipped\n");
        skipped = 1;
        fs_fetch_stop();
    }
    if (server > 0) {
        kill(server, SIGTERM);
        waitpid(server, NULL, 0);
    }
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", root);
    int rc = check_report("test_fs_fetch");
    return rc ? rc : skipped ? 77 : 0;
}
