/*
 * The _mwcomms module: exception classes and libcurl's global state.
 */
#include "mwcomms.h"

#include <curl/curl.h>
#include <stdint.h>
#include <string.h>

PyObject *mwcomms_Error = NULL;
PyObject *mwcomms_ConnectError = NULL;
PyObject *mwcomms_Timeout = NULL;
PyObject *mwcomms_SSLError = NULL;
PyObject *mwcomms_InvalidURL = NULL;
PyObject *mwcomms_TransferError = NULL;
PyObject *mwcomms_OAuthError = NULL;

PyDoc_STRVAR(module_doc,
"HTTP client over libcurl with native OAuth 1.0a signing.\n"
"\n"
"Client keeps connections alive and is safe to share between threads;\n"
"OAuth1 holds OAuth 1.0a credentials and signs requests (RFC 5849).");

/* Create exception class module.<name> deriving from bases and add it to
 * the module.  Return the new reference kept in *slot, or NULL. */
static PyObject *
add_exception(PyObject *module, PyObject **slot, const char *name,
              PyObject *bases, const char *doc)
{
    char qualname[64];

    PyOS_snprintf(qualname, sizeof(qualname), "_mwcomms.%s", name);
    *slot = PyErr_NewExceptionWithDoc(qualname, doc, bases, NULL);
    if (*slot == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(module, name, *slot) < 0) {
        return NULL;
    }
    return *slot;
}

static int
add_exceptions(PyObject *module)
{
    PyObject *bases = NULL;

    if (add_exception(module, &mwcomms_Error, "Error", NULL,
            "Base class of the errors raised by _mwcomms.\n\n"
            "Attributes: url (the request URL without user info),\n"
            "curl_code (libcurl's CURLcode or 0) and request_sent (True\n"
            "when any byte of the request may have reached the server).")
            == NULL) {
        return -1;
    }
    if (add_exception(module, &mwcomms_ConnectError, "ConnectError",
            mwcomms_Error,
            "The connection could not be made: name resolution failed, "
            "the\nconnection was refused, or the proxy failed.") == NULL) {
        return -1;
    }
    if (add_exception(module, &mwcomms_Timeout, "Timeout", mwcomms_Error,
            "The connect or read timeout expired.  Attribute phase is\n"
            "'connect' or 'read'.") == NULL) {
        return -1;
    }
    if (add_exception(module, &mwcomms_SSLError, "SSLError", mwcomms_Error,
            "TLS failed: handshake, certificate verification or CA "
            "file.") == NULL) {
        return -1;
    }
    bases = PyTuple_Pack(2, mwcomms_Error, PyExc_ValueError);
    if (bases == NULL) {
        return -1;
    }
    if (add_exception(module, &mwcomms_InvalidURL, "InvalidURL", bases,
            "The URL is malformed or its scheme is not http or https.")
            == NULL) {
        Py_DECREF(bases);
        return -1;
    }
    Py_DECREF(bases);
    if (add_exception(module, &mwcomms_TransferError, "TransferError",
            mwcomms_Error,
            "The connection failed after it was made: the server closed "
            "it,\nor sent a malformed or partial response.") == NULL) {
        return -1;
    }
    if (add_exception(module, &mwcomms_OAuthError, "OAuthError",
            mwcomms_Error,
            "An OAuth 1.0a request could not be signed.") == NULL) {
        return -1;
    }
    return 0;
}

/* Return 1 when data[0:length] is well-formed UTF-8 (Unicode, Table
 * 3-7): no overlong form, no surrogate, nothing above U+10FFFF, no
 * truncated sequence.  These are the bytes that Python's strict UTF-8
 * decoder accepts. */
static int
is_utf8(const unsigned char *data, size_t length)
{
    size_t i = 0;

    while (i < length) {
        unsigned char c = data[i];

        if (c < 0x80) {
            /* Skip ASCII eight bytes at a time. */
            while (i + 8 <= length) {
                uint64_t word;

                memcpy(&word, data + i, 8);
                if (word & UINT64_C(0x8080808080808080)) {
                    break;
                }
                i += 8;
            }
            while (i < length && data[i] < 0x80) {
                i++;
            }
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            if (i + 1 >= length || (data[i + 1] & 0xc0) != 0x80) {
                return 0;
            }
            i += 2;
        }
        else if (c >= 0xe0 && c <= 0xef) {
            unsigned char low = c == 0xe0 ? 0xa0 : 0x80;
            unsigned char high = c == 0xed ? 0x9f : 0xbf;

            if (i + 2 >= length || data[i + 1] < low || data[i + 1] > high
                    || (data[i + 2] & 0xc0) != 0x80) {
                return 0;
            }
            i += 3;
        }
        else if (c >= 0xf0 && c <= 0xf4) {
            unsigned char low = c == 0xf0 ? 0x90 : 0x80;
            unsigned char high = c == 0xf4 ? 0x8f : 0xbf;

            if (i + 3 >= length || data[i + 1] < low || data[i + 1] > high
                    || (data[i + 2] & 0xc0) != 0x80
                    || (data[i + 3] & 0xc0) != 0x80) {
                return 0;
            }
            i += 4;
        }
        else {
            return 0;
        }
    }
    return 1;
}

PyDoc_STRVAR(utf8_valid_doc,
"utf8_valid(data, /)\n"
"--\n"
"\n"
"Return True when data (a bytes-like object) is well-formed UTF-8,\n"
"exactly when data.decode('utf-8') would succeed, without building the\n"
"str.");

static PyObject *
utf8_valid(PyObject *module, PyObject *data)
{
    Py_buffer view;
    int valid;

    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    valid = is_utf8(view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    return PyBool_FromLong(valid);
}

PyDoc_STRVAR(has_proxy_variable_doc,
"has_proxy_variable(names, /)\n"
"--\n"
"\n"
"Return True when an item of names (an iterable of str or bytes, such\n"
"as os.environ._data) is http_proxy, https_proxy or all_proxy in any\n"
"mix of case: the variables that urllib.request.getproxies() reads a\n"
"proxy URL from.");

/* Return 1 when text[0:length] equals lower, ignoring ASCII case. */
static int
equal_ignoring_case(const char *text, Py_ssize_t length, const char *lower)
{
    Py_ssize_t i;

    for (i = 0; i < length && lower[i] != '\0'; i++) {
        unsigned char c = (unsigned char)text[i];

        if (c >= 'A' && c <= 'Z') {
            c = (unsigned char)(c + ('a' - 'A'));
        }
        if (c != (unsigned char)lower[i]) {
            return 0;
        }
    }
    return i == length && lower[i] == '\0';
}

/* Return 1 when name is one of the proxy variables, in any case. */
static int
is_proxy_variable(PyObject *name)
{
    static const char *const proxy_names[] = {
        "http_proxy", "https_proxy", "all_proxy"
    };
    const char *text = NULL;
    Py_ssize_t length = 0;

    if (PyBytes_Check(name)) {
        text = PyBytes_AS_STRING(name);
        length = PyBytes_GET_SIZE(name);
    }
    else if (PyUnicode_Check(name) && PyUnicode_IS_ASCII(name)) {
        text = (const char *)PyUnicode_1BYTE_DATA(name);
        length = PyUnicode_GET_LENGTH(name);
    }
    /* The names are 9 to 11 characters long. */
    if (text == NULL || length < 9 || length > 11) {
        return 0;
    }
    for (size_t i = 0; i < 3; i++) {
        if (equal_ignoring_case(text, length, proxy_names[i])) {
            return 1;
        }
    }
    return 0;
}

static PyObject *
has_proxy_variable(PyObject *module, PyObject *names)
{
    PyObject *iterator = NULL;
    PyObject *name;
    int found = 0;

    if (PyDict_CheckExact(names)) {
        /* is_proxy_variable runs no Python code, so the dict cannot
         * change while it is walked. */
        Py_ssize_t position = 0;

        while (!found && PyDict_Next(names, &position, &name, NULL)) {
            found = is_proxy_variable(name);
        }
        return PyBool_FromLong(found);
    }
    iterator = PyObject_GetIter(names);
    if (iterator == NULL) {
        return NULL;
    }
    while (!found && (name = PyIter_Next(iterator)) != NULL) {
        found = is_proxy_variable(name);
        Py_DECREF(name);
    }
    Py_DECREF(iterator);
    if (PyErr_Occurred()) {
        return NULL;
    }
    return PyBool_FromLong(found);
}

PyDoc_STRVAR(dict_version_doc,
"dict_version(mapping, depth=0, /)\n"
"--\n"
"\n"
"Return an int that changes whenever the dict mapping changes, or, with\n"
"depth > 0, whenever a dict among its values (down to depth levels)\n"
"changes.  Return None when the interpreter keeps no dict versions\n"
"(CPython 3.12 and later deprecate them): callers then assume a change.\n"
"\n"
"CPython 3.11 gives each dict a version from one global counter when\n"
"it is created and again on every change.  The largest version in the\n"
"tree therefore grows with every change anywhere in it, including the\n"
"removal or replacement of a nested dict, which changes its parent.");

/* The largest dict version in the tree of dicts below mapping, down to
 * depth levels.  Runs no Python code, so the dicts cannot change while it
 * walks them. */
#if PY_VERSION_HEX < 0x030C0000
static uint64_t
tree_version(PyObject *mapping, int depth)
{
    uint64_t version = ((PyDictObject *)mapping)->ma_version_tag;
    Py_ssize_t position = 0;
    PyObject *value;

    if (depth <= 0) {
        return version;
    }
    while (PyDict_Next(mapping, &position, NULL, &value)) {
        if (PyDict_Check(value)) {
            uint64_t inner = tree_version(value, depth - 1);

            if (inner > version) {
                version = inner;
            }
        }
    }
    return version;
}
#endif

static PyObject *
dict_version(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    int depth = 0;

    if (nargs < 1 || nargs > 2) {
        PyErr_Format(PyExc_TypeError,
                     "dict_version() takes 1 or 2 arguments (%zd given)",
                     nargs);
        return NULL;
    }
    if (!PyDict_Check(args[0])) {
        PyErr_Format(PyExc_TypeError,
                     "dict_version() argument 1 must be dict, not %.100s",
                     Py_TYPE(args[0])->tp_name);
        return NULL;
    }
    if (nargs == 2) {
        long value = PyLong_AsLong(args[1]);

        if (value == -1 && PyErr_Occurred()) {
            return NULL;
        }
        /* The cookie jar nests three levels; the limit keeps the walk
         * short and the recursion shallow. */
        if (value < 0 || value > 8) {
            PyErr_SetString(PyExc_ValueError,
                            "dict_version() depth must be 0 to 8");
            return NULL;
        }
        depth = (int)value;
    }
#if PY_VERSION_HEX < 0x030C0000
    return PyLong_FromUnsignedLongLong(tree_version(args[0], depth));
#else
    (void)depth;
    Py_RETURN_NONE;
#endif
}

static PyMethodDef module_methods[] = {
    {"utf8_valid", utf8_valid, METH_O, utf8_valid_doc},
    {"has_proxy_variable", has_proxy_variable, METH_O,
     has_proxy_variable_doc},
    {"dict_version", (PyCFunction)(void (*)(void))dict_version,
     METH_FASTCALL, dict_version_doc},
    {NULL}
};

static struct PyModuleDef mwcomms_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_mwcomms",
    .m_doc = module_doc,
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__mwcomms(void)
{
    PyObject *module = NULL;
    CURLcode code;

    /* curl_global_init is not thread-safe in libcurl before 7.84; the
     * import lock serialises module initialisation, so this runs once. */
    code = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (code != CURLE_OK) {
        PyErr_Format(PyExc_ImportError, "curl_global_init failed: %s",
                     curl_easy_strerror(code));
        return NULL;
    }
    module = PyModule_Create(&mwcomms_module);
    if (module == NULL) {
        return NULL;
    }
    if (add_exceptions(module) < 0
            || mwcomms_client_init(module) < 0
            || mwcomms_oauth_init(module) < 0
            || mwcomms_jwt_init(module) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
