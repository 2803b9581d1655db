/* backbone.c: opening a backbone folder: backbone.json, file checks, model
 * load, node checks; and scanning a folder of backbones.
 *
 * Design: backbone.json is untrusted (a user may copy any folder in), so
 * every field is type-checked and every path confined to the folder. The
 * weights are hashed in manifest order while their per-file sums are
 * checked, so one pass over the shards gives both the per-file verdict and
 * the backbone's identity (the checksum trained models record). A file
 * problem is reported before the model loader sees the file, with the
 * command that repairs it: scripts/fetch-backbones.sh for backbones it
 * installed (backbone.json has "source"), copying the folder again otherwise.
 */
#include "backbone_int.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define BB_MAX_JSON_BYTES ((size_t)1 << 20)        /* backbone.json */
#define BB_MAX_MODEL_JSON_BYTES ((size_t)64 << 20) /* model.json */
#define BB_MAX_SHARDS 4096

struct eng_backbone {
    eng_backbone_info info;
    eng_model *model;
    cJSON *json; /* backbone.json, for eng_backbone_field */
    char name[128];
    char checksum[65];
};

/* What the file check learns. */
typedef struct bb_files {
    char checksum[65];
} bb_files;

static eng_status read_file(const char *path, size_t max, char **out, size_t *len, eng_diag *d)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        eng_status st = errno == ENOENT ? ENG_ENOTFOUND : ENG_EIO;
        return eng_fail(d, st, "'%s': %s", path, strerror(errno));
    }
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return eng_fail(d, ENG_EIO, "'%s': not a regular file", path);
    }
    if ((uint64_t)sb.st_size > max) {
        fclose(f);
        return eng_fail(d, ENG_EFORMAT, "'%s': %lld bytes is larger than the %zu allowed", path,
                        (long long)sb.st_size, max);
    }
    char *buf = malloc((size_t)sb.st_size + 1);
    if (!buf) {
        fclose(f);
        return eng_fail(d, ENG_ENOMEM, "'%s': out of memory", path);
    }
    size_t got = fread(buf, 1, (size_t)sb.st_size, f);
    int err = ferror(f);
    fclose(f);
    if (err || got != (size_t)sb.st_size) {
        free(buf);
        return eng_fail(d, ENG_EIO, "'%s': read error", path);
    }
    buf[got] = '\0';
    *out = buf;
    *len = got;
    return ENG_OK;
}

static eng_status parse_json(const char *path, size_t max, cJSON **out, eng_diag *d)
{
    char *buf = NULL;
    size_t len = 0;
    eng_status st = read_file(path, max, &buf, &len, d);
    if (st)
        return st;
    char what[PATH_MAX + 2];
    snprintf(what, sizeof what, "'%s'", path);
    st = eng_json_parse(buf, len, what, out, d);
    free(buf);
    return st;
}

/* A relative path that stays inside the folder: no leading '/', no ".."
 * component, no empty component, printable. */
static int safe_relpath(const char *p)
{
    if (!p || !*p || *p == '/' || strlen(p) > 255)
        return 0;
    for (const char *c = p; *c; c++)
        if ((unsigned char)*c < 32 || *c == '\\')
            return 0;
    const char *s = p;
    while (*s) {
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n == 0 || (n == 2 && s[0] == '.' && s[1] == '.') || (n == 1 && s[0] == '.'))
            return 0;
        s += n + (e ? 1 : 0);
    }
    return 1;
}

static const char *base_name(const char *dir)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    const char *s = dir + n;
    while (s > dir && s[-1] != '/')
        s--;
    return s;
}

/* Folder name without trailing slashes into buf. */
static void folder_name(const char *dir, char *buf, size_t n)
{
    const char *b = base_name(dir);
    size_t len = strcspn(b, "/");
    if (len >= n)
        len = n - 1;
    memcpy(buf, b, len);
    buf[len] = '\0';
}

static const char *repair_hint(const cJSON *json)
{
    return cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(json, "source"))
               ? "run " ENG_BACKBONE_FIX_COMMAND " to reinstall it"
               : "copy the backbone folder in again";
}

static const cJSON *find_file_entry(const cJSON *files, const char *path)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, files)
    {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(e, "path");
        if (cJSON_IsString(p) && !strcmp(p->valuestring, path))
            return e;
    }
    return NULL;
}

/* Checks one file against its entry (entry may be NULL: existence only);
 * when whole is not NULL the file's bytes are also hashed into it. */
static eng_status check_file(const char *dir, const char *name, const char *rel, const cJSON *entry,
                             bb_sha256 *whole, const char *hint, eng_diag *d)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, rel) >= (int)sizeof path)
        return eng_fail(d, ENG_EINVAL, "backbone '%s': path of '%s' too long", name, rel);
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
        return eng_fail(d, ENG_ENOTFOUND, "backbone '%s': '%s' is missing from '%s': %s", name, rel,
                        dir, hint);
    const cJSON *size = entry ? cJSON_GetObjectItemCaseSensitive(entry, "size") : NULL;
    const cJSON *sum = entry ? cJSON_GetObjectItemCaseSensitive(entry, "sha256") : NULL;
    if (entry && (!cJSON_IsNumber(size) || !cJSON_IsString(sum)))
        return eng_fail(d, ENG_EFORMAT,
                        "backbone '%s': backbone.json files entry '%s' lacks "
                        "size or sha256",
                        name, rel);
    if (size && (double)sb.st_size != size->valuedouble)
        return eng_fail(d, ENG_EFORMAT,
                        "backbone '%s': '%s' has %lld bytes, expected %.0f (%s): "
                        "%s",
                        name, rel, (long long)sb.st_size, size->valuedouble,
                        (double)sb.st_size < size->valuedouble ? "truncated" : "altered", hint);
    if (!sum && !whole)
        return ENG_OK;
    /* hash once into both the per-file and the whole-weights state */
    bb_sha256 one;
    bb_sha256_init(&one);
    FILE *f = fopen(path, "rb");
    if (!f)
        return eng_fail(d, ENG_EIO, "backbone '%s': '%s': %s", name, rel, strerror(errno));
    uint8_t *buf = malloc(1 << 16);
    if (!buf) {
        fclose(f);
        return eng_fail(d, ENG_ENOMEM, "backbone '%s': out of memory", name);
    }
    size_t got;
    while ((got = fread(buf, 1, 1 << 16, f)) > 0) {
        bb_sha256_update(&one, buf, got);
        if (whole)
            bb_sha256_update(whole, buf, got);
    }
    int err = ferror(f);
    free(buf);
    fclose(f);
    if (err)
        return eng_fail(d, ENG_EIO, "backbone '%s': '%s': read error", name, rel);
    char hex[65];
    bb_sha256_final_hex(&one, hex);
    if (sum && strcmp(hex, sum->valuestring) != 0)
        return eng_fail(d, ENG_EFORMAT,
                        "backbone '%s': '%s' does not match its sha256 in "
                        "backbone.json (altered or damaged): %s",
                        name, rel, hint);
    return ENG_OK;
}

/* Verifies the files of the folder; fills f->checksum. */
static eng_status check_files(const char *dir, const char *name, const cJSON *json, bb_files *f,
                              eng_diag *d)
{
    const char *hint = repair_hint(json);
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(json, "files");
    if (files && !cJSON_IsArray(files))
        return eng_fail(d, ENG_EFORMAT, "backbone '%s': backbone.json \"files\" is not a list",
                        name);
    const cJSON *e;
    cJSON_ArrayForEach(e, files)
    {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(e, "path");
        if (!cJSON_IsString(p) || !safe_relpath(p->valuestring))
            return eng_fail(d, ENG_EFORMAT,
                            "backbone '%s': backbone.json files entry with a "
                            "missing or unsafe path",
                            name);
    }
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/model.json", dir) >= (int)sizeof path)
        return eng_fail(d, ENG_EINVAL, "backbone '%s': folder path too long", name);
    eng_status st =
        check_file(dir, name, "model.json", find_file_entry(files, "model.json"), NULL, hint, d);
    if (st)
        return st;
    cJSON *model = NULL;
    st = parse_json(path, BB_MAX_MODEL_JSON_BYTES, &model, d);
    if (st) {
        char msg[sizeof d->msg];
        snprintf(msg, sizeof msg, "%s", d ? d->msg : "");
        return eng_fail(d, st, "backbone '%s': %s", name, msg);
    }
    bb_sha256 whole;
    bb_sha256_init(&whole);
    int nshards = 0;
    const cJSON *groups = cJSON_GetObjectItemCaseSensitive(model, "weightsManifest");
    const cJSON *g;
    cJSON_ArrayForEach(g, groups)
    {
        const cJSON *paths = cJSON_GetObjectItemCaseSensitive(g, "paths");
        const cJSON *p;
        cJSON_ArrayForEach(p, paths)
        {
            if (!cJSON_IsString(p) || !safe_relpath(p->valuestring)) {
                cJSON_Delete(model);
                return eng_fail(d, ENG_EFORMAT,
                                "backbone '%s': model.json names a weight file "
                                "outside its folder",
                                name);
            }
            if (++nshards > BB_MAX_SHARDS) {
                cJSON_Delete(model);
                return eng_fail(d, ENG_EFORMAT, "backbone '%s': more than %d weight files", name,
                                BB_MAX_SHARDS);
            }
            st = check_file(dir, name, p->valuestring, find_file_entry(files, p->valuestring),
                            &whole, hint, d);
            if (st) {
                cJSON_Delete(model);
                return st;
            }
        }
    }
    /* files recorded in backbone.json but not weights (extra metadata) */
    cJSON_ArrayForEach(e, files)
    {
        const char *rel = cJSON_GetObjectItemCaseSensitive(e, "path")->valuestring;
        int listed = !strcmp(rel, "model.json");
        cJSON_ArrayForEach(g, groups)
        {
            const cJSON *p;
            cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(
                                      g, "paths")) if (cJSON_IsString(p) &&
                                                       !strcmp(p->valuestring, rel)) listed = 1;
        }
        if (!listed && (st = check_file(dir, name, rel, e, NULL, hint, d)) != ENG_OK) {
            cJSON_Delete(model);
            return st;
        }
    }
    cJSON_Delete(model);
    bb_sha256_final_hex(&whole, f->checksum);
    const cJSON *want = cJSON_GetObjectItemCaseSensitive(json, "checksum");
    if (want && (!cJSON_IsString(want) || strcmp(want->valuestring, f->checksum) != 0))
        return eng_fail(d, ENG_EFORMAT,
                        "backbone '%s': the weights do not match the checksum in "
                        "backbone.json (altered or damaged): %s",
                        name, hint);
    return ENG_OK;
}

static eng_status read_backbone_json(const char *dir, char *name, size_t name_n, cJSON **out,
                                     eng_diag *d)
{
    *out = NULL;
    folder_name(dir, name, name_n);
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return eng_fail(d, ENG_ENOTFOUND,
                        "backbone '%s': folder '%s' does not exist: run " ENG_BACKBONE_FIX_COMMAND
                        " to install the default backbones",
                        name, dir);
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/backbone.json", dir) >= (int)sizeof path)
        return eng_fail(d, ENG_EINVAL, "backbone '%s': folder path too long", name);
    eng_status st = parse_json(path, BB_MAX_JSON_BYTES, out, d);
    if (st == ENG_ENOTFOUND)
        return eng_fail(d, st,
                        "backbone '%s': no backbone.json in '%s' (it names the input "
                        "size, pixel range and embedding node; " ENG_BACKBONE_FIX_COMMAND
                        " writes it for the default backbones)",
                        name, dir);
    if (st) {
        char msg[sizeof d->msg];
        snprintf(msg, sizeof msg, "%s", d ? d->msg : "");
        return eng_fail(d, st, "backbone '%s': %s", name, msg);
    }
    if (!cJSON_IsObject(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
        return eng_fail(d, ENG_EFORMAT, "backbone '%s': backbone.json is not an object", name);
    }
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(*out, "name");
    if (cJSON_IsString(n) && n->valuestring[0] && strlen(n->valuestring) < name_n)
        snprintf(name, name_n, "%s", n->valuestring);
    return ENG_OK;
}

/* Fills the descriptive fields of info from backbone.json (strings borrowed
 * from json). */
static eng_status parse_info(const cJSON *json, const char *name, eng_backbone_info *info,
                             eng_diag *d)
{
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(json, "input");
    int n = cJSON_GetArraySize(in);
    if (!cJSON_IsArray(in) || n < 1 || n > 2)
        return eng_fail(d, ENG_EFORMAT,
                        "backbone '%s': backbone.json \"input\" must be "
                        "[width, height]",
                        name);
    double v[2];
    for (int i = 0; i < n; i++) {
        const cJSON *x = cJSON_GetArrayItem(in, i);
        if (!cJSON_IsNumber(x) || x->valuedouble < 32 || x->valuedouble > 2048 ||
            x->valuedouble != (int)x->valuedouble)
            return eng_fail(d, ENG_EFORMAT,
                            "backbone '%s': backbone.json \"input\" sizes must "
                            "be integers in 32..2048",
                            name);
        v[i] = x->valuedouble;
    }
    info->input_w = (int)v[0];
    info->input_h = (int)(n == 2 ? v[1] : v[0]);
    const cJSON *px = cJSON_GetObjectItemCaseSensitive(json, "pixels");
    if (!cJSON_IsString(px) || eng_pixels_parse(px->valuestring, &info->pixels) != ENG_OK)
        return eng_fail(d, ENG_EFORMAT,
                        "backbone '%s': backbone.json \"pixels\" must be "
                        "\"0..255\", \"0..1\" or \"-1..1\"",
                        name);
    const cJSON *emb = cJSON_GetObjectItemCaseSensitive(json, "embedding");
    if (!cJSON_IsString(emb) || !emb->valuestring[0])
        return eng_fail(d, ENG_EFORMAT,
                        "backbone '%s': backbone.json lacks the \"embedding\" "
                        "node name",
                        name);
    info->embedding = emb->valuestring;
    const cJSON *det = cJSON_GetObjectItemCaseSensitive(json, "detection_features");
    if (det && !cJSON_IsNull(det) && !cJSON_IsString(det))
        return eng_fail(d, ENG_EFORMAT,
                        "backbone '%s': backbone.json \"detection_features\" "
                        "is not a node name",
                        name);
    info->detection_features = cJSON_IsString(det) && det->valuestring[0] ? det->valuestring : NULL;
    return ENG_OK;
}

eng_status eng_backbone_verify(const char *dir, eng_diag *d)
{
    if (!dir)
        return eng_fail(d, ENG_EINVAL, "backbone: no folder given");
    char name[128];
    cJSON *json;
    eng_status st = read_backbone_json(dir, name, sizeof name, &json, d);
    if (st)
        return st;
    eng_backbone_info info = {0};
    bb_files f;
    st = parse_info(json, name, &info, d);
    if (!st)
        st = check_files(dir, name, json, &f, d);
    cJSON_Delete(json);
    return st;
}

/* Channels (last dim) of node at input h x w; 0 with the reason in d when the
 * shapes cannot be worked out at that size. */
static int node_channels(const eng_model *m, const char *node, int h, int w, eng_diag *d)
{
    int64_t in[4] = {1, h, w, 3};
    int64_t dims[1][ENG_MAX_DIMS];
    int nd = 0;
    const char *outs[1] = {node};
    if (eng_model_shapes(m, 4, in, outs, 1, dims, &nd, NULL, d) != ENG_OK || nd < 2)
        return 0;
    return dims[0][nd - 1] > 0 && dims[0][nd - 1] < INT_MAX ? (int)dims[0][nd - 1] : 0;
}

eng_status eng_backbone_open(const char *dir, eng_backbone **out, eng_diag *d)
{
    if (!out)
        return eng_fail(d, ENG_EINVAL, "eng_backbone_open: out is NULL");
    *out = NULL;
    if (!dir)
        return eng_fail(d, ENG_EINVAL, "backbone: no folder given");
    eng_backbone *bb = calloc(1, sizeof *bb);
    if (!bb)
        return eng_fail(d, ENG_ENOMEM, "backbone: out of memory");
    eng_status st = read_backbone_json(dir, bb->name, sizeof bb->name, &bb->json, d);
    bb_files f;
    if (!st)
        st = parse_info(bb->json, bb->name, &bb->info, d);
    if (!st)
        st = check_files(dir, bb->name, bb->json, &f, d);
    if (st) {
        eng_backbone_free(bb);
        return st;
    }
    memcpy(bb->checksum, f.checksum, sizeof bb->checksum);
    bb->info.name = bb->name;
    bb->info.checksum = bb->checksum;

    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/model.json", dir);
    eng_diag md = {{0}};
    st = eng_model_load(path, &bb->model, &md);
    if (st) {
        eng_fail(d, st, "backbone '%s': %s", bb->name, md.msg);
        eng_backbone_free(bb);
        return st;
    }
    const eng_backbone_info *in = &bb->info;
    if (!eng_model_has_node(bb->model, in->embedding)) {
        eng_fail(d, ENG_ENOTFOUND, "backbone '%s': embedding node '%s' is not in the model",
                 bb->name, in->embedding);
        eng_backbone_free(bb);
        return ENG_ENOTFOUND;
    }
    if (in->detection_features && !eng_model_has_node(bb->model, in->detection_features)) {
        eng_fail(d, ENG_ENOTFOUND,
                 "backbone '%s': detection_features node '%s' is not in the "
                 "model",
                 bb->name, in->detection_features);
        eng_backbone_free(bb);
        return ENG_ENOTFOUND;
    }
    bb->info.embedding_dim = node_channels(bb->model, in->embedding, in->input_h, in->input_w, &md);
    if (bb->info.embedding_dim <= 0) {
        eng_fail(d, ENG_EFORMAT, "backbone '%s': embedding node '%s' does not run at %dx%d: %s",
                 bb->name, in->embedding, in->input_w, in->input_h, md.msg);
        eng_backbone_free(bb);
        return ENG_EFORMAT;
    }
    if (in->detection_features) {
        /* heads may run only at the detector's size (CenterNet: 512) */
        const cJSON *di = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(bb->json, "detector"), "input");
        int dw = in->input_w, dh = in->input_h;
        if (cJSON_GetArraySize(di) >= 1 && cJSON_IsNumber(cJSON_GetArrayItem(di, 0))) {
            dw = dh = cJSON_GetArrayItem(di, 0)->valueint;
            if (cJSON_GetArraySize(di) >= 2 && cJSON_IsNumber(cJSON_GetArrayItem(di, 1)))
                dh = cJSON_GetArrayItem(di, 1)->valueint;
        }
        bb->info.detection_features_dim =
            node_channels(bb->model, in->detection_features, in->input_h, in->input_w, &md);
        if (bb->info.detection_features_dim <= 0 && dw > 0 && dh > 0 && dw <= 2048 && dh <= 2048)
            bb->info.detection_features_dim =
                node_channels(bb->model, in->detection_features, dh, dw, &md);
    }
    *out = bb;
    return ENG_OK;
}

void eng_backbone_free(eng_backbone *bb)
{
    if (!bb)
        return;
    eng_model_free(bb->model);
    cJSON_Delete(bb->json);
    free(bb);
}

const eng_backbone_info *eng_backbone_get_info(const eng_backbone *bb)
{
    return bb ? &bb->info : NULL;
}

const eng_model *eng_backbone_model(const eng_backbone *bb) { return bb ? bb->model : NULL; }

const char *eng_backbone_field(const eng_backbone *bb, const char *path)
{
    if (!bb || !path)
        return NULL;
    const cJSON *cur = bb->json;
    char key[128];
    while (*path) {
        size_t n = strcspn(path, ".");
        if (n == 0 || n >= sizeof key)
            return NULL;
        memcpy(key, path, n);
        key[n] = '\0';
        cur = cJSON_GetObjectItemCaseSensitive(cur, key);
        if (!cur)
            return NULL;
        path += n + (path[n] == '.');
    }
    return cJSON_IsString(cur) ? cur->valuestring : NULL;
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const eng_backbone_entry *)a)->name, ((const eng_backbone_entry *)b)->name);
}

eng_status eng_backbones_scan(const char *root, int load, eng_backbone_entry **out, int *n,
                              eng_diag *d)
{
    if (!out || !n || !root)
        return eng_fail(d, ENG_EINVAL, "eng_backbones_scan: NULL argument");
    *out = NULL;
    *n = 0;
    DIR *dp = opendir(root);
    if (!dp) {
        if (errno == ENOENT)
            return ENG_OK;
        return eng_fail(d, ENG_EIO, "'%s': %s", root, strerror(errno));
    }
    eng_backbone_entry *list = NULL;
    int cap = 0, cnt = 0;
    struct dirent *de;
    eng_status st = ENG_OK;
    while ((de = readdir(dp)) != NULL) {
        if (de->d_name[0] == '.' || strlen(de->d_name) >= sizeof list->name)
            continue;
        char dir[4096];
        if (snprintf(dir, sizeof dir, "%s/%s", root, de->d_name) >= (int)sizeof dir)
            continue;
        struct stat sb;
        if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
            continue;
        if (cnt == cap) {
            int nc = cap ? cap * 2 : 8;
            eng_backbone_entry *nl = realloc(list, (size_t)nc * sizeof *nl);
            if (!nl) {
                st = eng_fail(d, ENG_ENOMEM, "'%s': out of memory", root);
                break;
            }
            list = nl;
            cap = nc;
        }
        eng_backbone_entry *e = &list[cnt++];
        memset(e, 0, sizeof *e);
        memcpy(e->name, de->d_name, strlen(de->d_name) + 1); /* length checked above */
        snprintf(e->dir, sizeof e->dir, "%s", dir);
    }
    closedir(dp);
    if (st) {
        free(list);
        return st;
    }
    qsort(list, (size_t)cnt, sizeof *list, entry_cmp);
    for (int i = 0; i < cnt; i++) {
        eng_diag ed = {{0}};
        if (load) {
            eng_backbone *bb = NULL;
            list[i].status = eng_backbone_open(list[i].dir, &bb, &ed);
            eng_backbone_free(bb);
        } else {
            list[i].status = eng_backbone_verify(list[i].dir, &ed);
        }
        snprintf(list[i].message, sizeof list[i].message, "%s",
                 list[i].status == ENG_OK ? "ok" : ed.msg);
    }
    *out = list;
    *n = cnt;
    return ENG_OK;
}
