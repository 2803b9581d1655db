/* featcache.c: content hashing and the per-vector feature cache files
 * (see featcache.h).
 *
 * Design: the hash runs two independently seeded 64-bit multiply-xorshift
 * lanes over 8-byte words (fast enough to hash every image on each
 * training run); the cache stores its full key in each file so lookups never
 * trust the hash alone.
 */
#include "featcache.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FC_MAGIC 0x31434656u /* "VFC1" */

static uint64_t mix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

typedef struct hash128 {
    uint64_t a, b, len;
} hash128;

static void hash_init(hash128 *h)
{
    h->a = 0x9e3779b97f4a7c15ULL;
    h->b = 0x6a09e667f3bcc909ULL;
    h->len = 0;
}

static void hash_word(hash128 *h, uint64_t w)
{
    h->a = (h->a ^ mix64(w + 0x243f6a8885a308d3ULL)) * 0x100000001b3ULL;
    h->a = (h->a << 31) | (h->a >> 33);
    h->b = (h->b + mix64(w ^ 0x13198a2e03707344ULL)) * 0x9fb21c651e98df25ULL;
    h->b ^= h->b >> 29;
}

/* Hashes whole 8-byte words; returns how many bytes it consumed. */
static size_t hash_update(hash128 *h, const unsigned char *p, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        hash_word(h, w);
    }
    h->len += i;
    return i;
}

static void hash_final(hash128 *h, const unsigned char *tail, size_t n, char hex[33])
{
    uint64_t w = 0;
    for (size_t i = 0; i < n; i++)
        w |= (uint64_t)tail[i] << (8 * i);
    hash_word(h, w ^ ((uint64_t)n << 56));
    h->len += n;
    hash_word(h, h->len);
    uint64_t a = mix64(h->a ^ mix64(h->b)), b = mix64(h->b + mix64(h->a));
    snprintf(hex, 33, "%016llx%016llx", (unsigned long long)a, (unsigned long long)b);
}

void eng_hash_bytes(const void *buf, size_t len, char hex[33])
{
    hash128 h;
    hash_init(&h);
    size_t done = hash_update(&h, buf, len);
    hash_final(&h, (const unsigned char *)buf + done, len - done, hex);
}

eng_status eng_hash_file(const char *path, char hex[33], eng_diag *d)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return eng_fail(d, ENG_EIO, "\"%s\": %s", path, strerror(errno));
    enum { CHUNK = 1 << 16 };
    unsigned char *buf = malloc(CHUNK + 8);
    if (!buf) {
        close(fd);
        return eng_fail(d, ENG_ENOMEM, "\"%s\": out of memory", path);
    }
    hash128 h;
    hash_init(&h);
    size_t keep = 0; /* bytes carried over (fewer than 8) */
    for (;;) {
        ssize_t r = read(fd, buf + keep, CHUNK);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            eng_status st = eng_fail(d, ENG_EIO, "\"%s\": %s", path, strerror(errno));
            free(buf);
            close(fd);
            return st;
        }
        if (r == 0)
            break;
        size_t have = keep + (size_t)r;
        size_t done = hash_update(&h, buf, have);
        keep = have - done;
        memmove(buf, buf + done, keep);
    }
    close(fd);
    hash_final(&h, buf, keep, hex);
    free(buf);
    return ENG_OK;
}

static int cache_path(const char *dir, const char *key, char *path, size_t cap)
{
    char hex[33];
    eng_hash_bytes(key, strlen(key), hex);
    int n = snprintf(path, cap, "%s/%.2s/%s.feat", dir, hex, hex + 2);
    return n > 0 && (size_t)n < cap;
}

int eng_featcache_get(const char *dir, const char *key, float *out, int dim)
{
    if (!dir || dim <= 0)
        return 0;
    char path[4096];
    if (!cache_path(dir, key, path, sizeof path))
        return 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    uint32_t hdr[3];
    size_t klen = strlen(key);
    int hit = 0;
    if (fread(hdr, sizeof hdr, 1, f) == 1 && hdr[0] == FC_MAGIC && hdr[1] == (uint32_t)dim &&
        hdr[2] == (uint32_t)klen) {
        char *k = malloc(klen + 1);
        if (k && fread(k, 1, klen, f) == klen && memcmp(k, key, klen) == 0 &&
            fread(out, sizeof *out, (size_t)dim, f) == (size_t)dim && fgetc(f) == EOF)
            hit = 1;
        free(k);
    }
    fclose(f);
    return hit;
}

static int mkdir_p(const char *dir)
{
    char tmp[4096];
    size_t n = strlen(dir);
    if (n >= sizeof tmp)
        return -1;
    memcpy(tmp, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (tmp[i] == '/' || tmp[i] == '\0') {
            char c = tmp[i];
            tmp[i] = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
                return -1;
            tmp[i] = c;
        }
    }
    return 0;
}

eng_status eng_featcache_put(const char *dir, const char *key, const float *v, int dim, eng_diag *d)
{
    if (!dir)
        return ENG_OK;
    char path[4096], tmp[4200];
    if (!cache_path(dir, key, path, sizeof path))
        return eng_fail(d, ENG_EIO, "feature cache: path too long under \"%s\"", dir);
    char *slash = strrchr(path, '/');
    *slash = '\0';
    if (mkdir_p(path) != 0)
        return eng_fail(d, ENG_EIO, "feature cache \"%s\": %s", path, strerror(errno));
    *slash = '/';
    static unsigned counter;
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld.%u", path, (long)getpid(),
             __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED));
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return eng_fail(d, ENG_EIO, "feature cache \"%s\": %s", tmp, strerror(errno));
    size_t klen = strlen(key);
    uint32_t hdr[3] = {FC_MAGIC, (uint32_t)dim, (uint32_t)klen};
    int ok = fwrite(hdr, sizeof hdr, 1, f) == 1 && fwrite(key, 1, klen, f) == klen &&
             fwrite(v, sizeof *v, (size_t)dim, f) == (size_t)dim;
    if (fclose(f) != 0)
        ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return eng_fail(d, ENG_EIO, "feature cache \"%s\": cannot write", path);
    }
    return ENG_OK;
}
