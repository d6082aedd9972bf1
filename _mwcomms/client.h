/*
 * Private header of the HTTP client: client.c (Client and its handle
 * pool), client_request.c (argument checks, libcurl options, callbacks,
 * errors) and client_response.c (Response).
 */
#ifndef MWCOMMS_CLIENT_H
#define MWCOMMS_CLIENT_H

#include "mwcomms.h"

#include <stdint.h>
#include <curl/curl.h>

/* Byte buffer that libcurl callbacks fill without the GIL, so it is
 * allocated with PyMem_Raw* (safe to call without the GIL). */
typedef struct {
    char *data;
    size_t len;
    size_t cap;
} mw_buffer;

/* The checked arguments of one request() call.  Owned references and
 * libcurl lists are released by mw_request_clear. */
typedef struct {
    const char *method;          /* points into a static table */
    PyObject *url;               /* str, as given */
    const char *url_utf8;        /* owned by url */
    PyObject *safe_url;          /* str: url without user:password@ */
    struct curl_slist *headers;  /* caller headers plus our overrides */
    PyObject *content_type;      /* bytes: the caller's Content-Type, or NULL */
    int has_expect;
    int has_authorization;
    PyObject *body_owner;        /* object the body buffer came from */
    Py_buffer body;              /* valid when has_body */
    int has_body;
    long connect_timeout_ms;     /* 0: libcurl's default (300 s) */
    long read_timeout_ms;        /* 0: no idle limit */
    int verify;                  /* 1: verify peer and host, 0: do not */
    PyObject *ca_file;           /* bytes (file system encoding), or NULL */
    PyObject *auth;              /* OAuth1 instance, or NULL */
    int accept_encoding;
} mw_request;

/* State of one transfer, shared between request() and the libcurl
 * callbacks.  The callbacks run without the GIL and touch only C data,
 * except the signal check, which takes the GIL itself. */
typedef struct {
    CURL *easy;
    mw_buffer headers;           /* header lines of the latest response */
    mw_buffer body;
    size_t max_body;             /* SIZE_MAX: no cap */
    int body_too_large;
    int headers_too_large;
    int out_of_memory;

    long read_timeout_ms;        /* 0: no idle limit */
    int connected;               /* connected: the idle clock runs */
    curl_off_t last_dlnow;
    curl_off_t last_ulnow;
    int64_t last_activity_ms;    /* monotonic clock */
    int read_timed_out;

    int check_signals;           /* running on the main thread */
    int64_t last_signal_check_ms;
    PyObject *exc_type;          /* exception raised by a signal handler */
    PyObject *exc_value;
    PyObject *exc_traceback;
} mw_transfer;

/* client_request.c */
int mw_request_parse(mw_request *request, PyObject *method, PyObject *url,
                     PyObject *headers, PyObject *body, PyObject *timeout,
                     PyObject *verify, PyObject *auth, int accept_encoding);
int mw_request_authorize(mw_request *request);
void mw_request_clear(mw_request *request);
int mw_transfer_setup(CURL *easy, mw_request *request, mw_transfer *transfer,
                      char *error_buffer, Py_ssize_t max_response_size);
void mw_transfer_clear(mw_transfer *transfer);
void mw_raise_transfer_error(CURLcode code, const char *error_buffer,
                             mw_request *request, mw_transfer *transfer);
PyObject *mw_redact_url(PyObject *url);

/* client_response.c */
extern PyTypeObject mw_ResponseType;
PyObject *mw_response_new(CURL *easy, mw_transfer *transfer);

#endif /* MWCOMMS_CLIENT_H */
