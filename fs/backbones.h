/* backbones.h: where the installed backbones are, for models/ and the
 * engine's loader. */
#ifndef VFS_FS_BACKBONES_H
#define VFS_FS_BACKBONES_H

#include <stddef.h>

/* ${XDG_DATA_HOME:-$HOME/.local/share}/visionfs/backbones (may not exist);
 * static storage. */
const char *fs_backbones_default_dir(void);

/* Folder of backbone NAME: STORE/backbones/NAME if present, else the default
 * folder's. Returns 0 and fills out, -EINVAL for a bad name, -ENOENT. */
int fs_backbones_find(const char *name, char *out, size_t n);

#endif
