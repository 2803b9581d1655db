/* models_report.c: the thin part of the evaluation report in the models/
 * area: the jobs hand their evaluation's per-image detail here, the engine
 * (engine/report/) turns it into report.html, confusion.png and pr.png, and
 * this file writes them next to the evaluation (models_int.h).
 *
 * Design: the report is made by the job that evaluates, at its end, and
 * stored like every other result (temp + rename), so a FUSE read never
 * computes, a retrain or a new evaluation rewrites it, and removing the
 * model or the evaluation removes it. */
#include "models_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void mdl_report_keep(eng_eval_detail **slot, const eng_eval_detail *dt)
{
    eng_eval_detail *c = eng_eval_detail_copy(dt);
    eng_eval_detail_free(*slot);
    *slot = c;
}

void mdl_report_build(mdl *m, const eng_eval_detail *dt, const char *metrics_json,
                      const char *title, mdl_report *out)
{
    memset(out, 0, sizeof *out);
    eng_diag d = {{0}};
    if (eng_report_build(dt, metrics_json, title, &out->r, &d) == ENG_OK)
        out->built = 1;
    else
        mdl_log(m, "report.html not made: %s", d.msg);
}

void mdl_report_write(mdl *m, const char *dir, mdl_report *rep)
{
    if (rep->built) {
        const char *names[3] = {MDL_REPORT_HTML, MDL_REPORT_CONFUSION, MDL_REPORT_PR};
        const void *data[3] = {rep->r.html, rep->r.confusion_png, rep->r.pr_png};
        size_t len[3] = {rep->r.html_len, rep->r.confusion_len, rep->r.pr_len};
        for (int i = 0; i < 3; i++) {
            char sub[FS_PATH_MAX];
            snprintf(sub, sizeof sub, "%s%s%s", dir, *dir ? "/" : "", names[i]);
            int rc = mdl_put(m, sub, data[i], len[i]);
            if (rc != 0)
                mdl_log(m, "cannot write %s: %s", sub, strerror(rc < 0 ? -rc : rc));
        }
    }
    eng_report_release(&rep->r);
    rep->built = 0;
}
