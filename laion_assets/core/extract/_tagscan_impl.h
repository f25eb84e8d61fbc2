/* One specialisation of the tag scan, included by _tagscan.c once per str kind with
 * CHAR_T (Py_UCS1, Py_UCS2 or Py_UCS4) and SCAN_FN (the function's name) defined.
 * It is `htmlscan._scanner(...).finditer(text)` written out by hand: every step below names the
 * part of the regex it stands for, and laion_assets_tests/core/extract/test_tagscan_native.py checks
 * the two agree, match for match, on generated, mutated and real pages. */

/* Does the text at q spell `name` (lower-case ASCII) under re.I? *ascii_only: 0 when one of the
 * letters was a non-ASCII fold (then Python's tag.lower() is not the ASCII name). */
static inline int
SCAN_FN(_name_at)(const CHAR_T *s, Py_ssize_t n, Py_ssize_t q, const char *name, Py_ssize_t len,
                  int *ascii_only)
{
    if (q + len > n)
        return 0;
    int ascii = 1;
    for (Py_ssize_t k = 0; k < len; k++) {
        Py_UCS4 c = s[q + k];
        if (c < 128) {
            if ((Py_UCS4)(c | 0x20) != (Py_UCS4)name[k] || !((c | 0x20) >= 'a' && (c | 0x20) <= 'z'))
                return 0;
        }
        else if (fold_matches(c, name[k]))
            ascii = 0;
        else
            return 0;
    }
    *ascii_only = ascii;
    return 1;
}

/* `(?:[^<]++|<(?!/\1))*+(?:</\1\s*>)?` from k, with \1 = s[g : g + glen]: the end of the raw-text
 * element's match. The back-reference compares case-insensitively as sre does for str patterns
 * (the simple lower-case mapping of both characters). */
static Py_ssize_t
SCAN_FN(_raw_text_end)(const CHAR_T *s, Py_ssize_t n, Py_ssize_t k, Py_ssize_t g, Py_ssize_t glen)
{
    for (;;) {
        Py_ssize_t j = k;
        while (j < n && s[j] != '<')
            j++;
        if (j >= n)
            return n;
        /* lookahead /\1 */
        int ok = (j + 1 < n && s[j + 1] == '/' && j + 2 + glen <= n);
        for (Py_ssize_t t = 0; ok && t < glen; t++) {
            Py_UCS4 a = s[j + 2 + t], b = s[g + t];
            if (a != b && Py_UNICODE_TOLOWER(a) != Py_UNICODE_TOLOWER(b))
                ok = 0;
        }
        if (!ok) {
            k = j + 1;
            continue;
        }
        /* (?:</\1\s*>)? */
        Py_ssize_t m = j + 2 + glen;
        while (m < n && Py_UNICODE_ISSPACE(s[m]))
            m++;
        if (m < n && s[m] == '>')
            return m + 1;
        return j;
    }
}

/* ATTRS then (?:>|\Z), from k: sets *attr_end; returns the match end (n when no '>' closes it). */
static Py_ssize_t
SCAN_FN(_attrs_end)(const CHAR_T *s, Py_ssize_t n, Py_ssize_t k, Py_ssize_t *attr_end)
{
#define SP(c) Py_UNICODE_ISSPACE(c)
    while (k < n) {
        Py_UCS4 c = s[k];
        if (SP(c) || c == '/') { /* [\s/]++ */
            k++;
            while (k < n && (SP(s[k]) || s[k] == '/'))
                k++;
            continue;
        }
        if (c == '>')
            break;
        /* [^\s/>][^\s/>=]*+ */
        k++;
        while (k < n) {
            Py_UCS4 d = s[k];
            if (SP(d) || d == '/' || d == '>' || d == '=')
                break;
            k++;
        }
        /* (?:\s*+=\s*+(?:"[^"]*+"|'[^']*+'|[^\s>]*+))? */
        Py_ssize_t m = k;
        while (m < n && SP(s[m]))
            m++;
        if (m >= n || s[m] != '=')
            continue;
        m++;
        while (m < n && SP(s[m]))
            m++;
        if (m < n && (s[m] == '"' || s[m] == '\'')) {
            CHAR_T quote = s[m];
            Py_ssize_t e = m + 1;
            while (e < n && s[e] != quote)
                e++;
            if (e < n) {
                k = e + 1;
                continue;
            }
        }
        while (m < n && !SP(s[m]) && s[m] != '>')
            m++;
        k = m;
    }
#undef SP
    *attr_end = k;
    return k < n ? k + 1 : n;
}


/* Is the ASCII word `w` (lower case, len wl) at s[j:], in any ASCII case? */
static inline int
SCAN_FN(_ascii_ci_at)(const CHAR_T *s, Py_ssize_t j, const char *w, Py_ssize_t wl)
{
    for (Py_ssize_t t = 0; t < wl; t++) {
        Py_UCS4 c = s[j + t];
        if (c >= 128)
            return 0;
        if (c >= 'A' && c <= 'Z')
            c |= 0x20;
        if (c != (Py_UCS4)w[t])
            return 0;
    }
    return 1;
}

/* A superset of htmlscan._has_cc(s[a:b]): "creativecommons.org" in any ASCII case, or one of the
 * non-ASCII folds (U+0130 U+0131 U+017F) that re.I also takes. No other character lower-cases to a
 * letter of it, so lower() can add no other hit. */
static int
SCAN_FN(_may_have_cc)(const CHAR_T *s, Py_ssize_t a, Py_ssize_t b)
{
    for (Py_ssize_t j = a; j < b; j++) {
        Py_UCS4 c = s[j];
        if (c == 0x130 || c == 0x131 || c == 0x17F)
            return 1;
        if ((c | 0x20) == 'c' && j + 19 <= b && SCAN_FN(_ascii_ci_at)(s, j, "creativecommons.org", 19))
            return 1;
    }
    return 0;
}

/* htmlscan._meta_wanted(s[a:b]) exactly: "robots", "tdm-", "language" or "robot" + U+017F in
 * s[a:b].lower() (lower() maps no other character to these letters: U+0130 gives i + U+0307 and
 * U+212A gives k, neither of which they hold). */
static int
SCAN_FN(_meta_wanted)(const CHAR_T *s, Py_ssize_t a, Py_ssize_t b)
{
    for (Py_ssize_t j = a; j < b; j++) {
        Py_UCS4 c = s[j] | 0x20;
        if (c == 'r' && s[j] < 128 && j + 6 <= b && SCAN_FN(_ascii_ci_at)(s, j, "robot", 5) &&
            (((s[j + 5] | 0x20) == 's' && s[j + 5] < 128) || s[j + 5] == 0x17F))
            return 1;
        if (c == 't' && s[j] < 128 && j + 4 <= b && SCAN_FN(_ascii_ci_at)(s, j, "tdm-", 4))
            return 1;
        if (c == 'l' && s[j] < 128 && j + 8 <= b && SCAN_FN(_ascii_ci_at)(s, j, "language", 8))
            return 1;
    }
    return 0;
}

/* htmlscan.parse_attrs(s[a:b]): `_ATTR.findall` over the range, names lower-cased (str.lower() for a
 * non-ASCII name), first occurrence wins, values through `unescape` when they hold '&'. */
static PyObject *
SCAN_FN(_attrs)(PyObject *text, const CHAR_T *s, Py_ssize_t a, Py_ssize_t b, PyObject *unescape)
{
#define SP(c) Py_UNICODE_ISSPACE(c)
    PyObject *d = PyDict_New();
    if (d == NULL)
        return NULL;
    Py_ssize_t k = a;
    while (k < b) {
        Py_UCS4 c = s[k];
        if (SP(c) || c == '/' || c == '>') { /* no match can start here: findall moves on */
            k++;
            continue;
        }
        /* ([^\s/>][^\s/>=]*) */
        Py_ssize_t n0 = k, ascii = c < 128, upper = c >= 'A' && c <= 'Z';
        k++;
        while (k < b) {
            Py_UCS4 e = s[k];
            if (SP(e) || e == '/' || e == '>' || e == '=')
                break;
            if (e >= 128)
                ascii = 0;
            else if (e >= 'A' && e <= 'Z')
                upper = 1;
            k++;
        }
        Py_ssize_t n1 = k, v0 = k, v1 = k;
        /* (?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]*)))? */
        Py_ssize_t m = k;
        while (m < b && SP(s[m]))
            m++;
        if (m < b && s[m] == '=') {
            m++;
            while (m < b && SP(s[m]))
                m++;
            int quoted = 0;
            if (m < b && (s[m] == '"' || s[m] == '\'')) {
                CHAR_T quote = s[m];
                Py_ssize_t e = m + 1;
                while (e < b && s[e] != quote)
                    e++;
                if (e < b) {
                    v0 = m + 1, v1 = e, k = e + 1, quoted = 1;
                }
            }
            if (!quoted) {
                v0 = m;
                while (m < b && !SP(s[m]) && s[m] != '>')
                    m++;
                v1 = k = m;
            }
        }
        PyObject *name;
        if (ascii) {
            char buf[64];
            Py_ssize_t len = n1 - n0;
            if (len <= (Py_ssize_t)sizeof(buf)) {
                for (Py_ssize_t t = 0; t < len; t++) {
                    Py_UCS4 ch = s[n0 + t];
                    buf[t] = (char)(ch >= 'A' && ch <= 'Z' ? ch | 0x20 : ch);
                }
                name = PyUnicode_FromKindAndData(PyUnicode_1BYTE_KIND, buf, len);
            }
            else {
                PyObject *raw = PyUnicode_Substring(text, n0, n1);
                name = raw && upper ? PyObject_CallMethod(raw, "lower", NULL) : (Py_XINCREF(raw), raw);
                Py_XDECREF(raw);
            }
        }
        else {
            PyObject *raw = PyUnicode_Substring(text, n0, n1);
            name = raw ? PyObject_CallMethod(raw, "lower", NULL) : NULL;
            Py_XDECREF(raw);
        }
        if (name == NULL)
            goto fail;
        int has = PyDict_Contains(d, name);
        if (has < 0) {
            Py_DECREF(name);
            goto fail;
        }
        if (!has) {
            int amp = 0;
            for (Py_ssize_t t = v0; t < v1; t++)
                if (s[t] == '&') {
                    amp = 1;
                    break;
                }
            PyObject *v = PyUnicode_Substring(text, v0, v1);
            if (v != NULL && amp) {
                PyObject *u = PyObject_CallOneArg(unescape, v);
                Py_DECREF(v);
                v = u;
            }
            if (v == NULL || PyDict_SetItem(d, name, v) < 0) {
                Py_XDECREF(v);
                Py_DECREF(name);
                goto fail;
            }
            Py_DECREF(v);
        }
        Py_DECREF(name);
    }
#undef SP
    return d;
fail:
    Py_DECREF(d);
    return NULL;
}

/* Walk the whole text; append (code, attr_start, attr_end, end) for the tags Python reads. */
static int
SCAN_FN(_scan)(const CHAR_T *s, Py_ssize_t n, int want_a, Py_ssize_t max_tags, PyObject *clock,
               double deadline, PyObject *out, Py_ssize_t *n_matches, int *status)
{
    Py_ssize_t i = 0, count = 0;
    while (i < n) {
        /* the next '<' */
        const CHAR_T *lt;
        if (sizeof(CHAR_T) == 1)
            lt = (const CHAR_T *)memchr(s + i, '<', (size_t)(n - i));
        else {
            lt = NULL;
            for (Py_ssize_t j = i; j < n; j++)
                if (s[j] == '<') {
                    lt = s + j;
                    break;
                }
        }
        if (lt == NULL)
            break;
        Py_ssize_t p = lt - s, q = p + 1, end = -1;
        int code = -1; /* -1: a match Python skips (comment, raw text, a tag it does not read) */
        Py_ssize_t as = 0, ae = 0;
        int is_tag = 0; /* the tag alternative matched (not a comment or raw text) */
        if (q >= n)
            break;
        Py_UCS4 c = s[q];
        if (c == '!') {
            /* !--(?:[^-]++|-(?!->))*+(?:-->)? */
            if (q + 2 < n && s[q + 1] == '-' && s[q + 2] == '-') {
                Py_ssize_t j = q + 3;
                end = n;
                for (; j + 2 < n; j++)
                    if (s[j] == '-' && s[j + 1] == '-' && s[j + 2] == '>') {
                        end = j + 3;
                        break;
                    }
            }
        }
        else {
            /* (script|style|textarea|xmp)\b[^>]*+(?:>|\Z) then the raw text */
            static const char *raw_names[] = {"script", "style", "textarea", "xmp"};
            static const Py_ssize_t raw_lens[] = {6, 5, 8, 3};
            int ascii;
            for (int t = 0; t < 4 && end < 0; t++) {
                if (!SCAN_FN(_name_at)(s, n, q, raw_names[t], raw_lens[t], &ascii))
                    continue;
                Py_ssize_t k = q + raw_lens[t];
                if (k < n && (Py_UNICODE_ISALNUM(s[k]) || s[k] == '_'))
                    continue; /* \b */
                while (k < n && s[k] != '>')
                    k++;
                if (k < n)
                    k++;
                end = SCAN_FN(_raw_text_end)(s, n, k, q, raw_lens[t]);
            }
            if (end < 0) {
                /* (img|image|base|meta|html|link|title[|a])(?=[\s/>]) ATTRS (?:>|\Z) */
                static const char *names[] = {"img", "image", "base", "meta", "html", "link", "title", "a"};
                static const Py_ssize_t lens[] = {3, 5, 4, 4, 4, 4, 5, 1};
                int nn = want_a ? 8 : 7;
                for (int t = 0; t < nn; t++) {
                    if (!SCAN_FN(_name_at)(s, n, q, names[t], lens[t], &ascii))
                        continue;
                    Py_ssize_t k = q + lens[t];
                    if (k >= n || !(Py_UNICODE_ISSPACE(s[k]) || s[k] == '/' || s[k] == '>'))
                        continue;
                    as = k;
                    is_tag = 1;
                    end = SCAN_FN(_attrs_end)(s, n, k, &ae);
                    code = ascii ? t : -1;
                    break;
                }
            }
        }
        if (end < 0) {
            i = p + 1;
            continue;
        }
        count++;
        /* the page budget, where scan_html's loop checks it: at every 1024th match, before reading it */
        if (!(count & 1023)) {
            if (count > max_tags) {
                *status = 1;
                break;
            }
            if (clock != Py_None) {
                PyObject *now = PyObject_CallNoArgs(clock);
                if (now == NULL)
                    return -1;
                double t = PyFloat_AsDouble(now);
                Py_DECREF(now);
                if (t == -1.0 && PyErr_Occurred())
                    return -1;
                if (t > deadline) {
                    *status = 2;
                    break;
                }
            }
        }
        if (is_tag && ae >= n)
            break; /* no '>': a tag left open at the end of the page is no tag (and nothing follows) */
        if (code == TAG_IMG) {
            /* "alt" in raw.lower(): no non-ASCII character lower-cases to a, l or t (tested) */
            int has_alt = 0;
            for (Py_ssize_t j = as; j + 2 < ae; j++)
                if ((s[j] | 0x20) == 'a' && (s[j + 1] | 0x20) == 'l' && (s[j + 2] | 0x20) == 't' &&
                    s[j] < 128 && s[j + 1] < 128 && s[j + 2] < 128) {
                    has_alt = 1;
                    break;
                }
            if (!has_alt)
                code = TAG_IMG_NO_ALT;
        }
        if ((code == TAG_A || code == TAG_LINK) && !SCAN_FN(_may_have_cc)(s, as, ae))
            code = -1; /* scan_html reads an <a>/<link> only if it mentions creativecommons.org */
        else if (code == TAG_META && !SCAN_FN(_meta_wanted)(s, as, ae))
            code = -1; /* ... and a <meta> only if it may be robots, tdm-* or a language */
        if (code >= 0 && (code != TAG_LINK || want_a)) {
            PyObject *item = Py_BuildValue("(innn)", code, as, ae, end);
            if (item == NULL || PyList_Append(out, item) < 0) {
                Py_XDECREF(item);
                return -1;
            }
            Py_DECREF(item);
        }
        i = end;
    }
    *n_matches = count;
    return 0;
}
