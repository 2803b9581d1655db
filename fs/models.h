/* models.h: what the rest of fs/ (the HTTP front door) may ask of the
 * models/ area beyond the tree itself: an answer for an image that is not
 * in the tree. Everything else goes through the tree (ops.h fs_tree_*). */
#ifndef VFS_FS_MODELS_H
#define VFS_FS_MODELS_H

#include "codes.h"

/* Analyzes image img (a store path, e.g. a temp file) with model `model`
 * exactly as predict/ would: the same prediction queue, engine call and
 * JSON (predict/IMAGE.json's content). Returns 0 with *json a new string
 * (free with free) and *code FS_CODE_NONE for an answer, or the code of
 * Azure's error shape in *json (the model serves nothing yet:
 * modelNotFound; an unusable image: invalidImageFormat, ...), in whose
 * message img is named shown_as. -ENOENT: no such model; -ESHUTDOWN: the
 * mount is stopping. Blocks until the answer is there. */
int fs_models_analyze(const char *model, const char *img, const char *shown_as, char **json,
                      fs_code *code);

#endif
