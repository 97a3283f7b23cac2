/*
 * mailseal.dkim._canon: optional C accelerator for relaxed body canonicalization.
 *
 * relaxed_segment(seg: bytes) -> bytes does exactly what the pure-Python
 * mailseal.dkim.canon._relaxed_segment_py does (RFC 6376 section 3.4.4, rule a):
 * every run of WSP (SP, HTAB) becomes one SP, and a run directly followed by
 * CRLF is deleted. A bare CR or LF is ordinary text. When nothing changes the
 * very same bytes object is returned. The chunking and the carry of a trailing
 * CR or WSP across chunks stay in Python (BodyCanonicalizer).
 *
 * One pass, no allocation when nothing changes: a scan finds the next WSP run
 * that changes (none in most 64 KB segments of ordinary text), the text before
 * it is copied with memcpy, the run is written as its one SP or nothing, and
 * the scan goes on after it. The scan looks at 16 bytes at a time with SSE2
 * where the compiler targets it (every x86-64), one at a time elsewhere. The
 * output is never longer than the input, so one buffer of the input's size
 * holds it. Any byte value (NUL, high bytes) is text; indices are Py_ssize_t
 * and every read is inside [0, n).
 *
 * The pure-Python path is used when this module is not built (no C compiler)
 * or when MAILSEAL_PURE_PYTHON=1; tests/dkim/test_canon_accel.py checks that
 * both give the same output.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#if !defined(MAILSEAL_NO_SIMD) && defined(__SSE2__) && (defined(__GNUC__) || defined(__clang__))
#define MAILSEAL_SSE2 1
#include <emmintrin.h>
#endif

#define SP 0x20
#define HTAB 0x09
#define CR 0x0D
#define LF 0x0A

#define IS_WSP(c) ((c) == SP || (c) == HTAB)

/* Does the WSP byte at s[i] start a run that the rules change? A run is left
 * alone only when it is a single SP not followed by CRLF. Called only at the
 * start of a run (the byte before s[i], if any, is not WSP). */
static inline int
run_changes(const unsigned char *s, Py_ssize_t i, Py_ssize_t n)
{
    Py_ssize_t rest = n - i - 1; /* bytes after s[i] */
    if (s[i] == HTAB) {
        return 1;
    }
    if (rest < 1) {
        return 0;
    }
    if (IS_WSP(s[i + 1])) {
        return 1;
    }
    return rest >= 2 && s[i + 1] == CR && s[i + 2] == LF;
}

#ifdef MAILSEAL_SSE2
/* Bit k set: s[i + k] is HTAB, or SP followed by SP, HTAB or CR (a superset of
 * the run starts that change). Reads s[i .. i + 16]. */
static inline unsigned int
block_hits(const unsigned char *s, Py_ssize_t i)
{
    const __m128i sp = _mm_set1_epi8(SP);
    const __m128i tab = _mm_set1_epi8(HTAB);
    __m128i v = _mm_loadu_si128((const __m128i *)(s + i));
    __m128i next = _mm_loadu_si128((const __m128i *)(s + i + 1));
    __m128i next_hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(next, sp), _mm_cmpeq_epi8(next, tab)),
                                    _mm_cmpeq_epi8(next, _mm_set1_epi8(CR)));
    __m128i hit = _mm_or_si128(_mm_cmpeq_epi8(v, tab), _mm_and_si128(_mm_cmpeq_epi8(v, sp), next_hit));
    return (unsigned int)_mm_movemask_epi8(hit);
}
#endif

/* Index of the first WSP run at or after `i` that the rules change, or n if
 * there is none. `i` must be 0 or follow a non-WSP byte: then every WSP byte
 * met before the answer starts a run (the runs skipped are single SPs followed
 * by a non-WSP byte), so the answer is the start of a run. */
static Py_ssize_t
first_change(const unsigned char *s, Py_ssize_t i, Py_ssize_t n)
{
#ifdef MAILSEAL_SSE2
    while (n - i >= 17) { /* the block and the byte after it are readable */
        unsigned int mask = block_hits(s, i);
        while (mask) {
            Py_ssize_t p = i + __builtin_ctz(mask);
            if (run_changes(s, p, n)) {
                return p;
            }
            mask &= mask - 1; /* SP CR without LF: text, look further */
        }
        i += 16;
    }
#endif
    for (; i < n; i++) {
        if (IS_WSP(s[i]) && run_changes(s, i, n)) {
            return i;
        }
    }
    return n;
}

static PyObject *
relaxed_segment(PyObject *Py_UNUSED(module), PyObject *arg)
{
    if (!PyBytes_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "relaxed_segment() argument must be bytes, not %.200s",
                     Py_TYPE(arg)->tp_name);
        return NULL;
    }
    const unsigned char *s = (const unsigned char *)PyBytes_AS_STRING(arg);
    Py_ssize_t n = PyBytes_GET_SIZE(arg);

    Py_ssize_t i = first_change(s, 0, n);
    if (i == n) {
        Py_INCREF(arg);
        return arg; /* nothing to change: the same object, as the Python version */
    }

    /* The output is never longer than the input. */
    PyObject *out = PyBytes_FromStringAndSize(NULL, n);
    if (out == NULL) {
        return NULL;
    }
    unsigned char *o = (unsigned char *)PyBytes_AS_STRING(out);
    memcpy(o, s, (size_t)i);
    o += i;

    for (;;) {
        /* s[i] starts a WSP run: find its end, emit one SP unless CRLF follows. */
        Py_ssize_t j = i + 1;
        while (j < n && IS_WSP(s[j])) {
            j++;
        }
        if (!(n - j >= 2 && s[j] == CR && s[j + 1] == LF)) {
            *o++ = SP;
        }
        /* s[j] (if any) is not WSP: copy up to the next run that changes. */
        Py_ssize_t k = first_change(s, j, n);
        memcpy(o, s + j, (size_t)(k - j));
        o += k - j;
        if (k == n) {
            break;
        }
        i = k;
    }

    Py_ssize_t len = (Py_ssize_t)(o - (unsigned char *)PyBytes_AS_STRING(out));
    if (len != n && _PyBytes_Resize(&out, len) < 0) {
        return NULL; /* _PyBytes_Resize has released out */
    }
    return out;
}

static PyMethodDef canon_methods[] = {
    {"relaxed_segment", relaxed_segment, METH_O,
     "relaxed_segment(seg, /)\n--\n\n"
     "Relaxed body rules on one segment: every run of SP/HTAB becomes one SP,\n"
     "and a run followed by CRLF is deleted. Returns seg itself when unchanged."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef_Slot canon_slots[] = {
#if PY_VERSION_HEX >= 0x030C0000
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
#if PY_VERSION_HEX >= 0x030D0000
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef canon_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "mailseal.dkim._canon",
    .m_doc = "Optional C accelerator for mailseal.dkim.canon (relaxed body canonicalization).",
    .m_size = 0,
    .m_methods = canon_methods,
    .m_slots = canon_slots,
};

PyMODINIT_FUNC
PyInit__canon(void)
{
    return PyModuleDef_Init(&canon_module);
}
