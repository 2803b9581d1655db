/* path.c: pure string functions that turn an image's file_name into the
 * relative paths to try inside the dataset folder, and classify its URL.
 * Design: paths are normalised lexically (no file system access) and refused
 * outright when they could name anything outside the folder, so the caller
 * can join a candidate to the dataset folder without further checks. */
#include "coco_int.h"

#include <stdio.h>
#include <string.h>

/* A file name part longer than this cannot exist on disk (NAME_MAX of the
 * usual Linux file systems), so it cannot name an image of the folder. */
#define NAME_PART_MAX 255

static coco_status unsafe(coco_candidates *out, coco_diag *diag, const char *why)
{
    out->n = 0;
    return coco_fail(diag, COCO_EUNSAFE, "%s", why);
}

coco_status coco_image_candidates(const char *file_name, size_t len, coco_candidates *out,
                                  coco_diag *diag)
{
    if (!out)
        return coco_fail(diag, COCO_EINVAL, "coco_image_candidates: null argument");
    out->n = 0;
    if (!file_name || len == 0)
        return unsafe(out, diag, "empty file name");
    if (len >= COCO_PATH_MAX) /* out->n is 0 already, as unsafe() would set it */
        return coco_fail(diag, COCO_EUNSAFE, "file name longer than %d bytes", COCO_PATH_MAX - 1);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)file_name[i];
        if (c == 0)
            return unsafe(out, diag, "file name holds a nul byte");
        if (c < 0x20 || c == 0x7f)
            return unsafe(out, diag, "file name holds a control character");
    }
    char work[COCO_PATH_MAX];
    for (size_t i = 0; i < len; i++)
        work[i] = file_name[i] == '\\' ? '/' : file_name[i];
    work[len] = 0;
    if (work[len - 1] == '/')
        return unsafe(out, diag, "file name ends with '/': it names a folder, not a file");
    if (work[0] == '/')
        return unsafe(out, diag,
                      "absolute path: file names must be relative to the dataset folder");
    if (len >= 2 && work[1] == ':' &&
        ((work[0] >= 'A' && work[0] <= 'Z') || (work[0] >= 'a' && work[0] <= 'z')))
        return unsafe(out, diag,
                      "absolute windows path: file names must be relative to the "
                      "dataset folder");

    /* split into components, resolving "." and ".." lexically */
    size_t comp_start[COCO_PATH_MAX / 2 + 1];
    size_t comp_len[COCO_PATH_MAX / 2 + 1];
    size_t nc = 0;
    size_t i = 0;
    while (i < len) {
        while (i < len && work[i] == '/')
            i++;
        size_t s = i;
        while (i < len && work[i] != '/')
            i++;
        size_t l = i - s;
        if (l == 0 || (l == 1 && work[s] == '.'))
            continue;
        if (l == 2 && work[s] == '.' && work[s + 1] == '.') {
            if (nc == 0)
                return unsafe(out, diag, "file name climbs out of the dataset folder with '..'");
            nc--;
            continue;
        }
        if (l > NAME_PART_MAX)
            return unsafe(
                out, diag,
                "a part of the file name is longer than " COCO_LIMIT_TEXT(NAME_PART_MAX) " bytes");
        comp_start[nc] = s;
        comp_len[nc] = l;
        nc++;
    }
    if (nc == 0)
        return unsafe(out, diag, "file name names no file");

    char *norm = out->path[0];
    size_t o = 0;
    for (size_t k = 0; k < nc; k++) {
        if (k)
            norm[o++] = '/';
        memcpy(norm + o, work + comp_start[k], comp_len[k]);
        o += comp_len[k];
    }
    norm[o] = 0;
    out->n = 1;

    const char *base = work + comp_start[nc - 1];
    size_t blen = comp_len[nc - 1];
    if (nc > 1) {
        memcpy(out->path[out->n], base, blen);
        out->path[out->n][blen] = 0;
        out->n++;
    }
    char img[COCO_PATH_MAX];
    memcpy(img, "images/", 7);
    memcpy(img + 7, base, blen);
    img[7 + blen] = 0;
    int dup = 0;
    for (int k = 0; k < out->n; k++)
        if (strcmp(out->path[k], img) == 0)
            dup = 1;
    if (!dup) {
        memcpy(out->path[out->n], img, 8 + blen);
        out->n++;
    }
    return COCO_OK;
}

static int prefix_ci(const char *s, const char *pre)
{
    for (; *pre; s++, pre++) {
        char c = *s;
        if (c >= 'A' && c <= 'Z')
            c = (char)(c + 32);
        if (c != *pre)
            return 0;
    }
    return 1;
}

coco_url_kind coco_url_classify(const char *url)
{
    if (!url || !*url)
        return COCO_URL_NONE;
    for (const unsigned char *p = (const unsigned char *)url; *p; p++)
        if (*p <= 0x20 || *p == 0x7f)
            return COCO_URL_INVALID;
    coco_url_kind kind;
    const char *rest;
    if (prefix_ci(url, "http://")) {
        kind = COCO_URL_HTTP;
        rest = url + 7;
    } else if (prefix_ci(url, "https://")) {
        kind = COCO_URL_HTTPS;
        rest = url + 8;
    } else if (prefix_ci(url, "file://")) {
        rest = url + 7;
        if (prefix_ci(rest, "localhost/"))
            rest += 9;
        return rest[0] == '/' && rest[1] ? COCO_URL_FILE : COCO_URL_INVALID;
    } else {
        return COCO_URL_INVALID;
    }
    /* a host must follow */
    if (!*rest || *rest == '/' || *rest == '?' || *rest == '#' || *rest == ':')
        return COCO_URL_INVALID;
    return kind;
}

const char *coco_image_fetch_url(const coco_image *im)
{
    if (!im || !im->url || (im->flags & COCO_URL_NUL))
        return NULL;
    coco_url_kind k = coco_url_classify(im->url);
    return k == COCO_URL_HTTP || k == COCO_URL_HTTPS || k == COCO_URL_FILE ? im->url : NULL;
}
