/* featcache.h: on-disk cache of backbone feature vectors.
 *
 * One small file per (backbone checksum, image content hash, input size,
 * taps, augmentation): the key string is hashed to a 128-bit name and the
 * file sits at DIR/xx/<32 hex>.feat. A file holds a magic, the dimension, the
 * full key string (checked on read, so a hash collision is a miss, not a
 * wrong answer) and the float32 vector. Files are written to a temporary
 * name and renamed, so concurrent writers and crashes leave either nothing
 * or a whole file; a damaged file is treated as a miss and overwritten.
 */
#ifndef VFS_ENGINE_FEATCACHE_H
#define VFS_ENGINE_FEATCACHE_H

#include "core.h"

/* 128-bit content hash of a file (not cryptographic; collisions of random
 * inputs are negligible) as 32 lowercase hex characters + NUL. Errors: ENG_EIO. */
eng_status eng_hash_file(const char *path, char hex[33], eng_diag *d);
/* Same for a buffer. */
void eng_hash_bytes(const void *buf, size_t len, char hex[33]);

/* Looks up key in dir: returns 1 and fills out (dim floats) on a hit, 0 on a
 * miss (absent, damaged, or a different key/dimension). dir NULL: always 0. */
int eng_featcache_get(const char *dir, const char *key, float *out, int dim);

/* Stores dim floats under key in dir (creating dir and the fan-out folder).
 * dir NULL: no-op. Errors: ENG_EIO (the cache is an optimisation: callers
 * may ignore it). */
eng_status eng_featcache_put(const char *dir, const char *key, const float *v, int dim,
                             eng_diag *d);

#endif
