/* test_classify_cache.c: the feature cache and content hash: round trip,
 * misses for another key or dimension, damaged files read as misses and are
 * rewritten, no temp files left, and the hash depends on every byte. */
#include "check.h"
#include "engine.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int count_files(const char *dir, const char *needle)
{
    char cmd[700];
    snprintf(cmd, sizeof cmd, "find '%s' -type f -name '*%s*' | wc -l", dir, needle);
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (p && fscanf(p, "%d", &n) != 1)
        n = -1;
    if (p)
        pclose(p);
    return n;
}

int main(void)
{
    char dir[] = "/tmp/test_classify_cache.XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    char cache[600];
    snprintf(cache, sizeof cache, "%s/cache/sub", dir);
    float v[5] = {1, -2, 3.5f, 0, 1e-7f}, w[5] = {0};
    eng_diag d = {{0}};
    CHECK(eng_featcache_get(cache, "k1", w, 5) == 0);
    CHECK(eng_featcache_put(cache, "k1", v, 5, &d) == ENG_OK);
    CHECK(eng_featcache_get(cache, "k1", w, 5) == 1);
    CHECK(memcmp(v, w, sizeof v) == 0);
    CHECK(eng_featcache_get(cache, "k2", w, 5) == 0);
    CHECK(eng_featcache_get(cache, "k1", w, 4) == 0); /* other dimension */
    CHECK(eng_featcache_get(NULL, "k1", w, 5) == 0);
    CHECK(eng_featcache_put(NULL, "k1", v, 5, &d) == ENG_OK);
    CHECK(count_files(cache, ".feat") == 1);
    CHECK(count_files(cache, ".tmp.") == 0);
    /* damage the file: a miss, then a put repairs it */
    char cmd[800];
    snprintf(cmd, sizeof cmd,
             "for f in $(find '%s' -name '*.feat'); do head -c 20 $f > $f.x && "
             "mv $f.x $f; done",
             cache);
    CHECK(system(cmd) == 0);
    CHECK(eng_featcache_get(cache, "k1", w, 5) == 0);
    CHECK(eng_featcache_put(cache, "k1", v, 5, &d) == ENG_OK);
    CHECK(eng_featcache_get(cache, "k1", w, 5) == 1);
    /* a cache folder that cannot be created */
    CHECK(eng_featcache_put("/proc/no/such/dir", "k", v, 5, &d) == ENG_EIO);

    /* content hash: stable, length-sensitive, every byte matters */
    char h1[33], h2[33], h3[33];
    unsigned char buf[100];
    for (int i = 0; i < 100; i++)
        buf[i] = (unsigned char)i;
    eng_hash_bytes(buf, 100, h1);
    eng_hash_bytes(buf, 100, h2);
    CHECK(strcmp(h1, h2) == 0 && strlen(h1) == 32);
    eng_hash_bytes(buf, 99, h3);
    CHECK(strcmp(h1, h3) != 0);
    int all_differ = 1;
    for (int i = 0; i < 100; i++) {
        buf[i] ^= 1;
        eng_hash_bytes(buf, 100, h3);
        all_differ &= strcmp(h1, h3) != 0;
        buf[i] ^= 1;
    }
    CHECK(all_differ);
    unsigned char zero[9] = {0};
    eng_hash_bytes(zero, 8, h2);
    eng_hash_bytes(zero, 9, h3);
    CHECK(strcmp(h2, h3) != 0); /* trailing zero bytes count */
    /* a file hashes like its bytes, across read chunk boundaries */
    size_t big = 200000 + 3;
    unsigned char *b = malloc(big);
    for (size_t i = 0; i < big; i++)
        b[i] = (unsigned char)(i * 7 + (i >> 9));
    char path[700];
    snprintf(path, sizeof path, "%s/blob", dir);
    FILE *f = fopen(path, "wb");
    fwrite(b, 1, big, f);
    fclose(f);
    CHECK(eng_hash_file(path, h2, &d) == ENG_OK);
    eng_hash_bytes(b, big, h3);
    CHECK(strcmp(h2, h3) == 0);
    CHECK(eng_hash_file("/nonexistent/x", h2, &d) == ENG_EIO && strstr(d.msg, "/nonexistent/x"));
    free(b);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
    return check_report("test_classify_cache");
}
