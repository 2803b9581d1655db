/* test_runtime_asan.c: under AddressSanitizer, the kernels built without its per-access checks
 * (ENG_NO_ASAN: the GEMM micro-kernels, the depthwise row kernels) are still caught reading or
 * writing one float past a buffer, by the range checks their callers make (asan_ranges.h).
 * Each case runs in a child: with buffers of the right size it must finish cleanly, with one
 * float missing from its input or its output it must die with ASan's heap-buffer-overflow
 * report. Skipped (77) in builds without ASan. */
#include "asan_ranges.h"
#include "check.h"
#include "engine.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

enum { C = 24, H = 9, W = 7 }; /* 24 channels: a full panel and a half one, a masked tail */

typedef enum { SHORT_NONE, SHORT_IN, SHORT_OUT } shortfall;

/* a buffer of n floats (one fewer when short), filled */
static float *floats(size_t n, int short_by_one)
{
    size_t m = short_by_one ? n - 1 : n;
    float *p = malloc(m * sizeof(float));
    if (p)
        for (size_t i = 0; i < m; i++)
            p[i] = (float)((i * 7) % 13) * 0.125f - 0.5f;
    return p;
}

/* kind 0: 1x1 convolution (a plain GEMM), 1: 3x3 convolution (patches read in place),
 * 2: 3x3 depthwise; one call with the input or the output one float short, or neither */
static int run_case(int kind, shortfall s)
{
    eng_conv_geom g;
    const int k = kind == 0 ? 1 : 3, cout = kind == 2 ? C : 40;
    if (eng_conv_geom_init(&g, 1, H, W, C, cout, k, k, 1, 1, 1, 1, ENG_PAD_SAME, NULL, NULL) !=
        ENG_OK)
        return 2;
    const size_t nin = (size_t)H * W * C, nout = (size_t)g.oh * g.ow * g.cout;
    float *in = floats(nin, s == SHORT_IN), *out = floats(nout, s == SHORT_OUT);
    float *filter = floats((size_t)k * k * C * (kind == 2 ? 1 : cout), 0);
    float *bias = floats((size_t)cout, 0);
    if (!in || !out || !filter || !bias)
        return 2;
    if (kind == 2) {
        eng_dwconv2d(&g, in, filter, bias, ENG_ACT_RELU, out, 1);
    } else {
        eng_conv_packed *w = eng_conv_pack(filter, bias, k, k, C, cout);
        if (!w || eng_conv2d_packed(&g, in, w, ENG_ACT_NONE, out, 1) != ENG_OK)
            return 2;
        eng_conv_packed_free(w);
    }
    free(in), free(out), free(filter), free(bias);
    return 0;
}

/* runs one case in a child, its stderr into a file; 1 when the child's fate is the expected one
 * (finished with 0, or died with ASan's heap-buffer-overflow report) */
static int child_as_expected(int kind, shortfall s)
{
    char path[] = "/tmp/test_runtime_asan.XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return 0;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd, 2);
        _exit(run_case(kind, s));
    }
    int st = 0;
    waitpid(pid, &st, 0);
    char log[8192] = {0};
    lseek(fd, 0, SEEK_SET);
    ssize_t n = read(fd, log, sizeof log - 1);
    (void)n;
    close(fd);
    unlink(path);
    const int clean = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    if (s == SHORT_NONE) {
        if (!clean)
            fprintf(stderr, "kind %d, right sizes: status %d\n%s\n", kind, st, log);
        return clean;
    }
    const int caught = !clean && strstr(log, "AddressSanitizer: heap-buffer-overflow") != NULL;
    if (!caught)
        fprintf(stderr, "kind %d, %s short: status %d, not caught\n%s\n", kind,
                s == SHORT_IN ? "input" : "output", st, log);
    return caught;
}

int main(void)
{
    if (!ENG_ASAN)
        CHECK_SKIP("not an AddressSanitizer build");
    const char *name[] = {"1x1", "3x3", "depthwise 3x3"};
    for (int kind = 0; kind < 3; kind++) {
        CHECK_MSG(child_as_expected(kind, SHORT_NONE), "%s: right sizes", name[kind]);
        CHECK_MSG(child_as_expected(kind, SHORT_IN), "%s: input short", name[kind]);
        CHECK_MSG(child_as_expected(kind, SHORT_OUT), "%s: output short", name[kind]);
    }
    return check_report("test_runtime_asan");
}
