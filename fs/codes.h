/* codes.h: the error codes the models/ area shows, with their names as the
 * user reads them (SPEC sections 4 and 5; the training codes in lowerCamel
 * as Azure's training errors, the predict/ codes in Azure's PascalCase).
 *
 * One enum and one name table, so a code is checked by the compiler where it
 * is set and compared, and spelled once. The datasets/ area's codes are
 * coco's (coco_code_name).
 */
#ifndef VFS_FS_CODES_H
#define VFS_FS_CODES_H

typedef enum fs_code {
    FS_CODE_NONE = 0, /* no error (yet) */
    /* a training run that failed: "failed: CODE: message" */
    FS_CODE_UNKNOWN,
    FS_CODE_DIVERGED,
    FS_CODE_NOT_ENOUGH_BUDGET,
    FS_CODE_DATASET_CORRUPT,
    FS_CODE_DATASET_NOT_FOUND,
    FS_CODE_STORE_FULL,
    FS_CODE_INVALID_REQUEST,
    FS_CODE_INCORRECT_MODEL_KIND,
    /* model files (import, load) */
    FS_CODE_INVALID_MODEL,
    FS_CODE_BACKBONE_NOT_FOUND,
    /* evaluations/ */
    FS_CODE_DATASET_ANNOTATIONS_INVALID,
    FS_CODE_DATASET_EMPTY,
    /* predict/: Azure's image errors */
    FS_CODE_INVALID_IMAGE,
    FS_CODE_INVALID_IMAGE_URL,
    FS_CODE_INVALID_IMAGE_FORMAT,
    FS_CODE_INVALID_IMAGE_SIZE,
    FS_CODE_MODEL_NOT_FOUND,
    FS_CODE_INTERNAL_SERVER_ERROR,
    FS_CODE_PREDICT_STORE_FULL,
    FS_CODE_COUNT
} fs_code;

/* The name the user reads ("notEnoughBudget"); "unknown" for a value out of
 * range. */
const char *fs_code_name(fs_code c);
/* The code named name (as written by fs_code_name), or FS_CODE_UNKNOWN. */
fs_code fs_code_parse(const char *name);

#endif
