/* The tag scan of htmlscan.scan_html in C (issue 22): the same matches as the module's regex
 * (`htmlscan._scanner`), found without the regex engine's per-'<' work. Optional: when this module
 * is not built, htmlscan uses the regex. Python keeps every rule about what a match means. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

/* scan_html's tag codes (htmlscan.TAG_*) */
#define TAG_IMG 0
#define TAG_META 3
#define TAG_LINK 5
#define TAG_A 7
#define TAG_IMG_NO_ALT 8

/* The non-ASCII characters re.I matches against an ASCII letter in a str pattern (a test
 * recomputes them over all of Unicode): U+0130 and U+0131 for i, U+017F for s, U+212A for k. */
static inline int
fold_matches(Py_UCS4 c, char letter)
{
    switch (letter) {
    case 'i':
        return c == 0x130 || c == 0x131;
    case 's':
        return c == 0x17F;
    case 'k':
        return c == 0x212A;
    default:
        return 0;
    }
}

#define CHAR_T Py_UCS1
#define SCAN_FN(x) ucs1##x
#include "_tagscan_impl.h"
#undef CHAR_T
#undef SCAN_FN

#define CHAR_T Py_UCS2
#define SCAN_FN(x) ucs2##x
#include "_tagscan_impl.h"
#undef CHAR_T
#undef SCAN_FN

#define CHAR_T Py_UCS4
#define SCAN_FN(x) ucs4##x
#include "_tagscan_impl.h"
#undef CHAR_T
#undef SCAN_FN

PyDoc_STRVAR(scan_doc,
"scan(text, want_a, max_tags, clock, deadline) -> (status, matches, tags)\n\n"
"Walk `text` as htmlscan's regex does. tags: (code, attr_start, attr_end, end) per <img> (code 0, or 8\n"
"when its attributes hold no 'alt'), <image> 1, <base> 2, <meta> 3, <html> 4, <link> 5 (only with\n"
"want_a), <title> 6 and <a> 7 (only with want_a) whose name is ASCII; matches: every match counted as\n"
"scan_html counts them; status: 0 done, 1 more than max_tags, 2 past deadline (clock() > deadline,\n"
"read at every 1024th match; clock None: no deadline).");

static PyObject *
tagscan_scan(PyObject *self, PyObject *args)
{
    PyObject *text, *clock;
    int want_a;
    Py_ssize_t max_tags;
    double deadline;
    if (!PyArg_ParseTuple(args, "UpnOd:scan", &text, &want_a, &max_tags, &clock, &deadline))
        return NULL;
    Py_ssize_t n = PyUnicode_GET_LENGTH(text), matches = 0;
    int status = 0, rc;
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    void *data = PyUnicode_DATA(text);
    switch (PyUnicode_KIND(text)) {
    case PyUnicode_1BYTE_KIND:
        rc = ucs1_scan((const Py_UCS1 *)data, n, want_a, max_tags, clock, deadline, out, &matches, &status);
        break;
    case PyUnicode_2BYTE_KIND:
        rc = ucs2_scan((const Py_UCS2 *)data, n, want_a, max_tags, clock, deadline, out, &matches, &status);
        break;
    default:
        rc = ucs4_scan((const Py_UCS4 *)data, n, want_a, max_tags, clock, deadline, out, &matches, &status);
        break;
    }
    if (rc < 0) {
        Py_DECREF(out);
        return NULL;
    }
    return Py_BuildValue("(inN)", status, matches, out);
}

PyDoc_STRVAR(attrs_doc,
"attrs(text, start, end, unescape) -> dict\n\n"
"htmlscan.parse_attrs(text[start:end]) with `unescape` for the attribute-value character references.");

static PyObject *
tagscan_attrs(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 || !PyUnicode_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "attrs(text: str, start: int, end: int, unescape)");
        return NULL;
    }
    PyObject *text = args[0];
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    Py_ssize_t a = PyLong_AsSsize_t(args[1]), b = PyLong_AsSsize_t(args[2]);
    if ((a == -1 || b == -1) && PyErr_Occurred())
        return NULL;
    if (a < 0 || b > n || a > b) {
        PyErr_SetString(PyExc_ValueError, "attrs: range out of the text");
        return NULL;
    }
    void *data = PyUnicode_DATA(text);
    switch (PyUnicode_KIND(text)) {
    case PyUnicode_1BYTE_KIND:
        return ucs1_attrs(text, (const Py_UCS1 *)data, a, b, args[3]);
    case PyUnicode_2BYTE_KIND:
        return ucs2_attrs(text, (const Py_UCS2 *)data, a, b, args[3]);
    default:
        return ucs4_attrs(text, (const Py_UCS4 *)data, a, b, args[3]);
    }
}

static PyMethodDef tagscan_methods[] = {
    {"scan", tagscan_scan, METH_VARARGS, scan_doc},
    {"attrs", (PyCFunction)(void (*)(void))tagscan_attrs, METH_FASTCALL, attrs_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef tagscan_module = {
    PyModuleDef_HEAD_INIT, "_tagscan", "htmlscan's tag scan and attribute parse in C.", -1, tagscan_methods,
};

PyMODINIT_FUNC
PyInit__tagscan(void)
{
    return PyModule_Create(&tagscan_module);
}
