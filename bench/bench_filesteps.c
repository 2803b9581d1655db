/* bench_filesteps.c: where the time of copying one file goes, step by step.
 *
 *   bench_filesteps DIR COUNT SIZE
 *
 * Creates COUNT new files of SIZE bytes in DIR, as cp does: open with
 * O_CREAT | O_EXCL (the kernel looks the name up, then creates it), one
 * write of the whole content, close. Prints the mean microseconds of each
 * step and of the whole file. Run on a plain folder and through a mount in
 * the same run (bench/fs.sh does): the difference per step is what the
 * mount adds, and create + close through a mount bound how close any FUSE
 * daemon can get to the plain folder, whatever its write path costs.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec * 1e-3;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: bench_filesteps DIR COUNT SIZE\n");
        return 2;
    }
    const char *dir = argv[1];
    int count = atoi(argv[2]);
    size_t size = (size_t)atol(argv[3]);
    if (count < 1 || size < 1) {
        fprintf(stderr, "bench_filesteps: COUNT and SIZE must be positive\n");
        return 2;
    }
    char *buf = malloc(size);
    if (!buf) {
        fprintf(stderr, "bench_filesteps: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < size; i++)
        buf[i] = (char)(i * 131 + (i >> 9)); /* not all zeros: no sparse shortcut */
    double t_open = 0, t_write = 0, t_close = 0;
    for (int i = 0; i < count; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/step%06d.jpg", dir, i);
        double t0 = now_us();
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
        double t1 = now_us();
        if (fd < 0) {
            perror(path);
            return 1;
        }
        ssize_t w = write(fd, buf, size);
        double t2 = now_us();
        if (w != (ssize_t)size) {
            perror("write");
            return 1;
        }
        if (close(fd) != 0) {
            perror("close");
            return 1;
        }
        double t3 = now_us();
        t_open += t1 - t0;
        t_write += t2 - t1;
        t_close += t3 - t2;
    }
    printf("create %.1f write %.1f close %.1f total %.1f us per file\n", t_open / count,
           t_write / count, t_close / count, (t_open + t_write + t_close) / count);
    free(buf);
    return 0;
}
