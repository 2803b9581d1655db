/* ops.h: the FUSE side of visionfs: the operations table main.c mounts,
 * and the README text shown at the top of the mount. */
#ifndef VFS_FS_OPS_H
#define VFS_FS_OPS_H

#include <fuse.h>
#include <stddef.h>
#include <sys/stat.h>

/* The high-level libfuse operations. Their init starts every area's
 * threads (after fuse has daemonized), destroy stops them. */
const struct fuse_operations *fs_operations(void);

/* The text of MOUNT/README; static storage. */
const char *fs_readme_text(void);

/* Starts / stops every area's threads (what init and destroy do); for tests
 * that drive the areas without a mount. */
void fs_areas_start(void);
void fs_areas_stop(void);

/* The tree as a user sees it through the mount, for a second front door
 * (fs/http.c): each call runs the same FUSE handlers a program's mkdir, cp,
 * cat or rm -r would, so every area rule and hook applies unchanged. Paths
 * are mount paths ("/datasets/pets/dataset.json"); results are 0 or -errno,
 * the errno the program would have seen. Call only between fs_areas_start
 * and fs_areas_stop. */
int fs_tree_mkdir(const char *path);
int fs_tree_stat(const char *path, struct stat *st);
/* Writes a whole file: create, write, close. Close's error (the area's
 * validate_write refusing it: -EINVAL, with its reason in why when given;
 * too large: -EFBIG) is returned. */
int fs_tree_write(const char *path, const void *data, size_t len, char *why, size_t why_len);
/* Reads a whole file of at most max bytes (-EFBIG beyond) into a new
 * NUL-terminated buffer (*out, free with free); open may wait for content
 * that is not ready yet (a prediction), as it does for cat. */
int fs_tree_read(const char *path, size_t max, char **out, size_t *len);
/* Calls fn(name, arg) for each entry of a folder (not "." or ".."), in
 * readdir order; fn returns nonzero to stop. */
typedef int (*fs_tree_entry_fn)(const char *name, void *arg);
int fs_tree_list(const char *path, fs_tree_entry_fn fn, void *arg);
/* rm -r of path (a file or a folder). */
int fs_tree_remove(const char *path);

#endif
