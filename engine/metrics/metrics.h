/* metrics.h: classification, multilabel and detection metrics (depends on core only). */
#ifndef VFS_ENGINE_METRICS_H
#define VFS_ENGINE_METRICS_H
#include "classification.h"
#include "detection.h"
#include "multilabel.h"
#include "detail.h"
#endif
