/* recipes.h: what the engine does with backbones: few-shot classification
 * (classify.h), detection (detect.h), and the model file (modelfile.h).
 * Recipes call the runtime, never the reverse. */
#ifndef VFS_ENGINE_RECIPES_H
#define VFS_ENGINE_RECIPES_H
#if __has_include("classify.h")
#include "classify.h"
#endif
#if __has_include("modelfile.h")
#include "modelfile.h"
#endif
#if __has_include("detect.h")
#include "detect.h"
#endif
#endif
