/* metrics.h: evaluation metrics on plain arrays (no tensors, no runtime).
 * classification.h: accuracy top-1/top-5, average precision, calibration
 * ECE, confusion matrix. detection.h: COCO-style mAP at IoU thresholds. */
#ifndef VFS_ENGINE_METRICS_H
#define VFS_ENGINE_METRICS_H
#if __has_include("classification.h")
#include "classification.h"
#endif
#if __has_include("detection.h")
#include "detection.h"
#endif
#endif
