/* backbones.c: the backbones/ area: the installed pretrained backbones.
 *
 * Design: the listing merges two folders: the backbones the set-up installed
 * for everyone (${XDG_DATA_HOME:-~/.local/share}/visionfs/backbones, shown
 * read-only) and STORE/backbones, where `cp -r` of a tfjs graph-model folder
 * adds one. When the store is the default store both are the same folder.
 * Loading and checking a backbone is the engine's job; this file only lists
 * and stores. */
#include "backbones.h"

#include "area.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char default_dir[4096];
static pthread_once_t default_once = PTHREAD_ONCE_INIT;

static void default_dir_init(void)
{
    const char *env = getenv("VISIONFS_BACKBONES"); /* as scripts/fetch-backbones.sh */
    const char *xdg = getenv("XDG_DATA_HOME");
    const char *home = getenv("HOME");
    if (env && *env)
        snprintf(default_dir, sizeof default_dir, "%s", env);
    else if (xdg && *xdg)
        snprintf(default_dir, sizeof default_dir, "%s/visionfs/backbones", xdg);
    else if (home && *home)
        snprintf(default_dir, sizeof default_dir, "%s/.local/share/visionfs/backbones", home);
    else
        default_dir[0] = '\0';
}

const char *fs_backbones_default_dir(void)
{
    pthread_once(&default_once, default_dir_init);
    return default_dir;
}

int fs_backbones_find(const char *name, char *out, size_t n)
{
    struct stat st;
    if (!fs_name_valid(name))
        return -EINVAL;
    if (fs_store_path(out, n, "backbones", name) == 0 && stat(out, &st) == 0 && S_ISDIR(st.st_mode))
        return 0;
    const char *d = fs_backbones_default_dir();
    if (*d && snprintf(out, n, "%s/%s", d, name) < (int)n && stat(out, &st) == 0 &&
        S_ISDIR(st.st_mode))
        return 0;
    return -ENOENT;
}

static int backbones_mkdir_item(const char *name)
{
    char path[4200];
    int rc = fs_store_path(path, sizeof path, "backbones", name);
    if (rc)
        return rc;
    return mkdir(path, 0755) == 0 ? 0 : -errno;
}

static int backbones_rmdir_item(const char *name)
{
    char path[4200];
    int rc = fs_store_path(path, sizeof path, "backbones", name);
    if (rc)
        return rc;
    return fs_discard_tree(path);
}

static int backbones_rename_item(const char *from, const char *to)
{
    char a[4200], b[4200];
    if (fs_store_path(a, sizeof a, "backbones", from) ||
        fs_store_path(b, sizeof b, "backbones", to))
        return -ENAMETOOLONG;
    return rename(a, b) == 0 ? 0 : -errno;
}

static int backbones_is_readonly(const char *rel)
{
    const char *slash = strchr(rel, '/');
    return slash && strcmp(slash + 1, "status") == 0;
}

static int64_t backbones_max_size(const char *rel)
{
    (void)rel;
    return (int64_t)1 << 31; /* weight shards are large */
}

static const char *backbones_extra_root(void) { return fs_backbones_default_dir(); }

const fs_area fs_area_backbones = {
    .name = "backbones",
    .mkdir_item = backbones_mkdir_item,
    .rmdir_item = backbones_rmdir_item,
    .rename_item = backbones_rename_item,
    .is_readonly = backbones_is_readonly,
    .max_size = backbones_max_size,
    .extra_root = backbones_extra_root,
};
