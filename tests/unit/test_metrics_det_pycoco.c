/* test_metrics_det_pycoco.c: eng_det_map against pycocotools on fresh
 * random cases. Runs tests/tools/pycoco_check.py with the first Python
 * that can import pycocotools ($VFS_PYTHON, the project's scratch venv
 * ../scratch/pycoco, python3); skips (77) when none can. */
#include "check.h"
#include "engine.h"
#include "metrics_det_cases.h"

#include <unistd.h>

static int python_has_pycoco(const char *py)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' -c 'import pycocotools, numpy' >/dev/null 2>&1", py);
    return system(cmd) == 0;
}

int main(void)
{
    const char *cand[3] = {getenv("VFS_PYTHON"), VFS_SOURCE_DIR "/../scratch/pycoco/bin/python3",
                           "python3"};
    const char *py = NULL;
    for (int i = 0; i < 3 && !py; i++)
        if (cand[i] && python_has_pycoco(cand[i]))
            py = cand[i];
    if (!py)
        CHECK_SKIP("no python with pycocotools (set VFS_PYTHON)");
    char out[] = "/tmp/vfs_pycoco_XXXXXX";
    int fd = mkstemp(out);
    CHECK(fd >= 0);
    if (fd < 0)
        return check_report("test_metrics_det_pycoco");
    close(fd);
    char cmd[2048];
    /* seeds 100000.. differ from the committed ones */
    snprintf(cmd, sizeof cmd, "'%s' '%s/tests/tools/pycoco_check.py' '%s' 100000 500", py,
             VFS_SOURCE_DIR, out);
    CHECK(system(cmd) == 0);
    double md;
    int n = det_cases_check(out, &md);
    unlink(out);
    CHECK_MSG(n == 500, "cases read: %d", n);
    printf("%d random cases against pycocotools (%s), max abs difference %.3g\n", n, py, md);
    return check_report("test_metrics_det_pycoco");
}
