/* backbone_int.h: private helpers of the backbone module (SHA-256 for the
 * weight checks). */
#ifndef VFS_ENGINE_BACKBONE_INT_H
#define VFS_ENGINE_BACKBONE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "backbone.h"

typedef struct bb_sha256 {
    uint32_t h[8];
    uint64_t bytes;
    uint8_t buf[64];
    size_t used;
} bb_sha256;

void bb_sha256_init(bb_sha256 *s);
void bb_sha256_update(bb_sha256 *s, const void *data, size_t len);
/* Writes 64 lowercase hex digits and a NUL into hex[65]. */
void bb_sha256_final_hex(bb_sha256 *s, char hex[65]);

/* Hashes the whole file at path into s; returns its size in *size. ENG_EIO
 * when it cannot be read. */
eng_status bb_sha256_file(bb_sha256 *s, const char *path, int64_t *size, eng_diag *d);

#endif
