/* albstats._albparse: tokenize a block of ALB log lines straight into Arrow buffers.
 *
 * Semantics are those of albstats.parse.parse_line (the reference). This code only takes lines it can
 * vouch for: anything unusual (a carriage return, invalid UTF-8, a validator failure, too few tokens, a
 * value only Python's float()/int() could judge, a trailing space) is left out, and the caller hands those
 * lines to parse_line, which decides whether they are rows or bad lines. So rows and statistics equal the
 * reference by construction, as long as every line taken here is parsed exactly like parse_line does.
 *
 * parse_block(data, tokens, min_tokens, columns) -> (line_indexes, [column, ...])
 *   data:       bytes-like, whole lines each ending with '\n' (a tail without '\n' is ignored)
 *   tokens:     sequence of (validator, kind) per schema token; validator codes see V_*, kind K_*
 *   min_tokens: fewer tokens than this -> the line is left to Python
 *   columns:    sequence of (token index or -1 for extra_fields, sub-column, type T_*)
 * Returns the indexes (int64 bytes) of the lines taken, in order, and per column a tuple
 * (null_count, validity bitmap bytes or None, offsets bytes, data bytes) for strings or
 * (null_count, validity bitmap bytes or None, values bytes) for numbers.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <locale.h>
#if defined(__linux__)
#define HAVE_STRTOD_L 1
#elif defined(__APPLE__)
#include <xlocale.h>
#define HAVE_STRTOD_L 1
#endif

enum { V_NONE, V_TYPE, V_TIMESTAMP, V_TIMESTAMP_OR_DASH, V_NUMBER, V_STATUS, V_INTEGER, V_IP, V_HOSTPORT };
enum { K_PLAIN, K_HOSTPORT, K_REQUEST };
enum { T_STRING, T_INT32, T_INT64, T_DOUBLE };

#define MAX_TOKENS 256

typedef struct {
    char *p;
    size_t len, cap;
} Buf;

static int buf_reserve(Buf *b, size_t extra) {
    if (b->len + extra <= b->cap) return 0;
    size_t nc = b->cap ? b->cap : 4096;
    while (nc < b->len + extra) nc *= 2;
    char *q = realloc(b->p, nc);
    if (!q) return -1;
    b->p = q;
    b->cap = nc;
    return 0;
}

typedef struct {
    int tok, sub, type;
    Buf data, offs, valid; /* valid: one byte per row, packed into bits at the end */
    Py_ssize_t nnull;
    /* this line's value */
    const char *sp;
    size_t sl;
    int isnull;
    int64_t iv;
    double dv;
} Col;

#ifdef HAVE_STRTOD_L
static locale_t c_locale;
#endif

static inline int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static int all_digits(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!is_digit((unsigned char)s[i])) return 0;
    return 1;
}

/* -?\d+(\.\d+)? */
static int match_number(const char *s, size_t n) {
    size_t i = 0;
    if (i < n && s[i] == '-') i++;
    size_t d = i;
    while (i < n && is_digit((unsigned char)s[i])) i++;
    if (i == d) return 0;
    if (i == n) return 1;
    if (s[i] != '.') return 0;
    i++;
    d = i;
    while (i < n && is_digit((unsigned char)s[i])) i++;
    return i > d && i == n;
}

/* -?\d+ */
static int match_int(const char *s, size_t n) {
    size_t i = (n && s[0] == '-') ? 1 : 0;
    return n > i && all_digits(s + i, n - i);
}

/* \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z? */
static int match_ts(const char *s, size_t n) {
    static const char pat[] = "dddd-dd-ddTdd:dd:dd";
    if (n < 19) return 0;
    for (int i = 0; i < 19; i++) {
        if (pat[i] == 'd') {
            if (!is_digit((unsigned char)s[i])) return 0;
        } else if (s[i] != pat[i]) {
            return 0;
        }
    }
    size_t i = 19;
    if (i < n && s[i] == '.') {
        size_t d = ++i;
        while (i < n && is_digit((unsigned char)s[i])) i++;
        if (i == d) return 0;
    }
    if (i < n && s[i] == 'Z') i++;
    return i == n;
}

static int eq(const char *s, size_t n, const char *lit) { return strlen(lit) == n && memcmp(s, lit, n) == 0; }

static int valid(int v, const char *s, size_t n) {
    switch (v) {
    case V_NONE:
        return 1;
    case V_TYPE:
        return eq(s, n, "http") || eq(s, n, "https") || eq(s, n, "h2") || eq(s, n, "grpcs") || eq(s, n, "ws") ||
               eq(s, n, "wss");
    case V_TIMESTAMP:
        return match_ts(s, n);
    case V_TIMESTAMP_OR_DASH:
        return eq(s, n, "-") || match_ts(s, n);
    case V_NUMBER:
        return match_number(s, n);
    case V_STATUS:
        return eq(s, n, "-") || (n == 3 && all_digits(s, 3));
    case V_INTEGER:
        return eq(s, n, "-") || match_int(s, n);
    case V_IP:
        if (n == 0) return 0;
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)s[i];
            if (!(is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' || c == '.')) return 0;
        }
        return 1;
    case V_HOSTPORT: {
        if (eq(s, n, "-")) return 1;
        const char *c = NULL;
        for (size_t i = n; i > 0; i--)
            if (s[i - 1] == ':') {
                c = s + i - 1;
                break;
            }
        return c != NULL && all_digits(c + 1, (size_t)(s + n - c - 1));
    }
    default:
        return 0;
    }
}

/* Strict UTF-8 as Python decodes it (no overlongs, no surrogates, <= U+10FFFF). */
static int utf8_ok(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            if (i + 1 >= n || (s[i + 1] & 0xC0) != 0x80) return 0;
            i += 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            if (i + 2 >= n) return 0;
            unsigned char c1 = s[i + 1];
            if ((c1 & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80) return 0;
            if (c == 0xE0 && c1 < 0xA0) return 0;
            if (c == 0xED && c1 > 0x9F) return 0;
            i += 3;
        } else if (c >= 0xF0 && c <= 0xF4) {
            if (i + 3 >= n) return 0;
            unsigned char c1 = s[i + 1];
            if ((c1 & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80 || (s[i + 3] & 0xC0) != 0x80) return 0;
            if (c == 0xF0 && c1 < 0x90) return 0;
            if (c == 0xF4 && c1 > 0x8F) return 0;
            i += 4;
        } else {
            return 0;
        }
    }
    return 1;
}

/* A matched -?\d+ as an integer in [lo, hi]: 1, out of range: 0 (NULL, as Python's _cast gives). */
static int to_int(const char *s, size_t n, int64_t lo, int64_t hi, int64_t *out) {
    int neg = 0;
    if (n && s[0] == '-') {
        neg = 1;
        s++;
        n--;
    }
    while (n > 1 && s[0] == '0') {
        s++;
        n--;
    }
    if (n > 19) return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) v = v * 10 + (uint64_t)(s[i] - '0');
    if (neg) {
        if (v > (uint64_t)hi + 1) return 0; /* -lo == hi + 1 for int32/int64 */
        *out = v == (uint64_t)hi + 1 ? lo : -(int64_t)v;
    } else {
        if (v > (uint64_t)hi) return 0;
        *out = (int64_t)v;
    }
    return 1;
}

/* Returns 1 done, 0 leave the line to Python. */
static int cast_number(Col *c, const char *s, size_t n) {
    if (c->type == T_STRING) {
        c->sp = s;
        c->sl = n;
        return 1;
    }
    if (eq(s, n, "-")) { /* float('-') and _INT_RE both fail: NULL */
        c->isnull = 1;
        return 1;
    }
    if (c->type == T_DOUBLE) {
        if (!match_number(s, n) || n > 300) return 0;
        char tmp[320];
        memcpy(tmp, s, n);
        tmp[n] = 0;
#ifdef HAVE_STRTOD_L
        c->dv = strtod_l(tmp, NULL, c_locale);
#else
        c->dv = strtod(tmp, NULL);
#endif
        return 1;
    }
    if (!match_int(s, n)) return 0; /* Python's \d also takes other digits: let it judge */
    int64_t lo = c->type == T_INT32 ? INT32_MIN : INT64_MIN, hi = c->type == T_INT32 ? INT32_MAX : INT64_MAX;
    if (!to_int(s, n, lo, hi, &c->iv)) c->isnull = 1;
    return 1;
}

typedef struct {
    const char *cs; /* content start (quotes removed) */
    size_t cl;
} Tok;

static int hostport_value(Col *c, const char *s, size_t n) {
    if (eq(s, n, "-")) {
        if (c->sub == 0) {
            c->sp = s;
            c->sl = 0;
        } else {
            c->isnull = 1;
        }
        return 1;
    }
    const char *colon = NULL;
    for (size_t i = n; i > 0; i--)
        if (s[i - 1] == ':') {
            colon = s + i - 1;
            break;
        }
    if (!colon) return 0;
    if (c->sub == 0) {
        size_t hl = (size_t)(colon - s);
        if (hl >= 2 && s[0] == '[' && s[hl - 1] == ']') {
            c->sp = s + 1;
            c->sl = hl - 2;
        } else {
            c->sp = s;
            c->sl = hl;
        }
        if (c->type != T_STRING) return 0;
        return 1;
    }
    const char *p = colon + 1;
    size_t pl = (size_t)(s + n - p);
    if (!all_digits(p, pl) || c->type != T_INT32) return 0;
    if (pl == 0 || !to_int(p, pl, INT32_MIN, INT32_MAX, &c->iv)) c->isnull = 1;
    return 1;
}

static int request_value(Col *c, const char *s, size_t n) {
    const char *first = memchr(s, ' ', n);
    const char *last = NULL;
    if (c->type != T_STRING) return 0;
    if (first)
        for (size_t i = n; i > 0; i--)
            if (s[i - 1] == ' ') {
                last = s + i - 1;
                break;
            }
    if (c->sub == 0) {
        c->sp = s;
        c->sl = first ? (size_t)(first - s) : n;
    } else if (c->sub == 1) {
        if (!first) {
            c->isnull = 1;
        } else if (last == first) {
            c->sp = first + 1;
            c->sl = (size_t)(s + n - first - 1);
        } else {
            c->sp = first + 1;
            c->sl = (size_t)(last - first - 1);
        }
    } else {
        if (!first || last == first) {
            c->isnull = 1;
        } else {
            c->sp = last + 1;
            c->sl = (size_t)(s + n - last - 1);
        }
    }
    return 1;
}

typedef struct {
    int ntok, min_tokens, ncols;
    int *validators, *kinds;
    Col *cols;
    Buf idx;
    int oom, overflow;
} State;

/* One line [s, e) without its '\n'. Returns 1 when taken (values appended), 0 when left to Python. */
static int do_line(State *st, const char *s, const char *e, Tok *toks) {
    size_t n = (size_t)(e - s);
    if (n == 0 || e[-1] == ' ') return 0;
    if (memchr(s, '\r', n)) return 0;
    {
        /* non-ASCII: must be valid UTF-8, or Python's decode would replace bytes */
        const unsigned char *u = (const unsigned char *)s;
        size_t i = 0;
        uint64_t hi = 0;
        for (; i + 8 <= n; i += 8) {
            uint64_t w;
            memcpy(&w, u + i, 8);
            hi |= w;
        }
        for (; i < n; i++) hi |= u[i];
        if ((hi & 0x8080808080808080ULL) && !utf8_ok(u, n)) return 0;
    }
    /* tokenize: "(escaped)" or bare [^ "][^ ]*, each followed by one space or the end */
    int nt = 0;
    const char *extra = NULL;
    const char *p = s;
    while (p < e) {
        const char *q, *cs, *ce;
        if (*p == '"') {
            q = p + 1;
            while (q < e && *q != '"') {
                if (*q == '\\') {
                    if (q + 1 >= e) return 0;
                    q += 2;
                } else {
                    q++;
                }
            }
            if (q >= e) return 0;
            cs = p + 1;
            ce = q;
            q++;
        } else if (*p == ' ') {
            return 0;
        } else {
            q = memchr(p, ' ', (size_t)(e - p));
            if (!q) q = e;
            cs = p;
            ce = q;
        }
        if (nt < st->ntok) {
            toks[nt].cs = cs;
            toks[nt].cl = (size_t)(ce - cs);
        } else if (nt == st->ntok) {
            extra = p;
        }
        nt++;
        if (q == e) break;
        if (*q != ' ') return 0;
        p = q + 1;
    }
    if (nt < st->min_tokens) return 0;
    int known = nt < st->ntok ? nt : st->ntok;
    for (int i = 0; i < known; i++)
        if (!valid(st->validators[i], toks[i].cs, toks[i].cl)) return 0;
    for (int k = 0; k < st->ncols; k++) {
        Col *c = &st->cols[k];
        c->isnull = 0;
        c->sp = NULL;
        c->sl = 0;
        c->iv = 0;
        c->dv = 0;
        if (c->tok < 0) {
            if (extra) {
                c->sp = extra;
                c->sl = (size_t)(e - extra);
            } else {
                c->isnull = 1;
            }
            if (c->type != T_STRING) return 0;
            continue;
        }
        if (c->tok >= nt) {
            c->isnull = 1;
            continue;
        }
        const Tok *t = &toks[c->tok];
        int ok;
        switch (st->kinds[c->tok]) {
        case K_HOSTPORT:
            ok = hostport_value(c, t->cs, t->cl);
            break;
        case K_REQUEST:
            ok = request_value(c, t->cs, t->cl);
            break;
        default:
            ok = cast_number(c, t->cs, t->cl);
        }
        if (!ok) return 0;
    }
    /* taken: append */
    for (int k = 0; k < st->ncols; k++) {
        Col *c = &st->cols[k];
        if (buf_reserve(&c->valid, 1)) goto oom;
        c->valid.p[c->valid.len++] = (char)!c->isnull;
        c->nnull += c->isnull;
        if (c->type == T_STRING) {
            if (!c->isnull && c->sl) {
                if (buf_reserve(&c->data, c->sl)) goto oom;
                memcpy(c->data.p + c->data.len, c->sp, c->sl);
                c->data.len += c->sl;
            }
            if (c->data.len > INT32_MAX) {
                st->overflow = 1;
                return 0;
            }
            if (buf_reserve(&c->offs, 4)) goto oom;
            int32_t o = (int32_t)c->data.len;
            memcpy(c->offs.p + c->offs.len, &o, 4);
            c->offs.len += 4;
        } else if (c->type == T_DOUBLE) {
            if (buf_reserve(&c->data, 8)) goto oom;
            memcpy(c->data.p + c->data.len, &c->dv, 8);
            c->data.len += 8;
        } else if (c->type == T_INT64) {
            if (buf_reserve(&c->data, 8)) goto oom;
            memcpy(c->data.p + c->data.len, &c->iv, 8);
            c->data.len += 8;
        } else {
            int32_t v = (int32_t)c->iv;
            if (buf_reserve(&c->data, 4)) goto oom;
            memcpy(c->data.p + c->data.len, &v, 4);
            c->data.len += 4;
        }
    }
    return 1;
oom:
    st->oom = 1;
    return 0;
}

static int read_int_seq(PyObject *seq, Py_ssize_t i, Py_ssize_t j, int *out) {
    PyObject *item = PySequence_GetItem(seq, i);
    if (!item) return -1;
    PyObject *x = PySequence_GetItem(item, j);
    Py_DECREF(item);
    if (!x) return -1;
    long v = PyLong_AsLong(x);
    Py_DECREF(x);
    if (v == -1 && PyErr_Occurred()) return -1;
    *out = (int)v;
    return 0;
}

static PyObject *bits_bytes(const Buf *valid, Py_ssize_t nrows) {
    PyObject *b = PyBytes_FromStringAndSize(NULL, (nrows + 7) / 8);
    if (!b) return NULL;
    unsigned char *o = (unsigned char *)PyBytes_AS_STRING(b);
    memset(o, 0, (size_t)((nrows + 7) / 8));
    for (Py_ssize_t i = 0; i < nrows; i++)
        if (valid->p[i]) o[i >> 3] |= (unsigned char)(1u << (i & 7));
    return b;
}

static PyObject *parse_block(PyObject *self, PyObject *args) {
    PyObject *data_obj, *tokens, *columns;
    int min_tokens;
    if (!PyArg_ParseTuple(args, "OOiO", &data_obj, &tokens, &min_tokens, &columns)) return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(data_obj, &view, PyBUF_SIMPLE) < 0) return NULL;
    PyObject *result = NULL;
    State st;
    memset(&st, 0, sizeof st);
    Tok *toks = NULL;
    Py_ssize_t ntok = PySequence_Size(tokens), ncols = PySequence_Size(columns);
    if (ntok < 0 || ncols < 0) goto done;
    if (ntok > MAX_TOKENS) {
        PyErr_SetString(PyExc_ValueError, "too many tokens");
        goto done;
    }
    st.ntok = (int)ntok;
    st.min_tokens = min_tokens;
    st.ncols = (int)ncols;
    st.validators = calloc((size_t)ntok + 1, sizeof(int));
    st.kinds = calloc((size_t)ntok + 1, sizeof(int));
    st.cols = calloc((size_t)ncols + 1, sizeof(Col));
    toks = calloc((size_t)ntok + 1, sizeof(Tok));
    if (!st.validators || !st.kinds || !st.cols || !toks) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < ntok; i++)
        if (read_int_seq(tokens, i, 0, &st.validators[i]) || read_int_seq(tokens, i, 1, &st.kinds[i])) goto done;
    for (Py_ssize_t k = 0; k < ncols; k++) {
        Col *c = &st.cols[k];
        if (read_int_seq(columns, k, 0, &c->tok) || read_int_seq(columns, k, 1, &c->sub) ||
            read_int_seq(columns, k, 2, &c->type))
            goto done;
        if (c->tok >= ntok || c->type < T_STRING || c->type > T_DOUBLE) {
            PyErr_SetString(PyExc_ValueError, "bad column spec");
            goto done;
        }
    }
    for (Py_ssize_t k = 0; k < ncols; k++) {
        Col *c = &st.cols[k];
        if (c->type == T_STRING) {
            if (buf_reserve(&c->offs, 4)) {
                PyErr_NoMemory();
                goto done;
            }
            memset(c->offs.p, 0, 4);
            c->offs.len = 4;
        }
    }
    const char *buf = (const char *)view.buf;
    size_t len = (size_t)view.len;
    Py_BEGIN_ALLOW_THREADS;
    int64_t line = 0;
    size_t pos = 0;
    while (pos < len) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        if (!nl) break;
        if (do_line(&st, buf + pos, nl, toks)) {
            if (buf_reserve(&st.idx, 8)) {
                st.oom = 1;
            } else {
                memcpy(st.idx.p + st.idx.len, &line, 8);
                st.idx.len += 8;
            }
        }
        if (st.oom || st.overflow) break;
        line++;
        pos = (size_t)(nl - buf) + 1;
    }
    Py_END_ALLOW_THREADS;
    if (st.oom) {
        PyErr_NoMemory();
        goto done;
    }
    if (st.overflow) {
        PyErr_SetString(PyExc_OverflowError, "string column over 2 GB in one block");
        goto done;
    }
    Py_ssize_t nrows = (Py_ssize_t)(st.idx.len / 8);
    PyObject *cols = PyList_New(ncols);
    if (!cols) goto done;
    for (Py_ssize_t k = 0; k < ncols; k++) {
        Col *c = &st.cols[k];
        PyObject *valid = c->nnull ? bits_bytes(&c->valid, nrows) : (Py_INCREF(Py_None), Py_None);
        PyObject *item;
        if (!valid) {
            Py_DECREF(cols);
            goto done;
        }
        if (c->type == T_STRING)
            item = Py_BuildValue("(nNy#y#)", c->nnull, valid, c->offs.p, (Py_ssize_t)c->offs.len,
                                 c->data.p ? c->data.p : "", (Py_ssize_t)c->data.len);
        else
            item = Py_BuildValue("(nNy#)", c->nnull, valid, c->data.p ? c->data.p : "", (Py_ssize_t)c->data.len);
        if (!item) {
            Py_DECREF(cols);
            goto done;
        }
        PyList_SET_ITEM(cols, k, item);
    }
    result = Py_BuildValue("(y#N)", st.idx.p ? st.idx.p : "", (Py_ssize_t)st.idx.len, cols);
done:
    if (st.cols)
        for (Py_ssize_t k = 0; k < ncols; k++) {
            free(st.cols[k].data.p);
            free(st.cols[k].offs.p);
            free(st.cols[k].valid.p);
        }
    free(st.cols);
    free(st.validators);
    free(st.kinds);
    free(toks);
    free(st.idx.p);
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef methods[] = {
    {"parse_block", parse_block, METH_VARARGS,
     "parse_block(data, tokens, min_tokens, columns) -> (line indexes as int64 bytes, column buffers)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_albparse",
                                    "ALB log lines to Arrow buffers (see albstats.parse)", -1, methods};

PyMODINIT_FUNC PyInit__albparse(void) {
#ifdef HAVE_STRTOD_L
    c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
    if (!c_locale) return PyErr_NoMemory();
#endif
    return PyModule_Create(&module);
}
