/* encode.c: RGB8 image to an in-memory baseline JPEG with libjpeg-turbo
 * (used for the pictures of detections). Our own destination manager grows a
 * malloc'd buffer, so on error (longjmp to one place) we know exactly what to
 * free. */
#include "image_int.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

typedef struct enc_err {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
} enc_err;

static void enc_on_error(j_common_ptr c)
{
    enc_err *e = (enc_err *)c->err;
    c->err->format_message(c, e->msg);
    longjmp(e->jb, 1);
}

typedef struct enc_dest {
    struct jpeg_destination_mgr pub;
    uint8_t *buf;
    size_t cap;
    enc_err *err;
} enc_dest;

static void dest_init(j_compress_ptr c) { (void)c; }

static boolean dest_empty(j_compress_ptr c)
{
    enc_dest *m = (enc_dest *)c->dest;
    size_t ncap = m->cap * 2;
    uint8_t *nb = realloc(m->buf, ncap);
    if (!nb) {
        snprintf(m->err->msg, sizeof m->err->msg, "out of memory");
        longjmp(m->err->jb, 1);
    }
    m->pub.next_output_byte = nb + m->cap;
    m->pub.free_in_buffer = ncap - m->cap;
    m->buf = nb;
    m->cap = ncap;
    return TRUE;
}

static void dest_term(j_compress_ptr c) { (void)c; }

static void enc_on_message(j_common_ptr c, int level)
{
    (void)c;
    (void)level;
}

eng_status eng_image_encode_jpeg(const eng_image *im, int quality, uint8_t **out, size_t *len,
                                 eng_diag *d)
{
    if (!out || !len)
        return eng_fail(d, ENG_EINVAL, "jpeg encode: no output pointer");
    *out = NULL;
    *len = 0;
    if (!im || !im->rgb || im->w <= 0 || im->h <= 0 || im->w > 65500 || im->h > 65500)
        return eng_fail(d, ENG_EINVAL, "jpeg encode: bad image");
    const volatile int q = quality < 1 ? 1 : quality > 100 ? 100 : quality;
    struct jpeg_compress_struct ci;
    enc_err e;
    enc_dest m;
    memset(&ci, 0, sizeof ci);
    memset(&m, 0, sizeof m);
    ci.err = jpeg_std_error(&e.pub);
    e.pub.error_exit = enc_on_error;
    e.pub.emit_message = enc_on_message;
    m.err = &e;
    m.cap = 65536;
    m.buf = malloc(m.cap);
    if (!m.buf)
        return eng_fail(d, ENG_ENOMEM, "jpeg encode: out of memory");
    if (setjmp(e.jb)) {
        jpeg_destroy_compress(&ci);
        free(m.buf);
        return eng_fail(d, ENG_EIO, "jpeg encode: %s", e.msg);
    }
    jpeg_create_compress(&ci);
    m.pub.init_destination = dest_init;
    m.pub.empty_output_buffer = dest_empty;
    m.pub.term_destination = dest_term;
    m.pub.next_output_byte = m.buf;
    m.pub.free_in_buffer = m.cap;
    ci.dest = &m.pub;
    ci.image_width = (JDIMENSION)im->w;
    ci.image_height = (JDIMENSION)im->h;
    ci.input_components = 3;
    ci.in_color_space = JCS_RGB;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, q, TRUE);
    /* 4:4:4: thin coloured boxes and small text stay sharp */
    ci.comp_info[0].h_samp_factor = 1;
    ci.comp_info[0].v_samp_factor = 1;
    jpeg_start_compress(&ci, TRUE);
    size_t row = (size_t)im->w * 3;
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW r = im->rgb + row * ci.next_scanline;
        jpeg_write_scanlines(&ci, &r, 1);
    }
    jpeg_finish_compress(&ci);
    size_t used = m.cap - m.pub.free_in_buffer;
    jpeg_destroy_compress(&ci);
    *out = m.buf;
    *len = used;
    return ENG_OK;
}
