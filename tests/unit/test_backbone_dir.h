/* test_backbone_dir.h: where the unit tests and the bench programs find the
 * installed backbones. The rule is the daemon's (fs/backbones.c) and
 * scripts/fetch-backbones.sh's: $VISIONFS_BACKBONES, else
 * $XDG_DATA_HOME/visionfs/backbones, else $HOME/.local/share/visionfs/backbones
 * (an empty variable counts as unset). It lives here once so that no test
 * looks in a different folder from the one the daemon serves.
 *
 * Skip or fail: a backbone counts as installed when anything exists at
 * ROOT/NAME. A test may skip (77) only when it is not installed; one that is
 * installed but does not open or load is a failure naming the path
 * (test_backbone_broken), because a skip there would hide a broken install. */
#ifndef VFS_TEST_BACKBONE_DIR_H
#define VFS_TEST_BACKBONE_DIR_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

/* fills buf with the backbones folder; -1 (buf "") when no variable gives
 * one or it does not fit */
static inline int test_backbones_dir(char *buf, size_t n)
{
    const char *env = getenv("VISIONFS_BACKBONES");
    const char *xdg = getenv("XDG_DATA_HOME");
    const char *home = getenv("HOME");
    int len;
    if (env && *env)
        len = snprintf(buf, n, "%s", env);
    else if (xdg && *xdg)
        len = snprintf(buf, n, "%s/visionfs/backbones", xdg);
    else if (home && *home)
        len = snprintf(buf, n, "%s/.local/share/visionfs/backbones", home);
    else
        len = -1;
    if (len < 0 || (size_t)len >= n) {
        if (n)
            buf[0] = '\0';
        return -1;
    }
    return 0;
}

/* fills buf with ROOT/NAME, or ROOT/NAME/FILE when file is not NULL.
 * Returns 1 when backbone NAME is installed (ROOT/NAME exists, whatever it
 * is: a file or a dangling link there is a broken install, not an absent
 * one), 0 when it is not, -1 when no path can be made (buf ""). */
static inline int test_backbone_path(const char *name, const char *file, char *buf, size_t n)
{
    if (test_backbones_dir(buf, n) != 0)
        return -1;
    size_t used = 0;
    while (buf[used])
        used++;
    int len = snprintf(buf + used, n - used, "/%s", name);
    if (len < 0 || (size_t)len >= n - used) {
        buf[0] = '\0';
        return -1;
    }
    struct stat st;
    int installed = lstat(buf, &st) == 0;
    if (file) {
        used += (size_t)len;
        len = snprintf(buf + used, n - used, "/%s", file);
        if (len < 0 || (size_t)len >= n - used) {
            buf[0] = '\0';
            return -1;
        }
    }
    return installed;
}

/* reports an installed backbone that does not open or load; returns the
 * failing exit status (1) so a caller can `return test_backbone_broken(..)` */
static inline int test_backbone_broken(const char *path, const char *why)
{
    fprintf(stderr, "FAIL: backbone %s is installed but does not open: %s\n", path,
            why && *why ? why : "(no reason given)");
    return 1;
}
#endif
