/* readme.c: the text of MOUNT/README, the read-only guide at the top of
 * the mount. Kept short: the full guide is docs/user-guide.md. */
#include "ops.h"

static const char readme[] =
    "visionfs: train and use image models with cp, cat and mkdir\n"
    "============================================================\n"
    "\n"
    "  datasets/NAME/        mkdir registers a dataset; rm -r deletes; mv renames\n"
    "    *.json              one COCO annotation file (not status.json, dataset.json)\n"
    "    images/...          the image files, any sub-folders\n"
    "    dataset.json        or: Azure's registration body, the COCO file is downloaded\n"
    "    status              empty | incomplete: N images missing | fetching: N/M |\n"
    "                        ready: N images, C categories, B boxes (...) | invalid: CODE: ...\n"
    "    status.json         every problem found, with image/annotation id and a hint\n"
    "  models/NAME/          mkdir creates a model; rm -r deletes (cancels training)\n"
    "    train.json          write it to train: {\"dataset\": \"NAME\", \"budget_minutes\": 10}\n"
    "    status, status.json, log, evaluation.json, model.safetensors\n"
    "    predict/            cp images in, read IMAGE.json (and IMAGE.boxes.jpg)\n"
    "    evaluations/DATASET/  mkdir with a dataset's name to evaluate on it\n"
    "  backbones/NAME/       the pretrained backbones; cp -r a tfjs graph model to add one\n"
    "\n"
    "Names: 1-64 characters of A-Za-z0-9._- not starting with '.'.\n"
    "\n"
    "Example:\n"
    "  mkdir datasets/pets\n"
    "  cp -r ~/export/. datasets/pets/          # images + annotations.json (COCO)\n"
    "  cat datasets/pets/status                 # ready: 40 images, 2 categories, ...\n"
    "  jq '.errors, .warnings' datasets/pets/status.json\n"
    "  mkdir models/pets1\n"
    "  echo '{\"dataset\": \"pets\", \"budget_minutes\": 5}' > models/pets1/train.json\n"
    "  tail -f models/pets1/log\n"
    "  cp cat.jpg models/pets1/predict/ && jq . models/pets1/predict/cat.jpg.json\n"
    "\n"
    "Files ending in status, status.json, log and the result files are generated:\n"
    "they are read-only and always whole. A write that is refused (not JSON, an\n"
    "image over 20 MB) fails at close() and the previous file stays.\n";

const char *fs_readme_text(void) { return readme; }
