/* embed.c: image embeddings from a backbone: decode, squash-resize, run the
 * model to the requested taps in batches, global-average-pool, concatenate.
 *
 * Design: a producer thread prepares batch b+1 (decoding files, resizing into
 * a float tensor) while the calling thread runs batch b through the runtime.
 * Two batch slots, handed back and forth under one mutex and condition
 * variable, bound the memory to two input tensors. The producer never runs
 * OpenMP or BLAS, so the thread cap of the run options holds for compute;
 * decoding adds at most one busy thread. If the thread cannot be started the
 * same steps run inline. Errors of either side stop both and the call
 * returns the first one, naming the image.
 */
#include "backbone_int.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { SLOT_FREE = 0, SLOT_READY, SLOT_ERROR };

typedef struct embed_slot {
    float *data; /* ENG_BACKBONE_MAX_BATCH x h x w x 3 */
    int count;   /* images in the batch */
    int state;
    eng_status st;
    char msg[sizeof(((eng_diag *)0)->msg)];
} embed_slot;

typedef struct embed_job {
    /* source: paths (crops, when given, are fractions of each decoded image),
     * or images (crops in pixels); crops and flips optional */
    const char *const *paths;
    const eng_image *const *ims;
    const eng_crop *crops;
    const int *flips;
    int n, w, h, nbatch;
    eng_pixels pixels;
    const char *bbname;
    double fill_cpu_ms; /* CPU of decoding and resizing, on whichever thread fills */
    embed_slot slot[2];
    pthread_mutex_t mu; /* guards slot[].state/count/st/msg and cancel */
    pthread_cond_t cv;
    int cancel;
} embed_job;

static int batch_count(const embed_job *j, int b)
{
    int left = j->n - b * ENG_BACKBONE_MAX_BATCH;
    return left < ENG_BACKBONE_MAX_BATCH ? left : ENG_BACKBONE_MAX_BATCH;
}

/* Decodes and resizes batch b's images into s (see fill_batch). */
static eng_status fill_batch_images(embed_job *j, int b, embed_slot *s)
{
    int count = batch_count(j, b);
    size_t per = (size_t)j->w * (size_t)j->h * 3;
    int hint = j->w > j->h ? j->w : j->h;
    for (int k = 0; k < count; k++) {
        int i = b * ENG_BACKBONE_MAX_BATCH + k;
        eng_diag d = {{0}};
        eng_status st;
        float *dst = s->data + (size_t)k * per;
        if (j->paths) {
            eng_image *im = NULL;
            st = eng_image_decode_file(j->paths[i], hint, &im, &d);
            eng_crop px;
            if (!st && j->crops) {
                const eng_crop *c = &j->crops[i];
                px = (eng_crop){c->x * (float)im->w, c->y * (float)im->h, c->w * (float)im->w,
                                c->h * (float)im->h};
                if (px.x + px.w > (float)im->w) /* fractions may overshoot by rounding */
                    px.w = (float)im->w - px.x;
                if (px.y + px.h > (float)im->h)
                    px.h = (float)im->h - px.y;
            }
            if (!st)
                st = eng_image_to_tensor(im, j->crops ? &px : NULL, j->flips ? j->flips[i] : 0,
                                         j->w, j->h, j->pixels, dst, &d);
            eng_image_free(im);
            if (st) {
                snprintf(s->msg, sizeof s->msg, "backbone '%.60s': image %d '%.160s': %.240s",
                         j->bbname, i, j->paths[i], d.msg);
                return st;
            }
        } else {
            st = j->ims[i] ? eng_image_to_tensor(j->ims[i], j->crops ? &j->crops[i] : NULL,
                                                 j->flips ? j->flips[i] : 0, j->w, j->h, j->pixels,
                                                 dst, &d)
                           : eng_fail(&d, ENG_EINVAL, "no image");
            if (st) {
                snprintf(s->msg, sizeof s->msg, "backbone '%.60s': image %d: %.400s", j->bbname, i,
                         d.msg);
                return st;
            }
        }
    }
    s->count = count;
    return ENG_OK;
}

static double thread_cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

/* Fills s with batch b; returns ENG_OK or the error (message in s->msg).
 * Only one thread fills at a time (the producer, or the caller without it),
 * so fill_cpu_ms needs no lock. */
static eng_status fill_batch(embed_job *j, int b, embed_slot *s)
{
    double c0 = thread_cpu_ms();
    eng_status st = fill_batch_images(j, b, s);
    j->fill_cpu_ms += thread_cpu_ms() - c0;
    return st;
}

static void *producer_main(void *arg)
{
    embed_job *j = arg;
    for (int b = 0; b < j->nbatch; b++) {
        embed_slot *s = &j->slot[b % 2];
        pthread_mutex_lock(&j->mu);
        while (s->state != SLOT_FREE && !j->cancel)
            pthread_cond_wait(&j->cv, &j->mu);
        int stop = j->cancel;
        pthread_mutex_unlock(&j->mu);
        if (stop)
            break;
        eng_status st = fill_batch(j, b, s);
        pthread_mutex_lock(&j->mu);
        s->st = st;
        s->state = st ? SLOT_ERROR : SLOT_READY;
        pthread_cond_broadcast(&j->cv);
        pthread_mutex_unlock(&j->mu);
        if (st)
            break;
    }
    return NULL;
}

/* Channels of each tap at w x h; sum in *dim. */
static eng_status tap_channels(const eng_backbone *bb, int w, int h, const char *const *taps,
                               int ntaps, int *chan, int *dim, eng_diag *d)
{
    const eng_backbone_info *in = eng_backbone_get_info(bb);
    const eng_model *m = eng_backbone_model(bb);
    int64_t shape[4] = {1, h, w, 3};
    int total = 0;
    for (int t = 0; t < ntaps; t++) {
        int64_t od[1][ENG_MAX_DIMS];
        int nd = 0;
        eng_diag md = {{0}};
        const char *outs[1] = {taps[t]};
        if (!taps[t])
            return eng_fail(d, ENG_EINVAL, "backbone '%s': tap %d is NULL", in->name, t);
        eng_status st = eng_model_shapes(m, 4, shape, outs, 1, od, &nd, NULL, &md);
        if (st)
            return eng_fail(d, st, "backbone '%s': tap '%s' at %dx%d: %s", in->name, taps[t], w, h,
                            md.msg);
        if (nd < 2 || od[0][nd - 1] <= 0 || od[0][nd - 1] > (1 << 20))
            return eng_fail(d, ENG_EINVAL, "backbone '%s': tap '%s' has no channel dimension",
                            in->name, taps[t]);
        chan[t] = (int)od[0][nd - 1];
        total += chan[t];
        if (total > (1 << 22))
            return eng_fail(d, ENG_EINVAL, "backbone '%s': embedding too long", in->name);
    }
    *dim = total;
    return ENG_OK;
}

static eng_status resolve_size(const eng_backbone *bb, int size, int *w, int *h, eng_diag *d)
{
    const eng_backbone_info *in = eng_backbone_get_info(bb);
    if (size == 0) {
        *w = in->input_w;
        *h = in->input_h;
        return ENG_OK;
    }
    /* any multiple of 32 keeps every stride-32 network's maps aligned; the
     * backbone's own square input size is valid whatever it is (it was
     * trained there: EfficientNet-Lite2 at 260) */
    int native = size == in->input_w && in->input_w == in->input_h;
    if (size < 32 || size > 2048 || (size % 32 && !native))
        return eng_fail(d, ENG_EINVAL,
                        "backbone '%s': input size %d is neither its own input size (%d) nor "
                        "a multiple of 32 in 32..2048",
                        in->name, size, in->input_w);
    *w = *h = size;
    return ENG_OK;
}

eng_status eng_backbone_embed_dim(const eng_backbone *bb, int size, const char *const *taps,
                                  int ntaps, int *dim, eng_diag *d)
{
    if (!bb || !dim || ntaps < 0 || ntaps > 64 || (ntaps > 0 && !taps))
        return eng_fail(d, ENG_EINVAL, "eng_backbone_embed_dim: bad argument");
    int w = 0, h = 0;
    eng_status st = resolve_size(bb, size, &w, &h, d);
    if (st)
        return st;
    const char *def[1] = {eng_backbone_get_info(bb)->embedding};
    if (!taps || ntaps == 0) {
        taps = def;
        ntaps = 1;
    }
    int chan[64];
    return tap_channels(bb, w, h, taps, ntaps, chan, dim, d);
}

/* Global average pool of t [N, ..., C] into out[i * dim + off + c]. */
static void pool_into(const eng_tensor *t, int count, int dim, int off, float *out)
{
    int64_t c = t->dim[t->ndim - 1];
    int64_t per = eng_tensor_numel(t) / (count > 0 ? count : 1);
    int64_t cells = per / c;
    const float *src = eng_f32(t);
    for (int i = 0; i < count; i++) {
        float *o = out + (size_t)i * (size_t)dim + off;
        double acc[1024];
        for (int64_t c0 = 0; c0 < c; c0 += 1024) {
            int64_t cn = c - c0 < 1024 ? c - c0 : 1024;
            for (int64_t k = 0; k < cn; k++)
                acc[k] = 0;
            const float *p = src + (size_t)i * (size_t)per + c0;
            for (int64_t s = 0; s < cells; s++, p += c)
                for (int64_t k = 0; k < cn; k++)
                    acc[k] += p[k];
            for (int64_t k = 0; k < cn; k++)
                o[c0 + k] = (float)(acc[k] / (double)cells);
        }
    }
}

static eng_status embed_run(const eng_backbone *bb, embed_job *j, int size, const char *const *taps,
                            int ntaps, float *out, int *dim, const eng_run_opts *o, eng_diag *d)
{
    const eng_backbone_info *in = eng_backbone_get_info(bb);
    if (j->n < 0 || ntaps < 0 || ntaps > 64 || (ntaps > 0 && !taps))
        return eng_fail(d, ENG_EINVAL, "backbone '%s': bad embed arguments", in->name);
    eng_status st = resolve_size(bb, size, &j->w, &j->h, d);
    if (st)
        return st;
    const char *def[1] = {in->embedding};
    if (!taps || ntaps == 0) {
        taps = def;
        ntaps = 1;
    }
    int chan[64], total = 0;
    st = tap_channels(bb, j->w, j->h, taps, ntaps, chan, &total, d);
    if (st)
        return st;
    if (dim)
        *dim = total;
    if (!out || j->n == 0)
        return ENG_OK;

    j->pixels = in->pixels;
    j->bbname = in->name;
    j->nbatch = (j->n + ENG_BACKBONE_MAX_BATCH - 1) / ENG_BACKBONE_MAX_BATCH;
    size_t per = (size_t)j->w * (size_t)j->h * 3;
    int nslots = j->nbatch > 1 ? 2 : 1;
    for (int s = 0; s < nslots; s++) {
        j->slot[s].data = eng_alloc(per * ENG_BACKBONE_MAX_BATCH * sizeof(float));
        if (!j->slot[s].data) {
            for (int k = 0; k < s; k++)
                eng_free(j->slot[k].data);
            return eng_fail(d, ENG_ENOMEM, "backbone '%s': out of memory for a batch", in->name);
        }
    }
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    pthread_t th;
    int threaded = j->nbatch > 1 && pthread_create(&th, NULL, producer_main, j) == 0;

    eng_tensor *res[64] = {0};
    for (int b = 0; b < j->nbatch && !st; b++) {
        if (o && o->abort && o->abort(o->abort_ctx)) {
            st = eng_fail(d, ENG_EABORTED, "backbone '%s': embedding aborted", in->name);
            break;
        }
        embed_slot *s = &j->slot[threaded ? b % 2 : 0];
        if (threaded) {
            pthread_mutex_lock(&j->mu);
            while (s->state == SLOT_FREE)
                pthread_cond_wait(&j->cv, &j->mu);
            int state = s->state;
            pthread_mutex_unlock(&j->mu);
            if (state == SLOT_ERROR) {
                st = eng_fail(d, s->st, "%s", s->msg);
                break;
            }
        } else {
            eng_status fs = fill_batch(j, b, s);
            if (fs) {
                st = eng_fail(d, fs, "%s", s->msg);
                break;
            }
        }
        eng_tensor input = {.dtype = ENG_F32, .ndim = 4, .data = s->data};
        input.dim[0] = s->count;
        input.dim[1] = j->h;
        input.dim[2] = j->w;
        input.dim[3] = 3;
        eng_diag md = {{0}};
        st = eng_model_run(eng_backbone_model(bb), &input, taps, ntaps, res, o, &md);
        if (st) {
            eng_fail(d, st, "backbone '%s': %s", in->name, md.msg);
            break;
        }
        int off = 0;
        for (int t = 0; t < ntaps && !st; t++) {
            if (res[t]->dtype != ENG_F32 || res[t]->ndim < 2 || res[t]->dim[0] != s->count ||
                res[t]->dim[res[t]->ndim - 1] != chan[t])
                st = eng_fail(d, ENG_EFORMAT,
                              "backbone '%s': tap '%s' came out with an "
                              "unexpected shape",
                              in->name, taps[t]);
            else
                pool_into(res[t], s->count, total, off,
                          out + (size_t)b * ENG_BACKBONE_MAX_BATCH * (size_t)total);
            off += chan[t];
        }
        for (int t = 0; t < ntaps; t++) {
            eng_tensor_free(res[t]);
            res[t] = NULL;
        }
        if (threaded) {
            pthread_mutex_lock(&j->mu);
            s->state = SLOT_FREE;
            pthread_cond_broadcast(&j->cv);
            pthread_mutex_unlock(&j->mu);
        }
    }
    if (threaded) {
        pthread_mutex_lock(&j->mu);
        j->cancel = 1;
        pthread_cond_broadcast(&j->cv);
        pthread_mutex_unlock(&j->mu);
        pthread_join(th, NULL);
    }
    if (o && o->profile) /* the batch's images, decoded and resized */
        eng_run_profile_add(o->profile, "decode+resize", 0, j->fill_cpu_ms, 0);
    pthread_cond_destroy(&j->cv);
    pthread_mutex_destroy(&j->mu);
    for (int s = 0; s < nslots; s++)
        eng_free(j->slot[s].data);
    return st;
}

eng_status eng_backbone_embed_files(const eng_backbone *bb, const char *const *paths, int n,
                                    int size, const char *const *taps, int ntaps, float *out,
                                    int *dim, const eng_run_opts *o, eng_diag *d)
{
    if (!bb || n < 0 || (n > 0 && !paths))
        return eng_fail(d, ENG_EINVAL, "eng_backbone_embed_files: bad argument");
    for (int i = 0; i < n; i++)
        if (!paths[i])
            return eng_fail(d, ENG_EINVAL, "eng_backbone_embed_files: path %d is NULL", i);
    embed_job j = {.paths = paths, .n = n};
    return embed_run(bb, &j, size, taps, ntaps, out, dim, o, d);
}

eng_status eng_backbone_embed_files_aug(const eng_backbone *bb, const char *const *paths,
                                        const eng_crop *crops, const int *flips, int n, int size,
                                        const char *const *taps, int ntaps, float *out, int *dim,
                                        const eng_run_opts *o, eng_diag *d)
{
    if (!bb || n < 0 || (n > 0 && !paths))
        return eng_fail(d, ENG_EINVAL, "eng_backbone_embed_files_aug: bad argument");
    for (int i = 0; i < n; i++) {
        if (!paths[i])
            return eng_fail(d, ENG_EINVAL, "eng_backbone_embed_files_aug: path %d is NULL", i);
        const eng_crop *c = crops ? &crops[i] : NULL;
        if (c && !(c->x >= 0 && c->y >= 0 && c->w > 0 && c->h > 0 && c->x + c->w <= 1.0001f &&
                   c->y + c->h <= 1.0001f))
            return eng_fail(d, ENG_EINVAL,
                            "eng_backbone_embed_files_aug: crop %d is not within "
                            "0..1",
                            i);
    }
    embed_job j = {.paths = paths, .crops = crops, .flips = flips, .n = n};
    return embed_run(bb, &j, size, taps, ntaps, out, dim, o, d);
}

eng_status eng_backbone_embed_images(const eng_backbone *bb, const eng_image *const *ims,
                                     const eng_crop *crops, const int *flips, int n, int size,
                                     const char *const *taps, int ntaps, float *out, int *dim,
                                     const eng_run_opts *o, eng_diag *d)
{
    if (!bb || n < 0 || (n > 0 && !ims))
        return eng_fail(d, ENG_EINVAL, "eng_backbone_embed_images: bad argument");
    embed_job j = {.ims = ims, .crops = crops, .flips = flips, .n = n};
    return embed_run(bb, &j, size, taps, ntaps, out, dim, o, d);
}
