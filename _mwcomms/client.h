/*
 * Private header of the HTTP client: client.c (Client and its handle
 * pool), client_request.c (argument checks, libcurl options, callbacks,
 * errors), client_response.c (Response), client_stream.c (the multi
 * interface driver and StreamResponse), client_multi.c (request_many)
 * and client_multipart.c (Multipart).
 */
#ifndef MWCOMMS_CLIENT_H
#define MWCOMMS_CLIENT_H

#include "mwcomms.h"
#include "oauth_sign.h"

#include <stdint.h>
#include <curl/curl.h>

/* Byte buffer that libcurl callbacks fill without the GIL, so it is
 * allocated with PyMem_Raw* (safe to call without the GIL). */
typedef struct {
    char *data;
    size_t len;
    size_t cap;
} mw_buffer;

/* Kinds of request body. */
enum {
    MW_BODY_NONE,
    MW_BODY_BUFFER,      /* str or bytes-like, sent from memory */
    MW_BODY_MULTIPART,   /* Multipart, sent as multipart/form-data */
    MW_BODY_STREAM       /* file-like or iterator, read while sending */
};

/* Content-Length problems of a response. */
enum {
    MW_LENGTH_OK,
    MW_LENGTH_INVALID,           /* not a decimal number, or too large */
    MW_LENGTH_CONFLICTING        /* headers or list items that differ */
};

/* Proxy choices of one request. */
enum {
    MW_PROXY_DEFAULT,    /* libcurl reads the *_proxy environment */
    MW_PROXY_NONE,       /* no proxy, whatever the environment sets */
    MW_PROXY_URL         /* the proxy URL given */
};

/* The checked arguments of one request() call.  Owned references and
 * libcurl lists are released by mw_request_clear. */
typedef struct {
    const char *method;          /* points into a static table */
    PyObject *url;               /* str, as given */
    const char *url_utf8;        /* owned by url */
    PyObject *safe_url;          /* str: url without user:password@ */
    struct curl_slist *headers;  /* caller headers plus our overrides */
    PyObject *content_type;      /* bytes: the caller's Content-Type, or NULL */
    int form_type_by_libcurl;    /* 1: libcurl writes that Content-Type */
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
    /* "Authorization: ..." of a signed request and the list node that
     * links it after headers.  Both belong to the request, not to
     * libcurl, which only reads the list, so that the line is built in
     * place, in one allocation.  mw_request_clear unlinks the node before
     * freeing headers. */
    oauth_buf auth_line;
    struct curl_slist auth_node;

    int body_kind;               /* MW_BODY_* */
    PyObject *multipart;         /* Multipart instance, or NULL */
    curl_mime *mime;             /* built by mw_transfer_setup, or NULL */
    PyObject *upload_read;       /* bound read() of a file-like body */
    PyObject *upload_iterator;   /* iterator of a body without read() */
    curl_off_t upload_length;    /* streamed body size; -1: chunked */
    curl_off_t content_length;   /* caller's Content-Length; -1: none */

    int proxy_mode;              /* MW_PROXY_* */
    PyObject *proxy;             /* bytes: proxy URL, or NULL */
    PyObject *proxy_secrets;     /* tuple of str removed from messages */
    PyObject *noproxy;           /* bytes: CURLOPT_NOPROXY, or NULL */
} mw_request;

/* State of one transfer, shared between request() and the libcurl
 * callbacks.  The callbacks run without the GIL and touch only C data,
 * except the signal check, which takes the GIL itself. */
typedef struct {
    CURL *easy;
    mw_buffer headers;           /* header lines of the latest response */
    /* 1: mw_response_new copies the header lines and leaves the buffer
     * here for the next transfer.  0: the Response takes the buffer. */
    int copy_headers;
    mw_buffer body;
    /* bytes object of the Content-Length size that the write callback
     * fills directly, saving a copy of large bodies (see
     * write_callback), or NULL.  Its first body_bytes_length bytes are
     * written; when the body outgrows it, the bytes move to body and
     * body_bytes stays unused until mw_transfer_clear frees it. */
    PyObject *body_bytes;
    size_t body_bytes_length;
    int body_bytes_abandoned;
    size_t max_body;             /* SIZE_MAX: no cap */
    int body_too_large;
    int headers_too_large;
    int out_of_memory;
    size_t received;             /* body bytes received in total */

    /* Streaming download: Python reads body.data from body_offset on,
     * and the write callback pauses the transfer while that unread part
     * is at least pause_threshold bytes.  0: never pause. */
    size_t body_offset;
    size_t pause_threshold;
    int download_paused;
    int headers_done;            /* the final response's headers ended */
    int last_status;             /* status code of the latest status line */

    /* Streamed upload: the driver fills upload with the GIL held, and
     * the read callback pauses the transfer when upload is empty. */
    mw_buffer upload;
    curl_off_t upload_produced;  /* bytes read from the Python object */
    size_t upload_offset;
    int upload_eof;
    int upload_paused;

    /* Body length checks of the latest response: libcurl 7.88 takes the
     * last of several Content-Length headers and reads an unparsable one
     * as "until the connection closes". */
    curl_off_t response_length;  /* Content-Length seen; -1: none */
    int content_length_error;    /* MW_LENGTH_* */

    /* Resend guard: libcurl sends a request again on a fresh connection
     * when a reused one closed before any response byte arrived. */
    int allow_resend;            /* idempotent method without a body */
    int request_attempts;        /* CURLOPT_PREREQFUNCTION calls */
    int resend_blocked;

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

/* client.c: the handle pool, for the other files of the client.
 * mw_client_release puts the handle back when reusable is true and
 * cleans it up otherwise (for a transfer that did not complete). */
CURL *mw_client_acquire(PyObject *client);
void mw_client_release(PyObject *client, CURL *easy, int reusable);
CURLM *mw_client_acquire_multi(PyObject *client, int *kept);
void mw_client_release_multi(PyObject *client, CURLM *multi, int kept);
Py_ssize_t mw_client_max_response_size(PyObject *client);
void mw_client_count(PyObject *client, long connects);
int mw_client_is_closed(PyObject *client);
int mw_on_main_thread(void);

/* client_request.c */
int mw_request_parse(mw_request *request, PyObject *method, PyObject *url,
                     PyObject *headers, PyObject *body, PyObject *timeout,
                     PyObject *verify, PyObject *auth, int accept_encoding);
int mw_request_parse_proxy(mw_request *request, PyObject *proxy,
                           PyObject *noproxy);
int mw_buffer_append(mw_buffer *buffer, const char *data, size_t length);
void mw_raise_unencodable(PyObject *header, const char *part);
int mw_request_authorize(mw_request *request);
void mw_request_clear(mw_request *request);
int mw_transfer_setup(CURL *easy, mw_request *request, mw_transfer *transfer,
                      char *error_buffer, Py_ssize_t max_response_size);

/* Options that mw_transfer_setup_kept set on an easy handle which its
 * caller keeps for the next request, so that the next setup skips the
 * options that already have the value it needs.  All zero: nothing is
 * known of the handle.  Unlike mw_transfer_setup, mw_transfer_setup_kept
 * leaves CURLOPT_PRIVATE alone and stores the plain setup tag in tag.
 * The caller sets CURLOPT_PRIVATE to tag before the handle goes back to
 * the pool, and releases url with mw_kept_options_clear. */
typedef struct {
    char *tag;                   /* plain setup tag, or NULL */
    PyObject *url;               /* str of CURLOPT_URL, or NULL */
    const char *method;          /* set by the last setup, or NULL */
    int has_headers;             /* CURLOPT_HTTPHEADER is not NULL */
    long connect_timeout_ms;
} mw_kept_options;

int mw_transfer_setup_kept(CURL *easy, mw_request *request,
                           mw_transfer *transfer, char *error_buffer,
                           Py_ssize_t max_response_size,
                           mw_kept_options *kept);
void mw_kept_options_clear(mw_kept_options *kept);
void mw_transfer_detach(CURL *easy);
void mw_transfer_clear(mw_transfer *transfer);
void mw_raise_transfer_error(CURLcode code, const char *error_buffer,
                             mw_request *request, mw_transfer *transfer);
PyObject *mw_redact_url(PyObject *url);

/* client.c: the id of this process without a system call, kept right
 * across fork(). */
pid_t mw_current_pid(void);

/* CURLOPT_BUFFERSIZE of a single transfer (see set_fixed_options) and of
 * a batch item (see set_batch_options). */
#define MW_RECEIVE_BUFFER_BYTES (128L * 1024)
#define MW_BATCH_RECEIVE_BUFFER_BYTES (16L * 1024)

/* client_response.c */
extern PyTypeObject mw_ResponseType;
PyObject *mw_response_new(CURL *easy, mw_transfer *transfer);
int mw_parse_header_block(const char *data, size_t length,
                          PyObject **reason, PyObject **headers,
                          PyObject **keys);
PyObject *mw_find_header_values(PyObject *headers, PyObject *name);
PyObject *mw_requests_response(PyObject *response, PyObject *const *args);
PyObject *mw_lower_header_name(PyObject *name);
const char *mw_http_version_name(long version);

/* client_stream.c: run one transfer on a multi handle, so that Python
 * code can drain the body and feed a streamed upload between the steps
 * of libcurl.  The multi handle is the client's kept one when no other
 * transfer uses it (see mw_client_acquire_multi), so that a stream
 * after another reuses its connection. */
typedef struct {
    CURLM *multi;
    PyObject *client;            /* borrowed: the caller keeps it alive */
    int multi_kept;
    CURL *easy;
    mw_request *request;
    mw_transfer *transfer;
    int done;
    CURLcode result;
} mw_single;

extern PyTypeObject mw_StreamResponseType;
extern PyTypeObject mw_ChunkIteratorType;
int mw_single_start(mw_single *single, PyObject *client, CURL *easy,
                    mw_request *request, mw_transfer *transfer);
int mw_single_run(mw_single *single, int until_headers);
void mw_single_finish(mw_single *single);
PyObject *mw_stream_open(PyObject *client, PyObject *args, PyObject *kwargs);

/* client_multi.c */
PyObject *mw_request_many(PyObject *client, PyObject *args,
                          PyObject *kwargs);

/* client_multipart.c */
extern PyTypeObject mw_MultipartType;
int mw_multipart_check(PyObject *obj);
int mw_multipart_build(CURL *easy, PyObject *multipart, curl_mime **mime);

#endif /* MWCOMMS_CLIENT_H */
