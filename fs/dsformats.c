/* dsformats.c: finding which annotation format a dataset folder holds and
 * reading Pascal VOC and YOLO folders for the verifier.
 *
 * Design: one walk of the folder (openat/fstatat relative to the dataset's
 * folder fd, no symlinks followed, depth and entry count capped) collects
 * the files that decide the format: *.xml (VOC), *.txt under labels/
 * (YOLO), the class-name file and the image files. The verifier compares
 * that with the COCO file search it already does, so mixing is seen in one
 * place. The files are read here and parsed by coco (coco_voc_parse,
 * coco_yolo_parse), which never touches the disk.
 */
#include "dsformats.h"

#include "area.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define SCAN_MAX_DEPTH 12
#define SCAN_MAX_ENTRIES 2000000
#define ANN_FILE_MAX ((size_t)16 << 20)

const char *fs_ds_format_name(fs_ds_format f)
{
    switch (f) {
    case FS_FMT_COCO: return "coco";
    case FS_FMT_VOC: return "voc";
    case FS_FMT_YOLO: return "yolo";
    case FS_FMT_NONE: break;
    }
    return "none";
}

const char *fs_ds_format_title(fs_ds_format f)
{
    switch (f) {
    case FS_FMT_COCO: return "COCO";
    case FS_FMT_VOC: return "Pascal VOC";
    case FS_FMT_YOLO: return "YOLO";
    case FS_FMT_NONE: break;
    }
    return "none";
}

static int ends_ci(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a > b && strcasecmp(s + a - b, suffix) == 0;
}

int fs_ds_is_image_name(const char *n)
{
    static const char *const ext[] = {".jpg",  ".jpeg", ".png", ".gif",  ".bmp",
                                      ".webp", ".ico",  ".tif", ".tiff", ".mpo"};
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++)
        if (ends_ci(n, ext[i]))
            return 1;
    return 0;
}

/* Class-name files, best first: data.yaml, data.yml, classes.txt, obj.names. */
static int names_rank(const char *n)
{
    static const char *const names[] = {"data.yaml", "data.yml", "classes.txt", "obj.names"};
    for (int i = 0; i < 4; i++)
        if (strcmp(n, names[i]) == 0)
            return i + 1;
    return 0;
}

static int push(fs_ds_scan *s, char ***arr, size_t *n, size_t *cap, const char *path)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        char **na = realloc(*arr, nc * sizeof *na);
        if (!na) {
            s->oom = 1;
            return -1;
        }
        *arr = na;
        *cap = nc;
    }
    (*arr)[*n] = strdup(path);
    if (!(*arr)[*n]) {
        s->oom = 1;
        return -1;
    }
    (*n)++;
    return 0;
}

typedef struct walker {
    fs_ds_scan *s;
    size_t entries;
    int export_ours; /* the top's coco.json is our generated export */
    int with_images;
} walker;

static void walk(walker *w, int dfd, const char *rel, int depth, int in_labels)
{
    int dfd2 = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC); /* own offset */
    DIR *d = dfd2 >= 0 ? fdopendir(dfd2) : NULL;
    if (!d) {
        if (dfd2 >= 0)
            close(dfd2);
        return;
    }
    fs_ds_scan *s = w->s;
    struct dirent *de;
    char path[FS_PATH_MAX];
    while ((de = readdir(d)) && !s->oom && w->entries < SCAN_MAX_ENTRIES) {
        const char *nm = de->d_name;
        if (nm[0] == '.')
            continue;
        w->entries++;
        if (depth == 0 &&
            (strcmp(nm, "status") == 0 || strcmp(nm, "status.json") == 0 ||
             strcmp(nm, "dataset.json") == 0 || (w->export_ours && strcmp(nm, FS_DS_EXPORT) == 0)))
            continue;
        if (snprintf(path, sizeof path, "%s%s%s", rel, *rel ? "/" : "", nm) >= (int)sizeof path)
            continue;
        /* the entry's type from readdir when the file system gives it (a
         * stat per file would double the cost of a big COCO dataset) */
        struct stat st;
        if (de->d_type == DT_DIR)
            st.st_mode = S_IFDIR;
        else if (de->d_type == DT_REG)
            st.st_mode = S_IFREG;
        else if (de->d_type != DT_UNKNOWN || fstatat(dfd, nm, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            if (depth + 1 >= SCAN_MAX_DEPTH)
                continue;
            int sfd = openat(dfd, nm, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sfd < 0)
                continue;
            walk(w, sfd, path, depth + 1, in_labels || strcmp(nm, "labels") == 0);
            close(sfd);
            continue;
        }
        if (!S_ISREG(st.st_mode))
            continue;
        int rank = names_rank(nm);
        if (rank && (!s->names || depth < s->names_depth ||
                     (depth == s->names_depth && rank < s->names_rank))) {
            char *c = strdup(path);
            if (!c) {
                s->oom = 1;
                break;
            }
            free(s->names);
            s->names = c;
            s->names_rank = rank;
            s->names_depth = depth;
        }
        if (ends_ci(nm, ".xml"))
            push(s, &s->xml, &s->n_xml, &s->cap_xml, path);
        else if (in_labels && ends_ci(nm, ".txt") && !rank)
            push(s, &s->labels, &s->n_labels, &s->cap_labels, path);
        else if (w->with_images && fs_ds_is_image_name(nm))
            push(s, &s->images, &s->n_images, &s->cap_images, path);
    }
    closedir(d);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int fs_ds_scan_dir(int dfd, int with_images, fs_ds_scan *out)
{
    memset(out, 0, sizeof *out);
    walker w = {.s = out, .with_images = with_images};
    w.export_ours = faccessat(dfd, FS_DS_EXPORT_MARK, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
    walk(&w, dfd, "", 0, 0);
    if (out->n_xml > 1)
        qsort(out->xml, out->n_xml, sizeof *out->xml, cmp_str);
    if (out->n_labels > 1)
        qsort(out->labels, out->n_labels, sizeof *out->labels, cmp_str);
    if (out->n_images > 1)
        qsort(out->images, out->n_images, sizeof *out->images, cmp_str);
    return out->oom ? -ENOMEM : 0;
}

static void free_list(char **a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(a[i]);
    free(a);
}

void fs_ds_scan_free(fs_ds_scan *s)
{
    if (!s)
        return;
    free_list(s->xml, s->n_xml);
    free_list(s->labels, s->n_labels);
    free_list(s->images, s->n_images);
    free(s->names);
    memset(s, 0, sizeof *s);
}

/* The whole file rel (at most ANN_FILE_MAX + 1 bytes, so a larger one is
 * seen as too large by the parser); NULL data with len 0 when unreadable. */
static void read_rel(int dfd, const char *rel, coco_src_file *f)
{
    f->path = rel;
    f->data = NULL;
    f->len = 0;
    int fd = openat(dfd, rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return;
    }
    size_t want = (size_t)st.st_size > ANN_FILE_MAX ? ANN_FILE_MAX + 1 : (size_t)st.st_size;
    char *buf = malloc(want ? want : 1);
    size_t got = 0;
    while (buf && got < want) {
        ssize_t r = read(fd, buf + got, want - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    f->data = buf;
    f->len = buf ? got : 0;
}

static void free_files(coco_src_file *f, size_t n)
{
    for (size_t i = 0; f && i < n; i++)
        free((void *)f[i].data);
    free(f);
}

coco_status fs_ds_load(int dfd, const fs_ds_scan *s, fs_ds_format fmt, fs_ds_size_fn size,
                       void *ctx, coco_dataset **out)
{
    *out = NULL;
    char **list = fmt == FS_FMT_VOC ? s->xml : s->labels;
    size_t n = fmt == FS_FMT_VOC ? s->n_xml : s->n_labels;
    coco_src_file *files = calloc(n ? n : 1, sizeof *files);
    coco_src_image *imgs = calloc(s->n_images ? s->n_images : 1, sizeof *imgs);
    coco_src_file names = {0};
    coco_status st = COCO_ENOMEM;
    if (files && imgs) {
        for (size_t i = 0; i < n; i++)
            read_rel(dfd, list[i], &files[i]);
        for (size_t i = 0; i < s->n_images; i++) {
            imgs[i].path = s->images[i];
            if (size && size(ctx, s->images[i], &imgs[i].width, &imgs[i].height) != 0)
                imgs[i].width = imgs[i].height = 0;
        }
        coco_diag d;
        if (fmt == FS_FMT_VOC) {
            st = coco_voc_parse(files, n, imgs, s->n_images, out, &d);
        } else {
            if (s->names)
                read_rel(dfd, s->names, &names);
            st = coco_yolo_parse(files, n, s->names ? &names : NULL, imgs, s->n_images, out, &d);
        }
    }
    free((void *)names.data);
    free_files(files, n);
    free(imgs);
    return st;
}
