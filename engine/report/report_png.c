/* report_png.c: the report's plots as PNG files (confusion.png, pr.png) for
 * people in a terminal: the same numbers as the page (report_int.h),
 * rasterised here with filled rectangles, lines and the bitmap font of
 * image/draw.c, written with stb_image_write (Debian's libstb-dev).
 *
 * Design: fixed layouts, so a script knows the sizes (report.h). Names
 * longer than their room are cut; characters outside ASCII draw as '?'. */
#include "report_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#define STBI_WRITE_NO_STDIO
/* stb declares static functions it never defines in this configuration;
 * the warning comes at the end of the file, so it stays off for the file */
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wconversion"
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop

static const uint8_t WHITE[3] = {255, 255, 255}, INK[3] = {40, 40, 40}, GRID[3] = {200, 200, 200},
                     LIGHT[3] = {235, 235, 235};

static void fill(eng_image *im, int x, int y, int w, int h, const uint8_t c[3])
{
    for (int j = y < 0 ? 0 : y; j < y + h && j < im->h; j++)
        for (int i = x < 0 ? 0 : x; i < x + w && i < im->w; i++)
            memcpy(im->rgb + ((size_t)j * im->w + i) * 3, c, 3);
}

/* A line `t` pixels thick (a square pen stepped along the longer axis). */
static void line(eng_image *im, double x0, double y0, double x1, double y1, const uint8_t c[3],
                 int t)
{
    double dx = x1 - x0, dy = y1 - y0;
    int steps = (int)ceil(fmax(fabs(dx), fabs(dy)));
    if (steps < 1)
        steps = 1;
    for (int s = 0; s <= steps; s++) {
        int x = (int)lrint(x0 + dx * s / steps), y = (int)lrint(y0 + dy * s / steps);
        fill(im, x - t / 2, y - t / 2, t, t, c);
    }
}

/* s cut to at most n characters (with ".." when cut). */
static void cut(char *out, size_t cap, const char *s, int n)
{
    if ((int)strlen(s) <= n)
        snprintf(out, cap, "%s", s);
    else
        snprintf(out, cap, "%.*s..", n - 2 > 0 ? n - 2 : 0, s);
}

/* Text rotated a quarter turn counter-clockwise (read bottom to top), its
 * baseline end at (x, y_bottom). */
static void text_up(eng_image *im, int x, int y_bottom, const char *s)
{
    int w, h;
    eng_image_text_size(s, 1, &w, &h);
    eng_image *t = eng_image_new(w, h);
    if (!t)
        return;
    eng_image_draw_text(t, 0, 0, s, INK, WHITE, 1);
    for (int ty = 0; ty < h; ty++)
        for (int tx = 0; tx < w; tx++) {
            int dx = x + ty - h / 2, dy = y_bottom - tx;
            if (dx >= 0 && dx < im->w && dy >= 0 && dy < im->h)
                memcpy(im->rgb + ((size_t)dy * im->w + dx) * 3, t->rgb + ((size_t)ty * w + tx) * 3,
                       3);
        }
    eng_image_free(t);
}

static void text_centred(eng_image *im, int cx, int cy, const char *s, const uint8_t fg[3])
{
    int w, h;
    eng_image_text_size(s, 1, &w, &h);
    eng_image_draw_text(im, cx - w / 2, cy - h / 2, s, fg, NULL, 1);
}

typedef struct membuf {
    uint8_t *p;
    size_t len, cap;
    int bad;
} membuf;

static void put(void *ctx, void *data, int size)
{
    membuf *m = ctx;
    if (m->bad || size <= 0)
        return;
    if (m->len + (size_t)size > m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 65536;
        while (cap < m->len + (size_t)size)
            cap *= 2;
        uint8_t *p = realloc(m->p, cap);
        if (!p) {
            m->bad = 1;
            return;
        }
        m->p = p;
        m->cap = cap;
    }
    memcpy(m->p + m->len, data, (size_t)size);
    m->len += (size_t)size;
}

static eng_status write_png(eng_image *im, uint8_t **out, size_t *len, eng_diag *d)
{
    membuf m = {0};
    int ok = stbi_write_png_to_func(put, &m, im->w, im->h, 3, im->rgb, im->w * 3);
    eng_image_free(im);
    if (!ok || m.bad) {
        free(m.p);
        return eng_fail(d, ENG_ENOMEM, "report: png: out of memory");
    }
    *out = m.p;
    *len = m.len;
    return ENG_OK;
}

static eng_image *canvas(int w, int h)
{
    eng_image *im = eng_image_new(w, h);
    if (im)
        memset(im->rgb, 255, (size_t)w * h * 3);
    return im;
}

eng_status rpt_confusion_png(const rpt *r, uint8_t **out, size_t *len, eng_diag *d)
{
    int R = r && r->has_conf ? r->R : 0, C = ENG_REPORT_CELL;
    int lm = ENG_REPORT_MARGIN - 20, tm = ENG_REPORT_MARGIN - 20;
    int W = ENG_REPORT_MARGIN + R * C;
    eng_image *im = canvas(W, W);
    if (!im)
        return eng_fail(d, ENG_ENOMEM, "report: png: out of memory");
    if (!R) {
        eng_image_draw_text(im, 8, 8,
                            r ? "no confusion:\nseveral tags\nper image"
                              : "no per-image\nresults kept:\nmkdir\nevaluations/DS",
                            INK, NULL, 1);
        return write_png(im, out, len, d);
    }
    eng_image_draw_text(im, 6, 6, "rows: true\ncolumns: predicted", INK, NULL, 1);
    for (int i = 0; i < R; i++) {
        for (int j = 0; j < R; j++) {
            long long v;
            uint8_t c[3];
            double f = rpt_cell(r, i, j, &v, c);
            fill(im, lm + j * C, tm + i * C, C, C, c);
            if (v) {
                char num[32];
                snprintf(num, sizeof num, "%lld", v);
                text_centred(im, lm + j * C + C / 2, tm + i * C + C / 2, num,
                             f > 0.5 ? WHITE : INK);
            }
        }
        char name[64];
        cut(name, sizeof name, rpt_row_name(r, i), (lm - 8) / 6);
        int w, h;
        eng_image_text_size(name, 1, &w, &h);
        eng_image_draw_text(im, lm - 4 - w, tm + i * C + C / 2 - h / 2, name, INK, NULL, 1);
    }
    for (int j = 0; j < R; j++) {
        char name[64];
        cut(name, sizeof name, rpt_col_name(r, j), (tm - 8) / 6);
        text_up(im, lm + j * C + C / 2, tm - 4, name);
    }
    for (int k = 0; k <= R; k++) {
        line(im, lm + k * C, tm, lm + k * C, tm + R * C, GRID, 1);
        line(im, lm, tm + k * C, lm + R * C, tm + k * C, GRID, 1);
    }
    return write_png(im, out, len, d);
}

eng_status rpt_pr_png(const rpt *r, uint8_t **out, size_t *len, eng_diag *d)
{
    const int W = ENG_REPORT_PR_W, H = ENG_REPORT_PR_H, x0 = 56, y0 = 24, pw = 420, ph = 400;
    eng_image *im = canvas(W, H);
    if (!im)
        return eng_fail(d, ENG_ENOMEM, "report: png: out of memory");
    for (int t = 1; t < 4; t++) {
        line(im, x0 + pw * t / 4, y0, x0 + pw * t / 4, y0 + ph, LIGHT, 1);
        line(im, x0, y0 + ph * t / 4, x0 + pw, y0 + ph * t / 4, LIGHT, 1);
    }
    line(im, x0, y0, x0 + pw, y0, GRID, 1);
    line(im, x0 + pw, y0, x0 + pw, y0 + ph, GRID, 1);
    line(im, x0, y0, x0, y0 + ph, INK, 1);
    line(im, x0, y0 + ph, x0 + pw, y0 + ph, INK, 1);
    eng_image_draw_text(im, x0 - 12, y0 - 4, "1", INK, NULL, 1);
    eng_image_draw_text(im, x0 - 24, y0 + ph / 2 - 4, "0.5", INK, NULL, 1);
    eng_image_draw_text(im, x0 - 12, y0 + ph - 4, "0", INK, NULL, 1);
    eng_image_draw_text(im, x0 + pw / 2 - 8, y0 + ph + 6, "0.5", INK, NULL, 1);
    eng_image_draw_text(im, x0 + pw - 4, y0 + ph + 6, "1", INK, NULL, 1);
    eng_image_draw_text(im, x0 + pw / 2 - 18, y0 + ph + 20, "recall", INK, NULL, 1);
    text_up(im, 14, y0 + ph / 2 + 27, "precision");
    int lx = x0 + pw + 20, ly = y0;
    if (!r) {
        eng_image_draw_text(im, lx, ly, "no per-image results\nkept: mkdir\nevaluations/DATASET",
                            INK, NULL, 1);
        return write_png(im, out, len, d);
    }
    int rows = (ph - 14) / 14, K = r->K;
    for (int c = 0; c < K; c++) {
        const rpt_curve *cv = &r->pr[c];
        uint8_t col[3];
        rpt_colour(c, K, col);
        if (cv->np > 0 && cv->npos > 0) {
            double px = x0, py = y0 + ph * (1 - cv->precision[0]);
            for (int k = 0; k < cv->np; k++) {
                double nx = x0 + pw * cv->recall[k], ny = y0 + ph * (1 - cv->precision[k]);
                line(im, px, py, nx, ny, col, 2);
                px = nx;
                py = ny;
            }
        }
        if (c < rows || (c == rows && K == rows + 1)) {
            char name[80], lab[96];
            cut(name, sizeof name, r->dt->categories[c], 24);
            if (cv->ap >= 0)
                snprintf(lab, sizeof lab, "%s %.2f", name, cv->ap);
            else
                snprintf(lab, sizeof lab, "%s -", name);
            fill(im, lx, ly + c * 14, 10, 10, col);
            eng_image_draw_text(im, lx + 14, ly + c * 14 + 1, lab, INK, NULL, 1);
        } else if (c == rows) {
            char more[48];
            snprintf(more, sizeof more, "+%d more", K - rows);
            eng_image_draw_text(im, lx + 14, ly + c * 14 + 1, more, INK, NULL, 1);
        }
    }
    eng_image_draw_text(im, lx, y0 + ph + 6, "legend: tag, AP", INK, NULL, 1);
    return write_png(im, out, len, d);
}
