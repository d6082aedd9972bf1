/*
 * Multipart: a multipart/form-data body (RFC 7578), checked when it is
 * created and turned into a libcurl curl_mime for each transfer.
 */
#include "client.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <strings.h>
#include <structmember.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    PyObject_HEAD
    PyObject *fields;  /* tuple of (name, value) bytes pairs */
    /* tuple of (name, filename, content_type, data, path): bytes or
     * None, and exactly one of data and path is bytes. */
    PyObject *files;
} MultipartObject;

int
mw_multipart_check(PyObject *obj)
{
    return PyObject_TypeCheck(obj, &mw_MultipartType);
}

/* Encode a str argument as UTF-8 bytes without NUL, CR or LF, which
 * would break the part headers.  None gives None when allow_none. */
static PyObject *
encode_text(PyObject *value, const char *what, int allow_none)
{
    PyObject *encoded;
    const char *data;
    Py_ssize_t length;

    if (value == Py_None && allow_none) {
        return Py_NewRef(Py_None);
    }
    if (!PyUnicode_Check(value)) {
        PyErr_Format(PyExc_TypeError, "%s must be str%s, not %.100s", what,
                     allow_none ? " or None" : "", Py_TYPE(value)->tp_name);
        return NULL;
    }
    encoded = PyUnicode_AsUTF8String(value);
    if (encoded == NULL) {
        mw_raise_unencodable(NULL, what);
        return NULL;
    }
    data = PyBytes_AS_STRING(encoded);
    length = PyBytes_GET_SIZE(encoded);
    if (memchr(data, '\0', length) != NULL
            || memchr(data, '\r', length) != NULL
            || memchr(data, '\n', length) != NULL) {
        PyErr_Format(PyExc_ValueError,
                     "invalid %s %R: it must not contain CR, LF or NUL", what,
                     value);
        Py_DECREF(encoded);
        return NULL;
    }
    return encoded;
}

/* str values are sent as UTF-8; bytes-like values as they are. */
static PyObject *
encode_value(PyObject *value)
{
    if (PyUnicode_Check(value)) {
        PyObject *encoded = PyUnicode_AsUTF8String(value);

        if (encoded == NULL) {
            mw_raise_unencodable(NULL, "Multipart field value");
        }
        return encoded;
    }
    if (PyObject_CheckBuffer(value)) {
        return PyBytes_FromObject(value);
    }
    PyErr_Format(PyExc_TypeError,
                 "a Multipart field value must be str or bytes-like, not "
                 "%.100s", Py_TYPE(value)->tp_name);
    return NULL;
}

/* Return a new list of the items of a dict or an iterable. */
static PyObject *
list_items(PyObject *value, const char *what)
{
    if (PyDict_Check(value)) {
        return PyDict_Items(value);
    }
    if (PyUnicode_Check(value) || PyBytes_Check(value)) {
        PyErr_Format(PyExc_TypeError,
                     "%s must be an iterable of tuples, not %.100s", what,
                     Py_TYPE(value)->tp_name);
        return NULL;
    }
    return PySequence_List(value);
}

static PyObject *
unpack(PyObject *item, Py_ssize_t count, const char *what)
{
    PyObject *sequence;

    if (!PyTuple_Check(item) && !PyList_Check(item)) {
        PyErr_Format(PyExc_TypeError, "each item of %s must be a tuple of "
                     "%zd items, not %.100s", what, count,
                     Py_TYPE(item)->tp_name);
        return NULL;
    }
    sequence = PySequence_Tuple(item);
    if (sequence != NULL && PyTuple_GET_SIZE(sequence) != count) {
        PyErr_Format(PyExc_TypeError, "each item of %s must be a tuple of "
                     "%zd items, got %zd", what, count,
                     PyTuple_GET_SIZE(sequence));
        Py_CLEAR(sequence);
    }
    return sequence;
}

static PyObject *
parse_fields(PyObject *fields)
{
    PyObject *items = NULL;
    PyObject *result = NULL;

    items = list_items(fields, "fields");
    if (items == NULL) {
        return NULL;
    }
    result = PyTuple_New(PyList_GET_SIZE(items));
    if (result == NULL) {
        goto error;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items); i++) {
        PyObject *pair = unpack(PyList_GET_ITEM(items, i), 2, "fields");
        PyObject *name = NULL;
        PyObject *value = NULL;

        if (pair == NULL) {
            goto error;
        }
        name = encode_text(PyTuple_GET_ITEM(pair, 0), "field name", 0);
        if (name != NULL) {
            value = encode_value(PyTuple_GET_ITEM(pair, 1));
        }
        Py_DECREF(pair);
        if (value == NULL) {
            Py_XDECREF(name);
            goto error;
        }
        PyTuple_SET_ITEM(result, i, PyTuple_Pack(2, name, value));
        Py_DECREF(name);
        Py_DECREF(value);
        if (PyTuple_GET_ITEM(result, i) == NULL) {
            goto error;
        }
    }
    Py_DECREF(items);
    return result;
error:
    Py_XDECREF(items);
    Py_XDECREF(result);
    return NULL;
}

/* data is bytes-like (sent from memory) or a str or os.PathLike path
 * (read by libcurl while sending). */
static int
parse_file_data(PyObject *data, PyObject **content, PyObject **path)
{
    struct stat status;

    if (PyObject_CheckBuffer(data) && !PyUnicode_Check(data)) {
        *content = PyBytes_FromObject(data);
        *path = Py_NewRef(Py_None);
        return *content != NULL ? 0 : -1;
    }
    if (!PyUnicode_Check(data) && !PyObject_HasAttrString(data, "__fspath__")) {
        PyErr_Format(PyExc_TypeError,
                     "Multipart file data must be bytes-like or a path, not "
                     "%.100s", Py_TYPE(data)->tp_name);
        return -1;
    }
    if (!PyUnicode_FSConverter(data, path)) {
        return -1;
    }
    if (stat(PyBytes_AS_STRING(*path), &status) != 0) {
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, data);
        return -1;
    }
    if (!S_ISREG(status.st_mode)) {
        PyErr_Format(PyExc_ValueError,
                     "Multipart file %R is not a regular file", data);
        return -1;
    }
    *content = Py_NewRef(Py_None);
    return 0;
}

static PyObject *
parse_files(PyObject *files)
{
    PyObject *items = NULL;
    PyObject *result = NULL;

    items = list_items(files, "files");
    if (items == NULL) {
        return NULL;
    }
    result = PyTuple_New(PyList_GET_SIZE(items));
    if (result == NULL) {
        goto error;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items); i++) {
        PyObject *entry = unpack(PyList_GET_ITEM(items, i), 4, "files");
        PyObject *name = NULL;
        PyObject *filename = NULL;
        PyObject *content_type = NULL;
        PyObject *content = NULL;
        PyObject *path = NULL;

        if (entry == NULL) {
            goto error;
        }
        name = encode_text(PyTuple_GET_ITEM(entry, 0), "field name", 0);
        if (name != NULL) {
            filename = encode_text(PyTuple_GET_ITEM(entry, 1), "file name",
                                   1);
        }
        if (filename != NULL) {
            content_type = encode_text(PyTuple_GET_ITEM(entry, 2),
                                       "content type", 1);
        }
        if (content_type != NULL
                && parse_file_data(PyTuple_GET_ITEM(entry, 3), &content,
                                   &path) == 0) {
            PyTuple_SET_ITEM(result, i, PyTuple_Pack(5, name, filename,
                                                     content_type, content,
                                                     path));
        }
        Py_DECREF(entry);
        Py_XDECREF(name);
        Py_XDECREF(filename);
        Py_XDECREF(content_type);
        Py_XDECREF(content);
        Py_XDECREF(path);
        if (PyTuple_GET_ITEM(result, i) == NULL) {
            goto error;
        }
    }
    Py_DECREF(items);
    return result;
error:
    Py_XDECREF(items);
    Py_XDECREF(result);
    return NULL;
}

static PyObject *
Multipart_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"fields", "files", NULL};
    PyObject *fields = NULL;
    PyObject *files = NULL;
    MultipartObject *self = NULL;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|OO:Multipart", keywords,
                                     &fields, &files)) {
        return NULL;
    }
    self = (MultipartObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->fields = fields != NULL ? parse_fields(fields) : PyTuple_New(0);
    if (self->fields == NULL) {
        goto error;
    }
    self->files = files != NULL ? parse_files(files) : PyTuple_New(0);
    if (self->files == NULL) {
        goto error;
    }
    return (PyObject *)self;
error:
    Py_DECREF(self);
    return NULL;
}

static void
Multipart_dealloc(MultipartObject *self)
{
    Py_XDECREF(self->fields);
    Py_XDECREF(self->files);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
Multipart_repr(MultipartObject *self)
{
    return PyUnicode_FromFormat("<_mwcomms.Multipart fields=%zd files=%zd>",
                                PyTuple_GET_SIZE(self->fields),
                                PyTuple_GET_SIZE(self->files));
}

static int
raise_mime_error(CURLcode code, const char *step)
{
    if (code == CURLE_OUT_OF_MEMORY) {
        PyErr_NoMemory();
    }
    else {
        PyErr_Format(mwcomms_Error, "%s failed: %s", step,
                     curl_easy_strerror(code));
    }
    return -1;
}

/* ---- File parts ------------------------------------------------------
 *
 * A file part is opened when each request starts, and libcurl reads the
 * opened file through read_file_part.  So a path that was replaced after
 * the Multipart was created (by a directory, a FIFO or nothing) raises
 * before anything is sent, and libcurl never opens a path itself. */

typedef struct {
    int fd;
    curl_off_t size;       /* st_size when the request started */
    curl_off_t position;   /* next offset to read */
} file_source;

static size_t
read_file_part(char *buffer, size_t size, size_t count, void *arg)
{
    file_source *source = arg;
    curl_off_t left = source->size - source->position;
    size_t wanted = size * count;
    ssize_t got;

    if ((curl_off_t)wanted > left) {
        wanted = (size_t)left;
    }
    if (wanted == 0) {
        return 0;
    }
    do {
        got = pread(source->fd, buffer, wanted, (off_t)source->position);
    } while (got < 0 && errno == EINTR);
    if (got <= 0) {
        /* A read error, or the file became shorter than the size that
         * the Content-Length was computed from. */
        return CURL_READFUNC_ABORT;
    }
    source->position += got;
    return (size_t)got;
}

static int
seek_file_part(void *arg, curl_off_t offset, int origin)
{
    file_source *source = arg;

    if (origin != SEEK_SET || offset < 0 || offset > source->size) {
        return CURL_SEEKFUNC_FAIL;
    }
    source->position = offset;
    return CURL_SEEKFUNC_OK;
}

static void
free_file_part(void *arg)
{
    file_source *source = arg;

    close(source->fd);
    PyMem_RawFree(source);
}

/* Open path for a file part: a regular file, opened without blocking on
 * a FIFO.  Return the source, or NULL with OSError (FileNotFoundError,
 * PermissionError, ...) or ValueError set; both name the path. */
static file_source *
open_file_part(PyObject *path)
{
    const char *name = PyBytes_AS_STRING(path);
    file_source *source = NULL;
    struct stat status;
    PyObject *shown = NULL;
    int fd;

    Py_BEGIN_ALLOW_THREADS
    do {
        fd = open(name, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    Py_END_ALLOW_THREADS
    if (fd < 0) {
        shown = PyUnicode_DecodeFSDefault(name);
        if (shown != NULL) {
            PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, shown);
        }
        goto error;
    }
    if (fstat(fd, &status) != 0) {
        shown = PyUnicode_DecodeFSDefault(name);
        if (shown != NULL) {
            PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, shown);
        }
        goto error;
    }
    if (!S_ISREG(status.st_mode)) {
        shown = PyUnicode_DecodeFSDefault(name);
        if (shown != NULL) {
            PyErr_Format(PyExc_ValueError,
                         "Multipart file %R is not a regular file any "
                         "more: it was replaced after the Multipart was "
                         "created", shown);
        }
        goto error;
    }
    source = PyMem_RawMalloc(sizeof(*source));
    if (source == NULL) {
        PyErr_NoMemory();
        goto error;
    }
    source->fd = fd;
    source->size = (curl_off_t)status.st_size;
    source->position = 0;
    Py_XDECREF(shown);
    return source;
error:
    if (fd >= 0) {
        close(fd);
    }
    Py_XDECREF(shown);
    return NULL;
}

/* The Content-Type that libcurl 7.88 gives a part read from a file when
 * none is set (mime.c: by the filename's extension, then the path's,
 * else application/octet-stream), because libcurl guesses only from the
 * filename for a part read through callbacks. */
static const char *
type_for_name(const char *name)
{
    static const char *const types[][2] = {
        {".gif", "image/gif"},
        {".jpg", "image/jpeg"},
        {".jpeg", "image/jpeg"},
        {".png", "image/png"},
        {".svg", "image/svg+xml"},
        {".txt", "text/plain"},
        {".htm", "text/html"},
        {".html", "text/html"},
        {".pdf", "application/pdf"},
        {".xml", "application/xml"},
    };
    size_t length = strlen(name);

    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        size_t suffix = strlen(types[i][0]);

        if (length >= suffix
                && strcasecmp(name + length - suffix, types[i][0]) == 0) {
            return types[i][1];
        }
    }
    return NULL;
}

/* Set up part to send the file at path (bytes), with filename and
 * content_type (bytes or None) as for curl_mime_filedata.  Return
 * CURLE_OK, or -1 with a Python exception set, or another CURLcode. */
static int
add_file_part(curl_mimepart *part, PyObject *path, PyObject *filename,
              PyObject *content_type)
{
    const char *name = PyBytes_AS_STRING(path);
    const char *base = strrchr(name, '/');
    const char *shown_name;
    const char *type = NULL;
    file_source *source;
    CURLcode code;

    base = base != NULL ? base + 1 : name;
    shown_name = filename != Py_None ? PyBytes_AS_STRING(filename) : base;
    source = open_file_part(path);
    if (source == NULL) {
        return -1;
    }
    /* From here on libcurl owns source and frees it with the part. */
    code = curl_mime_data_cb(part, source->size, read_file_part,
                             seek_file_part, free_file_part, source);
    if (code != CURLE_OK) {
        free_file_part(source);
        return (int)code;
    }
    code = curl_mime_filename(part, shown_name);
    if (code != CURLE_OK) {
        return (int)code;
    }
    if (content_type != Py_None) {
        type = PyBytes_AS_STRING(content_type);
    }
    else {
        type = type_for_name(shown_name);
        if (type == NULL) {
            type = type_for_name(name);
        }
        if (type == NULL) {
            type = "application/octet-stream";
        }
    }
    return (int)curl_mime_type(part, type);
}

int
mw_multipart_build(CURL *easy, PyObject *multipart, curl_mime **result)
{
    MultipartObject *self = (MultipartObject *)multipart;
    curl_mime *mime = curl_mime_init(easy);
    CURLcode code = CURLE_OK;

    if (mime == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(self->fields); i++) {
        PyObject *pair = PyTuple_GET_ITEM(self->fields, i);
        PyObject *value = PyTuple_GET_ITEM(pair, 1);
        curl_mimepart *part = curl_mime_addpart(mime);

        if (part == NULL) {
            code = CURLE_OUT_OF_MEMORY;
            goto error;
        }
        code = curl_mime_name(part,
                              PyBytes_AS_STRING(PyTuple_GET_ITEM(pair, 0)));
        if (code == CURLE_OK) {
            code = curl_mime_data(part, PyBytes_AS_STRING(value),
                                  (size_t)PyBytes_GET_SIZE(value));
        }
        if (code != CURLE_OK) {
            goto error;
        }
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(self->files); i++) {
        PyObject *entry = PyTuple_GET_ITEM(self->files, i);
        PyObject *filename = PyTuple_GET_ITEM(entry, 1);
        PyObject *content_type = PyTuple_GET_ITEM(entry, 2);
        PyObject *content = PyTuple_GET_ITEM(entry, 3);
        PyObject *path = PyTuple_GET_ITEM(entry, 4);
        curl_mimepart *part = curl_mime_addpart(mime);

        if (part == NULL) {
            code = CURLE_OUT_OF_MEMORY;
            goto error;
        }
        code = curl_mime_name(part,
                              PyBytes_AS_STRING(PyTuple_GET_ITEM(entry, 0)));
        if (code != CURLE_OK) {
            goto error;
        }
        if (content == Py_None) {
            int added = add_file_part(part, path, filename, content_type);

            if (added < 0) {
                curl_mime_free(mime);
                return -1;
            }
            code = (CURLcode)added;
            if (code != CURLE_OK) {
                goto error;
            }
            continue;
        }
        code = curl_mime_data(part, PyBytes_AS_STRING(content),
                              (size_t)PyBytes_GET_SIZE(content));
        if (code == CURLE_OK && filename != Py_None) {
            code = curl_mime_filename(part, PyBytes_AS_STRING(filename));
        }
        if (code == CURLE_OK && content_type != Py_None) {
            code = curl_mime_type(part, PyBytes_AS_STRING(content_type));
        }
        if (code != CURLE_OK) {
            goto error;
        }
    }
    *result = mime;
    return 0;
error:
    curl_mime_free(mime);
    return raise_mime_error(code, "building the multipart body");
}

static PyMemberDef Multipart_members[] = {
    {"fields", T_OBJECT_EX, offsetof(MultipartObject, fields), READONLY,
     PyDoc_STR("Tuple of (name, value) bytes pairs.")},
    {"files", T_OBJECT_EX, offsetof(MultipartObject, files), READONLY,
     PyDoc_STR("Tuple of (name, filename, content_type, data, path); data\n"
               "or path is None.")},
    {NULL}
};

PyDoc_STRVAR(Multipart_doc,
"Multipart(fields=(), files=())\n"
"--\n"
"\n"
"A multipart/form-data body for the body argument of Client.request(),\n"
"stream() and request_many().  libcurl sets the Content-Type header\n"
"with the boundary, so the request must not set one.\n"
"\n"
"fields is a dict or an iterable of (name, value) pairs; value is str\n"
"(sent as UTF-8) or bytes-like.  files is an iterable of (name,\n"
"filename, content_type, data) tuples: data is bytes-like, or a str or\n"
"os.PathLike path of a regular file.  The file is opened when each\n"
"request starts and read while sending: a path that is no longer a\n"
"regular file then raises ValueError, and a missing one OSError\n"
"(FileNotFoundError), before anything is sent.\n"
"filename None sends no filename for bytes data and the path's last\n"
"component for a path; content_type None lets libcurl choose.  Fields\n"
"are sent first, then files, each in the order given.");

PyTypeObject mw_MultipartType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "_mwcomms.Multipart",
    .tp_basicsize = sizeof(MultipartObject),
    .tp_dealloc = (destructor)Multipart_dealloc,
    .tp_repr = (reprfunc)Multipart_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = Multipart_doc,
    .tp_members = Multipart_members,
    .tp_new = Multipart_new,
};
