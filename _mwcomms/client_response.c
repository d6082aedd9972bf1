/*
 * Response: the result of Client.request(), built from a finished
 * transfer.  Python code cannot create one.
 */
#include "client.h"

#include <string.h>
#include <structmember.h>

typedef struct {
    PyObject_HEAD
    int status;
    PyObject *reason;        /* str, or NULL until parsed */
    PyObject *http_version;  /* str: '1.0', '1.1', '2' or '3' */
    PyObject *headers;       /* tuple of (name, value) str tuples, or NULL */
    /* The header block as received (PyMem_RawMalloc'ed), parsed into
     * reason and headers on first use and freed then: many callers never
     * read the headers. */
    char *raw_headers;
    size_t raw_headers_length;
    PyObject *body;          /* bytes */
    PyObject *url;           /* str: the effective URL */
    double elapsed;          /* seconds */
    long new_connections;
    long local_port;
    PyObject *primary_ip;    /* str */
} ResponseObject;

static int
Response_traverse(ResponseObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->reason);
    Py_VISIT(self->http_version);
    Py_VISIT(self->headers);
    Py_VISIT(self->body);
    Py_VISIT(self->url);
    Py_VISIT(self->primary_ip);
    return 0;
}

static int
Response_clear(ResponseObject *self)
{
    Py_CLEAR(self->reason);
    Py_CLEAR(self->http_version);
    Py_CLEAR(self->headers);
    Py_CLEAR(self->body);
    Py_CLEAR(self->url);
    Py_CLEAR(self->primary_ip);
    return 0;
}

static void
Response_dealloc(ResponseObject *self)
{
    PyObject_GC_UnTrack(self);
    Response_clear(self);
    PyMem_RawFree(self->raw_headers);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
Response_repr(ResponseObject *self)
{
    return PyUnicode_FromFormat("<_mwcomms.Response [%d]>", self->status);
}

/* Parse the header block into reason and headers, once. */
static int
parse_headers(ResponseObject *self)
{
    PyObject *reason = NULL;
    PyObject *headers = NULL;

    if (self->headers != NULL) {
        return 0;
    }
    if (mw_parse_header_block(self->raw_headers != NULL
                                  ? self->raw_headers : "",
                              self->raw_headers_length, &reason,
                              &headers) < 0) {
        Py_XDECREF(reason);
        Py_XDECREF(headers);
        return -1;
    }
    self->reason = reason;
    self->headers = headers;
    PyMem_RawFree(self->raw_headers);
    self->raw_headers = NULL;
    self->raw_headers_length = 0;
    return 0;
}

/* Return the values of the headers named name (compared without regard
 * to case) as a new list. */
static PyObject *
find_header_values(ResponseObject *self, PyObject *name)
{
    if (parse_headers(self) < 0) {
        return NULL;
    }
    return mw_find_header_values(self->headers, name);
}

static PyObject *
Response_get_reason(ResponseObject *self, void *closure)
{
    if (parse_headers(self) < 0) {
        return NULL;
    }
    return Py_NewRef(self->reason);
}

static PyObject *
Response_get_headers(ResponseObject *self, void *closure)
{
    if (parse_headers(self) < 0) {
        return NULL;
    }
    return Py_NewRef(self->headers);
}

static PyGetSetDef Response_getset[] = {
    {"reason", (getter)Response_get_reason, NULL,
     PyDoc_STR("Reason phrase from the status line; '' for HTTP/2."), NULL},
    {"headers", (getter)Response_get_headers, NULL,
     PyDoc_STR("Tuple of (name, value) pairs of the final response, in\n"
               "received order, decoded as Latin-1.  Trailers of a\n"
               "chunked body are not included."), NULL},
    {NULL}
};

/* Return the values of the headers named name in headers, a tuple of
 * (name, value) str pairs, as a new list. */
PyObject *
mw_find_header_values(PyObject *headers, PyObject *name)
{
    PyObject *wanted = NULL;
    PyObject *values = NULL;

    if (!PyUnicode_Check(name)) {
        PyErr_Format(PyExc_TypeError, "header name must be str, not %.100s",
                     Py_TYPE(name)->tp_name);
        return NULL;
    }
    wanted = PyObject_CallMethod(name, "lower", NULL);
    if (wanted == NULL) {
        return NULL;
    }
    values = PyList_New(0);
    if (values == NULL) {
        goto error;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(headers); i++) {
        PyObject *item = Py_NewRef(PyTuple_GET_ITEM(headers, i));
        PyObject *lower = NULL;
        int equal = 0;

        if (PyTuple_Check(item) && PyTuple_GET_SIZE(item) == 2
                && PyUnicode_CheckExact(PyTuple_GET_ITEM(item, 0))) {
            lower = PyObject_CallMethod(PyTuple_GET_ITEM(item, 0), "lower",
                                        NULL);
            if (lower == NULL) {
                Py_DECREF(item);
                goto error;
            }
            equal = PyUnicode_Compare(lower, wanted) == 0;
            Py_DECREF(lower);
            if (equal && PyList_Append(values,
                                       PyTuple_GET_ITEM(item, 1)) < 0) {
                Py_DECREF(item);
                goto error;
            }
        }
        Py_DECREF(item);
    }
    Py_DECREF(wanted);
    return values;
error:
    Py_XDECREF(wanted);
    Py_XDECREF(values);
    return NULL;
}

/* Return name in lower case as a new reference: name itself when it has
 * no ASCII capital letter, which is the usual case.  Header names are
 * tokens (RFC 9110 section 5.1), so a non-ASCII name can only come from
 * a broken server; str.lower() handles it as Python would. */
static PyObject *
lower_header_name(PyObject *name)
{
    const Py_UCS1 *data;
    Py_ssize_t length = PyUnicode_GET_LENGTH(name);
    Py_ssize_t first = 0;
    PyObject *lower;
    Py_UCS1 *out;

    if (!PyUnicode_IS_ASCII(name)) {
        return PyObject_CallMethod(name, "lower", NULL);
    }
    data = PyUnicode_1BYTE_DATA(name);
    while (first < length && !(data[first] >= 'A' && data[first] <= 'Z')) {
        first++;
    }
    if (first == length) {
        return Py_NewRef(name);
    }
    lower = PyUnicode_New(length, 127);
    if (lower == NULL) {
        return NULL;
    }
    out = PyUnicode_1BYTE_DATA(lower);
    for (Py_ssize_t i = 0; i < length; i++) {
        Py_UCS1 c = data[i];

        out[i] = (c >= 'A' && c <= 'Z') ? (Py_UCS1)(c + ('a' - 'A')) : c;
    }
    return lower;
}

/* Return {lower-case name: (name, value)} for the headers, a tuple of
 * (name, value) str pairs: the layout of the store of requests'
 * CaseInsensitiveDict.  A repeated name keeps its first spelling and its
 * values joined with ', ' in received order, as requests joins them. */
static PyObject *
Response_header_map(ResponseObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *map = NULL;

    if (parse_headers(self) < 0) {
        return NULL;
    }
    map = PyDict_New();
    if (map == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(self->headers); i++) {
        PyObject *pair = PyTuple_GET_ITEM(self->headers, i);
        PyObject *key = lower_header_name(PyTuple_GET_ITEM(pair, 0));
        PyObject *old;
        PyObject *joined = NULL;
        PyObject *entry = NULL;
        int status;

        if (key == NULL) {
            goto error;
        }
        old = PyDict_GetItemWithError(map, key);
        if (old == NULL) {
            status = PyErr_Occurred() ? -1 : PyDict_SetItem(map, key, pair);
        }
        else {
            joined = PyUnicode_FromFormat("%U, %U", PyTuple_GET_ITEM(old, 1),
                                          PyTuple_GET_ITEM(pair, 1));
            if (joined != NULL) {
                entry = PyTuple_Pack(2, PyTuple_GET_ITEM(old, 0), joined);
            }
            status = entry == NULL ? -1 : PyDict_SetItem(map, key, entry);
        }
        Py_XDECREF(entry);
        Py_XDECREF(joined);
        Py_DECREF(key);
        if (status < 0) {
            goto error;
        }
    }
    return map;
error:
    Py_DECREF(map);
    return NULL;
}

static PyObject *
Response_get_all(ResponseObject *self, PyObject *name)
{
    return find_header_values(self, name);
}

static PyObject *
Response_get_header(ResponseObject *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"name", "default", NULL};
    PyObject *name;
    PyObject *default_value = Py_None;
    PyObject *values = NULL;
    PyObject *separator = NULL;
    PyObject *result = NULL;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O:get_header",
                                     keywords, &name, &default_value)) {
        return NULL;
    }
    values = find_header_values(self, name);
    if (values == NULL) {
        return NULL;
    }
    if (PyList_GET_SIZE(values) == 0) {
        Py_DECREF(values);
        return Py_NewRef(default_value);
    }
    separator = PyUnicode_FromString(", ");
    if (separator != NULL) {
        result = PyUnicode_Join(separator, values);
    }
    Py_XDECREF(separator);
    Py_DECREF(values);
    return result;
}

static PyMethodDef Response_methods[] = {
    {"get_header", (PyCFunction)(void (*)(void))Response_get_header,
     METH_VARARGS | METH_KEYWORDS,
     PyDoc_STR("get_header(name, default=None)\n--\n\n"
               "Return the values of the headers named name (any case)\n"
               "joined with ', ', or default when there is none.")},
    {"get_all", (PyCFunction)Response_get_all, METH_O,
     PyDoc_STR("get_all(name)\n--\n\n"
               "Return the list of values of the headers named name (any\n"
               "case), in received order.")},
    {"header_map", (PyCFunction)Response_header_map, METH_NOARGS,
     PyDoc_STR("header_map()\n--\n\n"
               "Return a new dict {lower-case name: (name, value)}: the\n"
               "values of a repeated name joined with ', ' in received\n"
               "order, under its first spelling.")},
    {NULL}
};

static PyMemberDef Response_members[] = {
    {"status", T_INT, offsetof(ResponseObject, status), READONLY,
     PyDoc_STR("HTTP status code.")},
    {"http_version", T_OBJECT_EX, offsetof(ResponseObject, http_version),
     READONLY, PyDoc_STR("HTTP version used: '1.0', '1.1', '2' or '3'.")},
    {"body", T_OBJECT_EX, offsetof(ResponseObject, body), READONLY,
     PyDoc_STR("Body bytes, decoded from gzip, deflate, br or zstd when\n"
               "accept_encoding was true.")},
    {"url", T_OBJECT_EX, offsetof(ResponseObject, url), READONLY,
     PyDoc_STR("Effective URL.")},
    {"elapsed", T_DOUBLE, offsetof(ResponseObject, elapsed), READONLY,
     PyDoc_STR("Total time of the transfer in seconds.")},
    {"new_connections", T_LONG, offsetof(ResponseObject, new_connections),
     READONLY,
     PyDoc_STR("Number of new connections made; 0 when a kept-alive\n"
               "connection was reused.")},
    {"local_port", T_LONG, offsetof(ResponseObject, local_port), READONLY,
     PyDoc_STR("Local port of the connection.")},
    {"primary_ip", T_OBJECT_EX, offsetof(ResponseObject, primary_ip),
     READONLY, PyDoc_STR("IP address of the server.")},
    {NULL}
};

PyTypeObject mw_ResponseType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "_mwcomms.Response",
    .tp_basicsize = sizeof(ResponseObject),
    .tp_dealloc = (destructor)Response_dealloc,
    .tp_repr = (reprfunc)Response_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = PyDoc_STR("Response of Client.request(); read-only."),
    .tp_traverse = (traverseproc)Response_traverse,
    .tp_clear = (inquiry)Response_clear,
    .tp_methods = Response_methods,
    .tp_members = Response_members,
    .tp_getset = Response_getset,
    /* tp_new stays NULL, so Python code cannot create instances. */
};

/* Strip spaces and tabs at both ends of [*start, *end). */
static void
strip_whitespace(const char **start, const char **end)
{
    while (*start < *end && (**start == ' ' || **start == '\t')) {
        (*start)++;
    }
    while (*end > *start && ((*end)[-1] == ' ' || (*end)[-1] == '\t')) {
        (*end)--;
    }
}

/* Parse the header block of the final response into *reason and a tuple
 * of (name, value) pairs, immutable so that get_header can rely on it.  Obsolete line folding (RFC 7230 section 3.2.4)
 * joins a continuation line to the previous value with one space. */
int
mw_parse_header_block(const char *data, size_t length, PyObject **reason,
                   PyObject **headers)
{
    const char *position = data;
    const char *end = data + length;
    int first = 1;
    PyObject *list;

    *headers = PyList_New(0);
    if (*headers == NULL) {
        return -1;
    }
    while (position < end) {
        const char *line_end = memchr(position, '\n', end - position);
        const char *next = line_end != NULL ? line_end + 1 : end;
        const char *colon;
        PyObject *pair = NULL;

        if (line_end == NULL) {
            line_end = end;
        }
        if (line_end > position && line_end[-1] == '\r') {
            line_end--;
        }
        if (first) {
            /* "HTTP/1.1 200 OK": the reason follows the second space. */
            const char *space = memchr(position, ' ', line_end - position);
            const char *text = line_end;

            first = 0;
            if (space != NULL) {
                space = memchr(space + 1, ' ', line_end - space - 1);
                if (space != NULL) {
                    text = space + 1;
                }
            }
            strip_whitespace(&text, &line_end);
            *reason = PyUnicode_DecodeLatin1(text, line_end - text, NULL);
            if (*reason == NULL) {
                return -1;
            }
        }
        else if (line_end > position
                 && (*position == ' ' || *position == '\t')) {
            Py_ssize_t count = PyList_GET_SIZE(*headers);
            const char *text = position;

            strip_whitespace(&text, &line_end);
            if (count > 0 && line_end > text) {
                PyObject *last = PyList_GET_ITEM(*headers, count - 1);
                PyObject *extra = PyUnicode_DecodeLatin1(text,
                                                         line_end - text,
                                                         NULL);
                PyObject *joined = NULL;

                if (extra == NULL) {
                    return -1;
                }
                joined = PyUnicode_FromFormat(
                    "%U %U", PyTuple_GET_ITEM(last, 1), extra);
                Py_DECREF(extra);
                if (joined == NULL) {
                    return -1;
                }
                pair = PyTuple_Pack(2, PyTuple_GET_ITEM(last, 0), joined);
                Py_DECREF(joined);
                if (pair == NULL
                        || PyList_SetItem(*headers, count - 1, pair) < 0) {
                    return -1;
                }
            }
        }
        else if ((colon = memchr(position, ':', line_end - position))
                 != NULL) {
            const char *value = colon + 1;
            const char *value_end = line_end;

            strip_whitespace(&value, &value_end);
            pair = Py_BuildValue("(NN)",
                                 PyUnicode_DecodeLatin1(position,
                                                        colon - position,
                                                        NULL),
                                 PyUnicode_DecodeLatin1(value,
                                                        value_end - value,
                                                        NULL));
            if (pair == NULL) {
                return -1;
            }
            if (PyList_Append(*headers, pair) < 0) {
                Py_DECREF(pair);
                return -1;
            }
            Py_DECREF(pair);
        }
        position = next;
    }
    if (*reason == NULL) {
        *reason = PyUnicode_FromString("");
        if (*reason == NULL) {
            return -1;
        }
    }
    list = *headers;
    *headers = PyList_AsTuple(list);
    Py_DECREF(list);
    return *headers != NULL ? 0 : -1;
}

const char *
mw_http_version_name(long version)
{
    switch (version) {
    case CURL_HTTP_VERSION_1_0:
        return "1.0";
    case CURL_HTTP_VERSION_1_1:
        return "1.1";
    case CURL_HTTP_VERSION_2_0:
        return "2";
#if LIBCURL_VERSION_NUM >= 0x074200
    case CURL_HTTP_VERSION_3:
        return "3";
#endif
    default:
        return "";
    }
}

/* The str of the last text passed to cached_str(), so that responses
 * from the same URL and address share one str each.  Only used with the
 * GIL held. */
typedef struct {
    PyObject *object;
    size_t length;
    char text[256];
} str_cache;

static str_cache url_cache;
static str_cache primary_ip_cache;

/* Return a new reference to text decoded from UTF-8 with
 * surrogateescape, reusing the str of the last call when text is the
 * same.  Texts too long for the cache are decoded every time. */
static PyObject *
cached_str(str_cache *cache, const char *text)
{
    size_t length = strlen(text);
    PyObject *object;

    if (cache->object != NULL && length == cache->length
            && memcmp(text, cache->text, length) == 0) {
        return Py_NewRef(cache->object);
    }
    object = PyUnicode_DecodeUTF8(text, (Py_ssize_t)length,
                                  "surrogateescape");
    if (object != NULL && length < sizeof(cache->text)) {
        Py_XSETREF(cache->object, Py_NewRef(object));
        memcpy(cache->text, text, length);
        cache->length = length;
    }
    return object;
}

/* Return a new reference to the interned name of an HTTP version. */
static PyObject *
http_version_str(long version)
{
    static PyObject *names[4];
    size_t index;

    switch (version) {
    case CURL_HTTP_VERSION_1_0:
        index = 0;
        break;
    case CURL_HTTP_VERSION_1_1:
        index = 1;
        break;
    case CURL_HTTP_VERSION_2_0:
        index = 2;
        break;
    default:
        index = 3;
        break;
    }
    if (index == 3) {
        /* "3" or "": rare, not kept. */
        return PyUnicode_FromString(mw_http_version_name(version));
    }
    if (names[index] == NULL) {
        names[index] = PyUnicode_InternFromString(
            mw_http_version_name(version));
        if (names[index] == NULL) {
            return NULL;
        }
    }
    return Py_NewRef(names[index]);
}

/* Build a Response from a finished transfer.  Called with the GIL. */
PyObject *
mw_response_new(CURL *easy, mw_transfer *transfer)
{
    ResponseObject *self = NULL;
    long status = 0;
    long version = 0;
    long connects = 0;
    long local_port = 0;
    char *url = NULL;
    char *primary_ip = NULL;
    curl_off_t total_time = 0;

    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(easy, CURLINFO_HTTP_VERSION, &version);
    curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &connects);
    curl_easy_getinfo(easy, CURLINFO_LOCAL_PORT, &local_port);
    curl_easy_getinfo(easy, CURLINFO_EFFECTIVE_URL, &url);
    curl_easy_getinfo(easy, CURLINFO_PRIMARY_IP, &primary_ip);
    curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME_T, &total_time);

    self = PyObject_GC_New(ResponseObject, &mw_ResponseType);
    if (self == NULL) {
        return NULL;
    }
    self->status = (int)status;
    self->elapsed = (double)total_time / 1e6;
    self->new_connections = connects;
    self->local_port = local_port;
    self->reason = NULL;
    self->headers = NULL;
    self->body = NULL;
    self->url = NULL;
    self->primary_ip = NULL;
    /* The header buffer moves to the response, without a copy. */
    self->raw_headers = transfer->headers.data;
    self->raw_headers_length = transfer->headers.len;
    transfer->headers.data = NULL;
    transfer->headers.len = 0;
    transfer->headers.cap = 0;
    self->http_version = http_version_str(version);
    if (self->http_version == NULL) {
        goto error;
    }
    if (transfer->body_bytes != NULL && !transfer->body_bytes_abandoned) {
        /* Filled by the write callback: no copy.  A body shorter than its
         * Content-Length ends the transfer with an error, so the size
         * matches here, but shrink it if not. */
        self->body = transfer->body_bytes;
        transfer->body_bytes = NULL;
        if ((Py_ssize_t)transfer->body_bytes_length
                    != PyBytes_GET_SIZE(self->body)
                && _PyBytes_Resize(&self->body,
                                   (Py_ssize_t)transfer->body_bytes_length)
                   < 0) {
            goto error;
        }
    }
    else {
        self->body = PyBytes_FromStringAndSize(
            transfer->body.data != NULL ? transfer->body.data : "",
            (Py_ssize_t)transfer->body.len);
        if (self->body == NULL) {
            goto error;
        }
    }
    self->url = cached_str(&url_cache, url != NULL ? url : "");
    if (self->url == NULL) {
        goto error;
    }
    self->primary_ip = cached_str(&primary_ip_cache,
                                  primary_ip != NULL ? primary_ip : "");
    if (self->primary_ip == NULL) {
        goto error;
    }
    PyObject_GC_Track(self);
    return (PyObject *)self;
error:
    /* Not yet tracked, so dealloc must not untrack: clear by hand. */
    Response_clear(self);
    PyMem_RawFree(self->raw_headers);
    PyObject_GC_Del(self);
    return NULL;
}
