/* fetch_int.h: what the fetcher's two files share (not a public interface):
 * fetch.c (the queue, the transfers, the fetch thread, images) and
 * fetch_dsjson.c (dataset.json's annotation files).
 */
#ifndef VFS_FS_FETCH_INT_H
#define VFS_FS_FETCH_INT_H

#include "area.h" /* FS_PATH_MAX */
#include "fetch.h"

#include <curl/curl.h>
#include <pthread.h>

typedef enum job_state { JOB_QUEUED, JOB_WAIT, JOB_RUNNING, JOB_FAILED } job_state;
typedef enum job_kind { KIND_IMAGE, KIND_ANN } job_kind;

typedef struct fetch_job {
    struct fetch_job *hnext; /* hash chain (images only) */
    struct fetch_job *qnext; /* queue or retry list */
    job_kind kind;
    job_state state;
    char *owner, *url, *dest; /* dest: absolute path (images), NULL for annotation files */
    fs_fetch_reader reader;   /* file:// urls are read with these ids */
    int in_hash;
    int cancelled; /* running: end it and free it (fetch thread) */
    int attempts;
    double not_before;
    const char *error; /* interned, when FAILED */
    /* annotation files: which dataset.json request and part */
    unsigned gen;
    int part;
    /* running: fetch thread only */
    CURL *easy;
    int fd;
    char tmp[FS_PATH_MAX];
    int64_t got, max_bytes;
    int too_big, stalled;
    double last_data; /* when the last byte arrived (or the transfer started) */
    char ctype[64];
    char mserr[64];
    char errbuf[CURL_ERROR_SIZE];
    fs_fetch_guard guard; /* the loopback rule for this attempt */
} fetch_job;

/* A dataset.json request of one dataset. */
typedef struct dsjson {
    struct dsjson *next;
    char name[72];
    unsigned gen;
    coco_kind kind;
    int n, done;
    char **parts; /* temp paths of finished parts */
    int state;    /* 1 fetching, 2 failed, 3 done */
    char error[600];
    int code_uri; /* failed on a url (DatasetInvalidAnnotationUri) or the file */
} dsjson;

/* Guards everything below, every job and every dataset.json request. */
extern pthread_mutex_t fetch_lock;
extern dsjson *fetch_dsjsons;  /* the dataset.json requests */
extern unsigned fetch_dsj_gen; /* numbers the requests */
extern int fetch_running, fetch_stopping;

/* Wakes the fetch thread. Called with fetch_lock held: the multi handle is
 * only cleaned up under the lock after `fetch_stopping` is set, so it is valid
 * here (curl_multi_wakeup is thread-safe and takes no lock of ours). */
void fetch_wake_locked(void);
void fetch_queue_push(fetch_job *j);
/* Removes (and frees, unless running) every job of owner that matches; kinds:
 * 1 = failed images only, 2 = everything. */
void fetch_jobs_drop(const char *owner, int what);
fetch_job *fetch_job_new(job_kind kind, const char *owner, const char *url, const char *dest);
void fetch_job_free(fetch_job *j);
void fetch_dsjson_free(dsjson *d);
void fetch_dataset_changed(const char *dataset);
void fetch_dsjson_part_done(fetch_job *j, const char *reason);
/* file:///a/b%20c -> /a/b c; -1 when it is not a usable local path. */
int fetch_file_url_path(const char *url, char *out, size_t n);
/* Copies j's file:// url into a new temp (j->tmp, j->fd, j->got) with the
 * rights of j->reader (fetch_file.c); NULL, or the reason it failed. */
const char *fetch_read_file(fetch_job *j);

#endif
