/* albstats._albparse: tokenize a block of ALB log lines straight into Arrow buffers.
 *
 * Semantics are those of albstats.parsing.lines.parse_line (the reference). This code only takes lines it can
 * vouch for: anything unusual (a carriage return, invalid UTF-8, a validator failure, too few tokens, a
 * value only Python's float()/int() could judge, a trailing space) is left out, and the caller hands those
 * lines to parse_line, which decides whether they are rows or bad lines. So rows and statistics equal the
 * reference by construction, as long as every line taken here is parsed exactly like parse_line does.
 *
 * parse_block(data, tokens, min_tokens, columns) -> (line_indexes, [column, ...], other_lines, line_counts)
 *   data:       bytes-like or a list of them (read as one), whole lines each ending with '\n' (a tail
 *               without '\n' is ignored)
 *   tokens:     sequence of (validator, kind) per schema token; validator codes see V_*, kind K_*
 *   min_tokens: fewer tokens than this -> the line is left to Python
 *   columns:    sequence of (token index or -1 for extra_fields, sub-column, type T_*)
 * Returns the indexes (int64 bytes) of the lines taken, in order; per column a tuple
 * (null_count, validity bitmap bytes or None, offsets bytes, data bytes) for strings or
 * (null_count, validity bitmap bytes or None, values bytes) for numbers; the indexes (int64 bytes) of
 * the non-empty lines not taken (for parse_line); and the number of lines of each part.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <locale.h>
#if defined(__SSE2__) && defined(__GNUC__)
#include <emmintrin.h>
#define HAVE_SSE2 1
#endif
#if defined(__linux__)
#define HAVE_STRTOD_L 1
#elif defined(__APPLE__)
#include <xlocale.h>
#define HAVE_STRTOD_L 1
#endif

/* Each code with its name in albstats.schema (Token.validate, Token.kind, Column.type), in one list: the
 * module exports the names in code order (VALIDATORS, KINDS, TYPES) and Python maps names to codes with
 * them, so no list of codes is kept in step by hand. What each validator accepts is defined once, as a
 * regex in albstats.schema.VALIDATORS; tests/test_validators.py checks valid() below against it. */
#define VALIDATOR_LIST(X) \
    X(V_NONE, "") X(V_TYPE, "type") X(V_TIMESTAMP, "timestamp") X(V_TIMESTAMP_OR_DASH, "timestamp_or_dash") \
    X(V_NUMBER, "number") X(V_STATUS, "status") X(V_INTEGER, "integer") X(V_IP, "ip") X(V_HOSTPORT, "hostport")
#define KIND_LIST(X) X(K_PLAIN, "plain") X(K_HOSTPORT, "hostport") X(K_REQUEST, "request")
#define TYPE_LIST(X) X(T_STRING, "string") X(T_INT32, "int") X(T_INT64, "bigint") X(T_DOUBLE, "double")
#define AS_ENUM(code, name) code,
#define AS_NAME(code, name) name,
enum { VALIDATOR_LIST(AS_ENUM) V_COUNT };
enum { KIND_LIST(AS_ENUM) K_COUNT };
enum { TYPE_LIST(AS_ENUM) T_COUNT };
static const char *const validator_names[] = {VALIDATOR_LIST(AS_NAME)};
static const char *const kind_names[] = {KIND_LIST(AS_NAME)};
static const char *const type_names[] = {TYPE_LIST(AS_NAME)};

#define MAX_TOKENS 256

/* Output buffers are bytes objects allocated for the worst case before the loop (a string column's text
 * is at most the block's size: each value is a piece of a different line) and shrunk after it, so the
 * loop needs no capacity checks and nothing is copied at the end. */
typedef struct {
    int tok, sub, type;
    PyObject *data, *offs, *valid;
    char *dp;
    size_t dcap; /* strings: capacity of the malloc'd text buffer dp (grown by doubling) */
    int32_t *op;
    unsigned char *vp;
    size_t dlen;
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

/* \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z? with each field in its range and a day that exists
 * (albstats.schema's timestamp validator and real_date) */
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
/* Eight bytes against a pattern at once: x = w ^ expected is 0 at a literal and 0..9 at a digit, so
 * x + (0x7F - limit) keeps every high bit clear; a byte >= 0x80 sets its own (carries only reach a byte
 * above it, and the word fails anyway). */
static inline int match8(const char *s, uint64_t expect, uint64_t add) {
    uint64_t w;
    memcpy(&w, s, 8);
    uint64_t x = w ^ expect;
    return (((x + add) | x) & 0x8080808080808080ULL) == 0;
}
#endif

static int match_ts(const char *s, size_t n) {
    if (n < 19) return 0;
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    /* "dddd-dd-" "ddTdd:dd" and (overlapping) "dd:dd:dd" from byte 11 */
    if (!(match8(s, 0x2d30302d30303030ULL, 0x7f76767f76767676ULL) &&
          match8(s + 8, 0x30303a3030543030ULL, 0x76767f76767f7676ULL) &&
          match8(s + 11, 0x30303a30303a3030ULL, 0x76767f76767f7676ULL)))
        return 0;
#else
    static const char pat[] = "dddd-dd-ddTdd:dd:dd";
    for (int i = 0; i < 19; i++) {
        if (pat[i] == 'd') {
            if (!is_digit((unsigned char)s[i])) return 0;
        } else if (s[i] != pat[i]) {
            return 0;
        }
    }
#endif
#define TWO(k) ((s[k] - '0') * 10 + (s[k + 1] - '0'))
    int year = TWO(0) * 100 + TWO(2), month = TWO(5), day = TWO(8);
    if (month < 1 || month > 12 || day < 1 || TWO(11) > 23 || TWO(14) > 59 || TWO(17) > 59) return 0;
#undef TWO
    static const unsigned char month_days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    if (day > month_days[month - 1] + (month == 2 && leap)) return 0;
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
static double to_double(const char *s, size_t n);

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
        c->dv = to_double(s, n);
        return 1;
    }
    if (!match_int(s, n)) return 0; /* Python's \d also takes other digits: let it judge */
    int64_t lo = c->type == T_INT32 ? INT32_MIN : INT64_MIN, hi = c->type == T_INT32 ? INT32_MAX : INT64_MAX;
    if (!to_int(s, n, lo, hi, &c->iv)) c->isnull = 1;
    return 1;
}

/* The first space in [p, e), or e; eight bytes at a time (bare tokens are short: cheaper than memchr). */
static inline const char *find_space(const char *p, const char *e) {
#ifdef HAVE_SSE2
    const __m128i sp = _mm_set1_epi8(' ');
    while (e - p >= 16) {
        int m = _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)p), sp));
        if (m) return p + __builtin_ctz((unsigned)m);
        p += 16;
    }
#endif
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    while (e - p >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        uint64_t x = w ^ 0x2020202020202020ULL;
        uint64_t z = (x - 0x0101010101010101ULL) & ~x & 0x8080808080808080ULL;
        if (z) return p + (__builtin_ctzll(z) >> 3); /* little-endian: lowest set byte is the first space */
        p += 8;
    }
#endif
    while (p < e && *p != ' ') p++;
    return p;
}

/* -?\d+(\.\d+)? as a double, correctly rounded: exact when the digits fit in 2^53 and at most 22 are
 * after the point (one IEEE division of two exact values); otherwise strtod. */
static double to_double(const char *s, size_t n) {
    const char *p = s, *e = s + n;
    int neg = 0;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    uint64_t m = 0;
    int digits = 0, frac = -1;
    for (; p < e; p++) {
        if (*p == '.') {
            frac = 0;
            continue;
        }
        if (m || *p != '0') digits++;
        m = m * 10 + (uint64_t)(*p - '0');
        if (frac >= 0) frac++;
        if (digits > 15) break;
    }
    if (p == e && (frac < 0 || frac <= 22)) {
        static const double p10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
                                     1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
        double v = (double)m / p10[frac < 0 ? 0 : frac];
        return neg ? -v : v;
    }
    char tmp[320];
    memcpy(tmp, s, n);
    tmp[n] = 0;
#ifdef HAVE_STRTOD_L
    return strtod_l(tmp, NULL, c_locale);
#else
    return strtod(tmp, NULL);
#endif
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
    int ntok, min_tokens, ncols, nchecked;
    int *validators, *kinds;
    int *checked; /* the tokens with a validator, in order (most tokens have none) */
    Col *cols;
    int64_t *idx;
    size_t nrows;
    int oom;
} State;

/* The first '"' or backslash in [p, e), or e: where a quoted field ends or needs the escape-aware loop. */
static inline const char *find_quote(const char *p, const char *e) {
#ifdef HAVE_SSE2
    const __m128i quote = _mm_set1_epi8('"'), bs = _mm_set1_epi8('\\');
    while (e - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)p);
        int m = _mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bs)));
        if (m) return p + __builtin_ctz((unsigned)m);
        p += 16;
    }
#endif
    while (p < e && *p != '"' && *p != '\\') p++;
    return p;
}

/* The end of the line starting at p: the first '\n' in [p, e), or NULL when there is none. On the way it
 * notes in *odd whether the line has a carriage return (bit 1) or a byte >= 0x80 (bit 2), so that a line is
 * read once to find its end and to check it, not twice. */
static inline const char *line_end(const char *p, const char *e, unsigned *odd) {
    const unsigned char *u = (const unsigned char *)p;
    const unsigned char *ue = (const unsigned char *)e;
#ifdef HAVE_SSE2
    const __m128i nl = _mm_set1_epi8('\n'), r = _mm_set1_epi8('\r');
    __m128i vh = _mm_setzero_si128(), vr = _mm_setzero_si128();
    for (; ue - u >= 16; u += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)u);
        unsigned m = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, nl));
        if (m) { /* the line ends in these 16 bytes: only the bytes before the '\n' count */
            unsigned before = (1u << __builtin_ctz(m)) - 1;
            unsigned hi = (unsigned)_mm_movemask_epi8(v) & before;
            unsigned cr = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, r)) & before;
            *odd = ((cr || _mm_movemask_epi8(vr)) ? 1u : 0u) | ((hi || _mm_movemask_epi8(vh)) ? 2u : 0u);
            return (const char *)u + __builtin_ctz(m);
        }
        vh = _mm_or_si128(vh, v);
        vr = _mm_or_si128(vr, _mm_cmpeq_epi8(v, r));
    }
    unsigned flags = ((unsigned)_mm_movemask_epi8(vr) ? 1u : 0u) | ((unsigned)_mm_movemask_epi8(vh) ? 2u : 0u);
#else
    unsigned flags = 0;
#endif
    for (; u < ue; u++) {
        if (*u == '\n') {
            *odd = flags;
            return (const char *)u;
        }
        flags |= (*u == '\r' ? 1u : 0u) | (*u & 0x80 ? 2u : 0u);
    }
    return NULL;
}

/* memcpy for the short values most fields are: fixed-size moves the compiler inlines, not a library call
 * per value. Never reads or writes outside [s, s+n) and [d, d+n). */
static inline void copy_value(char *d, const char *s, size_t n) {
    if (n > 32) {
        memcpy(d, s, n);
    } else if (n >= 16) {
        char a[16], b[16];
        memcpy(a, s, 16);
        memcpy(b, s + n - 16, 16);
        memcpy(d, a, 16);
        memcpy(d + n - 16, b, 16);
    } else if (n >= 8) {
        uint64_t a, b;
        memcpy(&a, s, 8);
        memcpy(&b, s + n - 8, 8);
        memcpy(d, &a, 8);
        memcpy(d + n - 8, &b, 8);
    } else if (n >= 4) {
        uint32_t a, b;
        memcpy(&a, s, 4);
        memcpy(&b, s + n - 4, 4);
        memcpy(d, &a, 4);
        memcpy(d + n - 4, &b, 4);
    } else if (n) {
        d[0] = s[0];
        d[n / 2] = s[n / 2];
        d[n - 1] = s[n - 1];
    }
}

/* One line [s, e) without its '\n', with line_end's flags. Returns 1 when taken (values appended), 0 when
 * left to Python. */
static int do_line(State *st, const char *s, const char *e, unsigned odd, Tok *toks) {
    size_t n = (size_t)(e - s);
    if (n == 0 || e[-1] == ' ') return 0;
    /* no carriage return; non-ASCII must be valid UTF-8, or Python's decode would replace bytes */
    if ((odd & 1) || ((odd & 2) && !utf8_ok((const unsigned char *)s, n))) return 0;
    /* tokenize: "(escaped)" or bare [^ "][^ ]*, each followed by one space or the end */
    int nt = 0;
    const char *extra = NULL;
    const char *p = s;
    while (p < e) {
        const char *q, *cs, *ce;
        if (*p == '"') {
            /* the next quote ends the token unless a backslash comes before it (then: the escape-aware loop) */
            q = find_quote(p + 1, e);
            if (q < e && *q == '\\') {
                while (q < e && *q != '"') {
                    if (*q == '\\') {
                        if (q + 1 >= e) return 0;
                        q += 2;
                    } else {
                        q++;
                    }
                }
            }
            if (q >= e) return 0; /* unterminated */
            cs = p + 1;
            ce = q;
            q++;
        } else if (*p == ' ') {
            return 0;
        } else {
            q = find_space(p, e);
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
    for (int j = 0; j < st->nchecked; j++) {
        int i = st->checked[j];
        if (i >= known) break;
        if (!valid(st->validators[i], toks[i].cs, toks[i].cl)) return 0;
    }
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
    size_t r = st->nrows;
    for (int k = 0; k < st->ncols; k++) {
        Col *c = &st->cols[k];
        if (c->isnull)
            c->nnull++;
        else
            c->vp[r >> 3] |= (unsigned char)(1u << (r & 7));
        switch (c->type) {
        case T_STRING:
            if (!c->isnull && c->sl) { /* an empty value copies nothing: dp may still be NULL (UB) */
                if (c->dlen + c->sl > c->dcap) {
                    size_t cap = c->dcap ? c->dcap : 65536;
                    while (cap < c->dlen + c->sl) cap *= 2;
                    char *q = realloc(c->dp, cap);
                    if (!q) {
                        st->oom = 1;
                        return 0;
                    }
                    c->dp = q;
                    c->dcap = cap;
                }
                copy_value(c->dp + c->dlen, c->sp, c->sl);
                c->dlen += c->sl;
            }
            c->op[r + 1] = (int32_t)c->dlen;
            break;
        case T_DOUBLE:
            ((double *)c->dp)[r] = c->dv;
            break;
        case T_INT64:
            ((int64_t *)c->dp)[r] = c->iv;
            break;
        default:
            ((int32_t *)c->dp)[r] = (int32_t)c->iv;
        }
    }
    st->nrows = r + 1;
    return 1;
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

/* A malloc'd buffer exposed through the buffer protocol (freed with the object): string columns' text is
 * grown by doubling while the GIL is released, then handed to Arrow without a copy. Allocating it for the
 * worst case up front (the block's size, per column) left the workers' heaps fragmented. */
typedef struct {
    PyObject_HEAD char *p;
    Py_ssize_t n;
} RawBuf;

static void rawbuf_dealloc(RawBuf *self) {
    free(self->p);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int rawbuf_getbuffer(RawBuf *self, Py_buffer *view, int flags) {
    return PyBuffer_FillInfo(view, (PyObject *)self, self->p ? self->p : (char *)"", self->n, 1, flags);
}

static PyBufferProcs rawbuf_as_buffer = {(getbufferproc)rawbuf_getbuffer, NULL};

static PyTypeObject RawBufType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "albstats._albparse.Buffer",
    .tp_basicsize = sizeof(RawBuf),
    .tp_dealloc = (destructor)rawbuf_dealloc,
    .tp_as_buffer = &rawbuf_as_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "text of one string column (buffer protocol)",
};

/* Takes ownership of p. */
static PyObject *rawbuf_new(char *p, size_t n) {
    if (p && n) {
        char *q = realloc(p, n); /* give back the unused capacity */
        if (q) p = q;
    }
    RawBuf *b = PyObject_New(RawBuf, &RawBufType);
    if (!b) {
        free(p);
        return NULL;
    }
    b->p = p;
    b->n = (Py_ssize_t)n;
    return (PyObject *)b;
}

static PyObject *new_bytes(size_t n, char **p) {
    PyObject *b = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n);
    if (b) *p = PyBytes_AS_STRING(b);
    return b;
}

/* After the first SAMPLE_ROWS rows: grow each text buffer once to what the whole block will likely need
 * (their bytes per row so far, times the block's lines, plus a quarter), instead of doubling it several
 * times, each time copying it and touching fresh pages. Returns 0 when out of memory. */
#define SAMPLE_ROWS 256
static int reserve(State *st, size_t lines) {
    for (int k = 0; k < st->ncols; k++) {
        Col *c = &st->cols[k];
        if (c->type != T_STRING) continue;
        size_t want = c->dlen / SAMPLE_ROWS * lines;
        want += want / 4 + 4096;
        if (want <= c->dcap) continue;
        char *q = realloc(c->dp, want);
        if (!q) {
            st->oom = 1;
            return 0;
        }
        c->dp = q;
        c->dcap = want;
    }
    return 1;
}

static PyObject *parse_block(PyObject *self, PyObject *args) {
    PyObject *data_obj, *tokens, *columns;
    int min_tokens;
    if (!PyArg_ParseTuple(args, "OOiO", &data_obj, &tokens, &min_tokens, &columns)) return NULL;
    /* one bytes-like, or a list of them (one per file, each of whole lines: no join needed) */
    PyObject *parts = PyList_Check(data_obj) ? Py_NewRef(data_obj) : PyList_New(1);
    if (!parts) return NULL;
    if (!PyList_Check(data_obj)) PyList_SET_ITEM(parts, 0, Py_NewRef(data_obj));
    Py_ssize_t nparts = PyList_GET_SIZE(parts), nviews = 0;
    Py_buffer *views = PyMem_Calloc((size_t)nparts + 1, sizeof(Py_buffer));
    PyObject *result = NULL, *idx_obj = NULL, *rest_obj = NULL, *counts_obj = NULL;
    State st;
    memset(&st, 0, sizeof st);
    Tok *toks = NULL;
    if (!views) {
        PyErr_NoMemory();
        goto done;
    }
    size_t len = 0;
    for (; nviews < nparts; nviews++) {
        if (PyObject_GetBuffer(PyList_GET_ITEM(parts, nviews), &views[nviews], PyBUF_SIMPLE) < 0) goto done;
        len += (size_t)views[nviews].len;
    }
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
    st.checked = calloc((size_t)ntok + 1, sizeof(int));
    st.cols = calloc((size_t)ncols + 1, sizeof(Col));
    toks = calloc((size_t)ntok + 1, sizeof(Tok));
    if (!st.validators || !st.kinds || !st.checked || !st.cols || !toks) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < ntok; i++) {
        if (read_int_seq(tokens, i, 0, &st.validators[i]) || read_int_seq(tokens, i, 1, &st.kinds[i])) goto done;
        if (st.validators[i] != V_NONE) st.checked[st.nchecked++] = (int)i;
    }
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
    if (len > INT32_MAX) { /* int32 offsets: the caller falls back to the Arrow engine */
        PyErr_SetString(PyExc_OverflowError, "block over 2 GB");
        goto done;
    }
    size_t nl = 0;
    PyObject *counts = PyList_New(nparts); /* lines per part */
    if (!counts) goto done;
    for (Py_ssize_t v = 0; v < nparts; v++) {
        const char *buf = views[v].buf, *end = buf + views[v].len;
        size_t here = 0;
        for (const char *q = buf; (q = memchr(q, '\n', (size_t)(end - q))) != NULL; q++) here++;
        nl += here;
        PyObject *c = PyLong_FromSize_t(here);
        if (!c) {
            Py_DECREF(counts);
            goto done;
        }
        PyList_SET_ITEM(counts, v, c);
    }
    counts_obj = counts;
    char *ip, *rp;
    if (!(idx_obj = new_bytes(nl * 8, &ip)) || !(rest_obj = new_bytes(nl * 8, &rp))) goto done;
    st.idx = (int64_t *)ip;
    int64_t *rest = (int64_t *)rp;
    size_t nrest = 0;
    for (Py_ssize_t k = 0; k < ncols; k++) {
        Col *c = &st.cols[k];
        char *vp, *op;
        size_t width = c->type == T_INT32 ? 4 : 8;
        if (!(c->valid = new_bytes((nl + 7) / 8, &vp))) goto done;
        c->vp = (unsigned char *)vp;
        memset(vp, 0, (nl + 7) / 8);
        if (c->type == T_STRING) {
            if (!(c->offs = new_bytes((nl + 1) * 4, &op))) goto done;
            c->op = (int32_t *)op;
            c->op[0] = 0;
        } else if (!(c->data = new_bytes(nl * width, &c->dp))) {
            goto done;
        }
    }
    int64_t line = 0;
    Py_BEGIN_ALLOW_THREADS;
    for (Py_ssize_t v = 0; v < nparts; v++) {
        const char *buf = views[v].buf;
        size_t blen = (size_t)views[v].len, pos = 0;
        while (pos < blen) {
            unsigned odd;
            const char *nlp = line_end(buf + pos, buf + blen, &odd);
            if (!nlp) break;
            if (do_line(&st, buf + pos, nlp, odd, toks)) {
                st.idx[st.nrows - 1] = line;
                if (st.nrows == SAMPLE_ROWS && nl > 4 * SAMPLE_ROWS && !reserve(&st, nl)) break;
            }
            else if (nlp > buf + pos) /* empty lines are skipped, as parse_line's callers do */
                rest[nrest++] = line;
            line++;
            pos = (size_t)(nlp - buf) + 1;
        }
    }
    Py_END_ALLOW_THREADS;
    if (st.oom) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t nrows = (Py_ssize_t)st.nrows;
    if (_PyBytes_Resize(&idx_obj, nrows * 8) < 0 || _PyBytes_Resize(&rest_obj, (Py_ssize_t)nrest * 8) < 0) goto done;
    PyObject *cols = PyList_New(ncols);
    if (!cols) goto done;
    for (Py_ssize_t k = 0; k < ncols; k++) {
        Col *c = &st.cols[k];
        PyObject *item;
        if (c->nnull) {
            if (_PyBytes_Resize(&c->valid, (nrows + 7) / 8) < 0) goto fail;
        } else {
            Py_CLEAR(c->valid);
            c->valid = Py_NewRef(Py_None);
        }
        if (c->type == T_STRING) {
            if (_PyBytes_Resize(&c->offs, (nrows + 1) * 4) < 0) goto fail;
            c->data = rawbuf_new(c->dp, c->dlen);
            c->dp = NULL; /* owned by c->data now (or freed) */
            if (!c->data) goto fail;
            item = Py_BuildValue("(nOOO)", c->nnull, c->valid, c->offs, c->data);
        } else {
            if (_PyBytes_Resize(&c->data, nrows * (c->type == T_INT32 ? 4 : 8)) < 0) goto fail;
            item = Py_BuildValue("(nOO)", c->nnull, c->valid, c->data);
        }
        if (!item) goto fail;
        PyList_SET_ITEM(cols, k, item);
    }
    result = Py_BuildValue("(ONOO)", idx_obj, cols, rest_obj, counts_obj);
    goto done;
fail:
    Py_DECREF(cols);
done:
    if (st.cols)
        for (Py_ssize_t k = 0; k < ncols; k++) {
            Py_XDECREF(st.cols[k].data);
            Py_XDECREF(st.cols[k].offs);
            Py_XDECREF(st.cols[k].valid);
            if (st.cols[k].type == T_STRING) free(st.cols[k].dp);
        }
    Py_XDECREF(idx_obj);
    Py_XDECREF(rest_obj);
    Py_XDECREF(counts_obj);
    for (Py_ssize_t v = 0; v < nviews; v++) PyBuffer_Release(&views[v]);
    PyMem_Free(views);
    Py_DECREF(parts);
    free(st.cols);
    free(st.validators);
    free(st.kinds);
    free(st.checked);
    free(toks);
    return result;
}

/* valid(code, value) -> bool: one validator on one value, for the test that holds these matchers to
 * albstats.schema.VALIDATORS. */
static PyObject *valid_value(PyObject *self, PyObject *args) {
    int code;
    Py_buffer value;
    (void)self;
    if (!PyArg_ParseTuple(args, "iy*", &code, &value)) return NULL;
    if (code < 0 || code >= V_COUNT) {
        PyBuffer_Release(&value);
        PyErr_SetString(PyExc_ValueError, "unknown validator code");
        return NULL;
    }
    int ok = valid(code, (const char *)value.buf, (size_t)value.len);
    PyBuffer_Release(&value);
    return PyBool_FromLong(ok);
}

static PyMethodDef methods[] = {
    {"parse_block", parse_block, METH_VARARGS,
     "parse_block(data, tokens, min_tokens, columns) -> (taken lines, column buffers, other lines, lines per part)"},
    {"valid", valid_value, METH_VARARGS, "valid(validator code, value bytes) -> whether the validator accepts it"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_albparse",
                                    "ALB log lines to Arrow buffers (see albstats.parsing.native)", -1, methods};

/* A tuple of the names, in code order, as a module attribute. */
static int add_names(PyObject *m, const char *attr, const char *const *names, int n) {
    PyObject *t = PyTuple_New(n);
    if (!t) return -1;
    for (int i = 0; i < n; i++) {
        PyObject *name = PyUnicode_FromString(names[i]);
        if (!name) {
            Py_DECREF(t);
            return -1;
        }
        PyTuple_SET_ITEM(t, i, name);
    }
    if (PyModule_AddObject(m, attr, t) < 0) {
        Py_DECREF(t);
        return -1;
    }
    return 0;
}

PyMODINIT_FUNC PyInit__albparse(void) {
#ifdef HAVE_STRTOD_L
    c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
    if (!c_locale) return PyErr_NoMemory();
#endif
    if (PyType_Ready(&RawBufType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    if (add_names(m, "VALIDATORS", validator_names, V_COUNT) < 0 || add_names(m, "KINDS", kind_names, K_COUNT) < 0 ||
        add_names(m, "TYPES", type_names, T_COUNT) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
