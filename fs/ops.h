/* ops.h: the FUSE side of visionfs: the operations table main.c mounts,
 * and the README text shown at the top of the mount. */
#ifndef VFS_FS_OPS_H
#define VFS_FS_OPS_H

#include <fuse.h>

/* The high-level libfuse operations. Their init starts every area's
 * threads (after fuse has daemonized), destroy stops them. */
const struct fuse_operations *fs_operations(void);

/* The text of MOUNT/README; static storage. */
const char *fs_readme_text(void);

/* Starts / stops every area's threads (what init and destroy do); for tests
 * that drive the areas without a mount. */
void fs_areas_start(void);
void fs_areas_stop(void);

#endif
