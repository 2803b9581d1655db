/* coco.h: the public interface of the visionfs COCO library (vfs_coco).
 *
 * It parses COCO annotation files (Azure's flavour: relative boxes, plus
 * plain COCO pixel boxes) and validates them against SPEC section 3. It knows
 * nothing of FUSE, of files on disk or of the engine: the caller hands it the
 * JSON bytes and, per image, what it found on disk (coco_image_file).
 *
 * Design:
 * - coco_dataset_parse fails only when the bytes cannot be a COCO file at all
 *   (not JSON, over the limits, no images/annotations/categories arrays).
 *   Every other problem still yields a dataset; coco_validate reports it.
 * - The parser is our own single-pass reader that fills compact arrays
 *   directly (no JSON tree), so 200,000 images parse in well under a second
 *   and a 512 MB file does not need gigabytes of nodes.
 * - Long-lived objects (coco_dataset, coco_report) are opaque; the records
 *   they hand out (coco_image, coco_problem, ...) are small transparent value
 *   structs, borrowed until the owner is freed.
 * - Every call returns coco_status (COCO_OK == 0) and fills a caller-owned
 *   coco_diag (may be NULL). coco_x_free(NULL) is a no-op. No global state;
 *   everything is thread-safe on distinct objects, and read-only calls are
 *   safe on a shared object.
 */
#ifndef VFS_COCO_H
#define VFS_COCO_H

#include <stddef.h>
#include <stdint.h>
#include "jsonw.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- statuses and diagnostics ---------------------------------------- */

typedef enum coco_status {
    COCO_OK = 0,
    COCO_EINVAL,   /* bad argument (a caller bug) */
    COCO_ENOMEM,   /* allocation failed */
    COCO_ETOOBIG,  /* input larger than coco_limits.max_bytes */
    COCO_ETOODEEP, /* nesting deeper than coco_limits.max_depth */
    COCO_EJSON,    /* the bytes are not valid JSON */
    COCO_ENOTCOCO, /* valid JSON, but the top level is not an object with
                    * "images", "annotations" and "categories" arrays */
    COCO_ELIMIT,   /* more entries than coco_limits.max_entries */
    COCO_EUNSAFE,  /* a file name that would leave the dataset folder */
} coco_status;

/* Caller-owned diagnostic: what went wrong, subject first, lowercase.
 * offset is the byte offset of a JSON error (0 otherwise). */
typedef struct coco_diag {
    coco_status status;
    size_t offset;
    char msg[256];
} coco_diag;

/* "ok", "einval", ... */
const char *coco_status_name(coco_status st);

/* ---- parsing ----------------------------------------------------------- */

/* Zero fields take the defaults below. */
typedef struct coco_limits {
    size_t max_bytes;   /* default COCO_DEFAULT_MAX_BYTES (512 MB) */
    int max_depth;      /* default 64; arrays/objects nested deeper -> ETOODEEP */
    size_t max_entries; /* images + annotations + categories; default 10 million
                         * (a 512 MB file of real entries holds fewer; caps memory) */
} coco_limits;

#define COCO_DEFAULT_MAX_BYTES ((size_t)512 << 20)
#define COCO_DEFAULT_MAX_DEPTH 64
#define COCO_DEFAULT_MAX_ENTRIES ((size_t)10000000)

typedef struct coco_dataset coco_dataset;

/* Parses json[0..len) (no NUL needed). lim may be NULL (defaults).
 * On COCO_OK *out is a new dataset, free with coco_dataset_free. Fails only
 * with ETOOBIG, ETOODEEP, EJSON, ENOTCOCO, ELIMIT, ENOMEM or EINVAL; any
 * other problem (wrong field types, missing fields, bad boxes) is kept in
 * the dataset and reported by coco_validate. */
coco_status coco_dataset_parse(const char *json, size_t len, const coco_limits *lim,
                               coco_dataset **out, coco_diag *diag);
void coco_dataset_free(coco_dataset *ds);

/* Merges several parsed files into one new dataset (free with
 * coco_dataset_free); the parts are not changed. Used for Azure's
 * dataset.json with several annotationFileUris. Id clash rule:
 * - categories are matched by name: a category whose name already exists
 *   maps to the existing one; otherwise it keeps its id if that id is free,
 *   else it gets max id + 1;
 * - images and annotations of part k keep their ids when none of them
 *   clashes with the parts before; otherwise all ids of that part (images,
 *   and separately annotations) are shifted by one offset past the largest
 *   id so far, which keeps duplicates inside one file visible to validation;
 * - annotations follow their image and category through the same maps;
 * - the kind comes from the first part that states one;
 * - problem paths of part k (and paths reported later by coco_validate) get
 *   the prefix "files[k]." when n > 1. */
coco_status coco_dataset_merge(const coco_dataset *const *parts, size_t n, coco_dataset **out,
                               coco_diag *diag);

/* ---- records ----------------------------------------------------------- */

typedef enum coco_kind {
    COCO_KIND_UNKNOWN = 0,
    COCO_KIND_CLASSIFICATION,
    COCO_KIND_DETECTION,
    COCO_KIND_MULTILABEL, /* no boxes, some image with several categories */
} coco_kind;

typedef enum coco_box_units {
    COCO_UNITS_NONE = 0, /* no boxes */
    COCO_UNITS_RELATIVE, /* every coordinate within 0..1 */
    COCO_UNITS_PIXELS,   /* some coordinate above 1 */
} coco_box_units;

/* Record flags: which fields were present with a usable value. */
#define COCO_HAS_ID 0x0001u       /* id is an integer */
#define COCO_HAS_SIZE 0x0002u     /* image: width and height positive integers */
#define COCO_HAS_IMAGE_ID 0x0004u /* annotation: image_id is an integer */
#define COCO_HAS_CAT_ID 0x0008u   /* annotation: category_id is an integer */
#define COCO_HAS_BBOX 0x0010u     /* annotation: bbox is 4 finite numbers */
#define COCO_HAS_AREA 0x0020u     /* annotation: area is a number */
#define COCO_HAS_NAME 0x0040u     /* image: file_name / category: name is a string */
#define COCO_NAME_NUL 0x0080u     /* that string held a \u0000 */
#define COCO_URL_NUL 0x0100u      /* image: the url held a \u0000 */
#define COCO_BAD_BBOX 0x0200u     /* annotation: bbox present but not 4 finite numbers */
#define COCO_URL_IS_COCO 0x0400u  /* image: url came from coco_url (no absolute_url) */

/* One image entry. Strings are NUL-terminated and borrowed until the
 * dataset is freed; NULL when absent or not a string. */
typedef struct coco_image {
    int64_t id;
    const char *file_name;
    size_t file_name_len;  /* bytes, may include a decoded NUL (see COCO_NAME_NUL) */
    const char *url;       /* absolute_url if it is a string, else coco_url */
    int64_t width, height; /* declared; 0 unless COCO_HAS_SIZE */
    uint32_t index;        /* position in its file's "images" array */
    uint16_t source;       /* part index after coco_dataset_merge, else 0 */
    uint16_t flags;
    const char *origin; /* VOC/YOLO: where the entry came from ("labels/a.txt",
                         * "Annotations/a.xml"); problems name it instead of
                         * images[i]. NULL for COCO files. */
} coco_image;

typedef struct coco_category {
    int64_t id;
    const char *name; /* NULL when absent or not a string */
    uint32_t index;
    uint16_t source;
    uint16_t flags;
    const char *origin; /* as coco_image.origin ("data.yaml", "Annotations/a.xml: ...") */
} coco_category;

typedef struct coco_annotation {
    int64_t id;
    int64_t image_id;
    int64_t category_id;
    double bbox[4]; /* left, top, width, height as written; valid if has_bbox */
    double area;    /* valid if COCO_HAS_AREA */
    int has_bbox;   /* same as flags & COCO_HAS_BBOX */
    uint32_t index;
    uint16_t source;
    uint16_t flags;
    const char *origin; /* as coco_image.origin ("labels/a.txt:3", "Annotations/a.xml:
                         * annotation/object[2]/bndbox") */
} coco_annotation;

typedef struct coco_info {
    coco_kind kind; /* the "task" field or a caller's choice, else detection
                     * if any annotation has a bbox, else multilabel if an
                     * image has annotations of 2 or more categories, else
                     * classification */
    coco_box_units units;
    size_t images, annotations, categories, boxes;
    size_t max_labels; /* most distinct categories on one image */
} coco_info;

void coco_dataset_info(const coco_dataset *ds, coco_info *out);
/* Forces the kind (e.g. from dataset.json annotationKind). */
void coco_dataset_set_kind(coco_dataset *ds, coco_kind kind);

size_t coco_dataset_image_count(const coco_dataset *ds);
size_t coco_dataset_annotation_count(const coco_dataset *ds);
size_t coco_dataset_category_count(const coco_dataset *ds);
/* Borrowed until coco_dataset_free; NULL when i is out of range. */
const coco_image *coco_dataset_image(const coco_dataset *ds, size_t i);
const coco_annotation *coco_dataset_annotation(const coco_dataset *ds, size_t i);
const coco_category *coco_dataset_category(const coco_dataset *ds, size_t i);
/* The dataset as one COCO file (ids, names, urls, sizes, boxes, areas as
 * kept), "task" set from kind: a new string (free with free()), its length
 * in *len (may be NULL); NULL when out of memory. */
char *coco_dataset_to_json(const coco_dataset *ds, coco_kind kind, size_t *len);

/* Index of the first record with that id, or -1. O(1). */
long coco_dataset_find_image(const coco_dataset *ds, int64_t id);
long coco_dataset_find_category(const coco_dataset *ds, int64_t id);

/* The box of an annotation relative to its image (0..1), converting pixel
 * boxes with the image's declared size and clipping to the image. COCO_EINVAL
 * (with diag) when the annotation has no box, its image or size is unknown,
 * or nothing of the box lies inside the image. */
coco_status coco_annotation_box_relative(const coco_dataset *ds, const coco_annotation *a,
                                         double out[4], coco_diag *diag);

/* The dataset as one COCO file in our flavour, for export (datasets/NAME/
 * coco.json): every image with id, file_name (file_names[i] when given and
 * not NULL: where the file was found, relative to the dataset folder) and
 * width/height (declared, else sizes[2i], sizes[2i+1] when given); every
 * annotation with a box written relative to its image (0..1, clipped) and
 * its relative area; categories {id, name}; "task" from kind. A new string
 * (free with free()), its length in *len (may be NULL); NULL when out of
 * memory. */
char *coco_dataset_export_json(const coco_dataset *ds, coco_kind kind,
                               const char *const *file_names, const int *sizes, size_t *len);

/* ---- other formats: Pascal VOC and YOLO --------------------------------- */

/* Pascal VOC (one XML per image) and YOLO (one text file of boxes per image)
 * become the same coco_dataset a COCO file gives: image file_names are paths
 * relative to the dataset folder, boxes are relative (0..1), the kind is
 * detection. The caller (fs/) reads the files and lists the images it found
 * with their pixel sizes; coco reads no disk. Like coco_dataset_parse these
 * fail only on a bad argument or no memory: every problem in a file is kept
 * in the dataset (path = the file and line or element) and reported by
 * coco_validate. XML is read with libxml2 without network access, DTDs or
 * entity expansion (a DOCTYPE is refused). */

/* One input file: its path relative to the dataset folder and its bytes. */
typedef struct coco_src_file {
    const char *path;
    const char *data;
    size_t len;
} coco_src_file;

/* One image file found in the dataset folder: its path relative to the
 * folder and its displayed size (0 when unknown: not an image, unreadable). */
typedef struct coco_src_image {
    const char *path;
    int width, height;
} coco_src_image;

/* Pascal VOC: xml[0..n) (sorted by path for stable ids). An XML's image is
 * its <filename> (else its own base name, any image extension) in
 * ../JPEGImages/ when the XML is in Annotations/, else next to the XML; an
 * image not found yet is named at that place (coco_validate reports it
 * missing). Categories are numbered from 1 in order of first use. */
coco_status coco_voc_parse(const coco_src_file *xml, size_t n, const coco_src_image *images,
                           size_t n_images, coco_dataset **out, coco_diag *diag);

/* YOLO: every image under a folder named "images" is an image of the
 * dataset; its boxes are in the same path with "labels" for "images" and
 * ".txt" for the extension (no file: no boxes), one "CLASS CX CY W H" line
 * per box (normalised 0..1; a polygon "CLASS X1 Y1 X2 Y2 ..." gives its
 * bounding box). labels[0..n) are those .txt files (a label without an
 * image is reported missing). names: data.yaml (its "names", a list or an
 * index map) or classes.txt / obj.names (one per line), or NULL (an error;
 * classes are then named by their numbers). Categories are the classes
 * used, numbered from 1 in order of first use. */
coco_status coco_yolo_parse(const coco_src_file *labels, size_t n, const coco_src_file *names,
                            const coco_src_image *images, size_t n_images, coco_dataset **out,
                            coco_diag *diag);

/* ---- showing urls --------------------------------------------------------- */

/* The url in url[0..len) as messages, status files and logs show it: without
 * userinfo ("user:password@"), and cut at the first '?', '#' or ';' of the
 * rest (queries, fragments and ';' parameters may hold a credential such as
 * a SAS token). Writes at most n - 1 bytes and a NUL to out (n > 0); returns
 * the length written. The shown url is never longer than the url. */
size_t coco_url_shown(const char *url, size_t len, char *out, size_t n);

/* ---- finding image files (pure string functions) ------------------------ */

#define COCO_PATH_MAX 4096
#define COCO_MAX_CANDIDATES 3

/* Relative paths to try, in order, inside the dataset folder. */
typedef struct coco_candidates {
    int n;
    char path[COCO_MAX_CANDIDATES][COCO_PATH_MAX];
} coco_candidates;

/* For file_name[0..len) fills out with: the normalised name ("./" and "//"
 * removed, "a/b/../c" resolved, backslashes read as '/'), its base name, and
 * "images/" + base name, without duplicates. Returns COCO_EUNSAFE (diag says
 * why, out->n = 0) for empty names, absolute paths (also "C:..."), names that
 * climb out of the folder ("../x", "a/../../x"), NUL or control bytes,
 * components over 255 bytes and names over COCO_PATH_MAX. No path it returns
 * starts with '/' or contains a ".." component. */
coco_status coco_image_candidates(const char *file_name, size_t len, coco_candidates *out,
                                  coco_diag *diag);

typedef enum coco_url_kind {
    COCO_URL_NONE = 0, /* NULL or empty */
    COCO_URL_HTTP,
    COCO_URL_HTTPS,
    COCO_URL_FILE,
    COCO_URL_INVALID, /* another scheme, no host, spaces or control bytes */
} coco_url_kind;

/* Classifies an image URL; the fetcher only follows http, https and file. */
coco_url_kind coco_url_classify(const char *url);

/* The image's URL when it is one the fetcher may follow (http, https,
 * file, no NUL inside), else NULL. Borrowed like the image. */
const char *coco_image_fetch_url(const coco_image *im);

/* ---- validation -------------------------------------------------------- */

typedef enum coco_file_state {
    COCO_FILE_UNCHECKED = 0, /* caller did not look: file checks are skipped */
    COCO_FILE_FOUND,
    COCO_FILE_MISSING,      /* not in the folder and nothing to fetch */
    COCO_FILE_FETCHING,     /* a download is queued or running */
    COCO_FILE_FETCH_FAILED, /* the download failed: see error */
} coco_file_state;

/* What the caller found for one image (same order as the dataset's images).
 * A zeroed struct means "unchecked". Strings are borrowed for the call. */
typedef struct coco_image_file {
    coco_file_state state;
    uint64_t size;      /* bytes */
    const char *format; /* "jpeg","png","gif","bmp","webp","ico","tiff","mpo", other
                         * name = unsupported, NULL = not an image */
    int width, height;  /* stored pixel size, 0 when unknown */
    int orientation;    /* EXIF 1..8 (5..8 turn by 90 degrees), 0 = none */
    const char *error;  /* "truncated jpeg", "http 404", ...; NULL if none */
} coco_image_file;

typedef enum coco_severity { COCO_ERROR = 0, COCO_WARNING = 1 } coco_severity;

typedef enum coco_code {
    COCO_CODE_DATASET_CORRUPT = 0,    /* "datasetCorrupt": image files */
    COCO_CODE_INVALID_ANNOTATION_URI, /* "DatasetInvalidAnnotationUri": urls */
    COCO_CODE_DATASET_EMPTY,          /* "datasetEmpty" */
    COCO_CODE_ANNOTATIONS_INVALID,    /* "datasetAnnotationsInvalid": the file */
} coco_code;

const char *coco_code_name(coco_code code);
/* "classification"/"detection"/"multilabel" ("unknown"), "relative"/"pixels"/"none",
 * "ready"/"invalid"/"incomplete"/"fetching". */
const char *coco_kind_name(coco_kind kind);
const char *coco_units_name(coco_box_units units);

typedef enum coco_subject {
    COCO_SUBJECT_NONE = 0,
    COCO_SUBJECT_IMAGE,
    COCO_SUBJECT_ANNOTATION,
    COCO_SUBJECT_CATEGORY,
} coco_subject;

/* One problem. message starts with the path and quotes the subject, e.g.
 * "annotations[17].bbox: box [10,20,0,5] of image 3 has zero height". */
typedef struct coco_problem {
    coco_severity severity;
    coco_code code;
    coco_subject subject; /* what id refers to */
    int has_id;
    int64_t id;
    int training_only; /* a warning that coco_report_apply_training_rules
                        * turns into an error */
    char path[128];    /* "annotations[17].bbox", "" for the whole file */
    char message[320];
    char hint[256];
} coco_problem;

#define COCO_MAX_STORED_PROBLEMS 1000 /* per severity; the rest are counted */

typedef enum coco_state {
    COCO_STATE_READY = 0,
    COCO_STATE_INVALID,    /* at least one error */
    COCO_STATE_INCOMPLETE, /* images missing, nothing fetching */
    COCO_STATE_FETCHING,   /* downloads pending */
} coco_state;

typedef enum coco_image_status {
    COCO_IMAGE_OK = 0,  /* found (or unchecked) and usable */
    COCO_IMAGE_MISSING, /* not found and no download pending */
    COCO_IMAGE_FETCHING,
    COCO_IMAGE_FAILED,  /* download failed */
    COCO_IMAGE_BAD,     /* found but unusable (format, size, corrupt) */
    COCO_IMAGE_INVALID, /* the entry itself is invalid (id, unsafe name) */
} coco_image_status;

typedef struct coco_summary {
    coco_state state;
    coco_kind kind;
    coco_box_units units;
    size_t images, annotations, categories, boxes;
    size_t max_labels; /* most distinct categories on one image */
    size_t images_found, images_missing, images_fetching, images_failed, images_bad;
    size_t errors, warnings; /* totals, including those not stored */
} coco_summary;

typedef struct coco_report coco_report;

const char *coco_state_name(coco_state state);

/* Runs every check of SPEC section 3. files has one entry per image of ds
 * (coco_dataset_image_count) or is NULL (all unchecked). On COCO_OK *out
 * is a new report (free with coco_report_free); it does not point into ds
 * or files. Only EINVAL and ENOMEM fail. */
coco_status coco_validate(const coco_dataset *ds, const coco_image_file *files, coco_report **out);
void coco_report_free(coco_report *r);

const coco_summary *coco_report_summary(const coco_report *r);
/* Stored problems of one severity, in the order found; *n gets the count. */
const coco_problem *coco_report_problems(const coco_report *r, coco_severity sev, size_t *n);
/* Resolved state of image i (dataset order); COCO_IMAGE_INVALID when out of range. */
coco_image_status coco_report_image_status(const coco_report *r, size_t i);
/* Number of distinct images labelled with category i (dataset order). */
size_t coco_report_category_images(const coco_report *r, size_t i);

/* For the trainer: turns the "fewer than 2 images in a category" warnings
 * into errors and updates the state. Returns how many were turned. */
size_t coco_report_apply_training_rules(coco_report *r);

/* One line, no newline, truncated to n-1 bytes:
 *   incomplete: N images missing
 *   fetching: N/M                      (N images available of M)
 *   ready: N images, C categories, B boxes (detection|classification)
 *   invalid: CODE: first problem (+K more)   (K other errors; omitted if 0)
 * ("empty" is the caller's: there is no annotation file). Returns the length
 * the full line has (like snprintf). */
size_t coco_report_status_line(const coco_report *r, char *buf, size_t n);

/* status.json: a new NUL-terminated string (free with free()), or NULL when
 * out of memory. Shape:
 * {"state","status","kind","images","annotations","categories","boxes",
 *  "boxUnits","imagesFound","imagesMissing","imagesFetching","imagesFailed",
 *  "imagesBad","categoryImages":[{"id","name","images"}] (first 10,000),
 *  "categoryImagesNotListed",
 *  "errorCount","warningCount",
 *  "errors":[{"code","path","id","message","hint"}],"warnings":[...]}
 * Invalid UTF-8 in names is replaced by U+FFFD so jq always reads it. */
char *coco_report_to_json(const coco_report *r);

/* The same members written into an object the caller has opened on w (so a
 * caller can put its own members first, as fs/ does for status.json). */
void coco_report_json_members(const coco_report *r, jsonw *w);

#ifdef __cplusplus
}
#endif
#endif
