/* models.c: the models/ area, minimal: make, remove and rename model
 * folders, each with a generated status file. Training, prediction and
 * evaluation plug in here through the hooks of fs/area.h (helper "classify"
 * grows this file).
 *
 * Design: a model is the folder STORE/models/NAME; status and status.json
 * are generated (read-only through the mount, written atomically). */
#include "area.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int models_write_status(const char *name, const char *state)
{
    char path[4200], text[256];
    int rc = fs_store_path(path, sizeof path, "models", name);
    if (rc)
        return rc;
    size_t len = strlen(path);
    snprintf(path + len, sizeof path - len, "/status");
    snprintf(text, sizeof text, "%s\n", state);
    rc = fs_write_atomic(path, text, strlen(text));
    if (rc)
        return rc;
    snprintf(path + len, sizeof path - len, "/status.json");
    snprintf(text, sizeof text, "{\"status\": \"%s\"}\n", state);
    return fs_write_atomic(path, text, strlen(text));
}

static int models_mkdir_item(const char *name)
{
    char path[4200];
    int rc = fs_store_path(path, sizeof path, "models", name);
    if (rc)
        return rc;
    if (mkdir(path, 0755) != 0)
        return -errno;
    return models_write_status(name, "notStarted");
}

static int models_is_generated(const char *name)
{
    return strcmp(name, "status") == 0 || strcmp(name, "status.json") == 0;
}

static int models_rmdir_item(const char *name)
{
    char path[4200];
    int rc = fs_store_path(path, sizeof path, "models", name);
    if (rc)
        return rc;
    return fs_discard_tree(path);
}

static int models_rename_item(const char *from, const char *to)
{
    char a[4200], b[4200];
    if (fs_store_path(a, sizeof a, "models", from) || fs_store_path(b, sizeof b, "models", to))
        return -ENAMETOOLONG;
    return rename(a, b) == 0 ? 0 : -errno;
}

static int models_is_readonly(const char *rel)
{
    const char *slash = strchr(rel, '/');
    return slash && !strchr(slash + 1, '/') && models_is_generated(slash + 1);
}

const fs_area fs_area_models = {
    .name = "models",
    .mkdir_item = models_mkdir_item,
    .rmdir_item = models_rmdir_item,
    .rename_item = models_rename_item,
    .is_readonly = models_is_readonly,
};
