/*
 * OAuth 1.0a signature base string, signature and Authorization header
 * (RFC 5849 sections 3.4 to 3.6).
 *
 * The whole computation works on UTF-8 byte strings.  One arena contains
 * every encoded parameter, one array of entries points into it and is
 * sorted once, and the base string and header are each built in one
 * buffer.
 */
#include "oauth_sign.h"

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/rand.h>

static const char HEX_UPPER[] = "0123456789ABCDEF";
static const char HEX_LOWER[] = "0123456789abcdef";

static const char FORM_URLENCODED[] = "application/x-www-form-urlencoded";

/* ---- buffers ---------------------------------------------------------- */

void
oauth_buf_free(oauth_buf *buf)
{
    if (buf != NULL) {
        PyMem_Free(buf->data);
        buf->data = NULL;
        buf->len = buf->cap = 0;
    }
}

int
oauth_buf_reserve(oauth_buf *buf, size_t extra)
{
    size_t need, cap;
    char *data;

    if (extra > PY_SSIZE_T_MAX / 2 - buf->len) {
        PyErr_NoMemory();
        return -1;
    }
    need = buf->len + extra + 1;
    if (need <= buf->cap) {
        return 0;
    }
    cap = buf->cap ? buf->cap : 256;
    while (cap < need) {
        cap *= 2;
    }
    data = PyMem_Realloc(buf->data, cap);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    buf->data = data;
    buf->cap = cap;
    return 0;
}

int
oauth_buf_append(oauth_buf *buf, const char *data, size_t len)
{
    if (oauth_buf_reserve(buf, len) < 0) {
        return -1;
    }
    if (len > 0) {
        memcpy(buf->data + buf->len, data, len);
    }
    buf->len += len;
    buf->data[buf->len] = '\0';
    return 0;
}

/* RFC 5849 section 3.6: ALPHA, DIGIT, "-", ".", "_" and "~" stay as they
 * are; every other octet becomes "%" and two upper-case hex digits. */
static inline int
is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
        || (c >= '0' && c <= '9')
        || c == '-' || c == '.' || c == '_' || c == '~';
}

/* Append octet c encoded; the caller reserved three bytes. */
static inline char *
put_encoded(char *p, unsigned char c)
{
    if (is_unreserved(c)) {
        *p++ = (char)c;
    }
    else {
        *p++ = '%';
        *p++ = HEX_UPPER[c >> 4];
        *p++ = HEX_UPPER[c & 15];
    }
    return p;
}

int
oauth_buf_append_encoded(oauth_buf *buf, const char *data, size_t len)
{
    char *p;
    size_t i;

    if (len > PY_SSIZE_T_MAX / 4 || oauth_buf_reserve(buf, len * 3) < 0) {
        if (!PyErr_Occurred()) {
            PyErr_NoMemory();
        }
        return -1;
    }
    p = buf->data + buf->len;
    for (i = 0; i < len; i++) {
        p = put_encoded(p, (unsigned char)data[i]);
    }
    buf->len = (size_t)(p - buf->data);
    buf->data[buf->len] = '\0';
    return 0;
}

static inline int
hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Append one name or value of an application/x-www-form-urlencoded string
 * (a query or a form body): "+" is a space and %XX an octet, and the
 * decoded octets are encoded again with section 3.6.  part and base_offset
 * only serve the error message: the input itself is never echoed because
 * a form body can contain passwords. */
static int
append_form_component(oauth_buf *buf, const char *data, size_t len,
                      const char *part, size_t base_offset)
{
    char *p;
    size_t i;
    int high, low;

    if (oauth_buf_reserve(buf, len * 3) < 0) {
        return -1;
    }
    p = buf->data + buf->len;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)data[i];
        if (c == '+') {
            p = put_encoded(p, ' ');
        }
        else if (c == '%') {
            high = i + 1 < len ? hex_value(data[i + 1]) : -1;
            low = i + 2 < len ? hex_value(data[i + 2]) : -1;
            if (high < 0 || low < 0) {
                PyErr_Format(PyExc_ValueError,
                             "invalid percent escape in the %s at offset %zu: "
                             "'%%' must be followed by two hex digits",
                             part, base_offset + i);
                return -1;
            }
            p = put_encoded(p, (unsigned char)(high * 16 + low));
            i += 2;
        }
        else {
            p = put_encoded(p, c);
        }
    }
    buf->len = (size_t)(p - buf->data);
    buf->data[buf->len] = '\0';
    return 0;
}

/* ---- OpenSSL helpers -------------------------------------------------- */

int
oauth_raise_openssl(PyObject *exc, const char *message)
{
    char text[1024];
    size_t used = 0;
    unsigned long code;

    text[0] = '\0';
    while ((code = ERR_get_error()) != 0) {
        if (used + 3 >= sizeof(text)) {
            continue;
        }
        if (used > 0) {
            memcpy(text + used, "; ", 3);
            used += 2;
        }
        ERR_error_string_n(code, text + used, sizeof(text) - used);
        used += strlen(text + used);
    }
    ERR_clear_error();
    if (used == 0) {
        PyErr_Format(exc, "%s", message);
    }
    else {
        PyErr_Format(exc, "%s (OpenSSL: %s)", message, text);
    }
    return -1;
}

int
oauth_make_nonce(char *buf)
{
    unsigned char raw[16];
    size_t i;

    if (RAND_bytes(raw, (int)sizeof(raw)) != 1) {
        return oauth_raise_openssl(mwcomms_OAuthError,
                                   "RAND_bytes failed to make a nonce");
    }
    for (i = 0; i < sizeof(raw); i++) {
        buf[2 * i] = HEX_LOWER[raw[i] >> 4];
        buf[2 * i + 1] = HEX_LOWER[raw[i] & 15];
    }
    buf[32] = '\0';
    return 0;
}

/* ---- base string URI (section 3.4.1.2) -------------------------------- */

static int
raise_bad_url(const char *url, size_t url_len, const char *reason)
{
    char shown[304];
    size_t used = 0, i = 0, host_start = 0, auth_end, at = 0;
    const char *scheme_end = strstr(url, "://");

    /* Never echo user info, because it may be user:password. */
    if (scheme_end != NULL) {
        host_start = (size_t)(scheme_end - url) + 3;
        auth_end = host_start;
        while (auth_end < url_len && strchr("/?#", url[auth_end]) == NULL) {
            if (url[auth_end] == '@') {
                at = auth_end + 1;
            }
            auth_end++;
        }
    }
    while (i < url_len && used < sizeof(shown) - 4) {
        if (at > 0 && i == host_start) {
            i = at;
            continue;
        }
        shown[used++] = url[i++];
    }
    if (i < url_len) {
        memcpy(shown + used, "...", 3);
        used += 3;
    }
    shown[used] = '\0';
    PyErr_Format(mwcomms_InvalidURL, "invalid URL '%s': %s", shown, reason);
    return -1;
}

/* Write the base string URI of url into out and return the query (without
 * "?") through query/query_len, or NULL when the URL has none. */
static int
build_base_uri(const char *url, size_t url_len, oauth_buf *out,
               const char **query, size_t *query_len)
{
    const char *end = url + url_len;
    const char *p, *scheme_end, *auth, *auth_end, *host, *host_end;
    const char *port = NULL, *path, *path_end;
    size_t i, scheme_len;
    long port_number = -1;
    int https;

    *query = NULL;
    *query_len = 0;
    for (p = url; p < end; p++) {
        unsigned char c = (unsigned char)*p;
        if (c <= 0x20 || c == 0x7f) {
            return raise_bad_url(url, url_len,
                                 "URLs must not contain spaces or control "
                                 "characters; percent-encode them");
        }
    }
    scheme_end = memchr(url, ':', url_len);
    if (scheme_end == NULL) {
        return raise_bad_url(url, url_len, "missing scheme (http or https)");
    }
    scheme_len = (size_t)(scheme_end - url);
    if (scheme_len == 4 && PyOS_strnicmp(url, "http", 4) == 0) {
        https = 0;
    }
    else if (scheme_len == 5 && PyOS_strnicmp(url, "https", 5) == 0) {
        https = 1;
    }
    else {
        return raise_bad_url(url, url_len,
                             "only http and https URLs can be signed");
    }
    if (end - scheme_end < 3 || scheme_end[1] != '/' || scheme_end[2] != '/') {
        return raise_bad_url(url, url_len, "missing '//' after the scheme");
    }
    auth = scheme_end + 3;
    auth_end = auth;
    while (auth_end < end && *auth_end != '/' && *auth_end != '?'
            && *auth_end != '#') {
        auth_end++;
    }
    if (memchr(auth, '@', (size_t)(auth_end - auth)) != NULL) {
        return raise_bad_url(url, url_len,
                             "user info (user@ or user:password@) is not "
                             "allowed in a signed URL");
    }

    host = auth;
    if (host < auth_end && *host == '[') {
        host_end = memchr(host, ']', (size_t)(auth_end - host));
        if (host_end == NULL) {
            return raise_bad_url(url, url_len, "unterminated IPv6 address");
        }
        host_end++;
        if (host_end < auth_end) {
            if (*host_end != ':') {
                return raise_bad_url(url, url_len,
                                     "unexpected text after the IPv6 address");
            }
            port = host_end + 1;
        }
    }
    else {
        host_end = host;
        while (host_end < auth_end && *host_end != ':') {
            host_end++;
        }
        if (host_end < auth_end) {
            port = host_end + 1;
        }
    }
    if (host_end == host || (host_end - host == 2 && *host == '[')) {
        return raise_bad_url(url, url_len, "missing host");
    }
    for (p = host; p < host_end; p++) {
        if (strchr("\"<>\\^`{|}", *p) != NULL) {
            return raise_bad_url(url, url_len, "invalid character in host");
        }
    }
    /* An empty port (http://host:/) means the default port (RFC 3986
     * section 3.2.3). */
    if (port != NULL && port < auth_end) {
        port_number = 0;
        for (p = port; p < auth_end; p++) {
            if (*p < '0' || *p > '9') {
                return raise_bad_url(url, url_len, "port is not a number");
            }
            port_number = port_number * 10 + (*p - '0');
            if (port_number > 65535) {
                break;
            }
        }
        if (port_number < 1 || port_number > 65535) {
            return raise_bad_url(url, url_len,
                                 "port is out of range 1-65535");
        }
    }

    path = auth_end;
    path_end = path;
    while (path_end < end && *path_end != '?' && *path_end != '#') {
        path_end++;
    }
    if (path_end < end && *path_end == '?') {
        const char *q = path_end + 1;
        const char *q_end = memchr(q, '#', (size_t)(end - q));
        *query = q;
        *query_len = (size_t)((q_end ? q_end : end) - q);
    }

    if (oauth_buf_append(out, https ? "https://" : "http://",
                         https ? 8 : 7) < 0
            || oauth_buf_reserve(out, (size_t)(host_end - host) + 8) < 0) {
        return -1;
    }
    for (i = 0; i < (size_t)(host_end - host); i++) {
        out->data[out->len++] = (char)Py_TOLOWER((unsigned char)host[i]);
    }
    out->data[out->len] = '\0';
    if (port_number > 0 && port_number != (https ? 443 : 80)) {
        char digits[8];
        int n = PyOS_snprintf(digits, sizeof(digits), ":%ld", port_number);
        if (oauth_buf_append(out, digits, (size_t)n) < 0) {
            return -1;
        }
    }
    if (path == path_end) {
        return oauth_buf_append(out, "/", 1);
    }
    return oauth_buf_append(out, path, (size_t)(path_end - path));
}

/* ---- parameters (section 3.4.1.3) ------------------------------------- */

typedef struct {
    size_t name_off, name_len, value_off, value_len;
    const char *name, *value;   /* set once the arena stops moving */
} param_entry;

typedef struct {
    oauth_buf arena;
    param_entry *entries;
    size_t count, cap;
} param_list;

static void
params_free(param_list *params)
{
    oauth_buf_free(&params->arena);
    PyMem_Free(params->entries);
    params->entries = NULL;
    params->count = params->cap = 0;
}

static param_entry *
params_new_entry(param_list *params)
{
    if (params->count >= OAUTH_MAX_PARAMS) {
        PyErr_Format(PyExc_ValueError,
                     "too many parameters to sign: the maximum is %d",
                     OAUTH_MAX_PARAMS);
        return NULL;
    }
    if (params->count == params->cap) {
        size_t cap = params->cap ? params->cap * 2 : 32;
        param_entry *entries = PyMem_Realloc(params->entries,
                                             cap * sizeof(param_entry));
        if (entries == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        params->entries = entries;
        params->cap = cap;
    }
    return &params->entries[params->count++];
}

/* Add protocol parameter name (already unreserved) with raw value. */
static int
params_add_protocol(param_list *params, const char *name, const char *value,
                    size_t value_len)
{
    param_entry *entry = params_new_entry(params);

    if (entry == NULL) {
        return -1;
    }
    entry->name_off = params->arena.len;
    entry->name_len = strlen(name);
    if (oauth_buf_append(&params->arena, name, entry->name_len) < 0) {
        return -1;
    }
    entry->value_off = params->arena.len;
    if (oauth_buf_append_encoded(&params->arena, value, value_len) < 0) {
        return -1;
    }
    entry->value_len = params->arena.len - entry->value_off;
    return 0;
}

/* Add every name=value pair of a form-urlencoded string.  Like Python's
 * urllib.parse.parse_qsl(keep_blank_values=True), which oauthlib uses,
 * empty pairs ("a=1&&b=2") are skipped and a pair without "=" is a name
 * with an empty value. */
static int
params_add_form(param_list *params, const char *data, size_t len,
                const char *part)
{
    size_t start = 0;

    while (start <= len) {
        const char *pair = data + start;
        const char *amp = memchr(pair, '&', len - start);
        size_t pair_len = amp ? (size_t)(amp - pair) : len - start;
        const char *eq;
        param_entry *entry;

        if (pair_len > 0) {
            size_t name_len;
            entry = params_new_entry(params);
            if (entry == NULL) {
                return -1;
            }
            eq = memchr(pair, '=', pair_len);
            name_len = eq ? (size_t)(eq - pair) : pair_len;
            entry->name_off = params->arena.len;
            if (append_form_component(&params->arena, pair, name_len, part,
                                      start) < 0) {
                return -1;
            }
            entry->name_len = params->arena.len - entry->name_off;
            entry->value_off = params->arena.len;
            if (eq != NULL
                    && append_form_component(&params->arena, eq + 1,
                                             pair_len - name_len - 1, part,
                                             start + name_len + 1) < 0) {
                return -1;
            }
            entry->value_len = params->arena.len - entry->value_off;
        }
        start += pair_len + 1;
    }
    return 0;
}

static int
compare_bytes(const char *a, size_t a_len, const char *b, size_t b_len)
{
    int cmp = memcmp(a, b, a_len < b_len ? a_len : b_len);

    if (cmp != 0) {
        return cmp;
    }
    return (a_len > b_len) - (a_len < b_len);
}

/* Order of section 3.4.1.3.2: encoded name, then encoded value, both in
 * ascending byte order. */
static int
compare_entries(const void *left, const void *right)
{
    const param_entry *a = left, *b = right;
    int cmp = compare_bytes(a->name, a->name_len, b->name, b->name_len);

    if (cmp != 0) {
        return cmp;
    }
    return compare_bytes(a->value, a->value_len, b->value, b->value_len);
}

/* Media type of content_type equal to application/x-www-form-urlencoded,
 * compared case-insensitively, with any parameters ("; charset=UTF-8")
 * and surrounding spaces ignored. */
static int
is_form_urlencoded(const char *type, size_t len)
{
    const char *end;

    if (type == NULL) {
        return 0;
    }
    end = memchr(type, ';', len);
    if (end == NULL) {
        end = type + len;
    }
    while (type < end && (*type == ' ' || *type == '\t')) {
        type++;
    }
    while (end > type && (end[-1] == ' ' || end[-1] == '\t')) {
        end--;
    }
    return (size_t)(end - type) == sizeof(FORM_URLENCODED) - 1
        && PyOS_strnicmp(type, FORM_URLENCODED,
                         sizeof(FORM_URLENCODED) - 1) == 0;
}

/* ---- signature (section 3.4.2 to 3.4.4) ------------------------------- */

static int
append_base64(oauth_buf *out, const unsigned char *data, size_t len)
{
    size_t encoded_len = 4 * ((len + 2) / 3);
    oauth_buf tmp = {NULL, 0, 0};
    int n, rc = -1;

    if (oauth_buf_reserve(&tmp, encoded_len) < 0) {
        return -1;
    }
    n = EVP_EncodeBlock((unsigned char *)tmp.data, data, (int)len);
    if (n < 0) {
        oauth_raise_openssl(mwcomms_OAuthError, "base64 encoding failed");
        goto done;
    }
    rc = oauth_buf_append_encoded(out, tmp.data, (size_t)n);
done:
    oauth_buf_free(&tmp);
    return rc;
}

static int
append_hmac(const oauth_credentials *creds, const oauth_buf *base,
            oauth_buf *out)
{
    EVP_MAC_CTX *ctx = NULL;
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t mac_len = 0;
    int rc = -1;

    ctx = EVP_MAC_CTX_dup(creds->mac_template);
    if (ctx == NULL
            || EVP_MAC_update(ctx, (const unsigned char *)base->data,
                              base->len) != 1
            || EVP_MAC_final(ctx, mac, &mac_len, sizeof(mac)) != 1) {
        oauth_raise_openssl(mwcomms_OAuthError, "HMAC computation failed");
        goto done;
    }
    rc = append_base64(out, mac, mac_len);
done:
    EVP_MAC_CTX_free(ctx);
    return rc;
}

static int
append_rsa_sha1(const oauth_credentials *creds, const oauth_buf *base,
                oauth_buf *out)
{
    EVP_MD_CTX *ctx = NULL;
    unsigned char *sig = NULL;
    size_t sig_len = 0;
    int rc = -1;

    ctx = EVP_MD_CTX_new();
    if (ctx == NULL
            || EVP_DigestSignInit(ctx, NULL, EVP_sha1(), NULL,
                                  creds->rsa_key) != 1
            || EVP_DigestSign(ctx, NULL, &sig_len,
                              (const unsigned char *)base->data,
                              base->len) != 1) {
        oauth_raise_openssl(mwcomms_OAuthError, "RSA-SHA1 signing failed");
        goto done;
    }
    sig = PyMem_Malloc(sig_len ? sig_len : 1);
    if (sig == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (EVP_DigestSign(ctx, sig, &sig_len, (const unsigned char *)base->data,
                       base->len) != 1) {
        oauth_raise_openssl(mwcomms_OAuthError, "RSA-SHA1 signing failed");
        goto done;
    }
    rc = append_base64(out, sig, sig_len);
done:
    PyMem_Free(sig);
    EVP_MD_CTX_free(ctx);
    return rc;
}

/* ---- request validation and the whole computation --------------------- */

/* HTTP method: a token of RFC 9110 section 5.6.2, upper-cased into out. */
static int
normalize_method(const char *method, size_t len, char *out, size_t out_size)
{
    size_t i;

    if (len == 0 || len >= out_size) {
        PyErr_SetString(PyExc_ValueError,
                        "invalid HTTP method: expected 1 to 32 characters");
        return -1;
    }
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)method[i];
        if (!(Py_ISALNUM(c) || strchr("!#$%&'*+-.^_`|~", c) != NULL)
                || c == '\0') {
            PyErr_Format(PyExc_ValueError,
                         "invalid HTTP method '%.32s': only letters, digits "
                         "and !#$%%&'*+-.^_`|~ are allowed", method);
            return -1;
        }
        out[i] = (char)Py_TOUPPER(c);
    }
    out[len] = '\0';
    return 0;
}

static int
collect_params(const oauth_credentials *creds, const oauth_request *request,
               const char *method, const char *query, size_t query_len,
               param_list *params)
{
    if (query != NULL
            && params_add_form(params, query, query_len, "query string") < 0) {
        return -1;
    }
    /* Section 3.4.1.3.1: the body counts only when it is form-urlencoded.
     * GET and HEAD bodies have no defined meaning (RFC 9110 section 9.3),
     * so they are never signed.  oauthlib's Client raises ValueError for
     * them instead. */
    if (request->body != NULL
            && is_form_urlencoded(request->content_type,
                                  request->content_type_len)
            && strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0
            && params_add_form(params, request->body, request->body_len,
                               "body") < 0) {
        return -1;
    }
    if (params_add_protocol(params, "oauth_consumer_key", creds->consumer_key,
                            strlen(creds->consumer_key)) < 0
            || (creds->token != NULL
                && params_add_protocol(params, "oauth_token", creds->token,
                                       strlen(creds->token)) < 0)
            || params_add_protocol(params, "oauth_signature_method",
                                   creds->method_name,
                                   strlen(creds->method_name)) < 0
            || params_add_protocol(params, "oauth_timestamp",
                                   request->timestamp,
                                   request->timestamp_len) < 0
            || params_add_protocol(params, "oauth_nonce", request->nonce,
                                   request->nonce_len) < 0
            || (creds->version != NULL
                && params_add_protocol(params, "oauth_version",
                                       creds->version,
                                       strlen(creds->version)) < 0)
            || (creds->callback != NULL
                && params_add_protocol(params, "oauth_callback",
                                       creds->callback,
                                       strlen(creds->callback)) < 0)
            || (creds->verifier != NULL
                && params_add_protocol(params, "oauth_verifier",
                                       creds->verifier,
                                       strlen(creds->verifier)) < 0)) {
        return -1;
    }
    return 0;
}

static int
append_header_param(oauth_buf *header, const char *name, const char *value,
                    size_t value_len)
{
    if (oauth_buf_append(header, ", ", header->len > 6 ? 2 : 0) < 0
            || oauth_buf_append(header, name, strlen(name)) < 0
            || oauth_buf_append(header, "=\"", 2) < 0
            || oauth_buf_append_encoded(header, value, value_len) < 0
            || oauth_buf_append(header, "\"", 1) < 0) {
        return -1;
    }
    return 0;
}

/* Authorization header of section 3.5.1.  signature is already encoded. */
static int
build_header(const oauth_credentials *creds, const oauth_request *request,
             const oauth_buf *signature, oauth_buf *header)
{
    if (oauth_buf_append(header, "OAuth ", 6) < 0) {
        return -1;
    }
    if (creds->realm != NULL
            && (oauth_buf_append(header, "realm=\"", 7) < 0
                || oauth_buf_append(header, creds->realm,
                                    strlen(creds->realm)) < 0
                || oauth_buf_append(header, "\"", 1) < 0)) {
        return -1;
    }
    if (append_header_param(header, "oauth_consumer_key", creds->consumer_key,
                            strlen(creds->consumer_key)) < 0
            || (creds->token != NULL
                && append_header_param(header, "oauth_token", creds->token,
                                       strlen(creds->token)) < 0)
            || append_header_param(header, "oauth_signature_method",
                                   creds->method_name,
                                   strlen(creds->method_name)) < 0
            || append_header_param(header, "oauth_timestamp",
                                   request->timestamp,
                                   request->timestamp_len) < 0
            || append_header_param(header, "oauth_nonce", request->nonce,
                                   request->nonce_len) < 0
            || (creds->version != NULL
                && append_header_param(header, "oauth_version",
                                       creds->version,
                                       strlen(creds->version)) < 0)
            || (creds->callback != NULL
                && append_header_param(header, "oauth_callback",
                                       creds->callback,
                                       strlen(creds->callback)) < 0)
            || (creds->verifier != NULL
                && append_header_param(header, "oauth_verifier",
                                       creds->verifier,
                                       strlen(creds->verifier)) < 0)) {
        return -1;
    }
    /* The signature is base64 (or the PLAINTEXT key) already encoded once
     * for the header value, so it is appended as it is. */
    if (oauth_buf_append(header, ", oauth_signature=\"", 19) < 0
            || oauth_buf_append(header, signature->data, signature->len) < 0
            || oauth_buf_append(header, "\"", 1) < 0) {
        return -1;
    }
    return 0;
}

int
oauth_sign(const oauth_credentials *creds, const oauth_request *request,
           oauth_output *out)
{
    char method[33];
    oauth_buf base_uri = {NULL, 0, 0};
    oauth_buf base = {NULL, 0, 0};
    oauth_buf signature = {NULL, 0, 0};
    param_list params = {{NULL, 0, 0}, NULL, 0, 0};
    const char *query = NULL;
    size_t query_len = 0, i;
    int rc = -1;

    if (request->url_len > OAUTH_MAX_URL_LEN) {
        PyErr_Format(PyExc_ValueError,
                     "URL is too long to sign: %zu bytes, the maximum is %zu",
                     request->url_len, OAUTH_MAX_URL_LEN);
        goto done;
    }
    if (request->body != NULL && request->body_len > OAUTH_MAX_BODY_LEN) {
        PyErr_Format(PyExc_ValueError,
                     "body is too large to sign: %zu bytes, the maximum "
                     "is %zu", request->body_len, OAUTH_MAX_BODY_LEN);
        goto done;
    }
    if (normalize_method(request->method, request->method_len, method,
                         sizeof(method)) < 0
            || build_base_uri(request->url, request->url_len, &base_uri,
                              &query, &query_len) < 0
            || collect_params(creds, request, method, query, query_len,
                              &params) < 0) {
        goto done;
    }

    for (i = 0; i < params.count; i++) {
        param_entry *entry = &params.entries[i];
        entry->name = params.arena.data + entry->name_off;
        entry->value = params.arena.data + entry->value_off;
    }
    qsort(params.entries, params.count, sizeof(param_entry),
          compare_entries);

    /* Section 3.4.1.1: METHOD "&" enc(base URI) "&" enc(parameters), where
     * the parameters are the encoded name=value pairs joined with "&".
     * Each name and value is therefore encoded a second time here, and the
     * "=" and "&" between them become "%3D" and "%26". */
    if (oauth_buf_append_encoded(&base, method, strlen(method)) < 0
            || oauth_buf_append(&base, "&", 1) < 0
            || oauth_buf_append_encoded(&base, base_uri.data,
                                        base_uri.len) < 0
            || oauth_buf_append(&base, "&", 1) < 0) {
        goto done;
    }
    for (i = 0; i < params.count; i++) {
        param_entry *entry = &params.entries[i];
        if ((i > 0 && oauth_buf_append(&base, "%26", 3) < 0)
                || oauth_buf_append_encoded(&base, entry->name,
                                            entry->name_len) < 0
                || oauth_buf_append(&base, "%3D", 3) < 0
                || oauth_buf_append_encoded(&base, entry->value,
                                            entry->value_len) < 0) {
            goto done;
        }
        if (out->parameters != NULL
                && ((i > 0 && oauth_buf_append(out->parameters, "&", 1) < 0)
                    || oauth_buf_append(out->parameters, entry->name,
                                        entry->name_len) < 0
                    || oauth_buf_append(out->parameters, "=", 1) < 0
                    || oauth_buf_append(out->parameters, entry->value,
                                        entry->value_len) < 0)) {
            goto done;
        }
    }
    if (out->parameters != NULL && oauth_buf_append(out->parameters, "", 0)
            < 0) {
        goto done;
    }

    if (out->header != NULL) {
        switch (creds->method) {
        case OAUTH_HMAC_SHA1:
        case OAUTH_HMAC_SHA256:
            if (append_hmac(creds, &base, &signature) < 0) {
                goto done;
            }
            break;
        case OAUTH_RSA_SHA1:
            if (append_rsa_sha1(creds, &base, &signature) < 0) {
                goto done;
            }
            break;
        case OAUTH_PLAINTEXT:
            /* Section 3.4.4: the signature is the key itself. */
            if (oauth_buf_append_encoded(&signature, creds->key,
                                         creds->key_len) < 0) {
                goto done;
            }
            break;
        }
        if (build_header(creds, request, &signature, out->header) < 0) {
            goto done;
        }
    }
    if (out->base_string != NULL) {
        *out->base_string = base;
        base.data = NULL;
    }
    rc = 0;
done:
    if (signature.data != NULL) {
        OPENSSL_cleanse(signature.data, signature.cap);
    }
    oauth_buf_free(&signature);
    oauth_buf_free(&base);
    oauth_buf_free(&base_uri);
    params_free(&params);
    return rc;
}
