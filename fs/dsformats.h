/* dsformats.h: what annotation format a dataset folder holds (COCO,
 * Pascal VOC, YOLO), and reading VOC and YOLO folders into a coco_dataset
 * (the parsers are in coco/voc.c and coco/yolo.c; this side walks the folder
 * and reads the files). Used by the verifier in datasets.c only. */
#ifndef VFS_FS_DSFORMATS_H
#define VFS_FS_DSFORMATS_H

#include <stddef.h>

#include "coco.h"

typedef enum fs_ds_format {
    FS_FMT_NONE = 0,
    FS_FMT_COCO,
    FS_FMT_VOC,
    FS_FMT_YOLO,
} fs_ds_format;

/* "coco", "voc", "yolo" ("none"), as status.json's "format" says. */
const char *fs_ds_format_name(fs_ds_format f);
/* "COCO", "Pascal VOC", "YOLO" for messages and the status line. */
const char *fs_ds_format_title(fs_ds_format f);

/* The generated export of a dataset and the marker saying it is ours (a
 * user's own coco.json has no marker and is their annotation file). */
#define FS_DS_EXPORT "coco.json"
#define FS_DS_EXPORT_MARK ".vfs-coco-generated"

/* The files of a dataset folder that matter for its format; paths are
 * relative to the dataset folder, each list sorted. */
typedef struct fs_ds_scan {
    char **xml; /* *.xml anywhere: Pascal VOC */
    size_t n_xml, cap_xml;
    char **labels; /* *.txt below a folder named labels (not classes.txt) */
    size_t n_labels, cap_labels;
    char **images; /* image files by extension */
    size_t n_images, cap_images;
    char *names; /* the shallowest data.yaml / data.yml / classes.txt / obj.names */
    int names_rank, names_depth;
    int oom;
} fs_ds_scan;

/* Walks the folder dfd (no symlinks, no names starting with '.', not the
 * generated status files and export); images are listed only with
 * with_images (a COCO dataset does not need them). 0, or -ENOMEM. */
int fs_ds_scan_dir(int dfd, int with_images, fs_ds_scan *out);

/* 1 when file name n has an image's extension (.jpg, .png, ... any case). */
int fs_ds_is_image_name(const char *n);
void fs_ds_scan_free(fs_ds_scan *s);

/* The displayed size of the image at rel (0 when unknown): 0 or -1. */
typedef int (*fs_ds_size_fn)(void *ctx, const char *rel, int *w, int *h);

/* Reads the VOC or YOLO files the scan found and parses them; on COCO_OK
 * *out is a new dataset (coco_dataset_free). Files that cannot be read are
 * reported in the dataset as problems. */
coco_status fs_ds_load(int dfd, const fs_ds_scan *s, fs_ds_format f, fs_ds_size_fn size, void *ctx,
                       coco_dataset **out);

#endif
