/* metrics_int.h: what the metrics' JSON writers share (not installed). */
#ifndef VFS_ENGINE_METRICS_INT_H
#define VFS_ENGINE_METRICS_INT_H
#include "classification.h"

#include <cjson/cJSON.h>

/* Adds extra's fields to o (when ok and extra is not NULL: evaluatedOn
 * {dataset, imageCount}, trainingCostInMinutes, stopReason), prints o into
 * *json and deletes o. ok: 0 when building o already failed. */
eng_status metrics_json_finish(cJSON *o, int ok, const eng_eval_extra *extra, char **json,
                               eng_diag *d);

#endif
