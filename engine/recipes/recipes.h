/* recipes.h: the training recipes (classifier, detector, multilabel) and their model
 * file; they may call every other engine module. */
#ifndef VFS_ENGINE_RECIPES_H
#define VFS_ENGINE_RECIPES_H
#include "classify.h"
#include "modelfile.h"
#include "detect.h"
#include "multilabel.h"
#endif
