/* fuzz_dsjson.c: libFuzzer target for Azure's dataset registration body,
 * datasets/NAME/dataset.json, as it is checked at close()
 * (fs_fetch_dataset_json_check), and for the URL redaction every message
 * about a URL goes through (fs_fetch_redact). The input is the file's
 * content; it is also taken, up to its first NUL, as one URL. Traps when a
 * refusal gives no reason, on any status but 0 and -EINVAL, and when a
 * redacted URL still shows a query, fragment, ';' parameter or user:password@. */
#include "fetch.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int memfd = -1;

static void check_redacted(const char *url)
{
    char out[512];
    fs_fetch_redact(url, out, sizeof out);
    if (!memchr(out, '\0', sizeof out))
        abort();
    if (strpbrk(out, "?#;"))
        abort();
    const char *auth = strstr(out, "://");
    if (auth) {
        auth += 3;
        size_t hostlen = strcspn(auth, "/");
        if (memchr(auth, '@', hostlen))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (memfd < 0) {
        memfd = memfd_create("dataset.json", MFD_CLOEXEC);
        if (memfd < 0)
            abort();
    }
    if (ftruncate(memfd, 0) != 0 || (size && pwrite(memfd, data, size, 0) != (ssize_t)size))
        abort();
    char path[64], why[512];
    snprintf(path, sizeof path, "/proc/self/fd/%d", memfd);
    why[0] = '\0';
    int rc = fs_fetch_dataset_json_check(path, why, sizeof why);
    if (rc != 0 && (rc != -EINVAL || why[0] == '\0'))
        abort();
    char *url = malloc(size + 1);
    if (!url)
        return 0;
    memcpy(url, data, size);
    url[size] = '\0';
    check_redacted(url);
    free(url);
    return 0;
}
