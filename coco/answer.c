/* answer.c: predict/'s answer for one image (answer.h). */
#include "answer.h"

#include "jsonw.h"

#include <stdio.h>

static void tag(jsonw *w, const char *name, float confidence)
{
    jsonw_obj(w);
    jsonw_kstr(w, "name", name);
    jsonw_key(w, "confidence");
    jsonw_numr(w, confidence, 6);
    jsonw_end(w);
}

static void object(jsonw *w, int i, const answer_object *o)
{
    char id[16];
    snprintf(id, sizeof id, "%d", i + 1);
    int bw = (int)(o->w + 0.5f), bh = (int)(o->h + 0.5f);
    jsonw_obj(w);
    jsonw_kstr(w, "id", id);
    jsonw_key(w, "boundingBox");
    jsonw_obj(w);
    jsonw_kint(w, "x", (int)(o->x + 0.5f));
    jsonw_kint(w, "y", (int)(o->y + 0.5f));
    jsonw_kint(w, "w", bw < 1 ? 1 : bw);
    jsonw_kint(w, "h", bh < 1 ? 1 : bh);
    jsonw_end(w);
    jsonw_key(w, "tags");
    jsonw_arr(w);
    tag(w, o->name, o->confidence);
    jsonw_end(w);
    jsonw_end(w);
}

char *answer_json(const answer *a)
{
    /* a model name is at most 255 bytes (a file name) */
    char mv[320];
    if (a->version > 0)
        snprintf(mv, sizeof mv, "%s/v%d", a->model, a->version);
    else
        snprintf(mv, sizeof mv, "%s/imported", a->model);
    jsonw w;
    jsonw_init(&w, JSONW_PRETTY);
    jsonw_obj(&w);
    jsonw_kstr(&w, "modelVersion", mv);
    jsonw_key(&w, "metadata");
    jsonw_obj(&w);
    jsonw_kint(&w, "width", a->width);
    jsonw_kint(&w, "height", a->height);
    jsonw_end(&w);
    jsonw_key(&w, "customModelResult");
    jsonw_obj(&w);
    jsonw_key(&w, a->detector ? "objectsResult" : "tagsResult");
    jsonw_obj(&w);
    jsonw_key(&w, "values");
    jsonw_arr(&w);
    for (int i = 0; !a->detector && i < a->ntags; i++)
        tag(&w, a->tags[i].name, a->tags[i].confidence);
    for (int i = 0; a->detector && i < a->nobjects; i++)
        object(&w, i, &a->objects[i]);
    jsonw_end(&w); /* values */
    jsonw_end(&w); /* tagsResult or objectsResult */
    jsonw_end(&w); /* customModelResult */
    jsonw_end(&w);
    return jsonw_finish(&w, NULL);
}
