/* ops.c: the op registry (name -> rt_op) and shape helpers shared by the
 * op files. Adding an op: write prepare/infer/compute in ops_nn.c (kernels
 * with weights) or ops_math.c (everything else) and add a row to that
 * file's table; nothing else changes. */
#include "runtime_int.h"

#include <stdio.h>
#include <string.h>

const rt_op *rt_op_find(const char *name)
{
    for (int i = 0; i < rt_ops_nn_count; i++)
        if (!strcmp(rt_ops_nn[i].name, name))
            return &rt_ops_nn[i];
    for (int i = 0; i < rt_ops_math_count; i++)
        if (!strcmp(rt_ops_math[i].name, name))
            return &rt_ops_math[i];
    return NULL;
}

int64_t rt_numel(const eng_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->dim[i];
    return n;
}

void rt_set_shape(eng_tensor *t, eng_dtype dt, int ndim, const int64_t *dim)
{
    t->dtype = dt;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t->dim[i] = dim[i];
}

int rt_same_shape(const eng_tensor *a, const eng_tensor *b)
{
    if (a->ndim != b->ndim)
        return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->dim[i] != b->dim[i])
            return 0;
    return 1;
}

const char *rt_shape_str(const eng_tensor *t, char *buf, size_t len)
{
    size_t k = 0;
    k += (size_t)snprintf(buf + k, len - k, "[");
    for (int i = 0; i < t->ndim && k < len; i++)
        k += (size_t)snprintf(buf + k, len - k, "%s%lld", i ? "," : "", (long long)t->dim[i]);
    if (k < len)
        snprintf(buf + k, len - k, "]");
    return buf;
}

int rt_scalar_int(const eng_tensor *t, int64_t *v)
{
    if (!t->data || t->dtype != ENG_I32 || rt_numel(t) != 1 || t->ndim > 1)
        return -1;
    *v = ((const int32_t *)t->data)[0];
    return 0;
}
