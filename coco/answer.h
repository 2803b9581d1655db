/* answer.h: the answer predict/ gives for one image, as JSON: the shape
 * Image Analysis 4.0's analyze call returned (SPEC section 5, AZURE-API.md
 * 1.5). The daemon (fs/models_predict.c, also the HTTP analyze call) and the
 * cluster worker (worker/worker.c) both write it here, so an answer computed
 * on a node is byte for byte the one the daemon would have written. */
#ifndef VFS_ANSWER_H
#define VFS_ANSWER_H

/* A tag of a classifier or multilabel model's answer. */
typedef struct answer_tag {
    const char *name; /* borrowed */
    float confidence;
} answer_tag;

/* An object of a detector's answer. */
typedef struct answer_object {
    float x, y, w, h; /* pixels of the image as stored */
    const char *name; /* borrowed */
    float confidence;
} answer_object;

typedef struct answer {
    const char *model;      /* the model's name */
    int version;            /* its trained version; 0: an imported model */
    int width, height;      /* of the image, as displayed */
    int detector;           /* 1: objectsResult from objects; 0: tagsResult from tags */
    const answer_tag *tags; /* best first */
    int ntags;
    const answer_object *objects; /* best first */
    int nobjects;
} answer;

/* modelVersion ("NAME/vN" or "NAME/imported"), metadata (width, height)
 * and customModelResult.tagsResult.values ({name, confidence}) or
 * .objectsResult.values ({id "1".., boundingBox {x, y, w, h} rounded to
 * whole pixels, at least 1 wide and high, tags [{name, confidence}]}).
 * Confidences have 6 decimals; the lists keep the caller's order. Returns
 * the text (free()), or NULL when out of memory. */
char *answer_json(const answer *a);

#endif
