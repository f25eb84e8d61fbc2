/* language._segment_sums in C (issue 22): each caption's naive-Bayes feature rows, weighted and summed
 * in float32 in exactly the order numpy's np.add.reduceat uses (the segment's first row plus the
 * pairwise sum of the others, language._pairwise), so every score is bit for bit the one numpy gives;
 * test_language_native.py checks that. Built with -ffp-contract=off: a fused multiply-add would round
 * once where numpy rounds twice. Optional: when not built, language.py does it in numpy. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

/* acc[c] += row[c] * w, each product rounded to float32 before the sum (as numpy does) */
static inline void
add_row(float *acc, const float *row, float w, Py_ssize_t C)
{
    for (Py_ssize_t c = 0; c < C; c++) {
        float x = row[c] * w;
        acc[c] = acc[c] + x;
    }
}

/* res[c] = pairwise sum over i < k of ptc[feat[i]][c] * w[i]; scratch holds 8 * C floats per level */
static void
pairwise(const float *ptc, const long long *feat, const float *w, Py_ssize_t k, Py_ssize_t C, float *res,
         float *scratch)
{
    if (k < 8) {
        for (Py_ssize_t c = 0; c < C; c++)
            res[c] = 0.0f;
        for (Py_ssize_t i = 0; i < k; i++)
            add_row(res, ptc + feat[i] * C, w[i], C);
        return;
    }
    if (k <= 128) {
        float *r = scratch; /* r[j * C + c], j < 8 */
        for (Py_ssize_t j = 0; j < 8; j++) {
            const float *row = ptc + feat[j] * C;
            float wj = w[j];
            for (Py_ssize_t c = 0; c < C; c++)
                r[j * C + c] = row[c] * wj;
        }
        Py_ssize_t end = k - k % 8;
        for (Py_ssize_t i = 8; i < end; i += 8)
            for (Py_ssize_t j = 0; j < 8; j++)
                add_row(r + j * C, ptc + feat[i + j] * C, w[i + j], C);
        for (Py_ssize_t c = 0; c < C; c++) {
            float a = r[0 * C + c] + r[1 * C + c], b = r[2 * C + c] + r[3 * C + c];
            float d = r[4 * C + c] + r[5 * C + c], e = r[6 * C + c] + r[7 * C + c];
            res[c] = (a + b) + (d + e);
        }
        for (Py_ssize_t i = end; i < k; i++)
            add_row(res, ptc + feat[i] * C, w[i], C);
        return;
    }
    Py_ssize_t k2 = k / 2;
    k2 -= k2 % 8;
    float *left = scratch, *right = scratch + C, *deeper = scratch + 2 * C;
    pairwise(ptc, feat, w, k2, C, left, deeper);
    pairwise(ptc, feat + k2, w + k2, k - k2, C, right, deeper);
    for (Py_ssize_t c = 0; c < C; c++)
        res[c] = left[c] + right[c];
}

static int
get(PyObject *obj, Py_buffer *view, const char *name, const char *fmt, Py_ssize_t itemsize, int writable)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0)) < 0)
        return -1;
    if (view->itemsize != itemsize || strchr(fmt, view->format[0]) == NULL || view->format[1] != '\0') {
        PyErr_Format(PyExc_TypeError, "segment_sums: %s must be %s (got format %s)", name, fmt, view->format);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(segment_sums_doc,
"segment_sums(ptc, feat, weight, starts, out) -> None\n\n"
"out[s] = np.add.reduceat(ptc[feat] * weight[:, None], starts, axis=0)[s], bit for bit. ptc: float32\n"
"(features, classes); feat: int64; weight: float32; starts: int64, increasing, starts[0] == 0;\n"
"out: float32 (len(starts), classes). All C-contiguous.");

static PyObject *
segment_sums(PyObject *self, PyObject *args)
{
    PyObject *o_ptc, *o_feat, *o_w, *o_starts, *o_out;
    if (!PyArg_ParseTuple(args, "OOOOO:segment_sums", &o_ptc, &o_feat, &o_w, &o_starts, &o_out))
        return NULL;
    Py_buffer ptc, feat, w, starts, out;
    if (get(o_ptc, &ptc, "ptc", "f", 4, 0) < 0)
        return NULL;
    if (get(o_feat, &feat, "feat", "lq", 8, 0) < 0)
        goto f1;
    if (get(o_w, &w, "weight", "f", 4, 0) < 0)
        goto f2;
    if (get(o_starts, &starts, "starts", "lq", 8, 0) < 0)
        goto f3;
    if (get(o_out, &out, "out", "f", 4, 1) < 0)
        goto f4;
    if (ptc.ndim != 2 || out.ndim != 2 || out.shape[1] != ptc.shape[1] || feat.ndim != 1 || w.ndim != 1 ||
        starts.ndim != 1 || w.shape[0] != feat.shape[0] || out.shape[0] != starts.shape[0]) {
        PyErr_SetString(PyExc_ValueError, "segment_sums: shapes do not agree");
        goto f5;
    }
    Py_ssize_t F = ptc.shape[0], C = ptc.shape[1], N = feat.shape[0], S = starts.shape[0];
    const float *P = ptc.buf, *W = w.buf;
    const long long *FT = feat.buf, *ST = starts.buf;
    float *O = out.buf;
    for (Py_ssize_t i = 0; i < N; i++)
        if (FT[i] < 0 || FT[i] >= F) {
            PyErr_SetString(PyExc_ValueError, "segment_sums: a feature index is out of the table");
            goto f5;
        }
    for (Py_ssize_t s = 0; s < S; s++)
        if (ST[s] < 0 || ST[s] >= N || (s + 1 < S && ST[s + 1] <= ST[s]) || (s == 0 && ST[0] != 0)) {
            PyErr_SetString(PyExc_ValueError, "segment_sums: starts must increase from 0 inside feat");
            goto f5;
        }
    /* scratch: 8 rows at the top level plus 2 per level of halving (k > 128), 64 levels at most */
    float *scratch = PyMem_Malloc(sizeof(float) * (size_t)C * (8 + 2 * 64 + 8));
    float *res = PyMem_Malloc(sizeof(float) * (size_t)C);
    if (scratch == NULL || res == NULL) {
        PyMem_Free(scratch);
        PyMem_Free(res);
        PyErr_NoMemory();
        goto f5;
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t s = 0; s < S; s++) {
        Py_ssize_t a = ST[s], b = s + 1 < S ? ST[s + 1] : N;
        const float *row = P + FT[a] * C;
        float w0 = W[a];
        float *o = O + s * C;
        Py_ssize_t k = b - a - 1;
        if (k == 0) {
            for (Py_ssize_t c = 0; c < C; c++) {
                float x = row[c] * w0;
                o[c] = x + 0.0f;
            }
            continue;
        }
        pairwise(P, FT + a + 1, W + a + 1, k, C, res, scratch);
        for (Py_ssize_t c = 0; c < C; c++) {
            float x = row[c] * w0;
            o[c] = x + res[c];
        }
    }
    Py_END_ALLOW_THREADS
    PyMem_Free(scratch);
    PyMem_Free(res);
    PyBuffer_Release(&out);
    PyBuffer_Release(&starts);
    PyBuffer_Release(&w);
    PyBuffer_Release(&feat);
    PyBuffer_Release(&ptc);
    Py_RETURN_NONE;
f5:
    PyBuffer_Release(&out);
f4:
    PyBuffer_Release(&starts);
f3:
    PyBuffer_Release(&w);
f2:
    PyBuffer_Release(&feat);
f1:
    PyBuffer_Release(&ptc);
    return NULL;
}

static PyMethodDef langsum_methods[] = {
    {"segment_sums", segment_sums, METH_VARARGS, segment_sums_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef langsum_module = {
    PyModuleDef_HEAD_INIT, "_langsum", "language._segment_sums in C, bit for bit.", -1, langsum_methods,
};

PyMODINIT_FUNC
PyInit__langsum(void)
{
    return PyModule_Create(&langsum_module);
}
