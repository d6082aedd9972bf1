/*
 * Response: the result of Client.request(), built from a finished
 * transfer.  Python code cannot create one.
 */
#include "client.h"

#include <string.h>
#include <strings.h>
#include <structmember.h>

typedef struct {
    PyObject_HEAD
    int status;
    PyObject *reason;        /* str, or NULL until parsed */
    PyObject *http_version;  /* str: '1.0', '1.1', '2' or '3' */
    PyObject *headers;       /* tuple of (name, value) str tuples, or NULL */
    PyObject *keys;          /* tuple of the lower-case names, or NULL */
    /* The header block as received, parsed into reason and headers on
     * first use and freed then: many callers never read the headers.
     * Allocated with PyMem_Malloc when raw_headers_copied is 1, and with
     * PyMem_RawMalloc otherwise. */
    char *raw_headers;
    size_t raw_headers_length;
    int raw_headers_copied;
    PyObject *body;          /* bytes */
    PyObject *url;           /* str: the effective URL */
    double elapsed;          /* seconds */
    long new_connections;
    long local_port;
    PyObject *primary_ip;    /* str */
} ResponseObject;

static int
Response_clear(ResponseObject *self)
{
    Py_CLEAR(self->reason);
    Py_CLEAR(self->http_version);
    Py_CLEAR(self->headers);
    Py_CLEAR(self->keys);
    Py_CLEAR(self->body);
    Py_CLEAR(self->url);
    Py_CLEAR(self->primary_ip);
    return 0;
}

static void
free_raw_headers(ResponseObject *self)
{
    if (self->raw_headers_copied) {
        PyMem_Free(self->raw_headers);
    }
    else {
        PyMem_RawFree(self->raw_headers);
    }
    self->raw_headers = NULL;
    self->raw_headers_length = 0;
}

static void
Response_dealloc(ResponseObject *self)
{
    Response_clear(self);
    free_raw_headers(self);
    PyObject_Free(self);
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
    PyObject *keys = NULL;

    if (self->headers != NULL) {
        return 0;
    }
    if (mw_parse_header_block(self->raw_headers != NULL
                                  ? self->raw_headers : "",
                              self->raw_headers_length, &reason,
                              &headers, &keys) < 0) {
        Py_XDECREF(reason);
        Py_XDECREF(headers);
        Py_XDECREF(keys);
        return -1;
    }
    self->reason = reason;
    self->headers = headers;
    self->keys = keys;
    free_raw_headers(self);
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

/* Return name (a str) in lower case as a new reference: name itself
 * when it has no ASCII capital letter, which is the usual case.  Header
 * names are tokens (RFC 9110 section 5.1): a non-ASCII name comes only
 * from a broken server or caller.  str.lower() handles it as Python
 * would. */
PyObject *
mw_lower_header_name(PyObject *name)
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
build_header_map(ResponseObject *self)
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
        PyObject *key = PyTuple_GET_ITEM(self->keys, i);
        PyObject *old;
        PyObject *joined = NULL;
        PyObject *entry = NULL;
        int status;

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
        if (status < 0) {
            Py_DECREF(map);
            return NULL;
        }
    }
    return map;
}

static PyObject *
Response_header_map(ResponseObject *self, PyObject *Py_UNUSED(ignored))
{
    return build_header_map(self);
}

/* Names of the attributes that requests.Response.__init__ sets, in the
 * order of state_names below; interned on first use. */
enum {
    STATE_CONTENT, STATE_CONTENT_CONSUMED, STATE_NEXT, STATE_COOKIES,
    STATE_RESULT, STATE_STATUS_CODE, STATE_HEADERS, STATE_RAW, STATE_URL,
    STATE_ENCODING, STATE_HISTORY, STATE_REASON, STATE_ELAPSED,
    STATE_REQUEST, STATE_SENT, STATE_CONNECTION, STATE_NAMES
};
static const char *const state_names[STATE_NAMES] = {
    "_content", "_content_consumed", "_next", "_cookies", "_result",
    "status_code", "headers", "raw", "url", "encoding", "history", "reason",
    "_elapsed", "_request", "_sent", "connection"
};
static PyObject *state_keys[STATE_NAMES];
static PyObject *store_key;
/* A dict of every state key, in order, that requests_state copies:
 * copying a dict of the right size costs less than growing a new one. */
static PyObject *state_template;

static int
make_state_template(void)
{
    PyObject *template = NULL;

    if (state_template != NULL) {
        return 0;
    }
    template = PyDict_New();
    if (template == NULL) {
        return -1;
    }
    for (int i = 0; i < STATE_NAMES; i++) {
        if (state_keys[i] == NULL) {
            state_keys[i] = PyUnicode_InternFromString(state_names[i]);
        }
        if (state_keys[i] == NULL
                || PyDict_SetItem(template, state_keys[i], Py_None) < 0) {
            Py_DECREF(template);
            return -1;
        }
    }
    if (store_key == NULL) {
        store_key = PyUnicode_InternFromString("_store");
        if (store_key == NULL) {
            Py_DECREF(template);
            return -1;
        }
    }
    state_template = template;
    return 0;
}

/* requests_state(headers_type, request, sent): the attributes of the
 * pywikibot_ext Response as a new dict, so that its constructor is one
 * assignment to __dict__.  headers_type is a requests
 * CaseInsensitiveDict subclass: its instance gets the header map as
 * _store without running its __init__. */
static int
is_class(PyObject *object)
{
    return PyType_Check(object) && ((PyTypeObject *)object)->tp_new != NULL;
}

/* args: headers_type, request, sent (already checked). */
static PyObject *
build_requests_state(ResponseObject *self, PyObject *const *args)
{
    PyObject *values[STATE_NAMES] = {NULL};
    PyObject *state = NULL;
    PyObject *headers = NULL;
    PyObject *map = NULL;
    PyObject *empty = NULL;
    PyTypeObject *headers_type = (PyTypeObject *)args[0];

    if (make_state_template() < 0 || parse_headers(self) < 0) {
        return NULL;
    }
    map = build_header_map(self);
    if (map == NULL) {
        goto done;
    }
    empty = PyTuple_New(0);
    if (empty == NULL) {
        goto done;
    }
    headers = headers_type->tp_new(headers_type, empty, NULL);
    if (headers == NULL || PyObject_SetAttr(headers, store_key, map) < 0) {
        goto done;
    }
    values[STATE_CONTENT] = self->body;
    values[STATE_CONTENT_CONSUMED] = Py_True;
    values[STATE_NEXT] = Py_None;
    values[STATE_COOKIES] = Py_None;
    values[STATE_RESULT] = (PyObject *)self;
    values[STATE_STATUS_CODE] = PyLong_FromLong(self->status);
    values[STATE_HEADERS] = headers;
    values[STATE_RAW] = Py_None;
    values[STATE_URL] = self->url;
    values[STATE_ENCODING] = Py_None;
    values[STATE_HISTORY] = PyList_New(0);
    values[STATE_REASON] = self->reason;
    values[STATE_ELAPSED] = PyFloat_FromDouble(self->elapsed);
    values[STATE_REQUEST] = args[1];
    values[STATE_SENT] = args[2];
    values[STATE_CONNECTION] = Py_None;
    if (values[STATE_STATUS_CODE] == NULL || values[STATE_HISTORY] == NULL
            || values[STATE_ELAPSED] == NULL) {
        goto done;
    }
    state = PyDict_Copy(state_template);
    if (state == NULL) {
        goto done;
    }
    for (int i = 0; i < STATE_NAMES; i++) {
        if (values[i] != Py_None
                && PyDict_SetItem(state, state_keys[i], values[i]) < 0) {
            Py_CLEAR(state);
            goto done;
        }
    }
done:
    Py_XDECREF(values[STATE_STATUS_CODE]);
    Py_XDECREF(values[STATE_HISTORY]);
    Py_XDECREF(values[STATE_ELAPSED]);
    Py_XDECREF(headers);
    Py_XDECREF(map);
    Py_XDECREF(empty);
    return state;
}

static PyObject *
Response_requests_state(ResponseObject *self, PyObject *const *args,
                        Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError,
                     "requests_state() takes 3 arguments (%zd given)", nargs);
        return NULL;
    }
    if (!is_class(args[0])) {
        PyErr_SetString(PyExc_TypeError,
                        "requests_state(): headers_type must be a class");
        return NULL;
    }
    return build_requests_state(self, args);
}

/* requests_response(cls, headers_type, request, sent): a new cls
 * instance whose __dict__ is requests_state(headers_type, request,
 * sent), made without running cls.__init__.  args are the four
 * arguments, and response is a Response. */
PyObject *
mw_requests_response(PyObject *response, PyObject *const *args)
{
    PyTypeObject *cls;
    PyObject *state = NULL;
    PyObject *empty = NULL;
    PyObject *instance = NULL;

    if (!is_class(args[0]) || !is_class(args[1])) {
        PyErr_SetString(PyExc_TypeError,
                        "requests_response(): cls and headers_type must be "
                        "classes");
        return NULL;
    }
    cls = (PyTypeObject *)args[0];
    state = build_requests_state((ResponseObject *)response, args + 1);
    if (state == NULL) {
        return NULL;
    }
    empty = PyTuple_New(0);
    if (empty != NULL) {
        instance = cls->tp_new(cls, empty, NULL);
    }
    /* A __new__ may return any object, even a class, whose __dict__ must
     * not be replaced. */
    if (instance != NULL
            && (!Py_IS_TYPE(instance, cls) || PyType_Check(instance))) {
        PyErr_Format(PyExc_TypeError,
                     "requests_response(): %.100s.__new__ returned a "
                     "%.100s, not an instance of the class",
                     cls->tp_name, Py_TYPE(instance)->tp_name);
        Py_CLEAR(instance);
    }
    if (instance != NULL
            && PyObject_GenericSetDict(instance, state, NULL) < 0) {
        Py_CLEAR(instance);
    }
    Py_XDECREF(empty);
    Py_DECREF(state);
    return instance;
}

static PyObject *
Response_requests_response(ResponseObject *self, PyObject *const *args,
                           Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError,
                     "requests_response() takes 4 arguments (%zd given)",
                     nargs);
        return NULL;
    }
    return mw_requests_response((PyObject *)self, args);
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
    {"requests_state", (PyCFunction)(void (*)(void))Response_requests_state,
     METH_FASTCALL,
     PyDoc_STR("requests_state(headers_type, request, sent)\n--\n\n"
               "Return a new dict of the attributes that a\n"
               "requests.Response built from this response has: body,\n"
               "status, a headers_type instance over header_map() and the\n"
               "rest.  Used by pywikibot_ext to build its Response.")},
    {"requests_response",
     (PyCFunction)(void (*)(void))Response_requests_response, METH_FASTCALL,
     PyDoc_STR("requests_response(cls, headers_type, request, sent)\n--\n\n"
               "Return a new cls instance (a requests.Response subclass)\n"
               "whose __dict__ is requests_state(headers_type, request,\n"
               "sent), without running cls.__init__.")},
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
    /* Not a GC type: a Response holds only str, bytes and tuples of
     * str that it made itself, and cannot be changed, so it cannot be
     * part of a reference cycle.  Leaving it out of the collector saves
     * the collections that every new tracked object brings closer. */
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = PyDoc_STR("Response of Client.request(); read-only."),
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

/* Header lines seen recently.  A server sends the same names, and many
 * of the same values, on every reply.  An entry keeps the name as a
 * str, its lower-case key with the hash computed, and the (name, value)
 * pair of the last line with that name.  Such a line then costs a lookup
 * instead of two str objects, a key and a tuple, and later dict lookups
 * find the hash in the key.  A hash of the name picks the set of two
 * entries to look in.  Set-Cookie values are never kept, because they
 * may contain a session.  Only used with the GIL held. */
#define HEADER_SETS 64
#define HEADER_NAME_MAX 48
#define HEADER_VALUE_MAX 96

typedef struct {
    size_t name_length;
    size_t value_length;
    char name[HEADER_NAME_MAX];
    char value[HEADER_VALUE_MAX];
    PyObject *name_object;   /* str, NULL for an empty slot */
    PyObject *key;           /* str */
    PyObject *pair;          /* (name, value), or NULL when not kept */
} header_entry;

/* Two entries per set, so that two frequent names with the same hash
 * do not keep replacing each other.  A new name replaces the entry of
 * its set that was not used last. */
static header_entry header_cache[HEADER_SETS][2];
static unsigned char header_last_used[HEADER_SETS];

/* Return the entry of name, or the entry to replace with it. */
static header_entry *
header_slot(const char *name, size_t length)
{
    /* FNV-1a: header names are short. */
    uint32_t hash = 2166136261u;
    header_entry *set;
    unsigned int set_index;

    for (size_t i = 0; i < length; i++) {
        hash = (hash ^ (unsigned char)name[i]) * 16777619u;
    }
    set_index = hash % HEADER_SETS;
    set = header_cache[set_index];
    for (int way = 0; way < 2; way++) {
        if (set[way].name_object != NULL && set[way].name_length == length
                && memcmp(set[way].name, name, length) == 0) {
            header_last_used[set_index] = (unsigned char)way;
            return &set[way];
        }
    }
    return &set[header_last_used[set_index] ^ 1];
}

static int
keeps_value(const char *name, size_t name_length, size_t value_length)
{
    return value_length <= HEADER_VALUE_MAX
           && !(name_length == 10 && strncasecmp(name, "set-cookie", 10) == 0);
}

/* Mark entry as the last used of its set. */
static void
mark_used(const header_entry *entry)
{
    size_t index = (size_t)(entry - &header_cache[0][0]);

    header_last_used[index / 2] = (unsigned char)(index % 2);
}

/* Set *pair to a new reference to the (name, value) pair of a header
 * line and *key to a new reference to its lower-case name. */
static int
header_pair(const char *name, size_t name_length, const char *value,
            size_t value_length, PyObject **pair, PyObject **key)
{
    header_entry *entry = NULL;
    PyObject *name_object = NULL;
    PyObject *value_object = NULL;

    *pair = NULL;
    *key = NULL;
    if (name_length <= HEADER_NAME_MAX) {
        entry = header_slot(name, name_length);
        if (entry->name_object != NULL && entry->name_length == name_length
                && memcmp(entry->name, name, name_length) == 0) {
            if (entry->pair != NULL && entry->value_length == value_length
                    && memcmp(entry->value, value, value_length) == 0) {
                *pair = Py_NewRef(entry->pair);
                *key = Py_NewRef(entry->key);
                return 0;
            }
            name_object = Py_NewRef(entry->name_object);
            *key = Py_NewRef(entry->key);
        }
    }
    if (name_object == NULL) {
        name_object = PyUnicode_DecodeLatin1(name, (Py_ssize_t)name_length,
                                             NULL);
        if (name_object == NULL) {
            return -1;
        }
        *key = mw_lower_header_name(name_object);
        /* Computing the hash here stores it in the key. */
        if (*key == NULL || PyObject_Hash(*key) == -1) {
            goto error;
        }
        if (entry != NULL) {
            /* header_slot gave the entry to replace: its name leaves the
             * cache. */
            Py_XSETREF(entry->name_object, Py_NewRef(name_object));
            Py_XSETREF(entry->key, Py_NewRef(*key));
            Py_CLEAR(entry->pair);
            entry->name_length = name_length;
            memcpy(entry->name, name, name_length);
            mark_used(entry);
        }
    }
    value_object = PyUnicode_DecodeLatin1(value, (Py_ssize_t)value_length,
                                          NULL);
    if (value_object == NULL) {
        goto error;
    }
    *pair = PyTuple_Pack(2, name_object, value_object);
    if (*pair == NULL) {
        goto error;
    }
    /* A garbage collection during the allocations above can run Python
     * code that parses other headers, so the entry is checked again. */
    if (entry != NULL && entry->name_object == name_object) {
        if (keeps_value(name, name_length, value_length)) {
            Py_XSETREF(entry->pair, Py_NewRef(*pair));
            entry->value_length = value_length;
            memcpy(entry->value, value, value_length);
        }
        else {
            Py_CLEAR(entry->pair);
        }
    }
    Py_DECREF(name_object);
    Py_DECREF(value_object);
    return 0;
error:
    Py_XDECREF(name_object);
    Py_XDECREF(value_object);
    Py_CLEAR(*pair);
    Py_CLEAR(*key);
    return -1;
}

/* Return a new reference to the reason phrase, reusing the str of the
 * last one when it is the same. */
static PyObject *
reason_str(const char *text, size_t length)
{
    static PyObject *last;
    static size_t last_length;
    static char last_text[32];
    PyObject *reason;

    if (last != NULL && length == last_length
            && memcmp(text, last_text, length) == 0) {
        return Py_NewRef(last);
    }
    reason = PyUnicode_DecodeLatin1(text, (Py_ssize_t)length, NULL);
    if (reason != NULL && length <= sizeof(last_text)) {
        Py_XSETREF(last, Py_NewRef(reason));
        memcpy(last_text, text, length);
        last_length = length;
    }
    return reason;
}

/* Parse the header block of the final response into *reason and a tuple
 * of (name, value) pairs, immutable so that get_header can rely on it,
 * and, when keys is not NULL, into *keys, a tuple of their lower-case
 * names.  Obsolete line folding (RFC 7230 section 3.2.4) joins a
 * continuation line to the previous value with one space. */
int
mw_parse_header_block(const char *data, size_t length, PyObject **reason,
                      PyObject **headers, PyObject **keys)
{
    const char *position = data;
    const char *end = data + length;
    int first = 1;
    Py_ssize_t lines = 1;
    Py_ssize_t count = 0;

    /* Every header line ends with a newline, except perhaps the last:
     * the tuples get one slot per line and shrink at the end. */
    for (const char *p = data; (p = memchr(p, '\n', end - p)) != NULL;
            p++) {
        lines++;
    }
    *headers = PyTuple_New(lines);
    if (*headers == NULL) {
        return -1;
    }
    if (keys != NULL) {
        *keys = PyTuple_New(lines);
        if (*keys == NULL) {
            return -1;
        }
    }
    while (position < end) {
        const char *line_end = memchr(position, '\n', end - position);
        const char *next = line_end != NULL ? line_end + 1 : end;
        const char *colon;

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
            *reason = reason_str(text, line_end - text);
            if (*reason == NULL) {
                return -1;
            }
        }
        else if (line_end > position
                 && (*position == ' ' || *position == '\t')) {
            const char *text = position;

            strip_whitespace(&text, &line_end);
            if (count > 0 && line_end > text) {
                PyObject *last = PyTuple_GET_ITEM(*headers, count - 1);
                PyObject *extra = PyUnicode_DecodeLatin1(text,
                                                         line_end - text,
                                                         NULL);
                PyObject *joined = NULL;
                PyObject *pair = NULL;

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
                if (pair == NULL) {
                    return -1;
                }
                /* The tuple is not shared yet, so its item can change. */
                PyTuple_SET_ITEM(*headers, count - 1, pair);
                Py_DECREF(last);
            }
        }
        else if ((colon = memchr(position, ':', line_end - position))
                 != NULL) {
            const char *value = colon + 1;
            const char *value_end = line_end;
            PyObject *pair = NULL;
            PyObject *key = NULL;

            strip_whitespace(&value, &value_end);
            if (header_pair(position, colon - position, value,
                            value_end - value, &pair, &key) < 0) {
                return -1;
            }
            PyTuple_SET_ITEM(*headers, count, pair);
            if (keys != NULL) {
                PyTuple_SET_ITEM(*keys, count, key);
            }
            else {
                Py_DECREF(key);
            }
            count++;
        }
        position = next;
    }
    if (*reason == NULL) {
        *reason = PyUnicode_FromString("");
        if (*reason == NULL) {
            return -1;
        }
    }
    if (count < lines) {
        if (_PyTuple_Resize(headers, count) < 0
                || (keys != NULL && _PyTuple_Resize(keys, count) < 0)) {
            return -1;
        }
    }
    return 0;
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

    self = PyObject_New(ResponseObject, &mw_ResponseType);
    if (self == NULL) {
        return NULL;
    }
    self->status = (int)status;
    self->elapsed = (double)total_time / 1e6;
    self->new_connections = connects;
    self->local_port = local_port;
    self->reason = NULL;
    self->headers = NULL;
    self->keys = NULL;
    self->body = NULL;
    self->url = NULL;
    self->primary_ip = NULL;
    self->http_version = NULL;
    self->raw_headers = NULL;
    self->raw_headers_length = 0;
    self->raw_headers_copied = transfer->copy_headers;
    if (transfer->copy_headers) {
        /* A typical header block is a few hundred bytes, which pymalloc
         * serves faster than the C allocator serves the 1 KiB buffer. */
        self->raw_headers = PyMem_Malloc(transfer->headers.len + 1);
        if (self->raw_headers == NULL) {
            PyErr_NoMemory();
            goto error;
        }
        if (transfer->headers.len > 0) {
            memcpy(self->raw_headers, transfer->headers.data,
                   transfer->headers.len);
        }
        self->raw_headers_length = transfer->headers.len;
    }
    else {
        /* The header buffer moves to the response, without a copy. */
        self->raw_headers = transfer->headers.data;
        self->raw_headers_length = transfer->headers.len;
        transfer->headers.data = NULL;
        transfer->headers.len = 0;
        transfer->headers.cap = 0;
    }
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
    return (PyObject *)self;
error:
    Py_DECREF(self);
    return NULL;
}
