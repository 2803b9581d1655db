/* trainreq.h: parsing of models/NAME/train.json.
 *
 * Two shapes are accepted and normalised into one value type: the short form
 *   {"dataset": "NAME", "kind": "classifier"|"detector"|..., "budget_minutes": 10,
 *    "test_dataset": "NAME2"}
 * and Azure's training request body, unchanged:
 *   {"trainingParameters": {"trainingDatasetName": "...", "timeBudgetInHours": 0.2,
 *    "modelKind": "Generic-Classifier"|"Generic-Detector"|...},
 *    "evaluationParameters": {"testDatasetName": "..."}}
 * The kinds are the table's (fs_recipe_for_kind). This file only checks the
 * request itself (syntax, types, names, ranges);
 * whether the datasets exist and suit the kind is the lifecycle's business
 * (models.c), which knows the datasets. Unknown keys are ignored so Azure
 * bodies with extra fields pass.
 */
#ifndef VFS_FS_TRAINREQ_H
#define VFS_FS_TRAINREQ_H

#include <stddef.h>

typedef enum fs_trainreq_status {
    FS_TRQ_OK = 0,
    FS_TRQ_EJSON,  /* not JSON, or not an object */
    FS_TRQ_EFIELD, /* a field is missing, has the wrong type or a bad value */
} fs_trainreq_status;

#define FS_TRQ_NAME_MAX 64
#define FS_TRQ_DEFAULT_BUDGET_S 600.0 /* 10 minutes, when no budget is given */
#define FS_TRQ_MAX_BUDGET_S (7.0 * 24 * 3600)

/* A normalised request (small value type). */
typedef struct fs_trainreq {
    char dataset[FS_TRQ_NAME_MAX + 1];
    char test_dataset[FS_TRQ_NAME_MAX + 1]; /* "" when none */
    const char *kind;      /* a kind's name from the table of kinds (models_recipe.h);
                              NULL when not given: decided from the dataset */
    double budget_seconds; /* CPU seconds */
    int azure_form;        /* 1 when parsed from Azure's body */
} fs_trainreq;

typedef struct fs_trainreq_diag {
    char msg[256];
} fs_trainreq_diag;

/* Parses len bytes of train.json into *out. On error *out is undefined and
 * d->msg says what is wrong, subject first (e.g. `"budget_minutes": must be a
 * number above 0`). d may be NULL. */
fs_trainreq_status fs_trainreq_parse(const char *buf, size_t len, fs_trainreq *out,
                                     fs_trainreq_diag *d);

/* Writes the normalised request as a short-form JSON object into buf (always
 * NUL-terminated); returns the length it needed (like snprintf). */
int fs_trainreq_format(const fs_trainreq *r, char *buf, size_t cap);

/* Name rule of SPEC section 2: 1-64 of A-Za-z0-9._- not starting with '.'. */
int fs_trainreq_name_ok(const char *name);

#endif
