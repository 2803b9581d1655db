/* engine.h: the whole engine in one include, for the engine's users (fs/,
 * tests, benchmarks). Engine modules never include it: each includes the
 * public headers of the modules it may call, and the build gives it only
 * those (engine/CMakeLists.txt spells out the arrows).
 *
 * The engine runs pretrained tfjs graph models, decodes images, trains
 * heads, computes metrics and reads/writes model files. It knows nothing of
 * FUSE or COCO: callers hand it plain arrays and paths.
 */
#ifndef VFS_ENGINE_H
#define VFS_ENGINE_H

#include "core.h"
#include "onnx_write.h"
#include "runtime.h"
#include "image.h"
#include "metrics.h"
#include "train.h"
#include "backbone.h"
#include "recipes.h"
#include "report.h"

#endif
