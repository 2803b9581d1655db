/* fetch.h: downloads of dataset images and annotation files by URL
 * (libcurl), for the datasets/ area.
 *
 * Design: one curl multi handle driven by one fetch thread (started from the
 * datasets area's start hook, after fuse has daemonized; joined at stop),
 * many transfers in parallel. Callers never wait for a download: they ask
 * for a file and get its state at once (queued/running, failed with a
 * reason); when a download ends the fetcher calls the `changed` callback given
 * at start (the datasets area's fs_dataset_touch) with the owning dataset, so
 * the verifier looks again. A download is written to a temp file in
 * STORE/.tmp and renamed to its destination only when it is complete and
 * is an image, so a half-written image is never seen and a remount finds
 * what was fetched before (STORE/.tmp is emptied at mount: a crash loses
 * only unfinished transfers, which the next verification queues again).
 * Only http and https are followed (redirects too). A file:// URL is read
 * with the rights of the owner of the file that names it (a child process
 * takes that user's ids when visionfs runs as root); when visionfs is not
 * root it can read only as itself, so it reads file:// URLs only from
 * files it owns and never on a mount shared with allow_other. URLs in status, logs
 * and errors are shown without their query string (SAS tokens).
 * Lock order: fetch_lock (fetch.c) is a leaf: the fetcher never holds it
 * while calling into datasets/, and datasets/ never holds ds_lock while
 * calling the fetcher.
 * Tuning by environment (read at start): VFS_FETCH_PARALLEL (16),
 * VFS_FETCH_CONNECT_TIMEOUT (10 s), VFS_FETCH_TIMEOUT (300 s per attempt),
 * VFS_FETCH_STALL_TIMEOUT (30 s without data), VFS_FETCH_RETRIES (3),
 * VFS_FETCH_BACKOFF_MS (500, doubled per retry).
 */
#ifndef VFS_FS_FETCH_H
#define VFS_FS_FETCH_H

#include "coco.h"
#include "imglimits.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The state of one download, for the verifier. */
typedef enum fs_fetch_state {
    FS_FETCH_PENDING = 0,
    FS_FETCH_DONE,
    FS_FETCH_FAILED,
} fs_fetch_state;

/* Whose rights a file:// URL is read with: the owner of the file that names
 * it (the annotation file or dataset.json; the store keeps files owned by
 * their writer when visionfs runs as root). */
typedef struct fs_fetch_reader {
    uid_t uid;
    gid_t gid;
} fs_fetch_reader;

#define FS_FETCH_MAX_IMAGE_BYTES IMG_MAX_BYTES
#define FS_FETCH_MAX_ANN_BYTES ((int64_t)512 << 20)
#define FS_FETCH_MAX_REDIRECTS 5

typedef struct fs_fetch_opts {
    int parallel;            /* transfers at once; default 16 */
    long connect_timeout_ms; /* default 10000 */
    long timeout_ms;         /* whole transfer, per attempt; default 300000 */
    long stall_timeout_ms;   /* abort when no byte arrives this long; default 30000 */
    int retries;             /* extra attempts on 5xx, 429, resets, timeouts; default 3 */
    long backoff_ms;         /* first retry delay, doubled each time; default 500 */
} fs_fetch_opts;

/* Fills o with the defaults, then the VFS_FETCH_* environment overrides. */
void fs_fetch_opts_default(fs_fetch_opts *o);

/* Called (from the fetch thread or a caller's) when a download of dataset
 * lands or fails for good; it must not call back into the fetcher. */
typedef void (*fs_fetch_changed_fn)(const char *dataset);

/* Starts the fetch thread with fs_fetch_opts_default (fs_fetch_start_with:
 * with o); changed may be NULL. Idempotent. Returns 0 or -errno. */
int fs_fetch_start(fs_fetch_changed_fn changed);
int fs_fetch_start_with(const fs_fetch_opts *o, fs_fetch_changed_fn changed);
/* Cancels every transfer, removes their temp files, joins the thread and
 * forgets all state. Safe when not started. */
void fs_fetch_stop(void);

/* The download of url to dest (an absolute path inside the dataset folder
 * of `dataset`; missing folders below the dataset folder are made) for the
 * verifier; never blocks on the network. Queues it when nothing is known
 * about dest. FS_FETCH_PENDING: queued, running or waiting to retry;
 * FS_FETCH_DONE: dest is in place; FS_FETCH_FAILED: err gets a lowercase
 * reason ("http 404", "larger than 20 MB", "not an image (content-type
 * text/plain)", "timed out: no data for 30 s", ...). A failure is
 * remembered until fs_fetch_forget_failed or a different url for dest.
 * Also FAILED when url is not http, https or file, or the fetcher is not
 * running. reader: whose rights a file:// url is read with (NULL: the
 * daemon's own). The fetcher calls `changed`(dataset) when a download
 * lands or fails for good. */
fs_fetch_state fs_fetch_image(const char *dataset, const char *url, const char *dest,
                              const fs_fetch_reader *reader, char *err, size_t n);

/* Drops the failed downloads of dataset (so they are tried again). */
void fs_fetch_forget_failed(const char *dataset);
/* Cancels and forgets every download of dataset (removed or renamed);
 * running transfers end at once and leave nothing behind. */
void fs_fetch_cancel(const char *dataset);

/* ---- Azure's dataset registration body: datasets/NAME/dataset.json ---- */

/* Checks a written dataset.json at tmp_path: {"annotationKind":
 * "imageClassification"|"imageObjectDetection", "annotationFileUris":
 * ["https://...", ...]} (1 to 64 http, https or file urls). 0, or -EINVAL
 * with the reason in why. */
int fs_fetch_dataset_json_check(const char *tmp_path, char *why, size_t n);

/* dataset.json of `dataset` (at path) was committed: downloads its
 * annotation files (again), merges several with coco_dataset_merge and
 * writes STORE/datasets/NAME/annotations.json (temp + rename) with "task"
 * set from annotationKind, then calls `changed`(dataset). Returns at
 * once. */
void fs_fetch_dataset_json(const char *dataset, const char *path);

/* For the verifier when the dataset has no annotation file: when
 * dataset.json is present in dir (the dataset's store folder) and its files
 * are being fetched or failed, fills line ("fetching: annotation files
 * 0/2", "invalid: DatasetInvalidAnnotationUri: ...") and *json (a new
 * status.json body, free with free()) and returns 1 (fetching) or 2
 * (failed). Starts the download when nothing is known about it yet (a
 * remount after a crash). 0 otherwise. */
int fs_fetch_dataset_json_status(const char *dataset, const char *dir, char *line, size_t n,
                                 char **json);

/* ---- URL helpers ---- */

/* url as it may be shown (coco_url_shown: no user:password@, nothing from
 * the first '?', '#' or ';'). */
void fs_fetch_redact(const char *url, char *out, size_t n);
/* Every http(s):// or file:// URL inside text s shown the same way, in
 * place (for messages and status files that quote URLs). */
void fs_fetch_redact_text(char *s);

/* The loopback rule for every URL visionfs reads: a transfer that began
 * away from this machine may not be led to a loopback address (a redirect,
 * or a name that resolves there), where it would reach services that trust
 * local callers; one that began on loopback stays free to move between
 * local ports. Set CURLOPT_PREREQFUNCTION to fs_fetch_prereq and
 * CURLOPT_PREREQDATA to a zeroed guard per attempt (libcurl calls it once
 * connected, before each request, redirects included). */
typedef struct fs_fetch_guard {
    int requests;      /* requests sent (redirects included) */
    int began_local;   /* the first went to a loopback address */
    int refused_local; /* a request to a loopback address was refused */
} fs_fetch_guard;
int fs_fetch_prereq(void *guard, char *primary_ip, char *local_ip, int primary_port,
                    int local_port);

/* 1 for a loopback address as libcurl prints it (127.0.0.0/8, ::1, and
 * IPv4-mapped 127.x): a download that began away from this machine may not
 * be led there (the rule of every URL visionfs reads; HTTP analyze too). */
int fs_fetch_loopback_ip(const char *ip);

#endif
