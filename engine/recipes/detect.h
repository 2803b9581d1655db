/* detect.h: few-shot object detection on a pretrained CenterNet backbone:
 * training, prediction, evaluation, drawing, model files.
 *
 * Design: the backbone and its neck run once per image at 512 x 512 (the
 * image squashed, as the pretrained detector was trained) to the stride-4
 * detection features [128,128,128]. A detector adds two heads on them, both
 * a frozen pretrained 3x3 depthwise filter followed by a trained 1x1
 * convolution: a per-category heatmap (sigmoid, trained with CenterNet's
 * focal loss on elliptical Gaussian peaks, bias initialised to -2.19) and
 * the backbone's class-agnostic box head (l, t, r, b distances x 16 in input
 * pixels), kept as it is or fine-tuned with a GIoU loss when the held-out
 * split says so. Features are kept as float16 (exact enough for a linear
 * head, half the memory) and cached on disk; flips are applied to the
 * cached features. Decoding: 3x3 max-pool peaks, top-K over all
 * categories, boxes mapped back to the image's pixels, optional
 * per-category NMS. The recipe search is in det_train.c, the rest in
 * detect.c; the file layout is in docs/model-format.md.
 *
 * Threads: a detector is immutable after training or loading; predict and
 * evaluate may run on several threads at once.
 */
#ifndef VFS_ENGINE_DETECT_H
#define VFS_ENGINE_DETECT_H

#include "classify.h"

/* Fewest training images a category needs. */
#define ENG_DET_MIN_PER_CATEGORY 2
/* Most boxes per image read for training. */
#define ENG_DET_MAX_BOXES 1000
/* Most objects a prediction returns. */
#define ENG_DET_TOPK 100

/* One detected object, pixels of the image as stored. */
typedef struct eng_det_object {
    float x, y, w, h;
    int category;
    float score; /* peak of the category's heatmap, 0..1 */
} eng_det_object;

typedef struct eng_detector eng_detector;

/* Trains a detector. On success *out is a new detector (free with
 * eng_detector_free) and *evaluation_json a new string (free()) with
 * meanAveragePrecision30/50/75, tagPerformance, evaluatedOn,
 * trainingCostInMinutes, stopReason. Errors: ENG_EINVAL (no category, a
 * category with fewer than ENG_DET_MIN_PER_CATEGORY training images, a box
 * out of range: the message names it), ENG_ENOTFOUND (no backbone with
 * detection features, or an image file), ENG_EFORMAT/ENG_EUNSUPPORTED (an
 * image that cannot be decoded), ENG_ENOBUDGET, ENG_EABORTED, ENG_ENOMEM. */
eng_status eng_det_train(const eng_train_args *a, eng_detector **out, char **evaluation_json,
                         eng_diag *d);

/* Puts into the feature cache cache_dir the detection features training
 * reads for each of n image files (the backbone with detection features
 * among backbones, squashed to the detector's input): the very files
 * eng_det_train writes. *computed: how many were not cached yet; *failed:
 * images that could not be read or decoded (left out). Errors: ENG_ENOTFOUND
 * (no backbone with detection features), ENG_ENOMEM, the backbone's. */
eng_status eng_det_cache_features(eng_backbone *const *backbones, int nbackbones,
                                  const char *const *paths, int n, const char *cache_dir,
                                  int threads, int *computed, int *failed, eng_diag *d);
/* The worker's side of eng_detfit_fn (recipe.h): runs the head fit job
 * describes (the JSON eng_det_train wrote) on the n training images paths,
 * exactly as training would run it here: the features through the cache
 * cache_dir (may be NULL: computed), the fit from the random generator's
 * state the job gives, then the held-out images' detections at each pool
 * and box-size weight the job names. bb_dirs: backbone folders; the job's
 * backbone is the one whose folder has its name, checked by checksum
 * (ENG_ENOTFOUND otherwise). *result (malloc'd, *len bytes) is what the
 * hook hands back to training. Bitwise what training computes itself,
 * whatever threads. */
eng_status eng_det_fit_run(const char *job, const char *const *bb_dirs, int nbb,
                           const char *const *paths, int n, const char *cache_dir, int threads,
                           void **result, size_t *len, eng_diag *d);

/* Detects objects in one image: *objs a new array of *n objects, best first
 * (free()); *img_w, *img_h (may be NULL) the image's size in pixels.
 * threads <= 0: 1. */
eng_status eng_det_predict(const eng_detector *m, eng_backbone *const *backbones, int nbackbones,
                           const char *image_path, int threads, eng_det_object **objs, int *n,
                           int *img_w, int *img_h, eng_diag *d);

/* The image with the objects drawn (box, label and score), as a JPEG:
 * *jpg new buffer of *len bytes (free()). */
eng_status eng_det_draw(const eng_detector *m, const char *image_path, const eng_det_object *objs,
                        int n, uint8_t **jpg, size_t *len, eng_diag *d);

/* Evaluates on n images with boxes (categories are the model's indices).
 * *metrics_json: the metrics and evaluatedOn (new string, free());
 * *predictions_json (may be NULL): COCO results [{image_id, category_id,
 * bbox (pixels), score}] whose mAP is exactly the reported one. */
eng_status eng_det_evaluate(const eng_detector *m, eng_backbone *const *backbones, int nbackbones,
                            const eng_sample *s, int n, const eng_eval_opts *o, char **metrics_json,
                            char **predictions_json, eng_diag *d);

int eng_det_ncat(const eng_detector *m);
/* Borrowed until eng_detector_free. */
const char *eng_det_category(const eng_detector *m, int i);
/* Backbone i the model needs, as eng_cls_backbone_needed (a detector needs
 * one: NULL for i > 0). Borrowed. */
const char *eng_det_backbone_needed(const eng_detector *m, int i, const char **checksum);
/* The recipe as JSON. Borrowed. */
const char *eng_det_recipe(const eng_detector *m);

eng_status eng_detector_save(const eng_detector *m, const char *path, eng_diag *d);
/* ENG_EFORMAT for a file that is not a detector (message says "not a detector"
 * with its kind) or is malformed. */
eng_status eng_detector_load(const char *path, eng_detector **out, eng_diag *d);
eng_status eng_detector_from_file(const eng_modelfile *f, eng_detector **out, eng_diag *d);
void eng_detector_free(eng_detector *m);

/* ---- pieces, exposed for tests ---- */

/* Decodes heatmap probabilities heat [gh,gw,ncat] and box distances wh
 * [gh,gw,4] (l, t, r, b in input pixels, cell point at stride * (x, y))
 * into at most topk objects (peaks equal to their 3x3 max, score >= min_score),
 * boxes scaled by sx, sy into image pixels and clipped to img_w x img_h.
 * nms_iou > 0: per-category NMS at that IoU. out holds topk objects;
 * returns the count, best first. */
int eng_det_decode(const float *heat, const float *wh, int gh, int gw, int ncat, int stride,
                   float sx, float sy, int img_w, int img_h, int topk, float min_score,
                   float nms_iou, eng_det_object *out);

/* Adds the elliptical Gaussian of a box (x1, y1, x2, y2 in input pixels) to
 * channel c of heat [gh,gw,ncat] by maximum: peak 1 at the centre cell,
 * sigma = alpha * size / 6 per axis (in cells). */
void eng_det_gaussian(float *heat, int gh, int gw, int ncat, int c, int stride, float x1, float y1,
                      float x2, float y2, float alpha);

/* The whole prediction pipeline as an ONNX model (det_onnx.c): inputs
 * uint8 RGB NHWC `image` [N, 512, 512, 3] and float `image_size` [N, 2]
 * (width, height the boxes are given in); outputs boxes [N, 100, 4]
 * (x1, y1, x2, y2), scores [N, 100], categories int64 [N, 100], count
 * int64 [N]; decoding and per-category NMS in the graph. IR 7 / opset 13.
 * *out: malloc'd bytes. */
eng_status eng_detector_export_onnx(const eng_detector *m, eng_backbone *const *bbs, int nbb,
                                    const char *producer_version, uint8_t **out, size_t *len,
                                    eng_diag *d);

#endif
