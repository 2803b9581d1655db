/* datasets.c: the datasets/ area (being written: registration only). */
#include "area.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static int ds_mkdir_item(const char *name)
{
    char path[4200];
    int rc = fs_store_path(path, sizeof path, "datasets", name);
    if (rc)
        return rc;
    if (mkdir(path, 0755) != 0)
        return -errno;
    strcat(path, "/status");
    return fs_write_atomic(path, "empty\n", 6);
}

static int ds_rmdir_item(const char *name)
{
    char path[4200];
    int rc = fs_store_path(path, sizeof path, "datasets", name);
    return rc ? rc : fs_discard_tree(path);
}

static int ds_rename_item(const char *from, const char *to)
{
    char a[4200], b[4200];
    if (fs_store_path(a, sizeof a, "datasets", from) || fs_store_path(b, sizeof b, "datasets", to))
        return -ENAMETOOLONG;
    return rename(a, b) == 0 ? 0 : -errno;
}

static int ds_is_readonly(const char *rel)
{
    const char *slash = strchr(rel, '/');
    return slash && (strcmp(slash + 1, "status") == 0 || strcmp(slash + 1, "status.json") == 0);
}

const fs_area fs_area_datasets = {
    .name = "datasets",
    .mkdir_item = ds_mkdir_item,
    .rmdir_item = ds_rmdir_item,
    .rename_item = ds_rename_item,
    .is_readonly = ds_is_readonly,
};
