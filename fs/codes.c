/* codes.c: the names of the models/ area's error codes (codes.h). */
#include "codes.h"

#include <string.h>

static const char *const names[FS_CODE_COUNT] = {
    [FS_CODE_NONE] = "",
    [FS_CODE_UNKNOWN] = "unknown",
    [FS_CODE_DIVERGED] = "diverged",
    [FS_CODE_NOT_ENOUGH_BUDGET] = "notEnoughBudget",
    [FS_CODE_DATASET_CORRUPT] = "datasetCorrupt",
    [FS_CODE_DATASET_NOT_FOUND] = "datasetNotFound",
    [FS_CODE_STORE_FULL] = "storeFull",
    [FS_CODE_INVALID_REQUEST] = "invalidRequest",
    [FS_CODE_INCORRECT_MODEL_KIND] = "incorrectModelKind",
    [FS_CODE_INVALID_MODEL] = "invalidModel",
    [FS_CODE_BACKBONE_NOT_FOUND] = "backboneNotFound",
    [FS_CODE_DATASET_ANNOTATIONS_INVALID] = "datasetAnnotationsInvalid",
    [FS_CODE_DATASET_EMPTY] = "datasetEmpty",
    [FS_CODE_INVALID_IMAGE] = "InvalidImage",
    [FS_CODE_INVALID_IMAGE_URL] = "InvalidImageUrl",
    [FS_CODE_INVALID_IMAGE_FORMAT] = "InvalidImageFormat",
    [FS_CODE_INVALID_IMAGE_SIZE] = "InvalidImageSize",
    [FS_CODE_MODEL_NOT_FOUND] = "modelNotFound",
    [FS_CODE_INTERNAL_SERVER_ERROR] = "InternalServerError",
    [FS_CODE_PREDICT_STORE_FULL] = "StoreFull",
};

const char *fs_code_name(fs_code c)
{
    return c >= 0 && c < FS_CODE_COUNT && names[c] ? names[c] : "unknown";
}

fs_code fs_code_parse(const char *name)
{
    for (int c = 1; c < FS_CODE_COUNT; c++)
        if (names[c] && strcmp(names[c], name) == 0)
            return (fs_code)c;
    return FS_CODE_UNKNOWN;
}
