/*
 * One request of the HTTP client: argument checks, libcurl options,
 * the libcurl callbacks and the mapping of CURLcode to exceptions.
 */
#include "client.h"

#include <limits.h>
#include <math.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>

/* Cap on the header bytes of one received response, so that a server
 * cannot grow the buffer without bound.  libcurl 7.88 limits the length
 * of single header lines, not their sum. */
#define MAX_RESPONSE_HEADER_BYTES (1024 * 1024)

/* Do not reuse a connection that has been idle for longer than this
 * (CURLOPT_MAXAGE_CONN, libcurl's default is 118 s).  It is below
 * the keep-alive timeouts of nginx (75 s by default) and of many load
 * balancers (60 s).  Servers with shorter ones, such as Apache httpd (5 s
 * by default), still close idle connections first. */
#define MAX_CONNECTION_AGE_S 30L

/* libcurl 7.88's limit on the request line and headers that it builds
 * (DYN_HTTP_REQUEST in lib/http.h); it reports going over it as
 * CURLE_OUT_OF_MEMORY.  Form bodies below 64 KiB are sent in the same
 * buffer, so a request can fail with headers below this limit too. */
#define LIBCURL_MAX_REQUEST_HEAD (1024 * 1024)

/* Largest curl_off_t; the assertion checks its width. */
#define MAX_OFF_T CURL_OFF_T_C(0x7FFFFFFFFFFFFFFF)
_Static_assert(sizeof(curl_off_t) == 8, "curl_off_t must be 64 bits");

/* Interval between signal checks on the main thread (milliseconds). */
#define SIGNAL_CHECK_INTERVAL_MS 100
/* The smallest EXPECT_100_THRESHOLD of libcurl versions. */
#define EXPECT_CHECK_BYTES 1024


static const char *const supported_methods[] = {
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", NULL
};

/* parse_method sets mw_request.method to an entry of supported_methods,
 * so methods compare by address. */
#define METHOD_GET (supported_methods[0])
#define METHOD_HEAD (supported_methods[1])
#define METHOD_POST (supported_methods[2])
#define METHOD_PUT (supported_methods[3])
#define METHOD_PATCH (supported_methods[5])
#define METHOD_OPTIONS (supported_methods[6])

static int64_t
monotonic_ms(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* ---- Exceptions ------------------------------------------------------ */

/* Raise cls(message) with the attributes url, curl_code and request_sent
 * (and phase when phase is not NULL).  Always return NULL. */
static PyObject *
raise_error(PyObject *cls, PyObject *message, PyObject *safe_url,
            long curl_code, int request_sent, const char *phase)
{
    PyObject *exc = NULL;
    PyObject *value = NULL;

    if (message == NULL) {
        return NULL;
    }
    exc = PyObject_CallOneArg(cls, message);
    Py_DECREF(message);
    if (exc == NULL) {
        return NULL;
    }
    if (PyObject_SetAttrString(exc, "url",
                               safe_url != NULL ? safe_url : Py_None) < 0) {
        goto error;
    }
    value = PyLong_FromLong(curl_code);
    if (value == NULL || PyObject_SetAttrString(exc, "curl_code", value) < 0) {
        goto error;
    }
    Py_CLEAR(value);
    if (PyObject_SetAttrString(exc, "request_sent",
                               request_sent ? Py_True : Py_False) < 0) {
        goto error;
    }
    if (phase != NULL) {
        value = PyUnicode_FromString(phase);
        if (value == NULL
                || PyObject_SetAttrString(exc, "phase", value) < 0) {
            goto error;
        }
        Py_CLEAR(value);
    }
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
error:
    Py_XDECREF(value);
    Py_DECREF(exc);
    return NULL;
}

/* Whether c ends the text that mw_redact_url takes for a scheme.  Any
 * other character may be in it, not only those that RFC 3986 allows,
 * so that " http:" or "h ttp:" still start an authority: libcurl rejects
 * such a URL, and the message then shows it. */
static int
ends_scheme(Py_UCS4 c)
{
    return c == '/' || c == '\\' || c == '?' || c == '#' || c == '@';
}

static int
is_slash(Py_UCS4 c)
{
    return c == '/' || c == '\\';
}

/* Return url as a str without the user information (user:password@) of
 * its authority, so that it can go into messages.  Works on any string,
 * valid URL or not: the authority starts after the scheme and any run of
 * '/' or '\\', and ends at the first '/', '\\', '?' or '#'.  The scheme
 * is the text before the first '/', '\\', '?', '#' or '@' when that text
 * ends with ':' and a '/' or '\\' follows it.  Everything in it up to its
 * last '@' is dropped, so "user:///pw@host", "user:pw@host" and
 * "//user:pw@host" lose the password too.
 * NOTE: a password with an unencoded '/', '?' or '#' ends the authority
 * early, and the text after that character stays in the result. */
PyObject *
mw_redact_url(PyObject *url)
{
    Py_ssize_t length = PyUnicode_GET_LENGTH(url);
    Py_ssize_t start = 0;
    Py_ssize_t at = -1;
    Py_ssize_t i;
    PyObject *head = NULL;
    PyObject *tail = NULL;
    PyObject *result = NULL;

    for (i = 0; i < length; i++) {
        if (ends_scheme(PyUnicode_READ_CHAR(url, i))) {
            break;
        }
    }
    /* Text that does not end in ':' with a slash after it may be "user:"
     * rather than a scheme, so the authority then starts at the
     * beginning. */
    if (i > 0 && i < length && is_slash(PyUnicode_READ_CHAR(url, i))
            && PyUnicode_READ_CHAR(url, i - 1) == ':') {
        start = i;
    }
    while (start < length && is_slash(PyUnicode_READ_CHAR(url, start))) {
        start++;
    }
    for (i = start; i < length; i++) {
        Py_UCS4 c = PyUnicode_READ_CHAR(url, i);

        if (c == '/' || c == '\\' || c == '?' || c == '#') {
            break;
        }
        if (c == '@') {
            at = i;
        }
    }
    if (at < 0) {
        return Py_NewRef(url);
    }
    head = PyUnicode_Substring(url, 0, start);
    tail = PyUnicode_Substring(url, at + 1, length);
    if (head != NULL && tail != NULL) {
        result = PyUnicode_Concat(head, tail);
    }
    Py_XDECREF(head);
    Py_XDECREF(tail);
    return result;
}

/* Replace each str of secrets (a tuple, or NULL) in message with "***".
 * Steals the reference to message; returns a new one, or NULL. */
static PyObject *
mw_remove_secrets(PyObject *message, PyObject *secrets)
{
    PyObject *mask = NULL;

    if (message == NULL || secrets == NULL) {
        return message;
    }
    mask = PyUnicode_FromString("***");
    if (mask == NULL) {
        Py_DECREF(message);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(secrets); i++) {
        PyObject *replaced = PyUnicode_Replace(
            message, PyTuple_GET_ITEM(secrets, i), mask, -1);

        Py_DECREF(message);
        message = replaced;
        if (message == NULL) {
            break;
        }
    }
    Py_DECREF(mask);
    return message;
}

static PyObject *
raise_invalid_url(PyObject *safe_url, const char *reason)
{
    return raise_error(mwcomms_InvalidURL,
                       PyUnicode_FromFormat("invalid URL %R: %s",
                                            safe_url, reason),
                       safe_url, 0, 0, NULL);
}

/* Map a failed transfer to one exception class:
 * ConnectError, Timeout, SSLError, InvalidURL or TransferError. */
void
mw_raise_transfer_error(CURLcode code, const char *error_buffer,
                        mw_request *request, mw_transfer *transfer)
{
    PyObject *cls = mwcomms_TransferError;
    const char *phase = NULL;
    const char *text;
    long request_size = 0;
    int request_sent;
    int in_headers;

    if (curl_easy_getinfo(transfer->easy, CURLINFO_REQUEST_SIZE,
                          &request_size) != CURLE_OK) {
        request_size = 0;
    }
    request_sent = request_size > 0;

    if (transfer->out_of_memory) {
        PyErr_NoMemory();
        return;
    }
    if (transfer->read_timed_out) {
        raise_error(mwcomms_Timeout,
                    PyUnicode_FromFormat(
                        "read timed out: nothing was sent or received for "
                        "%ld ms (%U)", transfer->read_timeout_ms,
                        request->safe_url),
                    request->safe_url, (long)code, request_sent, "read");
        return;
    }
    if (transfer->body_too_large) {
        raise_error(mwcomms_TransferError,
                    PyUnicode_FromFormat(
                        "response body exceeds max_response_size of %zu "
                        "bytes (%U)", transfer->max_body, request->safe_url),
                    request->safe_url, (long)code, request_sent, NULL);
        return;
    }
    if (transfer->headers_too_large) {
        raise_error(mwcomms_TransferError,
                    PyUnicode_FromFormat(
                        "response headers exceed %d bytes (%U)",
                        MAX_RESPONSE_HEADER_BYTES, request->safe_url),
                    request->safe_url, (long)code, request_sent, NULL);
        return;
    }
    if (transfer->resend_blocked || code == CURLE_SEND_FAIL_REWIND) {
        /* A streamed body cannot be rewound, so libcurl reports
         * CURLE_SEND_FAIL_REWIND where prereq_callback would stop it. */
        raise_error(mwcomms_TransferError,
                    PyUnicode_FromFormat(
                        "the connection closed before any response arrived; "
                        "the request may have reached the server and was "
                        "not sent again (%U)", request->safe_url),
                    request->safe_url, (long)code, 1, NULL);
        return;
    }
    if (transfer->content_length_error != MW_LENGTH_OK) {
        raise_error(mwcomms_TransferError,
                    PyUnicode_FromFormat(
                        "invalid response: %s (%U)",
                        transfer->content_length_error
                            == MW_LENGTH_CONFLICTING
                        ? "the Content-Length headers conflict"
                        : "a Content-Length header is not a decimal number "
                          "below 2**63", request->safe_url),
                    request->safe_url, (long)code, request_sent, NULL);
        return;
    }
    if (code == CURLE_PARTIAL_FILE) {
        text = error_buffer[0] != '\0' ? error_buffer
                                        : curl_easy_strerror(code);
        raise_error(mwcomms_TransferError,
                    PyUnicode_FromFormat("response ended early: %s (%U)",
                                         text, request->safe_url),
                    request->safe_url, (long)code, request_sent, NULL);
        return;
    }
    in_headers = transfer->last_status != 0 && !transfer->headers_done;
    if (code == CURLE_OUT_OF_MEMORY && in_headers) {
        /* libcurl 7.88 reports a header line longer than its buffer as
         * CURLE_OUT_OF_MEMORY; a failed allocation at this point would
         * look the same, but is far less likely. */
        raise_error(mwcomms_TransferError,
                    PyUnicode_FromFormat(
                        "invalid response: a header line is longer than "
                        "libcurl's limit of %d bytes (%U)",
                        CURL_MAX_HTTP_HEADER, request->safe_url),
                    request->safe_url, (long)code, request_sent, NULL);
        return;
    }
    if (code == CURLE_OUT_OF_MEMORY && !request_sent) {
        raise_error(mwcomms_TransferError,
                    PyUnicode_FromFormat(
                        "libcurl could not build the request: the request "
                        "line, headers and cookies exceed its limit of %d "
                        "bytes, or memory ran out (%U)",
                        LIBCURL_MAX_REQUEST_HEAD, request->safe_url),
                    request->safe_url, (long)code, request_sent, NULL);
        return;
    }
    if (code == CURLE_BAD_FUNCTION_ARGUMENT && in_headers) {
        /* libcurl 7.88 stores each header for curl_easy_header and fails
         * this way on a folded line with no header before it. */
        raise_error(mwcomms_TransferError,
                    PyUnicode_FromFormat(
                        "invalid response: a header line starts with a "
                        "space or tab (obsolete line folding) but has no "
                        "header before it to continue (%U)",
                        request->safe_url),
                    request->safe_url, (long)code, request_sent, NULL);
        return;
    }

    switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
        cls = mwcomms_ConnectError;
        break;
    case CURLE_OPERATION_TIMEDOUT:
        /* No total or low-speed timeout is set, so libcurl only times out
         * while resolving, connecting or doing the TLS handshake. */
        cls = mwcomms_Timeout;
        phase = "connect";
        break;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
#if LIBCURL_VERSION_NUM >= 0x074700
    case CURLE_SSL_CLIENTCERT:
#endif
        cls = mwcomms_SSLError;
        break;
    case CURLE_URL_MALFORMAT:
        cls = mwcomms_InvalidURL;
        break;
    case CURLE_UNSUPPORTED_PROTOCOL:
        /* parse_url accepted the scheme, so once the request was sent
         * this is libcurl rejecting the reply: a status line with an
         * unknown HTTP version, or no status line at all (HTTP/0.9). */
        cls = request_sent ? mwcomms_TransferError : mwcomms_InvalidURL;
        break;
    default:
        cls = mwcomms_TransferError;
        break;
    }
    text = error_buffer[0] != '\0' ? error_buffer : curl_easy_strerror(code);
    raise_error(cls,
                mw_remove_secrets(PyUnicode_FromFormat("%s (%U)", text,
                                                       request->safe_url),
                                  request->proxy_secrets),
                request->safe_url, (long)code, request_sent, phase);
}

/* ---- Argument checks ------------------------------------------------- */

/* Replace a pending UnicodeEncodeError with a ValueError that names the
 * header, or part (such as "body") when header is NULL, and the position
 * of the character.  The original exception carries the whole value, and
 * values such as Cookie or a form body with a password are secret.  UTF-8
 * fails only on lone surrogates.  Other exceptions, such as MemoryError,
 * stay as they are. */
void
mw_raise_unencodable(PyObject *header, const char *part)
{
    PyObject *type = NULL;
    PyObject *value = NULL;
    PyObject *traceback = NULL;
    Py_ssize_t start = -1;

    if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) {
        return;
    }
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    if (value == NULL || PyUnicodeEncodeError_GetStart(value, &start) < 0) {
        PyErr_Clear();
        start = -1;
    }
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(traceback);
    if (header != NULL) {
        PyErr_Format(PyExc_ValueError,
                     "invalid value for header %R: the character at "
                     "position %zd is a lone surrogate, which cannot be "
                     "encoded", header, start);
    }
    else {
        PyErr_Format(PyExc_ValueError,
                     "invalid %s: the character at position %zd is a lone "
                     "surrogate, which cannot be encoded as UTF-8", part,
                     start);
    }
}

static int
parse_method(mw_request *request, PyObject *method)
{
    const char *name;
    Py_ssize_t length;

    if (!PyUnicode_Check(method)) {
        PyErr_Format(PyExc_TypeError, "method must be str, not %.100s",
                     Py_TYPE(method)->tp_name);
        return -1;
    }
    name = PyUnicode_AsUTF8AndSize(method, &length);
    if (name == NULL) {
        PyErr_Clear();
        name = "";
        length = -1;  /* matches no supported method */
    }
    for (int i = 0; supported_methods[i] != NULL; i++) {
        /* Compare the lengths too: "POST\0X" must not pass as "POST". */
        if ((size_t)length == strlen(supported_methods[i])
                && strcmp(name, supported_methods[i]) == 0) {
            request->method = supported_methods[i];
            return 0;
        }
    }
    PyErr_Format(PyExc_ValueError,
                 "unsupported HTTP method %R: expected one of GET, HEAD, "
                 "POST, PUT, DELETE, PATCH, OPTIONS (upper case)", method);
    return -1;
}

/* The URL that parse_url accepted last and its redacted form, so that a
 * client sending many requests to one URL (such as api.php for POST
 * requests) parses it once.  Only read and written with the GIL held. */
static PyObject *last_valid_url;
static PyObject *last_safe_url;

/* Check the URL with libcurl's URL parser before anything else: the
 * scheme must be http or https and there must be a host. */
static int
parse_url(mw_request *request, PyObject *url)
{
    CURLU *handle = NULL;
    CURLUcode rc;
    char *scheme = NULL;
    char *host = NULL;
    Py_ssize_t size;
    int result = -1;

    if (!PyUnicode_Check(url)) {
        PyErr_Format(PyExc_TypeError, "url must be str, not %.100s",
                     Py_TYPE(url)->tp_name);
        return -1;
    }
    request->url = Py_NewRef(url);
    if (last_valid_url != NULL
            && (url == last_valid_url
                || PyUnicode_Compare(url, last_valid_url) == 0)) {
        /* Valid before, so the UTF-8 form exists and has no NUL. */
        request->safe_url = Py_NewRef(last_safe_url);
        request->url_utf8 = PyUnicode_AsUTF8AndSize(url, &size);
        return request->url_utf8 != NULL ? 0 : -1;
    }
    request->safe_url = mw_redact_url(url);
    if (request->safe_url == NULL) {
        return -1;
    }
    request->url_utf8 = PyUnicode_AsUTF8AndSize(url, &size);
    if (request->url_utf8 == NULL) {
        PyErr_Clear();
        raise_invalid_url(request->safe_url,
                          "it cannot be encoded as UTF-8");
        return -1;
    }
    if ((size_t)size != strlen(request->url_utf8)) {
        raise_invalid_url(request->safe_url, "it contains a NUL character");
        return -1;
    }

    handle = curl_url();
    if (handle == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    rc = curl_url_set(handle, CURLUPART_URL, request->url_utf8, 0);
    if (rc != CURLUE_OK) {
#if LIBCURL_VERSION_NUM >= 0x075000
        raise_invalid_url(request->safe_url, curl_url_strerror(rc));
#else
        raise_invalid_url(request->safe_url, "libcurl cannot parse it");
#endif
        goto done;
    }
    rc = curl_url_get(handle, CURLUPART_SCHEME, &scheme, 0);
    if (rc != CURLUE_OK || scheme == NULL
            || (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
        raise_invalid_url(request->safe_url,
                          "the scheme must be http or https");
        goto done;
    }
    rc = curl_url_get(handle, CURLUPART_HOST, &host, 0);
    if (rc != CURLUE_OK || host == NULL || host[0] == '\0') {
        raise_invalid_url(request->safe_url, "the host is missing");
        goto done;
    }
    Py_XSETREF(last_valid_url, Py_NewRef(url));
    Py_XSETREF(last_safe_url, Py_NewRef(request->safe_url));
    result = 0;
done:
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(handle);
    return result;
}

/* RFC 7230 section 3.2.6: token = 1*tchar. */
static int
is_token(PyObject *name)
{
    Py_ssize_t length = PyUnicode_GET_LENGTH(name);
    int kind = PyUnicode_KIND(name);
    const void *data = PyUnicode_DATA(name);

    if (length == 0) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < length; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        int alphanumeric = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                           || (c >= '0' && c <= '9');

        /* strchr would match the terminating NUL, so test c first. */
        if (!alphanumeric
                && (c == 0 || c >= 128
                    || strchr("!#$%&'*+-.^_`|~", (int)c) == NULL)) {
            return 0;
        }
    }
    return 1;
}

static int
has_forbidden_value_char(PyObject *value)
{
    Py_ssize_t length = PyUnicode_GET_LENGTH(value);
    int kind = PyUnicode_KIND(value);
    const void *data = PyUnicode_DATA(value);

    if (kind == PyUnicode_1BYTE_KIND) {
        return memchr(data, '\r', (size_t)length) != NULL
               || memchr(data, '\n', (size_t)length) != NULL
               || memchr(data, '\0', (size_t)length) != NULL;
    }
    for (Py_ssize_t i = 0; i < length; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c == '\r' || c == '\n' || c == '\0') {
            return 1;
        }
    }
    return 0;
}

/* Encode a header value as Latin-1 (the usual HTTP/1.1 octets), or as
 * UTF-8 when it has characters above U+00FF. */
static PyObject *
encode_header_value(PyObject *value)
{
    if (PyUnicode_MAX_CHAR_VALUE(value) <= 0xff) {
        return PyUnicode_AsLatin1String(value);
    }
    return PyUnicode_AsUTF8String(value);
}

/* Header names that add_header treats specially. */
enum {
    NAME_OTHER,
    NAME_AUTHORIZATION,
    NAME_EXPECT,
    NAME_TRANSFER_ENCODING,
    NAME_CONTENT_LENGTH,
    NAME_CONTENT_TYPE
};

/* Return the NAME_* of a header name (an RFC 7230 token), compared
 * case-insensitively. */
static int
classify_header_name(PyObject *name)
{
    static const struct {
        const char *lower;
        int kind;
    } special[] = {
        {"authorization", NAME_AUTHORIZATION},
        {"expect", NAME_EXPECT},
        {"transfer-encoding", NAME_TRANSFER_ENCODING},
        {"content-length", NAME_CONTENT_LENGTH},
        {"content-type", NAME_CONTENT_TYPE},
    };
    Py_ssize_t length = PyUnicode_GET_LENGTH(name);
    int kind = PyUnicode_KIND(name);
    const void *data = PyUnicode_DATA(name);
    char lower[24];

    if (length < 6 || (size_t)length > sizeof(lower)) {
        return NAME_OTHER;
    }
    for (Py_ssize_t i = 0; i < length; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);

        if (c >= 'A' && c <= 'Z') {
            c += 'a' - 'A';
        }
        lower[i] = (char)c;  /* a token is ASCII */
    }
    for (size_t i = 0; i < Py_ARRAY_LENGTH(special); i++) {
        if (strlen(special[i].lower) == (size_t)length
                && memcmp(lower, special[i].lower, (size_t)length) == 0) {
            return special[i].kind;
        }
    }
    return NAME_OTHER;
}

/* Append "Name: value" to the libcurl list.  libcurl treats "Name:" as
 * "remove this header", so an empty value is written "Name;". */
static int
append_header(struct curl_slist **list, const char *name, Py_ssize_t
              name_length, const char *value, Py_ssize_t value_length)
{
    struct curl_slist *appended;
    size_t size = (size_t)name_length + (size_t)value_length + 3;
    char *line = PyMem_Malloc(size);

    if (line == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(line, name, (size_t)name_length);
    if (value_length == 0) {
        line[name_length] = ';';
        line[name_length + 1] = '\0';
    }
    else {
        line[name_length] = ':';
        line[name_length + 1] = ' ';
        memcpy(line + name_length + 2, value, (size_t)value_length);
        line[size - 1] = '\0';
    }
    appended = curl_slist_append(*list, line);
    PyMem_Free(line);
    if (appended == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    *list = appended;
    return 0;
}

static int
append_literal(struct curl_slist **list, const char *line)
{
    struct curl_slist *appended = curl_slist_append(*list, line);

    if (appended == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    *list = appended;
    return 0;
}

/* Store the caller's Content-Length, which sets the size of a streamed
 * body.  Other bodies reject the header (see add_header). */
static int
parse_content_length(mw_request *request, PyObject *name, PyObject *value)
{
    PyObject *number = NULL;
    long long length;

    if (request->content_length >= 0) {
        PyErr_Format(PyExc_ValueError,
                     "header %R is given more than once", name);
        return -1;
    }
    number = PyLong_FromUnicodeObject(value, 10);
    if (number == NULL) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError,
                     "invalid value for header %R: it must be a decimal "
                     "number of bytes", name);
        return -1;
    }
    length = PyLong_AsLongLong(number);
    Py_DECREF(number);
    if ((length == -1 && PyErr_Occurred()) || length < 0) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError,
                     "invalid value for header %R: it must be 0 or more "
                     "bytes", name);
        return -1;
    }
    request->content_length = (curl_off_t)length;
    return 0;
}

#define FORM_CONTENT_TYPE "application/x-www-form-urlencoded"

/* Return 1 when libcurl would write this Content-Type header itself, byte
 * for byte: a str or bytes body goes out through CURLOPT_POSTFIELDS, for
 * which libcurl 7.88 adds "Content-Type: " FORM_CONTENT_TYPE unless the
 * header list has a Content-Type.  Leaving the header to libcurl saves
 * the formatting of a custom header line (about 5,000 instructions per
 * request, callgrind), and only moves it after the caller's headers. */
static int
is_libcurl_form_type(const mw_request *request, const char *name,
                     PyObject *value)
{
    return request->body_kind == MW_BODY_BUFFER
           && request->method != METHOD_HEAD
           && strcmp(name, "Content-Type") == 0
           && PyBytes_GET_SIZE(value) == sizeof(FORM_CONTENT_TYPE) - 1
           && memcmp(PyBytes_AS_STRING(value), FORM_CONTENT_TYPE,
                     sizeof(FORM_CONTENT_TYPE) - 1) == 0;
}

/* Check one (name, value) pair and add it.  Messages name the header,
 * never its value, because values such as Cookie may be secret. */
static int
add_header(mw_request *request, PyObject *name, PyObject *value,
           PyObject *auth)
{
    PyObject *encoded = NULL;
    const char *name_bytes;
    Py_ssize_t name_length;
    int name_kind;
    int result = -1;

    if (!PyUnicode_Check(name)) {
        PyErr_Format(PyExc_TypeError, "header names must be str, not %.100s",
                     Py_TYPE(name)->tp_name);
        return -1;
    }
    if (!is_token(name)) {
        PyErr_Format(PyExc_ValueError,
                     "invalid header name %R: it must be a non-empty RFC "
                     "7230 token (letters, digits and !#$%%&'*+-.^_`|~)",
                     name);
        return -1;
    }
    if (!PyUnicode_Check(value)) {
        PyErr_Format(PyExc_TypeError,
                     "the value of header %R must be str, not %.100s",
                     name, Py_TYPE(value)->tp_name);
        return -1;
    }
    if (has_forbidden_value_char(value)) {
        PyErr_Format(PyExc_ValueError,
                     "invalid value for header %R: it must not contain CR, "
                     "LF or NUL", name);
        return -1;
    }
    name_kind = classify_header_name(name);
    if (name_kind == NAME_AUTHORIZATION) {
        if (auth != Py_None) {
            PyErr_SetString(PyExc_ValueError,
                            "an Authorization header cannot be combined with "
                            "auth: pass one or the other");
            return -1;
        }
        request->has_authorization = 1;
    }
    else if (name_kind == NAME_EXPECT) {
        request->has_expect = 1;
    }
    else if (name_kind == NAME_TRANSFER_ENCODING
             || (name_kind == NAME_CONTENT_LENGTH
                 && request->body_kind != MW_BODY_STREAM)) {
        /* libcurl frames the body itself.  A caller's value that differs
         * from the real body would let the rest of the body be read as
         * another request on the connection. */
        PyErr_Format(PyExc_ValueError,
                     "a %R header cannot be set: libcurl sets the message "
                     "framing from the body", name);
        return -1;
    }
    else if (name_kind == NAME_CONTENT_LENGTH) {
        /* The size of a streamed body.  libcurl writes the header from
         * CURLOPT_POSTFIELDSIZE_LARGE, and the driver checks that the
         * body has exactly this size. */
        return parse_content_length(request, name, value);
    }
    if (request->body_kind == MW_BODY_MULTIPART
            && name_kind == NAME_CONTENT_TYPE) {
        PyErr_SetString(PyExc_ValueError,
                        "a Content-Type header cannot be combined with a "
                        "Multipart body: libcurl sets it with the boundary");
        return -1;
    }
    encoded = encode_header_value(value);
    if (encoded == NULL) {
        mw_raise_unencodable(name, NULL);
        return -1;
    }
    name_bytes = PyUnicode_AsUTF8AndSize(name, &name_length);
    if (name_bytes == NULL) {
        goto done;
    }
    if (name_kind == NAME_CONTENT_TYPE) {
        if (request->form_type_by_libcurl) {
            /* A second Content-Type: send the first one as well. */
            request->form_type_by_libcurl = 0;
            if (append_literal(&request->headers,
                               "Content-Type: " FORM_CONTENT_TYPE) < 0) {
                goto done;
            }
        }
        if (request->content_type == NULL) {
            request->content_type = Py_NewRef(encoded);
            if (is_libcurl_form_type(request, name_bytes, encoded)) {
                request->form_type_by_libcurl = 1;
                result = 0;
                goto done;
            }
        }
    }
    result = append_header(&request->headers, name_bytes, name_length,
                           PyBytes_AS_STRING(encoded),
                           PyBytes_GET_SIZE(encoded));
done:
    Py_DECREF(encoded);
    return result;
}

static int
add_header_pair(mw_request *request, PyObject *item, PyObject *auth)
{
    PyObject *pair = NULL;
    int result;

    if (PyUnicode_Check(item) || PyBytes_Check(item)
            || PyByteArray_Check(item)) {
        PyErr_Format(PyExc_TypeError,
                     "each header must be a (name, value) pair, not "
                     "%.100s", Py_TYPE(item)->tp_name);
        return -1;
    }
    pair = PySequence_Fast(item, "each header must be a (name, value) pair");
    if (pair == NULL) {
        return -1;
    }
    if (PySequence_Fast_GET_SIZE(pair) != 2) {
        PyErr_Format(PyExc_TypeError,
                     "each header must be a (name, value) pair, got a "
                     "sequence of length %zd", PySequence_Fast_GET_SIZE(pair));
        Py_DECREF(pair);
        return -1;
    }
    result = add_header(request, PySequence_Fast_GET_ITEM(pair, 0),
                        PySequence_Fast_GET_ITEM(pair, 1), auth);
    Py_DECREF(pair);
    return result;
}

/* Reject headers that libcurl could not fit in its request buffer, which
 * it would report as "Out of memory".  The check counts the URL and the
 * caller's headers; cookies and the headers that libcurl adds can still
 * go over the limit (see mw_raise_transfer_error). */
static int
check_head_size(mw_request *request)
{
    size_t size = strlen(request->url_utf8);

    if (request->form_type_by_libcurl) {
        size += sizeof("Content-Type: " FORM_CONTENT_TYPE) + 1;
    }

    for (struct curl_slist *item = request->headers; item != NULL;
         item = item->next) {
        size += strlen(item->data) + 2;
    }
    if (size >= LIBCURL_MAX_REQUEST_HEAD) {
        PyErr_Format(PyExc_ValueError,
                     "the URL and headers are %zu bytes, more than "
                     "libcurl's limit of %d bytes for the request head",
                     size, LIBCURL_MAX_REQUEST_HEAD);
        return -1;
    }
    return 0;
}

/* headers: None, a dict (or any object with items()), or an iterable of
 * (name, value) pairs. */
static int
parse_headers(mw_request *request, PyObject *headers, PyObject *auth)
{
    PyObject *items = NULL;
    PyObject *iterator = NULL;
    PyObject *item = NULL;
    int result = -1;

    if (headers != Py_None) {
        if (PyDict_Check(headers)) {
            PyObject *name;
            PyObject *value;
            Py_ssize_t position = 0;

            /* add_header runs no Python code, so the dict cannot change
             * while it is iterated. */
            while (PyDict_Next(headers, &position, &name, &value)) {
                if (add_header(request, name, value, auth) < 0) {
                    return -1;
                }
            }
        }
        else if (PyList_CheckExact(headers) || PyTuple_CheckExact(headers)) {
            /* Indexing saves creating an iterator.  The size is read in
             * each pass because the __iter__ of a pair that is neither a
             * tuple nor a list could change the list. */
            for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(headers);
                    i++) {
                int added;

                item = Py_NewRef(PySequence_Fast_GET_ITEM(headers, i));
                added = add_header_pair(request, item, auth);
                Py_CLEAR(item);
                if (added < 0) {
                    goto done;
                }
            }
        }
        else {
            /* Lists and tuples have no items(), and looking it up costs
             * an AttributeError. */
            if (!PyList_Check(headers) && !PyTuple_Check(headers)
                    && !PyUnicode_Check(headers) && !PyBytes_Check(headers)
                    && PyObject_HasAttrString(headers, "items")) {
                items = PyObject_CallMethod(headers, "items", NULL);
                if (items == NULL) {
                    goto done;
                }
            }
            else {
                items = Py_NewRef(headers);
            }
            if (PyUnicode_Check(items) || PyBytes_Check(items)) {
                iterator = NULL;
            }
            else {
                iterator = PyObject_GetIter(items);
            }
            if (iterator == NULL) {
                PyErr_Format(PyExc_TypeError,
                             "headers must be None, a dict or an iterable of "
                             "(name, value) pairs, not %.100s",
                             Py_TYPE(headers)->tp_name);
                goto done;
            }
            while ((item = PyIter_Next(iterator)) != NULL) {
                int added = add_header_pair(request, item, auth);
                Py_CLEAR(item);
                if (added < 0) {
                    goto done;
                }
            }
            if (PyErr_Occurred()) {
                goto done;
            }
        }
    }

    if (check_head_size(request) < 0) {
        goto done;
    }

    /* Without these, libcurl would add Content-Type:
     * application/x-www-form-urlencoded to POST bodies (and the OAuth
     * signature covers the Content-Type that is sent) and Expect:
     * 100-continue to bodies over 1 MiB (a round trip of delay). */
    if (request->body_kind == MW_BODY_NONE
            && request->method != METHOD_POST
            && request->method != METHOD_PUT
            && request->method != METHOD_PATCH) {
        /* No body is sent (see set_method), so libcurl adds neither. */
        result = 0;
        goto done;
    }
    if (request->content_type == NULL
            && request->body_kind != MW_BODY_MULTIPART
            && append_literal(&request->headers, "Content-Type:") < 0) {
        goto done;
    }
    /* parse_body adds the entry for a str or bytes body that needs it. */
    if (!request->has_expect && request->body_kind != MW_BODY_BUFFER
            && append_literal(&request->headers, "Expect:") < 0) {
        goto done;
    }
    result = 0;
done:
    Py_XDECREF(iterator);
    Py_XDECREF(items);
    return result;
}

/* Set request->body_kind from the type of body, before the headers are
 * parsed, because a Multipart body changes which headers are valid. */
static int
classify_body(mw_request *request, PyObject *body)
{
    int has_read;

    if (body == Py_None) {
        request->body_kind = MW_BODY_NONE;
        return 0;
    }
    if (PyUnicode_Check(body) || PyObject_CheckBuffer(body)) {
        request->body_kind = MW_BODY_BUFFER;
        return 0;
    }
    if (mw_multipart_check(body)) {
        request->body_kind = MW_BODY_MULTIPART;
        return 0;
    }
    has_read = PyObject_HasAttrString(body, "read");
    if (has_read || (!PyDict_Check(body) && PyIter_Check(body))
            || PyList_Check(body) || PyTuple_Check(body)) {
        request->body_kind = MW_BODY_STREAM;
        return 0;
    }
    PyErr_Format(PyExc_TypeError,
                 "body must be None, str, a bytes-like object, a Multipart, "
                 "a file-like object or an iterator of bytes, not %.100s",
                 Py_TYPE(body)->tp_name);
    return -1;
}

/* Find the size of a regular file's remaining bytes from fileno() and
 * tell().  Return -1 when body is not such a file. */
static curl_off_t
file_remaining_size(PyObject *body)
{
    PyObject *value = NULL;
    long fd;
    long long position;
    struct stat status;

    value = PyObject_CallMethod(body, "fileno", NULL);
    if (value == NULL) {
        PyErr_Clear();
        return -1;
    }
    fd = PyLong_AsLong(value);
    Py_DECREF(value);
    if (fd == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return -1;
    }
    if (fstat((int)fd, &status) != 0 || !S_ISREG(status.st_mode)) {
        return -1;
    }
    value = PyObject_CallMethod(body, "tell", NULL);
    if (value == NULL) {
        PyErr_Clear();
        return -1;
    }
    position = PyLong_AsLongLong(value);
    Py_DECREF(value);
    if (position == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return -1;
    }
    if (position < 0 || position > (long long)status.st_size) {
        return -1;
    }
    return (curl_off_t)(status.st_size - position);
}

static int
parse_stream_body(mw_request *request, PyObject *body)
{
    if (request->method == METHOD_HEAD) {
        PyErr_SetString(PyExc_ValueError, "a HEAD request cannot have a body");
        return -1;
    }
    if (PyObject_HasAttrString(body, "read")) {
        request->upload_read = PyObject_GetAttrString(body, "read");
        if (request->upload_read == NULL) {
            return -1;
        }
        request->upload_length = file_remaining_size(body);
    }
    else {
        request->upload_iterator = PyObject_GetIter(body);
        if (request->upload_iterator == NULL) {
            return -1;
        }
        request->upload_length = -1;
    }
    if (request->content_length >= 0) {
        request->upload_length = request->content_length;
    }
    if (request->auth != NULL && request->content_type != NULL
            && strncmp(PyBytes_AS_STRING(request->content_type),
                       "application/x-www-form-urlencoded", 33) == 0) {
        PyErr_SetString(PyExc_ValueError,
                        "an OAuth-signed form body must be str or bytes, "
                        "because its parameters are signed: read the file "
                        "into memory first");
        return -1;
    }
    return 0;
}

static int finish_buffer_body(mw_request *request);

static int
parse_body(mw_request *request, PyObject *body)
{
    if (body == Py_None) {
        return 0;
    }
    if (request->body_kind == MW_BODY_MULTIPART) {
        if (request->method == METHOD_GET
                || request->method == METHOD_HEAD) {
            PyErr_Format(PyExc_ValueError,
                         "a %s request cannot have a Multipart body",
                         request->method);
            return -1;
        }
        request->multipart = Py_NewRef(body);
        return 0;
    }
    if (request->body_kind == MW_BODY_STREAM) {
        return parse_stream_body(request, body);
    }
    if (PyUnicode_Check(body) && PyUnicode_IS_COMPACT_ASCII(body)) {
        /* An ASCII str is its own UTF-8, and a str cannot change, so its
         * characters are sent without a copy. */
        request->body_owner = Py_NewRef(body);
        if (PyBuffer_FillInfo(&request->body, body, PyUnicode_DATA(body),
                              PyUnicode_GET_LENGTH(body), 1,
                              PyBUF_SIMPLE) < 0) {
            return -1;
        }
        return finish_buffer_body(request);
    }
    if (PyUnicode_Check(body)) {
        request->body_owner = PyUnicode_AsUTF8String(body);
        if (request->body_owner == NULL) {
            mw_raise_unencodable(NULL, "body");
            return -1;
        }
    }
    else if (PyObject_CheckBuffer(body)) {
        request->body_owner = Py_NewRef(body);
    }
    else {
        PyErr_Format(PyExc_TypeError,
                     "body must be None, str or a bytes-like object, not "
                     "%.100s", Py_TYPE(body)->tp_name);
        return -1;
    }
    /* The buffer stays acquired until the transfer ends because
     * CURLOPT_POSTFIELDS does not copy the data; an acquired bytearray
     * cannot be resized meanwhile. */
    if (PyObject_GetBuffer(request->body_owner, &request->body,
                           PyBUF_SIMPLE) < 0) {
        return -1;
    }
    return finish_buffer_body(request);
}

/* Check a str or bytes-like body whose buffer parse_body acquired. */
static int
finish_buffer_body(mw_request *request)
{
    request->has_body = 1;
    if (request->method == METHOD_HEAD) {
        PyErr_SetString(PyExc_ValueError, "a HEAD request cannot have a body");
        return -1;
    }
    /* libcurl adds "Expect: 100-continue" only to a CURLOPT_POSTFIELDS
     * body over EXPECT_100_THRESHOLD (lib/http.c: 1 MiB in 7.88, 1024
     * bytes in older versions), so a smaller body needs no "Expect:"
     * entry to suppress it. */
    if (!request->has_expect && request->body.len > EXPECT_CHECK_BYTES
            && append_literal(&request->headers, "Expect:") < 0) {
        return -1;
    }
    return 0;
}

/* Convert one timeout value in seconds to milliseconds; 0 means None. */
static int
parse_timeout_value(PyObject *value, long *milliseconds)
{
    double seconds;

    if (value == Py_None) {
        *milliseconds = 0;
        return 0;
    }
    if (PyBool_Check(value)
            || !(PyLong_Check(value) || PyFloat_Check(value))) {
        PyErr_Format(PyExc_TypeError,
                     "timeout must be None, a number of seconds or a "
                     "(connect, read) pair, not %.100s",
                     Py_TYPE(value)->tp_name);
        return -1;
    }
    seconds = PyFloat_AsDouble(value);
    if (seconds == -1.0 && PyErr_Occurred()) {
        return -1;
    }
    if (!(seconds > 0.0) || !isfinite(seconds)) {
        PyErr_Format(PyExc_ValueError,
                     "timeout must be a positive finite number of seconds "
                     "or None, not %R", value);
        return -1;
    }
    /* libcurl keeps timeouts in milliseconds; cap at about 24 days. */
    if (seconds * 1000.0 >= (double)INT_MAX) {
        *milliseconds = INT_MAX;
    }
    else {
        *milliseconds = (long)ceil(seconds * 1000.0);
    }
    return 0;
}

static int
parse_timeout(mw_request *request, PyObject *timeout)
{
    if (PyTuple_Check(timeout)) {
        if (PyTuple_GET_SIZE(timeout) != 2) {
            PyErr_Format(PyExc_ValueError,
                         "timeout tuple must be (connect, read), got %zd "
                         "items", PyTuple_GET_SIZE(timeout));
            return -1;
        }
        if (parse_timeout_value(PyTuple_GET_ITEM(timeout, 0),
                                &request->connect_timeout_ms) < 0) {
            return -1;
        }
        return parse_timeout_value(PyTuple_GET_ITEM(timeout, 1),
                                   &request->read_timeout_ms);
    }
    if (parse_timeout_value(timeout, &request->connect_timeout_ms) < 0) {
        return -1;
    }
    request->read_timeout_ms = request->connect_timeout_ms;
    return 0;
}

static int
parse_verify(mw_request *request, PyObject *verify)
{
    if (verify == Py_True || verify == Py_False) {
        request->verify = verify == Py_True;
        return 0;
    }
    if (!PyUnicode_Check(verify) && !PyBytes_Check(verify)
            && !PyObject_HasAttrString(verify, "__fspath__")) {
        PyErr_Format(PyExc_TypeError,
                     "verify must be True, False or the path of a CA bundle, "
                     "not %.100s", Py_TYPE(verify)->tp_name);
        return -1;
    }
    if (!PyUnicode_FSConverter(verify, &request->ca_file)) {
        return -1;
    }
    if (PyBytes_GET_SIZE(request->ca_file) == 0) {
        PyErr_SetString(PyExc_ValueError,
                        "verify must not be an empty path");
        return -1;
    }
    request->verify = 1;
    return 0;
}

int
mw_request_parse(mw_request *request, PyObject *method, PyObject *url,
                 PyObject *headers, PyObject *body, PyObject *timeout,
                 PyObject *verify, PyObject *auth, int accept_encoding)
{
    if (parse_url(request, url) < 0) {
        return -1;
    }
    if (parse_method(request, method) < 0) {
        return -1;
    }
    if (auth != Py_None) {
        if (!mwcomms_oauth_check(auth)) {
            PyErr_Format(PyExc_TypeError,
                         "auth must be None or an _mwcomms.OAuth1 instance, "
                         "not %.100s", Py_TYPE(auth)->tp_name);
            return -1;
        }
        request->auth = Py_NewRef(auth);
    }
    request->content_length = -1;
    request->upload_length = -1;
    if (classify_body(request, body) < 0) {
        return -1;
    }
    if (parse_headers(request, headers, auth) < 0
            || parse_body(request, body) < 0
            || parse_timeout(request, timeout) < 0
            || parse_verify(request, verify) < 0) {
        return -1;
    }
    request->accept_encoding = accept_encoding;
    return 0;
}

/* Proxy URL schemes that libcurl 7.88 accepts in CURLOPT_PROXY. */
static const char *const proxy_schemes[] = {
    "http", "https", "socks4", "socks4a", "socks5", "socks5h", NULL
};

/* Add the user name and password of the proxy URL, raw and URL-decoded,
 * to request->proxy_secrets, so that no message shows them. */
static int
collect_proxy_secrets(mw_request *request, CURLU *handle)
{
    static const CURLUPart parts[] = {CURLUPART_USER, CURLUPART_PASSWORD};
    PyObject *secrets = PyList_New(0);

    if (secrets == NULL) {
        return -1;
    }
    for (size_t i = 0; i < 2; i++) {
        for (int decode = 0; decode < 2; decode++) {
            char *text = NULL;
            PyObject *value = NULL;

            if (curl_url_get(handle, parts[i], &text,
                             decode ? CURLU_URLDECODE : 0) != CURLUE_OK
                    || text == NULL || text[0] == '\0') {
                curl_free(text);
                continue;
            }
            value = PyUnicode_DecodeUTF8(text, strlen(text),
                                         "surrogateescape");
            curl_free(text);
            if (value == NULL || PyList_Append(secrets, value) < 0) {
                Py_XDECREF(value);
                Py_DECREF(secrets);
                return -1;
            }
            Py_DECREF(value);
        }
    }
    request->proxy_secrets = PyList_AsTuple(secrets);
    Py_DECREF(secrets);
    return request->proxy_secrets != NULL ? 0 : -1;
}

static int
check_proxy_url(mw_request *request, const char *text)
{
    CURLU *handle = NULL;
    char *scheme = NULL;
    char *host = NULL;
    const char *reason = NULL;
    int result = -1;

    handle = curl_url();
    if (handle == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (curl_url_set(handle, CURLUPART_URL, text, 0) != CURLUE_OK) {
        reason = "libcurl cannot parse it";
    }
    else if (curl_url_get(handle, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK
             || scheme == NULL) {
        reason = "the scheme is missing";
    }
    else if (curl_url_get(handle, CURLUPART_HOST, &host, 0) != CURLUE_OK
             || host == NULL || host[0] == '\0') {
        reason = "the host is missing";
    }
    else {
        reason = "the scheme is not supported";
        for (int i = 0; proxy_schemes[i] != NULL; i++) {
            if (strcmp(scheme, proxy_schemes[i]) == 0) {
                reason = NULL;
                break;
            }
        }
    }
    if (reason != NULL) {
        /* Neither the URL nor its scheme is shown: where libcurl cannot
         * split the URL, no redaction can tell a password from a host
         * name, and in "user://password@host" the scheme is a user name. */
        PyErr_Format(PyExc_ValueError,
                     "invalid proxy URL: %s. Expected "
                     "scheme://[user:password@]host:port with the scheme "
                     "http, https, socks4, socks4a, socks5 or socks5h (the "
                     "URL is not shown because it may contain a password)",
                     reason);
        goto done;
    }
    result = collect_proxy_secrets(request, handle);
done:
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(handle);
    return result;
}

/* proxy: None (libcurl reads the environment), '' (no proxy) or a proxy
 * URL.  noproxy: None or a CURLOPT_NOPROXY list of host names. */
int
mw_request_parse_proxy(mw_request *request, PyObject *proxy,
                       PyObject *noproxy)
{
    const char *text;
    Py_ssize_t size;

    request->proxy_mode = MW_PROXY_DEFAULT;
    if (proxy != Py_None) {
        if (!PyUnicode_Check(proxy)) {
            PyErr_Format(PyExc_TypeError,
                         "proxy must be None, '' or a proxy URL str, not "
                         "%.100s", Py_TYPE(proxy)->tp_name);
            return -1;
        }
        text = PyUnicode_AsUTF8AndSize(proxy, &size);
        if (text == NULL) {
            return -1;
        }
        if ((size_t)size != strlen(text)) {
            PyErr_SetString(PyExc_ValueError,
                            "proxy URL must not contain a NUL character");
            return -1;
        }
        if (size == 0) {
            request->proxy_mode = MW_PROXY_NONE;
        }
        else {
            if (check_proxy_url(request, text) < 0) {
                return -1;
            }
            request->proxy = PyBytes_FromStringAndSize(text, size);
            if (request->proxy == NULL) {
                return -1;
            }
            request->proxy_mode = MW_PROXY_URL;
        }
    }
    if (noproxy != Py_None) {
        if (!PyUnicode_Check(noproxy)) {
            PyErr_Format(PyExc_TypeError,
                         "noproxy must be None or a str of host names, not "
                         "%.100s", Py_TYPE(noproxy)->tp_name);
            return -1;
        }
        request->noproxy = PyUnicode_AsUTF8String(noproxy);
        if (request->noproxy == NULL) {
            return -1;
        }
        if ((size_t)PyBytes_GET_SIZE(request->noproxy)
                != strlen(PyBytes_AS_STRING(request->noproxy))) {
            PyErr_SetString(PyExc_ValueError,
                            "noproxy must not contain a NUL character");
            return -1;
        }
    }
    return 0;
}

/* Initial size of the Authorization line: pymalloc serves blocks up to
 * 512 bytes from its pools. */
#define AUTH_LINE_BYTES 511

/* Sign the request and link its Authorization header at the end of
 * request->headers.  Called right before the transfer so that the
 * timestamp and nonce are fresh.  When the list was empty, the caller
 * must pass the new request->headers to CURLOPT_HTTPHEADER again. */
int
mw_request_authorize(mw_request *request)
{
    const char *body = "";
    Py_ssize_t body_length = 0;
    struct curl_slist *last;

    if (request->auth == NULL) {
        return 0;
    }
    if (request->has_body) {
        body = request->body.buf;
        body_length = request->body.len;
    }
    /* Room for a typical HMAC-SHA1 header, so that it is built without
     * growing the buffer. */
    if (oauth_buf_reserve(&request->auth_line, AUTH_LINE_BYTES) < 0
            || oauth_buf_append(&request->auth_line, "Authorization: ", 15) < 0
            || mwcomms_oauth_authorization(
                   request->auth, request->method, request->url_utf8,
                   request->content_type != NULL
                       ? PyBytes_AS_STRING(request->content_type) : NULL,
                   body, body_length, &request->auth_line) < 0) {
        return -1;
    }
    request->auth_node.data = request->auth_line.data;
    request->auth_node.next = NULL;
    if (request->headers == NULL) {
        request->headers = &request->auth_node;
        return 0;
    }
    last = request->headers;
    while (last->next != NULL) {
        last = last->next;
    }
    last->next = &request->auth_node;
    return 0;
}

/* Take the Authorization node of mw_request_authorize off the header
 * list, because curl_slist_free_all must not free it. */
static void
unlink_auth_node(mw_request *request)
{
    struct curl_slist *item;

    oauth_buf_free(&request->auth_line);
    if (request->auth_node.data == NULL) {
        return;
    }
    if (request->headers == &request->auth_node) {
        request->headers = NULL;
    }
    else {
        for (item = request->headers; item != NULL; item = item->next) {
            if (item->next == &request->auth_node) {
                item->next = NULL;
                break;
            }
        }
    }
    request->auth_node.data = NULL;
}

void
mw_request_clear(mw_request *request)
{
    if (request->has_body) {
        PyBuffer_Release(&request->body);
        request->has_body = 0;
    }
    Py_CLEAR(request->body_owner);
    Py_CLEAR(request->url);
    Py_CLEAR(request->safe_url);
    Py_CLEAR(request->content_type);
    Py_CLEAR(request->ca_file);
    Py_CLEAR(request->auth);
    unlink_auth_node(request);
    curl_slist_free_all(request->headers);
    request->headers = NULL;
    Py_CLEAR(request->multipart);
    if (request->mime != NULL) {
        curl_mime_free(request->mime);
        request->mime = NULL;
    }
    Py_CLEAR(request->upload_read);
    Py_CLEAR(request->upload_iterator);
    Py_CLEAR(request->proxy);
    Py_CLEAR(request->proxy_secrets);
    Py_CLEAR(request->noproxy);
}

/* ---- libcurl callbacks (no GIL) -------------------------------------- */

/* Append data to buffer, which is allocated with initial_cap bytes (or
 * the next doubling that fits) and doubles whenever it is full. */
static int
buffer_append_sized(mw_buffer *buffer, const char *data, size_t length,
                    size_t initial_cap)
{
    if (length > buffer->cap - buffer->len) {
        size_t cap = buffer->cap != 0 ? buffer->cap
                     : initial_cap != 0 ? initial_cap : 1;
        char *grown;

        while (cap - buffer->len < length) {
            if (cap > SIZE_MAX / 2) {
                return -1;
            }
            cap *= 2;
        }
        grown = PyMem_RawRealloc(buffer->data, cap);
        if (grown == NULL) {
            return -1;
        }
        buffer->data = grown;
        buffer->cap = cap;
    }
    memcpy(buffer->data + buffer->len, data, length);
    buffer->len += length;
    return 0;
}

static int
buffer_append(mw_buffer *buffer, const char *data, size_t length)
{
    return buffer_append_sized(buffer, data, length, 16384);
}

int
mw_buffer_append(mw_buffer *buffer, const char *data, size_t length)
{
    return buffer_append(buffer, data, length);
}

/* Restart the idle clock of the read timeout.  Only xferinfo_callback
 * reads it, and only when a read timeout is set, so the clock is not
 * read otherwise (a few calls per response). */
static inline void
note_activity(mw_transfer *transfer)
{
    if (transfer->read_timeout_ms != 0) {
        transfer->last_activity_ms = monotonic_ms();
    }
}

/* Bodies with a Content-Length of at least this many bytes go straight
 * into a bytes object (see write_to_bytes).  Below it, taking the GIL
 * costs more than the copy it saves. */
#define DIRECT_BODY_MIN_BYTES (64 * 1024)

/* Largest Content-Length that write_to_bytes allocates at once.  A
 * server can announce any length, so a larger body grows by doubling as
 * it arrives instead of reserving what the header claims. */
#define DIRECT_BODY_MAX_BYTES (64 * 1024 * 1024)

/* Initial size of the header buffer.  A typical response head fits, and
 * the buffer moves into the Response, so each Response kept has 1 KiB
 * of headers instead of 16 KiB. */
#define HEADER_BUFFER_BYTES 1024

/* Initial size of the body buffer.  A Content-Length below
 * DIRECT_BODY_MIN_BYTES sizes the buffer once, because larger ones go to
 * write_to_bytes.  A body longer than announced, such as a decoded gzip
 * body, grows from there. */
static size_t
body_buffer_size(const mw_transfer *transfer)
{
    curl_off_t expected = transfer->response_length;

    if (transfer->pause_threshold == 0 && expected > 0
            && expected < DIRECT_BODY_MIN_BYTES) {
        return (size_t)expected;
    }
    return 16384;
}

/* Store a chunk of a body into transfer->body_bytes.  On the first chunk
 * of a body whose Content-Length is known, take the GIL once to create a
 * bytes object of that size.  No other code can reach the object until
 * mw_response_new hands it out, so the callback writes into it without
 * the GIL.  Return 1 when the chunk was stored, 0 when the caller should
 * use the byte buffer (no length, a stream, or a body longer than its
 * Content-Length, as a decoded gzip body is), -1 when out of memory. */
static int
write_to_bytes(mw_transfer *transfer, const char *data, size_t length)
{
    if (transfer->body_bytes == NULL) {
        PyGILState_STATE state;
        curl_off_t expected = transfer->response_length;

        if (transfer->body_bytes_abandoned || transfer->pause_threshold != 0
                || transfer->body.len != 0
                || expected < DIRECT_BODY_MIN_BYTES
                || expected > DIRECT_BODY_MAX_BYTES
                || (uint64_t)expected > (uint64_t)transfer->max_body
                || (uint64_t)expected > (uint64_t)PY_SSIZE_T_MAX
                || (size_t)expected < length) {
            return 0;
        }
        state = PyGILState_Ensure();
        transfer->body_bytes = PyBytes_FromStringAndSize(
            NULL, (Py_ssize_t)expected);
        if (transfer->body_bytes == NULL) {
            PyErr_Clear();
        }
        PyGILState_Release(state);
        if (transfer->body_bytes == NULL) {
            transfer->body_bytes_abandoned = 1;
            return 0;
        }
        transfer->body_bytes_length = 0;
    }
    if (transfer->body_bytes_abandoned) {
        return 0;
    }
    if (length > (size_t)PyBytes_GET_SIZE(transfer->body_bytes)
                 - transfer->body_bytes_length) {
        /* Longer than announced: go on in the byte buffer. */
        transfer->body_bytes_abandoned = 1;
        if (buffer_append(&transfer->body,
                          PyBytes_AS_STRING(transfer->body_bytes),
                          transfer->body_bytes_length) < 0) {
            return -1;
        }
        return 0;
    }
    memcpy(PyBytes_AS_STRING(transfer->body_bytes)
           + transfer->body_bytes_length, data, length);
    transfer->body_bytes_length += length;
    return 1;
}

static size_t
write_callback(char *data, size_t size, size_t count, void *userdata)
{
    mw_transfer *transfer = userdata;
    size_t length;

    if (transfer == NULL) {
        return 0;  /* an idle handle: see mw_transfer_detach */
    }

    if (count != 0 && size > SIZE_MAX / count) {
        transfer->out_of_memory = 1;
        return 0;
    }
    length = size * count;
    note_activity(transfer);
    if (length > transfer->max_body - transfer->received) {
        transfer->body_too_large = 1;
        return 0;
    }
    if (transfer->pause_threshold != 0) {
        mw_buffer *body = &transfer->body;

        if (body->len - transfer->body_offset >= transfer->pause_threshold) {
            /* libcurl keeps this chunk and passes it again on unpause. */
            transfer->download_paused = 1;
            return CURL_WRITEFUNC_PAUSE;
        }
        if (transfer->body_offset > 0 && length > body->cap - body->len) {
            /* Move the unread bytes to the front instead of growing. */
            memmove(body->data, body->data + transfer->body_offset,
                    body->len - transfer->body_offset);
            body->len -= transfer->body_offset;
            transfer->body_offset = 0;
        }
    }
    switch (write_to_bytes(transfer, data, length)) {
    case 1:
        transfer->received += length;
        return length;
    case -1:
        transfer->out_of_memory = 1;
        return 0;
    default:
        break;
    }
    if (buffer_append_sized(&transfer->body, data, length,
                            body_buffer_size(transfer)) < 0) {
        transfer->out_of_memory = 1;
        return 0;
    }
    transfer->received += length;
    return length;
}

/* Copy the next bytes of a streamed upload, or pause the transfer until
 * the driver has read more from the Python object. */
static size_t
read_callback(char *data, size_t size, size_t count, void *userdata)
{
    mw_transfer *transfer = userdata;
    size_t capacity = size * count;
    size_t available = transfer->upload.len - transfer->upload_offset;

    if (available == 0) {
        if (transfer->upload_eof) {
            return 0;
        }
        transfer->upload_paused = 1;
        return CURL_READFUNC_PAUSE;
    }
    if (available > capacity) {
        available = capacity;
    }
    memcpy(data, transfer->upload.data + transfer->upload_offset, available);
    transfer->upload_offset += available;
    if (transfer->upload_offset == transfer->upload.len) {
        transfer->upload_offset = 0;
        transfer->upload.len = 0;
    }
    note_activity(transfer);
    return available;
}

/* Parse a response's Content-Length value into *length.  The value may
 * be a comma-separated list whose items must all be equal (RFC 9110
 * section 8.6).  Return MW_LENGTH_OK or the problem. */
static int
parse_response_length(const char *data, size_t size, curl_off_t *length)
{
    const char *position = data;
    const char *end = data + size;
    curl_off_t first = -1;

    while (1) {
        curl_off_t value = 0;
        int digits = 0;

        while (position < end && (*position == ' ' || *position == '\t')) {
            position++;
        }
        while (position < end && *position >= '0' && *position <= '9') {
            int digit = *position - '0';

            if (value > (MAX_OFF_T - digit) / 10) {
                return MW_LENGTH_INVALID;
            }
            value = value * 10 + digit;
            digits++;
            position++;
        }
        while (position < end && (*position == ' ' || *position == '\t'
                                  || *position == '\r'
                                  || *position == '\n')) {
            position++;
        }
        if (digits == 0) {
            return MW_LENGTH_INVALID;
        }
        if (first >= 0 && value != first) {
            return MW_LENGTH_CONFLICTING;
        }
        first = value;
        if (position == end) {
            break;
        }
        if (*position != ',') {
            return MW_LENGTH_INVALID;
        }
        position++;
    }
    *length = first;
    return MW_LENGTH_OK;
}

/* Check a Content-Length header line of the current response.  libcurl
 * 7.88 does not: it takes the last of several headers, and it reads a
 * value too large for curl_off_t as "read until the connection closes",
 * which would accept a truncated body.  Return 0 when the line is fine. */
static int
check_content_length(mw_transfer *transfer, const char *data, size_t length)
{
    static const char name[] = "content-length:";
    size_t name_length = sizeof(name) - 1;
    curl_off_t value = -1;

    /* Most header lines differ in the first or ninth letter ('c' and
     * 'l'), which rules them out before the whole name is compared. */
    if (length < name_length || (data[0] | 0x20) != 'c'
            || (data[8] | 0x20) != 'l') {
        return 0;
    }
    for (size_t i = 0; i < name_length; i++) {
        char c = data[i];

        if (c >= 'A' && c <= 'Z') {
            c = (char)(c + ('a' - 'A'));
        }
        if (c != name[i]) {
            return 0;
        }
    }
    transfer->content_length_error = parse_response_length(
        data + name_length, length - name_length, &value);
    if (transfer->content_length_error == MW_LENGTH_OK
            && transfer->response_length >= 0
            && value != transfer->response_length) {
        transfer->content_length_error = MW_LENGTH_CONFLICTING;
    }
    transfer->response_length = value;
    return transfer->content_length_error != MW_LENGTH_OK ? -1 : 0;
}

/* libcurl passes one header line per call, status lines included.  Each
 * status line starts a new response (1xx interim responses and proxy
 * CONNECT responses come first), so the buffer restarts there and ends
 * up with the final response only.  Header names are tokens, which
 * cannot contain '/', so no header line starts with "HTTP/". */
static size_t
header_callback(char *data, size_t size, size_t count, void *userdata)
{
    mw_transfer *transfer = userdata;
    size_t length;
    int status_line;

    if (transfer == NULL) {
        return 0;  /* an idle handle: see mw_transfer_detach */
    }

    if (count != 0 && size > SIZE_MAX / count) {
        transfer->out_of_memory = 1;
        return 0;
    }
    length = size * count;
    note_activity(transfer);
    transfer->connected = 1;
    status_line = length >= 5 && memcmp(data, "HTTP/", 5) == 0;
    if (transfer->headers_done
            && (!status_line || transfer->pause_threshold != 0)) {
        /* Trailers of a chunked body are not part of the header block,
         * and a trailer such as Set-Cookie must not act like a header.
         * A status line after the final header block belongs to a request
         * that libcurl sends again itself, after a 417 to Expect:
         * 100-continue.  A stream drops it too, because its headers were
         * already handed to Python. */
        return length;
    }
    if (status_line) {
        const char *space = memchr(data, ' ', length);

        transfer->headers.len = 0;
        transfer->headers_done = 0;
        transfer->response_length = -1;
        transfer->last_status = 0;
        for (const char *digit = space != NULL ? space + 1 : data + length;
             digit < data + length && *digit >= '0' && *digit <= '9'
                 && transfer->last_status < 1000;
             digit++) {
            transfer->last_status = transfer->last_status * 10
                                    + (*digit - '0');
        }
    }
    else if ((length == 2 && memcmp(data, "\r\n", 2) == 0)
             || (length == 1 && data[0] == '\n')) {
        /* The blank line ends a header block; 1xx blocks are interim. */
        if (transfer->last_status >= 200) {
            transfer->headers_done = 1;
        }
    }
    else if (check_content_length(transfer, data, length) < 0) {
        return 0;
    }
    if (length > MAX_RESPONSE_HEADER_BYTES - transfer->headers.len) {
        transfer->headers_too_large = 1;
        return 0;
    }
    if (buffer_append_sized(&transfer->headers, data, length,
                            HEADER_BUFFER_BYTES) < 0) {
        transfer->out_of_memory = 1;
        return 0;
    }
    return length;
}

/* Stop libcurl from sending a request a second time.  libcurl 7.88 calls
 * this before each request it sends, and sends one again, on a new
 * connection, when a reused connection closed before any response byte
 * arrived (Curl_retry_request).  The server may still have received and
 * run the first one, for example when it crashed or timed the connection
 * out right after reading it, so only idempotent requests without a body
 * go again.  A second call after a final response arrived is a follow-up
 * that libcurl makes itself, after a 417 to Expect: 100-continue or for
 * HTTP authentication.  The server rejected the first request in that
 * case, so the follow-up is allowed. */
static int
prereq_callback(void *userdata, char *primary_ip, char *local_ip,
                int primary_port, int local_port)
{
    mw_transfer *transfer = userdata;

    if (transfer == NULL) {
        return CURL_PREREQFUNC_ABORT;
    }
    transfer->request_attempts++;
    if (transfer->request_attempts > 1 && !transfer->allow_resend
            && transfer->last_status < 200) {
        transfer->resend_blocked = 1;
        return CURL_PREREQFUNC_ABORT;
    }
    return CURL_PREREQFUNC_OK;
}

/* Run pending signal handlers when on the main thread, because with
 * CURLOPT_NOSIGNAL a blocked transfer would otherwise ignore Ctrl-C.
 * Return 1 when a handler raised. */
static int
check_signals(mw_transfer *transfer, int64_t now)
{
    PyGILState_STATE state;

    if (!transfer->check_signals
            || now - transfer->last_signal_check_ms
               < SIGNAL_CHECK_INTERVAL_MS) {
        return 0;
    }
    transfer->last_signal_check_ms = now;
    state = PyGILState_Ensure();
    if (PyErr_CheckSignals() < 0) {
        PyErr_Fetch(&transfer->exc_type, &transfer->exc_value,
                    &transfer->exc_traceback);
    }
    PyGILState_Release(state);
    return transfer->exc_type != NULL;
}

/* Enforce the read timeout as an idle limit: abort when no byte moved in
 * either direction for read_timeout_ms, but let a slow transfer that
 * keeps moving run as long as it needs.  The clock starts when the
 * request is about to be sent (CURLINFO_PRETRANSFER_TIME_T is set), so
 * connecting counts against the connect timeout only.  libcurl calls this
 * about once a second while idle, so the limit may be overshot by up to
 * a second. */
static int
xferinfo_callback(void *userdata, curl_off_t download_total,
                  curl_off_t download_now, curl_off_t upload_total,
                  curl_off_t upload_now)
{
    mw_transfer *transfer = userdata;
    int64_t now;

    if (transfer == NULL) {
        return 1;
    }
    now = monotonic_ms();
    if (check_signals(transfer, now)) {
        return 1;
    }
    if (transfer->read_timeout_ms == 0) {
        return 0;
    }
    if (transfer->download_paused || transfer->upload_paused) {
        /* Waiting for Python code, not for the server. */
        transfer->last_activity_ms = now;
        return 0;
    }
    if (!transfer->connected) {
        curl_off_t pretransfer = 0;

        if (curl_easy_getinfo(transfer->easy, CURLINFO_PRETRANSFER_TIME_T,
                              &pretransfer) == CURLE_OK && pretransfer > 0) {
            transfer->connected = 1;
            transfer->last_activity_ms = now;
        }
        return 0;
    }
    if (download_now != transfer->last_dlnow
            || upload_now != transfer->last_ulnow) {
        transfer->last_dlnow = download_now;
        transfer->last_ulnow = upload_now;
        transfer->last_activity_ms = now;
        return 0;
    }
    if (now - transfer->last_activity_ms >= transfer->read_timeout_ms) {
        transfer->read_timed_out = 1;
        return 1;
    }
    return 0;
}

/* ---- Options ------------------------------------------------------- */

#define SETOPT(option, value) \
    do { \
        if (curl_easy_setopt(easy, option, value) != CURLE_OK) { \
            PyErr_Format(mwcomms_Error, \
                         "curl_easy_setopt(%s) failed", #option); \
            return -1; \
        } \
    } while (0)

static int
set_method(CURL *easy, mw_request *request, mw_transfer *transfer)
{
    const char *method = request->method;
    int sends_body = request->has_body
        || method == METHOD_POST || method == METHOD_PUT
        || method == METHOD_PATCH;

    if (method == METHOD_HEAD) {
        SETOPT(CURLOPT_NOBODY, 1L);
        return 0;
    }
    if (request->body_kind == MW_BODY_MULTIPART) {
        if (mw_multipart_build(easy, request->multipart, &request->mime)
                < 0) {
            return -1;
        }
        SETOPT(CURLOPT_MIMEPOST, request->mime);
        if (method != METHOD_POST) {
            SETOPT(CURLOPT_CUSTOMREQUEST, method);
        }
        return 0;
    }
    if (request->body_kind == MW_BODY_STREAM) {
        /* Without a known size, HTTP/1.1 sends the body chunked. */
        SETOPT(CURLOPT_POST, 1L);
        SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, request->upload_length);
        SETOPT(CURLOPT_READFUNCTION, read_callback);
        SETOPT(CURLOPT_READDATA, transfer);
        if (method != METHOD_POST) {
            SETOPT(CURLOPT_CUSTOMREQUEST, method);
        }
        return 0;
    }
    if (method == METHOD_GET && !request->has_body) {
        SETOPT(CURLOPT_HTTPGET, 1L);
        return 0;
    }
    if (sends_body) {
        /* POST, PUT and PATCH without a body still send Content-Length:
         * 0, as servers expect. */
        const char *data = request->has_body ? request->body.buf : "";
        curl_off_t length = request->has_body ? request->body.len : 0;

        SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, length);
        SETOPT(CURLOPT_POSTFIELDS, data);
    }
    if (method != METHOD_POST) {
        SETOPT(CURLOPT_CUSTOMREQUEST, method);
    }
    return 0;
}

/* Values of CURLOPT_PRIVATE on a handle whose last request was a GET
 * without a body or a POST with a str or bytes-like body, with TLS
 * verification on, and either the default proxy rules or no proxy.
 * mw_transfer_setup then skips the options that are the same for every
 * request, and mw_transfer_detach clears only the pointers into the
 * request instead of curl_easy_reset, which would make libcurl rebuild
 * its state for every request.  The first index is the CA slot of that
 * request (see plain_ca_slot), the second a set of PLAIN_* bits that
 * tell how it differed from the defaults.  Any other value, including
 * the NULL of a new or reset handle, means that the handle needs every
 * option.  request_many sets CURLOPT_PRIVATE to its own item, so its
 * handles are reset when they return to the pool. */
#define PLAIN_ACCEPT_ENCODING 1     /* CURLOPT_ACCEPT_ENCODING "" */
#define PLAIN_NO_PROXY 2            /* CURLOPT_PROXY "" */
#define PLAIN_BITS 4
#define PLAIN_CA_SLOTS 4
static char plain_setup_tags[PLAIN_CA_SLOTS][PLAIN_BITS];

/* CA bundle paths of plain setups: slot 0 is libcurl's default bundle,
 * and the others are filled in the order paths are first used (such as
 * the REQUESTS_CA_BUNDLE that the pywikibot transport passes on every
 * request).  Entries live until the process ends.  Only read and written
 * with the GIL held. */
static char *plain_ca_files[PLAIN_CA_SLOTS];

/* Return the slot of ca_file (0 for NULL), or -1 when every slot has
 * another path or memory runs out: the request is then not plain. */
static int
plain_ca_slot(const char *ca_file)
{
    if (ca_file == NULL) {
        return 0;
    }
    for (int slot = 1; slot < PLAIN_CA_SLOTS; slot++) {
        if (plain_ca_files[slot] == NULL) {
            size_t size = strlen(ca_file) + 1;
            char *copy = PyMem_RawMalloc(size);

            if (copy == NULL) {
                return -1;
            }
            memcpy(copy, ca_file, size);
            plain_ca_files[slot] = copy;
            return slot;
        }
        if (strcmp(plain_ca_files[slot], ca_file) == 0) {
            return slot;
        }
    }
    return -1;
}

static int
plain_tag_index(const mw_request *request)
{
    return (request->accept_encoding ? PLAIN_ACCEPT_ENCODING : 0)
           | (request->proxy_mode == MW_PROXY_NONE ? PLAIN_NO_PROXY : 0);
}

static int
is_plain_request(const mw_request *request)
{
    if (request->proxy_mode == MW_PROXY_URL
            || request->noproxy != NULL || !request->verify) {
        return 0;
    }
    if (request->method == METHOD_GET) {
        return request->body_kind == MW_BODY_NONE;
    }
    return request->method == METHOD_POST
           && (request->body_kind == MW_BODY_NONE
               || request->body_kind == MW_BODY_BUFFER);
}

static int
is_plain_setup(CURL *easy)
{
    char *tag = NULL;

    if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, &tag) != CURLE_OK) {
        return 0;
    }
    return tag >= &plain_setup_tags[0][0]
           && tag <= &plain_setup_tags[PLAIN_CA_SLOTS - 1][PLAIN_BITS - 1];
}

/* Set the options that are the same for every request. */
static int
set_fixed_options(CURL *easy)
{
    SETOPT(CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
    SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
#else
    SETOPT(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    /* Redirects are followed by the caller, which signs each hop. */
    SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
    SETOPT(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
    /* A connection idle for longer than this may have been closed by the
     * server, which makes a request on it fail (see prereq_callback). */
    SETOPT(CURLOPT_MAXAGE_CONN, MAX_CONNECTION_AGE_S);
    SETOPT(CURLOPT_PREREQFUNCTION, prereq_callback);
    /* Send the path as given: the OAuth signature covers it, and libcurl
     * would otherwise remove "." and ".." segments after signing.
     * Callers normalize the path when they want that. */
    SETOPT(CURLOPT_PATH_AS_IS, 1L);
    /* A reply without a status line is an error, not a body (libcurl's
     * default since 7.66, set here for older versions). */
    SETOPT(CURLOPT_HTTP09_ALLOWED, 0L);
    /* The headers of a proxy's CONNECT response are not the response. */
    SETOPT(CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
    /* libcurl 7.88 receives into a buffer of this size (16 KiB by
     * default) and calls write_callback once per read.  128 KiB cut the
     * client CPU of a 1 MiB GET from nginx on 127.0.0.1 by about a
     * quarter (perf stat, benchmarks/curl_loop.c -k -b) for 112 KiB more
     * per easy handle. */
    SETOPT(CURLOPT_BUFFERSIZE, MW_RECEIVE_BUFFER_BYTES);
    SETOPT(CURLOPT_WRITEFUNCTION, write_callback);
    SETOPT(CURLOPT_HEADERFUNCTION, header_callback);
    SETOPT(CURLOPT_XFERINFOFUNCTION, xferinfo_callback);
    SETOPT(CURLOPT_NOPROGRESS, 0L);
    return 0;
}

/* Set up easy for request.  With kept NULL, the tag of the plain setup
 * goes into CURLOPT_PRIVATE.  Otherwise it goes into kept, which
 * describes the options that the last setup left on the handle (see
 * mw_kept_options) and is updated. */
static int
setup_transfer(CURL *easy, mw_request *request, mw_transfer *transfer,
               char *error_buffer, Py_ssize_t max_response_size,
               mw_kept_options *kept)
{
    const char *ca_file = request->ca_file == NULL
        ? NULL : PyBytes_AS_STRING(request->ca_file);
    int ca_slot = -1;
    int plain = is_plain_request(request)
                && (ca_slot = plain_ca_slot(ca_file)) >= 0;
    int reuse = 0;
    int index = plain_tag_index(request);
    /* The PLAIN_* bits of the handle's last request, or -1 when the
     * handle has libcurl's defaults. */
    int previous = -1;
    int handle_plain;
    char *previous_tag = NULL;
    char *tag;
    /* kept describes the handle: a handle from the pool, whose kept is
     * all zero, is known by its CURLOPT_PRIVATE tag instead. */
    int known = kept != NULL && kept->tag != NULL;
    /* Options that kept shows to hold the value of this request already.
     * They are known only for a handle that keeps its plain setup. */
    int same_url = 0;
    int same_get = 0;
    int same_headers = 0;
    int same_connect_timeout = 0;

    transfer->easy = easy;
    transfer->max_body = max_response_size < 0
        ? SIZE_MAX : (size_t)max_response_size;
    transfer->response_length = -1;
    /* GET, HEAD and OPTIONS are safe and idempotent (RFC 9110 section
     * 9.2), so libcurl may send them again on a fresh connection when a
     * reused one closed before any response byte.  prereq_callback stops
     * the second attempt of everything else, and of anything with a body,
     * so that an edit is never made twice. */
    transfer->allow_resend = request->body_kind == MW_BODY_NONE
        && (request->method == METHOD_GET
            || request->method == METHOD_HEAD
            || request->method == METHOD_OPTIONS);
    transfer->read_timeout_ms = request->read_timeout_ms;
    transfer->last_activity_ms = monotonic_ms();
    error_buffer[0] = '\0';

    if (known) {
        previous_tag = kept->tag;
        handle_plain = 1;
    }
    else {
        handle_plain = is_plain_setup(easy);
        if (handle_plain) {
            curl_easy_getinfo(easy, CURLINFO_PRIVATE, &previous_tag);
        }
    }
    if (plain && handle_plain) {
        /* A handle set up for another CA bundle is reset instead, which
         * restores libcurl's default bundle and directory. */
        reuse = (previous_tag - &plain_setup_tags[0][0]) / PLAIN_BITS
                == ca_slot;
    }
    if (reuse) {
        previous = (int)((previous_tag - &plain_setup_tags[0][0])
                         % PLAIN_BITS);
        if (known) {
            same_url = kept->url != NULL
                       && (kept->url == request->url
                           || PyUnicode_Compare(kept->url, request->url)
                              == 0);
            /* libcurl reads the method from CURLOPT_HTTPGET,
             * CURLOPT_POSTFIELDS and the like, which a plain GET after
             * another would set to the same values. */
            same_get = kept->method == METHOD_GET
                       && request->method == METHOD_GET
                       && !request->has_body;
            same_headers = !kept->has_headers && request->headers == NULL;
            same_connect_timeout = kept->connect_timeout_ms
                                   == request->connect_timeout_ms;
        }
    }
    else {
        if (handle_plain) {
            /* Options of the last request, such as CURLOPT_POSTFIELDS,
             * would otherwise stay set. */
            curl_easy_reset(easy);
        }
        if (set_fixed_options(easy) < 0) {
            return -1;
        }
    }
    tag = plain ? &plain_setup_tags[ca_slot][index] : (char *)NULL;
    if (kept != NULL) {
        /* From here on, the handle has neither its old options nor all
         * of the new ones until this function returns 0. */
        mw_kept_options_clear(kept);
    }
    else {
        /* The tag goes first, so that a failure below leaves a handle
         * that mw_transfer_detach resets. */
        SETOPT(CURLOPT_PRIVATE, tag);
    }
    SETOPT(CURLOPT_ERRORBUFFER, error_buffer);
    if (!same_url) {
        SETOPT(CURLOPT_URL, request->url_utf8);
    }
    if (!same_get && set_method(easy, request, transfer) < 0) {
        return -1;
    }
    if (!same_headers) {
        SETOPT(CURLOPT_HTTPHEADER, request->headers);
    }
    /* 0 is libcurl's default of 300 s. */
    if (!same_connect_timeout) {
        SETOPT(CURLOPT_CONNECTTIMEOUT_MS, request->connect_timeout_ms);
    }
    if (!request->verify) {
        SETOPT(CURLOPT_SSL_VERIFYPEER, 0L);
        SETOPT(CURLOPT_SSL_VERIFYHOST, 0L);
    }
    else if (ca_file != NULL && !reuse) {
        /* Only this bundle: drop the default CA directory as well. */
        SETOPT(CURLOPT_CAINFO, ca_file);
        SETOPT(CURLOPT_CAPATH, (char *)NULL);
    }
    if (previous < 0
            || (previous & PLAIN_ACCEPT_ENCODING)
               != (index & PLAIN_ACCEPT_ENCODING)) {
        /* "" builds the list of the encodings that libcurl supports,
         * which costs about as much as a small request, so it is set only
         * when it changes. */
        SETOPT(CURLOPT_ACCEPT_ENCODING,
               request->accept_encoding ? "" : (char *)NULL);
    }
    if (request->proxy_mode == MW_PROXY_URL) {
        SETOPT(CURLOPT_PROXY, PyBytes_AS_STRING(request->proxy));
    }
    else if (previous < 0 ? (index & PLAIN_NO_PROXY) != 0
             : (previous & PLAIN_NO_PROXY) != (index & PLAIN_NO_PROXY)) {
        /* "" turns proxies off, the environment variables included, and
         * NULL restores libcurl's default of reading them. */
        SETOPT(CURLOPT_PROXY,
               (index & PLAIN_NO_PROXY) ? "" : (char *)NULL);
    }
    if (request->noproxy != NULL) {
        SETOPT(CURLOPT_NOPROXY, PyBytes_AS_STRING(request->noproxy));
    }
    SETOPT(CURLOPT_PREREQDATA, transfer);
    SETOPT(CURLOPT_WRITEDATA, transfer);
    SETOPT(CURLOPT_HEADERDATA, transfer);
    SETOPT(CURLOPT_XFERINFODATA, transfer);
    if (kept != NULL && plain) {
        kept->tag = tag;
        kept->url = Py_NewRef(request->url);
        kept->method = request->method;
        kept->has_headers = request->headers != NULL;
        kept->connect_timeout_ms = request->connect_timeout_ms;
    }
    return 0;
}

int
mw_transfer_setup(CURL *easy, mw_request *request, mw_transfer *transfer,
                  char *error_buffer, Py_ssize_t max_response_size)
{
    return setup_transfer(easy, request, transfer, error_buffer,
                          max_response_size, NULL);
}

/* Set up a handle whose earlier setup kept describes, or that comes from
 * the pool when kept is all zero.  A request that is not plain leaves
 * kept all zero, and the handle then needs the reset of the pool. */
int
mw_transfer_setup_kept(CURL *easy, mw_request *request,
                       mw_transfer *transfer, char *error_buffer,
                       Py_ssize_t max_response_size, mw_kept_options *kept)
{
    return setup_transfer(easy, request, transfer, error_buffer,
                          max_response_size, kept);
}

void
mw_kept_options_clear(mw_kept_options *kept)
{
    Py_CLEAR(kept->url);
    kept->tag = NULL;
    kept->method = NULL;
    kept->has_headers = 0;
    kept->connect_timeout_ms = 0;
}

/* Prepare a handle for the idle pool after a transfer: drop every
 * pointer into the request and its transfer state, so that an idle
 * handle refers to no freed memory.  A handle set up for a plain request
 * keeps its options for the next one (see plain_setup_tags), and any
 * other is reset.  Both keep the live connections, the DNS and TLS
 * session caches and the share handle. */
void
mw_transfer_detach(CURL *easy)
{
    if (!is_plain_setup(easy)) {
        curl_easy_reset(easy);
        return;
    }
    /* CURLOPT_POSTFIELDS NULL leaves the method at POST, and the next
     * request sets its own method anyway. */
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, (char *)NULL);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, (char *)NULL);
    curl_easy_setopt(easy, CURLOPT_PREREQDATA, (void *)NULL);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, (void *)NULL);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, (void *)NULL);
    curl_easy_setopt(easy, CURLOPT_XFERINFODATA, (void *)NULL);
}

#undef SETOPT

void
mw_transfer_clear(mw_transfer *transfer)
{
    PyMem_RawFree(transfer->headers.data);
    PyMem_RawFree(transfer->body.data);
    PyMem_RawFree(transfer->upload.data);
    transfer->headers.data = NULL;
    transfer->body.data = NULL;
    transfer->upload.data = NULL;
    Py_CLEAR(transfer->body_bytes);
    Py_CLEAR(transfer->exc_type);
    Py_CLEAR(transfer->exc_value);
    Py_CLEAR(transfer->exc_traceback);
}
