/*
 * The _mwcomms module: exception classes and libcurl's global state.
 */
#include "mwcomms.h"

#include <curl/curl.h>

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

static struct PyModuleDef mwcomms_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_mwcomms",
    .m_doc = module_doc,
    .m_size = -1,
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
