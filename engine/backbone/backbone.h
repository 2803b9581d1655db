/* backbone.h: pretrained backbones (a tfjs graph model folder plus its
 * backbone.json) and the feature extraction that recipes use.
 *
 * Design: a backbone folder is what scripts/fetch-backbones.sh installs or a
 * user copies in: model.json, its weight shards and backbone.json
 * (SPEC section 6: input size, pixel range, embedding node, optional
 * detection_features node; the installer adds "files" with the size and
 * sha256 of every file and "checksum", the sha256 of the weights in manifest
 * order). Opening verifies those before loading, so missing, truncated or
 * altered weights give a message naming the repair command instead of
 * garbage features. Embedding runs whole batches through the runtime while a
 * producer thread decodes and resizes the next batch.
 *
 * backbone.json fields (only input, pixels and embedding are required):
 *   name                 shown name (default: the folder's name)
 *   input [w, h]         default input size; pixels "0..255" | "0..1" | "-1..1"
 *   embedding            node to global-average-pool for classification
 *   embedding_dim        informational; the engine works it out from the graph
 *   detection_features   node for detection heads (CenterNet: the stride-4 neck)
 *   taps.strideN         more nodes at stride N worth pooling (taps.stride32,
 *                        taps.stride32_block, taps.stride16, taps.stride8, ...)
 *   outputs.logits       classifier output (EfficientNet: ImageNet-1k logits)
 *   detector.*           CenterNet heads: input, keypoints, wh, wh_scale, stride,
 *                        detections, classes
 *   normalization        informational: mean/std already applied inside the graph
 *   source, checksum, files   written at install (see above)
 */
#ifndef VFS_ENGINE_BACKBONE_H
#define VFS_ENGINE_BACKBONE_H

#include "runtime.h"
#include "image.h"

/* The command that (re)installs the default backbones; error messages name it. */
#define ENG_BACKBONE_FIX_COMMAND "scripts/fetch-backbones.sh"

/* Largest batch run through the model at once by the embed calls. */
#define ENG_BACKBONE_MAX_BATCH 8

/* A loaded backbone: its description and model. Opaque, immutable after open:
 * several threads may embed with the same backbone at once. */
typedef struct eng_backbone eng_backbone;

/* Description of a backbone. Strings are borrowed until eng_backbone_free. */
typedef struct eng_backbone_info {
    const char *name;               /* backbone.json "name", else the folder's name */
    const char *checksum;           /* sha256 hex of the weights (shards in manifest order) */
    int input_w, input_h;           /* default input size (backbone.json "input") */
    eng_pixels pixels;              /* pixel range the model takes */
    const char *embedding;          /* node whose global average pool is the embedding */
    const char *detection_features; /* node for detection heads, NULL when absent */
    int embedding_dim;              /* channels of the embedding node */
    int detection_features_dim;     /* channels of detection_features, 0 when absent */
} eng_backbone_info;

/* Reads DIR/backbone.json, checks the files it records (existence, size and
 * sha256; without a "files" list: that model.json and every weight shard it
 * names exist), loads the model and checks that the named nodes exist.
 * On success *out is a new backbone, free with eng_backbone_free.
 * Errors: ENG_ENOTFOUND (folder, backbone.json or a file missing),
 * ENG_EFORMAT (malformed backbone.json, a file of the wrong size or sha256),
 * and whatever eng_model_load reports. Messages about the files name the
 * folder and end with "run scripts/fetch-backbones.sh" when re-installing
 * would repair them. */
eng_status eng_backbone_open(const char *dir, eng_backbone **out, eng_diag *d);

/* The same checks on files as eng_backbone_open, without loading the model
 * (cheap enough for listings except for hashing the weights). */
eng_status eng_backbone_verify(const char *dir, eng_diag *d);

/* Frees bb; eng_backbone_free(NULL) is a no-op. */
void eng_backbone_free(eng_backbone *bb);

const eng_backbone_info *eng_backbone_get_info(const eng_backbone *bb);

/* Borrowed until eng_backbone_free. */
const eng_model *eng_backbone_model(const eng_backbone *bb);

/* Borrowed backbone.json string field path ("detector.keypoints",
 * "outputs.logits", "taps.stride8", "normalization" is not a string), or NULL
 * when absent. Dots separate object keys. */
const char *eng_backbone_field(const eng_backbone *bb, const char *path);

/* Length of the embedding the embed calls produce for these taps (NULL or
 * ntaps == 0: the embedding node) at input size x size (0: the default):
 * the sum of the taps' channel counts. */
eng_status eng_backbone_embed_dim(const eng_backbone *bb, int size, const char *const *taps,
                                  int ntaps, int *dim, eng_diag *d);

/* Embeddings of n images. Each image is squash-resized (bilinear, aspect not
 * kept) to size x size (0 = the backbone's input size; otherwise a multiple
 * of 32 in 32..2048) in the backbone's pixel range, run in batches of up to
 * ENG_BACKBONE_MAX_BATCH to the given taps (NULL = the embedding node), each
 * tap global-average-pooled over height and width and the results
 * concatenated in tap order: out[i * dim + ...], dim as eng_backbone_embed_dim
 * says (also stored in *dim, which may be NULL). out NULL: only *dim is set.
 * Decoding and resizing of the next batch run on a producer thread while the
 * model computes (o->threads threads; o may be NULL); o->abort is polled
 * between nodes and batches.
 * _files decodes each path (any format eng_image_decode_file reads, JPEG
 * with DCT scaling to the input size). On a failing image the call fails and
 * the message names it. _images takes decoded images; crops (may be NULL:
 * whole images) in image pixels and flips (may be NULL: none) give the
 * augmentation per image. */
eng_status eng_backbone_embed_files(const eng_backbone *bb, const char *const *paths, int n,
                                    int size, const char *const *taps, int ntaps, float *out,
                                    int *dim, const eng_run_opts *o, eng_diag *d);
eng_status eng_backbone_embed_images(const eng_backbone *bb, const eng_image *const *ims,
                                     const eng_crop *crops, const int *flips, int n, int size,
                                     const char *const *taps, int ntaps, float *out, int *dim,
                                     const eng_run_opts *o, eng_diag *d);

/* _files with augmentation, decoding on the producer thread too: crops (may
 * be NULL) are fractions of each decoded image (x, y, w, h within 0..1, so
 * they do not depend on JPEG DCT scaling), flips (may be NULL) mirror. */
eng_status eng_backbone_embed_files_aug(const eng_backbone *bb, const char *const *paths,
                                        const eng_crop *crops, const int *flips, int n, int size,
                                        const char *const *taps, int ntaps, float *out, int *dim,
                                        const eng_run_opts *o, eng_diag *d);

/* One backbone folder found by eng_backbones_scan. */
typedef struct eng_backbone_entry {
    char name[128];    /* folder name (what backbones/NAME shows) */
    char dir[4096];    /* full path of the folder */
    eng_status status; /* ENG_OK when it opened (or verified) fine */
    char message[512]; /* "ok", or why it cannot be used */
} eng_backbone_entry;

/* Lists the backbone folders under root (subfolders not starting with '.'),
 * sorted by name, with each one's status: with load != 0 each is fully opened
 * (eng_backbone_open), else only eng_backbone_verify is run. *out is a new
 * array of *n entries, free with free(); a missing root gives 0 entries and
 * ENG_OK. Errors: ENG_EIO (root unreadable), ENG_ENOMEM. */
eng_status eng_backbones_scan(const char *root, int load, eng_backbone_entry **out, int *n,
                              eng_diag *d);

#endif
