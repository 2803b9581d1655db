/* ops.c: the op registry (name -> rt_op) and shape helpers shared by the
 * op files. Adding an op: write infer and compute (prepare for checks and
 * weight repacking at load, flops for the profile) in ops_nn.c (kernels
 * with weights) or ops_math.c (everything else), add a row to that file's
 * table, and a case to tests/unit/test_runtime_ops.c. Then check the places
 * that name ops: an op sharing a compute function is told apart by name
 * there (binop_of in ops_math.c takes any name it does not know for Add);
 * a new attribute needs a field in rt_attr (runtime_int.h) and a parse in
 * model.c's parse_attrs; run.c's batch_separable lists the ops a batch is
 * split over item by item (others run the batch whole: same result, less
 * parallel); fuse.c's patterns name the convolutions and element-wise ops
 * they fold into an epilogue (a new one is not fused until named there). */
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
