/*
 * Client: a pool of libcurl easy handles that threads share.
 *
 * Each easy handle keeps its own connection cache.  Connections are not
 * shared between handles (no CURL_LOCK_DATA_CONNECT) because libcurl's
 * shared connection cache has a long history of crash reports under
 * threads.  One share handle contains what is safe and useful to share: the
 * DNS cache, TLS sessions and, with cookies=True, the cookie store.
 *
 * request() pops an idle handle (or creates one), runs the transfer with
 * the GIL released and pushes the handle back.  The idle stack is LIFO so
 * that the handle with the most recently used, still warm connection is
 * used next.
 */
#include "client.h"

#include <pthread.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    PyObject_HEAD
    /* Protects idle, idle_count, closed, share_users, handle_count and
     * share.  It is never held while taking the GIL. */
    pthread_mutex_t pool_lock;
    int pool_lock_ready;
    CURL **idle;                 /* PyMem_RawMalloc'ed stack */
    Py_ssize_t idle_count;
    Py_ssize_t max_idle;
    Py_ssize_t handle_count;     /* idle plus in use */
    /* request() calls holding a handle plus close() calls cleaning up idle
     * handles.  Every such handle is attached to the share handle, so
     * after close() the share is freed when this count drops to 0. */
    Py_ssize_t share_users;
    int closed;

    CURLSH *share;
    pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];

    /* Multi handle of request_many, kept between batches so that its
     * connection cache (where libcurl 7.88 keeps the connections of the
     * easy handles added to it) stays warm.  batch_multi_busy is set
     * while one batch drives it; see mw_client_acquire_multi.  Both are
     * protected by pool_lock.  While it exists it counts as a user of
     * the share handle. */
    CURLM *batch_multi;
    int batch_multi_busy;
    int share_locks_ready;

    /* Process that owns the handles; a request in another process (a
     * child after fork()) starts with new ones, see reset_after_fork. */
    pid_t pid;

    int cookies;
    Py_ssize_t max_response_size;  /* -1: no cap */
    unsigned long long requests;
    unsigned long long connects;
} ClientObject;

static PyTypeObject ClientType;

/* threading.main_thread().ident, read at import: signal handlers only
 * run on that thread, so only it checks for signals during transfers. */
static unsigned long main_thread_ident;

/* ---- Share handle ---------------------------------------------------- */

static void
share_lock(CURL *handle, curl_lock_data data, curl_lock_access access,
           void *userptr)
{
    ClientObject *self = userptr;

    if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST) {
        pthread_mutex_lock(&self->share_locks[data]);
    }
}

static void
share_unlock(CURL *handle, curl_lock_data data, void *userptr)
{
    ClientObject *self = userptr;

    if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST) {
        pthread_mutex_unlock(&self->share_locks[data]);
    }
}

static int
create_share(ClientObject *self)
{
    CURLSHcode code = CURLSHE_OK;

    self->share = curl_share_init();
    if (self->share == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (code == CURLSHE_OK) {
        code = curl_share_setopt(self->share, CURLSHOPT_LOCKFUNC, share_lock);
    }
    if (code == CURLSHE_OK) {
        code = curl_share_setopt(self->share, CURLSHOPT_UNLOCKFUNC,
                                 share_unlock);
    }
    if (code == CURLSHE_OK) {
        code = curl_share_setopt(self->share, CURLSHOPT_USERDATA, self);
    }
    if (code == CURLSHE_OK) {
        code = curl_share_setopt(self->share, CURLSHOPT_SHARE,
                                 CURL_LOCK_DATA_DNS);
    }
    if (code == CURLSHE_OK) {
        code = curl_share_setopt(self->share, CURLSHOPT_SHARE,
                                 CURL_LOCK_DATA_SSL_SESSION);
    }
    if (code == CURLSHE_OK && self->cookies) {
        code = curl_share_setopt(self->share, CURLSHOPT_SHARE,
                                 CURL_LOCK_DATA_COOKIE);
    }
    if (code != CURLSHE_OK) {
        PyErr_Format(mwcomms_Error, "curl_share_setopt failed: %s",
                     curl_share_strerror(code));
        return -1;
    }
    return 0;
}

/* ---- fork() --------------------------------------------------------- */

/*
 * Drop what a child process inherited from its parent: the idle handles,
 * whose kept-alive connections are sockets that the parent still uses,
 * and the share handle.  A request in the child then opens its own
 * connections.  Without this, parent and child would send requests on
 * one socket and read each other's responses.
 *
 * Nothing is cleaned up through libcurl.  curl_easy_cleanup would close
 * each TLS connection with a close_notify alert, written to the socket
 * that the parent still reads from.  The share handle and the locks may
 * have been in use by a thread that does not exist in the child.  So
 * the old handles and share handle are leaked: their memory, and the
 * child's copies of the connection sockets, which stay open until the
 * child exits but are never read or written.  The locks are initialized
 * again for the same reason.
 *
 * NOTE: with cookies=True, the cookies the parent received are in the old
 * share handle, so the child starts without them.
 *
 * Called with the GIL held, which keeps the threads of the child out of
 * the pool meanwhile.  new_share is 0 when the client is about to close.
 * Return -1 with an exception set when the new share handle fails.
 */
static int create_share(ClientObject *self);

/* The id of this process, set at import and again in the child after
 * each fork(), so that the check before every request costs no system
 * call.  fork_handler_missing: pthread_atfork failed, so mw_current_pid
 * calls getpid() each time. */
static pid_t process_id;
static int fork_handler_missing;

static void
note_fork_in_child(void)
{
    process_id = getpid();
}

pid_t
mw_current_pid(void)
{
    return fork_handler_missing ? getpid() : process_id;
}

static int
reset_after_fork(ClientObject *self, int new_share)
{
    pid_t pid = mw_current_pid();

    if (self->pid == pid) {
        return 0;
    }
    self->pid = pid;
    pthread_mutex_init(&self->pool_lock, NULL);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++) {
        pthread_mutex_init(&self->share_locks[i], NULL);
    }
    /* The handles in the array are leaked; the array is only ours.  So is
     * the multi handle, whose connections the parent still uses. */
    self->batch_multi = NULL;
    self->batch_multi_busy = 0;
    PyMem_RawFree(self->idle);
    self->idle = NULL;
    self->idle_count = 0;
    self->handle_count = 0;
    self->share_users = 0;
    self->share = NULL;
    if (self->closed || !new_share) {
        return 0;
    }
    if (self->max_idle > 0) {
        self->idle = PyMem_RawCalloc((size_t)self->max_idle, sizeof(CURL *));
        if (self->idle == NULL) {
            self->closed = 1;
            PyErr_NoMemory();
            return -1;
        }
    }
    if (create_share(self) < 0) {
        /* Closed, so that no request uses the client without a share. */
        self->closed = 1;
        return -1;
    }
    return 0;
}

/* ---- Handle pool ----------------------------------------------------- */

static void release_handle(ClientObject *self, CURL *easy,
                           int creation_failed);

/* Pop an idle handle or create one.  Return NULL with an exception set
 * when the client is closed or libcurl is out of memory. */
static CURL *
acquire_handle(ClientObject *self)
{
    CURL *easy = NULL;
    CURLSH *share;

    if (reset_after_fork(self, 1) < 0) {
        return NULL;
    }
    pthread_mutex_lock(&self->pool_lock);
    if (self->closed) {
        pthread_mutex_unlock(&self->pool_lock);
        PyErr_SetString(PyExc_ValueError, "Client is closed");
        return NULL;
    }
    self->share_users++;
    if (self->idle_count > 0) {
        easy = self->idle[--self->idle_count];
    }
    else {
        self->handle_count++;
    }
    share = self->share;
    pthread_mutex_unlock(&self->pool_lock);
    if (easy != NULL) {
        return easy;
    }

    /* CURLOPT_COOKIEFILE "" turns the in-memory cookie engine on, and the
     * cookies themselves live in the share handle.  It is set once per
     * handle because curl_easy_reset keeps the engine on.
     * NOTE: libcurl 7.88 still leaks its 17-byte file list entry once per
     * handle (valgrind); setting it before every transfer leaked one entry
     * per request. */
    easy = curl_easy_init();
    if (easy == NULL
            || curl_easy_setopt(easy, CURLOPT_SHARE, share) != CURLE_OK
            || (self->cookies
                && curl_easy_setopt(easy, CURLOPT_COOKIEFILE, "")
                   != CURLE_OK)) {
        if (easy != NULL) {
            curl_easy_cleanup(easy);
        }
        release_handle(self, NULL, 1);
        PyErr_SetString(PyExc_MemoryError, "curl_easy_init failed");
        return NULL;
    }
    return easy;
}

/* Drop one user of the share handle.  Return the share handle for the
 * caller to free when the client is closed and this was the last user.
 * Called with pool_lock held. */
static CURLSH *
drop_share_user(ClientObject *self)
{
    CURLSH *share = NULL;

    self->share_users--;
    if (self->closed && self->share_users == 0) {
        share = self->share;
        self->share = NULL;
    }
    return share;
}

static void
cleanup_share(CURLSH *share)
{
    if (share != NULL) {
        Py_BEGIN_ALLOW_THREADS
        curl_share_cleanup(share);
        Py_END_ALLOW_THREADS
    }
}

/* Return a handle to the pool, or clean it up when the pool is full or
 * the client was closed meanwhile.  The share handle is freed only after
 * the easy handle, because libcurl refuses to free a share handle that
 * easy handles still use.  easy is NULL with creation_failed set when
 * acquire_handle could not create a handle. */
static void
release_handle(ClientObject *self, CURL *easy, int creation_failed)
{
    CURLSH *share = NULL;
    int pooled = 0;

    if (easy != NULL) {
        /* Drop the pointers into this request's buffers now. */
        mw_transfer_detach(easy);
    }
    pthread_mutex_lock(&self->pool_lock);
    if (easy != NULL && !self->closed && self->idle_count < self->max_idle) {
        self->idle[self->idle_count++] = easy;
        pooled = 1;
        /* The common case takes the lock once. */
        share = drop_share_user(self);
        pthread_mutex_unlock(&self->pool_lock);
        cleanup_share(share);
        return;
    }
    pthread_mutex_unlock(&self->pool_lock);

    if (!pooled && easy != NULL) {
        Py_BEGIN_ALLOW_THREADS
        curl_easy_cleanup(easy);
        Py_END_ALLOW_THREADS
    }
    pthread_mutex_lock(&self->pool_lock);
    if (!pooled && (easy != NULL || creation_failed)) {
        self->handle_count--;
    }
    share = drop_share_user(self);
    pthread_mutex_unlock(&self->pool_lock);
    cleanup_share(share);
}

/* Clean up the idle handles, and the share handle unless a request still
 * uses it.  Idempotent. */
static void
close_client(ClientObject *self)
{
    CURL **idle;
    Py_ssize_t idle_count;
    CURLSH *share = NULL;
    CURLM *multi = NULL;

    if (!self->pool_lock_ready) {
        return;
    }
    reset_after_fork(self, 0);
    pthread_mutex_lock(&self->pool_lock);
    self->closed = 1;
    if (self->batch_multi != NULL && !self->batch_multi_busy) {
        /* A running batch cleans its multi handle up itself when it
         * ends, see mw_client_release_multi. */
        multi = self->batch_multi;
        self->batch_multi = NULL;
    }
    idle = self->idle;
    idle_count = self->idle_count;
    self->idle = NULL;
    self->idle_count = 0;
    self->handle_count -= idle_count;
    self->share_users++;
    pthread_mutex_unlock(&self->pool_lock);

    if (idle_count > 0) {
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < idle_count; i++) {
            curl_easy_cleanup(idle[i]);
        }
        Py_END_ALLOW_THREADS
    }
    PyMem_RawFree(idle);
    if (multi != NULL) {
        Py_BEGIN_ALLOW_THREADS
        curl_multi_cleanup(multi);
        Py_END_ALLOW_THREADS
    }

    pthread_mutex_lock(&self->pool_lock);
    if (multi != NULL) {
        drop_share_user(self);  /* the multi handle's; ours remains */
    }
    share = drop_share_user(self);
    pthread_mutex_unlock(&self->pool_lock);
    cleanup_share(share);
}

/* ---- Pool functions for the other files of the client ------------- */

CURL *
mw_client_acquire(PyObject *client)
{
    return acquire_handle((ClientObject *)client);
}

void
mw_client_release(PyObject *client, CURL *easy, int reusable)
{
    ClientObject *self = (ClientObject *)client;

    if (reusable) {
        release_handle(self, easy, 0);
        return;
    }
    /* The easy handle goes first: the share handle is freed only after
     * every easy handle that uses it. */
    Py_BEGIN_ALLOW_THREADS
    curl_easy_cleanup(easy);
    Py_END_ALLOW_THREADS
    release_handle(self, NULL, 1);
}

/*
 * Return the client's multi handle for one request_many batch, creating
 * it on first use, and set *kept.  While another thread's batch runs on
 * it, return a new multi handle for the caller's batch alone and clear
 * *kept.  Return NULL with an exception set on failure.
 *
 * Connections stay per thread as the rest of the client requires: a
 * multi handle's connection cache is private to that multi handle (no
 * CURL_LOCK_DATA_CONNECT share), and batch_multi_busy lets only one
 * thread at a time drive the kept handle, its cache included.  libcurl
 * allows a handle to be used from different threads one after another,
 * never at the same time.
 */
CURLM *
mw_client_acquire_multi(PyObject *client, int *kept)
{
    ClientObject *self = (ClientObject *)client;
    CURLM *multi = NULL;
    int create_kept = 0;

    *kept = 0;
    if (reset_after_fork(self, 1) < 0) {
        return NULL;
    }
    pthread_mutex_lock(&self->pool_lock);
    if (self->closed) {
        pthread_mutex_unlock(&self->pool_lock);
        PyErr_SetString(PyExc_ValueError, "Client is closed");
        return NULL;
    }
    if (!self->batch_multi_busy) {
        self->batch_multi_busy = 1;
        multi = self->batch_multi;
        create_kept = multi == NULL;
        *kept = 1;
    }
    pthread_mutex_unlock(&self->pool_lock);
    if (multi != NULL) {
        return multi;
    }

    multi = curl_multi_init();
    if (multi == NULL) {
        if (*kept) {
            pthread_mutex_lock(&self->pool_lock);
            self->batch_multi_busy = 0;
            pthread_mutex_unlock(&self->pool_lock);
            *kept = 0;
        }
        PyErr_SetString(PyExc_MemoryError, "curl_multi_init failed");
        return NULL;
    }
    if (create_kept) {
        pthread_mutex_lock(&self->pool_lock);
        self->batch_multi = multi;
        self->share_users++;
        pthread_mutex_unlock(&self->pool_lock);
    }
    return multi;
}

/* End a batch that mw_client_acquire_multi started.  Every easy handle
 * must have been removed from multi.  A multi handle that the client
 * does not keep, or that close() could not clean up while the batch
 * ran, is cleaned up here. */
void
mw_client_release_multi(PyObject *client, CURLM *multi, int kept)
{
    ClientObject *self = (ClientObject *)client;
    CURLSH *share = NULL;
    int cleanup = !kept;

    if (kept) {
        pthread_mutex_lock(&self->pool_lock);
        /* batch_multi is some other handle only in a child process after
         * fork(), where this batch cannot be running. */
        if (self->batch_multi == multi) {
            self->batch_multi_busy = 0;
            if (self->closed) {
                self->batch_multi = NULL;
                cleanup = 1;
            }
        }
        pthread_mutex_unlock(&self->pool_lock);
    }
    if (!cleanup) {
        return;
    }
    Py_BEGIN_ALLOW_THREADS
    curl_multi_cleanup(multi);
    Py_END_ALLOW_THREADS
    if (kept) {
        pthread_mutex_lock(&self->pool_lock);
        share = drop_share_user(self);
        pthread_mutex_unlock(&self->pool_lock);
        cleanup_share(share);
    }
}

Py_ssize_t
mw_client_max_response_size(PyObject *client)
{
    return ((ClientObject *)client)->max_response_size;
}

void
mw_client_count(PyObject *client, long connects)
{
    ClientObject *self = (ClientObject *)client;

    self->requests++;
    self->connects += (unsigned long long)connects;
}

/* Whether close() has run.  Takes pool_lock, so a batch may call it
 * with the GIL released while another thread closes the client. */
int
mw_client_is_closed(PyObject *client)
{
    ClientObject *self = (ClientObject *)client;
    int closed;

    if (!self->pool_lock_ready) {
        return self->closed;
    }
    pthread_mutex_lock(&self->pool_lock);
    closed = self->closed;
    pthread_mutex_unlock(&self->pool_lock);
    return closed;
}

int
mw_on_main_thread(void)
{
    return PyThread_get_thread_ident() == main_thread_ident;
}

/* Run a transfer with a streamed body on a multi handle, because the
 * body is read from Python code between the steps of libcurl.  Set
 * *reusable when the transfer completed. */
static int
perform_streamed(PyObject *client, CURL *easy, mw_request *request,
                 mw_transfer *transfer, CURLcode *code, int *reusable)
{
    mw_single single;
    int result;

    if (mw_single_start(&single, client, easy, request, transfer) < 0) {
        return -1;
    }
    result = mw_single_run(&single, 0);
    *code = single.result;
    *reusable = single.done;
    mw_single_finish(&single);
    return result;
}

/* ---- Client type ----------------------------------------------------- */

static PyObject *
Client_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"cookies", "max_idle_handles",
                               "max_response_size", NULL};
    int cookies = 1;
    Py_ssize_t max_idle = 16;
    PyObject *max_response_size = Py_None;
    ClientObject *self = NULL;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|$pnO:Client", keywords,
                                     &cookies, &max_idle,
                                     &max_response_size)) {
        return NULL;
    }
    if (max_idle < 0) {
        PyErr_Format(PyExc_ValueError,
                     "max_idle_handles must be 0 or more, not %zd", max_idle);
        return NULL;
    }
    self = (ClientObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->pid = mw_current_pid();
    self->cookies = cookies;
    self->max_idle = max_idle;
    self->max_response_size = -1;
    if (max_response_size != Py_None) {
        if (!PyLong_Check(max_response_size)
                || PyBool_Check(max_response_size)) {
            PyErr_Format(PyExc_TypeError,
                         "max_response_size must be None or an int, not "
                         "%.100s", Py_TYPE(max_response_size)->tp_name);
            goto error;
        }
        self->max_response_size = PyLong_AsSsize_t(max_response_size);
        if (self->max_response_size == -1 && PyErr_Occurred()) {
            goto error;
        }
        if (self->max_response_size < 0) {
            PyErr_Format(PyExc_ValueError,
                         "max_response_size must be 0 or more bytes, not %zd",
                         self->max_response_size);
            goto error;
        }
    }

    if (pthread_mutex_init(&self->pool_lock, NULL) != 0) {
        PyErr_SetString(PyExc_OSError, "pthread_mutex_init failed");
        goto error;
    }
    self->pool_lock_ready = 1;
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++) {
        if (pthread_mutex_init(&self->share_locks[i], NULL) != 0) {
            for (int j = 0; j < i; j++) {
                pthread_mutex_destroy(&self->share_locks[j]);
            }
            PyErr_SetString(PyExc_OSError, "pthread_mutex_init failed");
            goto error;
        }
    }
    self->share_locks_ready = 1;
    if (max_idle > 0) {
        self->idle = PyMem_RawCalloc((size_t)max_idle, sizeof(CURL *));
        if (self->idle == NULL) {
            PyErr_NoMemory();
            goto error;
        }
    }
    if (create_share(self) < 0) {
        goto error;
    }
    return (PyObject *)self;
error:
    Py_DECREF(self);
    return NULL;
}

static void
Client_dealloc(ClientObject *self)
{
    /* Every request() call holds a reference to the client, so no request
     * is running here and close_client frees the share handle too. */
    close_client(self);
    if (self->share_locks_ready) {
        for (int i = 0; i < CURL_LOCK_DATA_LAST; i++) {
            pthread_mutex_destroy(&self->share_locks[i]);
        }
    }
    if (self->pool_lock_ready) {
        pthread_mutex_destroy(&self->pool_lock);
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

PyDoc_STRVAR(Client_request_doc,
"request(method, url, headers=None, body=None, *, timeout=None,\n"
"        verify=True, auth=None, accept_encoding=True, proxy=None,\n"
"        noproxy=None)\n"
"--\n"
"\n"
"Send one HTTP request and return a Response.  Redirects are returned,\n"
"not followed.\n"
"\n"
"method is GET, HEAD, POST, PUT, DELETE, PATCH or OPTIONS.  headers is a\n"
"dict or an iterable of (name, value) str pairs.  body is one of:\n"
"  - str (sent as UTF-8) or bytes-like, sent from memory;\n"
"  - a Multipart, sent as multipart/form-data;\n"
"  - a file-like object (read(65536) until b'') or an iterable of\n"
"    bytes, streamed.  Its size is the Content-Length header when given,\n"
"    else the rest of a regular file, and the body must have exactly that\n"
"    size; without either, HTTP/1.1 sends it chunked.\n"
"A Content-Length header with any other body, and a Transfer-Encoding\n"
"header with any body, raise ValueError: libcurl sets the framing.\n"
"\n"
"libcurl may send a body-less GET, HEAD or OPTIONS again on a new\n"
"connection when a kept-alive one closes before any response byte.\n"
"Every other request is sent at most once and raises TransferError with\n"
"request_sent True in that case.\n"
"\n"
"timeout is None, seconds for both phases, or a (connect, read) pair;\n"
"read limits the time without any byte sent or received.  With connect\n"
"None, libcurl's default of 300 s applies.  verify is True, False or the\n"
"path of a CA bundle.  auth is an OAuth1 instance that signs the\n"
"request.\n"
"\n"
"proxy None uses libcurl's default, which reads the environment\n"
"variables http_proxy, HTTPS_PROXY (or https_proxy), ALL_PROXY and\n"
"NO_PROXY; '' uses no proxy and ignores the environment; a URL such as\n"
"'http://user:password@host:port' or 'socks5h://host:port' uses that\n"
"proxy.  noproxy is None or a comma-separated list of hosts reached\n"
"without the proxy (CURLOPT_NOPROXY; '*' for all).  The credentials in\n"
"a proxy URL never appear in exception messages.");

/* The parameters of request(), in the order of its signature.  The first
 * REQUEST_POSITIONAL may be positional and the rest are keyword-only. */
enum {
    REQUEST_METHOD, REQUEST_URL, REQUEST_HEADERS, REQUEST_BODY,
    REQUEST_TIMEOUT, REQUEST_VERIFY, REQUEST_AUTH, REQUEST_ACCEPT_ENCODING,
    REQUEST_PROXY, REQUEST_NOPROXY, REQUEST_PARAMETERS
};
#define REQUEST_POSITIONAL 4
#define REQUEST_REQUIRED 2

static const char *const request_keywords[REQUEST_PARAMETERS] = {
    "method", "url", "headers", "body", "timeout", "verify", "auth",
    "accept_encoding", "proxy", "noproxy"
};

/* Interned copies of request_keywords, made on the first call and kept
 * for the life of the process.  Keyword names in a call are interned
 * str objects too, so most match by identity. */
static PyObject *request_keyword_names[REQUEST_PARAMETERS];

static int
find_request_keyword(PyObject *name)
{
    if (request_keyword_names[REQUEST_PARAMETERS - 1] == NULL) {
        for (int index = 0; index < REQUEST_PARAMETERS; index++) {
            PyObject *interned =
                PyUnicode_InternFromString(request_keywords[index]);

            if (interned == NULL) {
                return -1;
            }
            Py_XSETREF(request_keyword_names[index], interned);
        }
    }
    for (int index = 0; index < REQUEST_PARAMETERS; index++) {
        if (name == request_keyword_names[index]) {
            return index;
        }
    }
    for (int index = 0; index < REQUEST_PARAMETERS; index++) {
        if (PyUnicode_CompareWithASCIIString(name, request_keywords[index])
                == 0) {
            return index;
        }
    }
    return REQUEST_PARAMETERS;
}

/* Sort the vectorcall arguments of request() into values, indexed by
 * REQUEST_*, leaving the defaults already there for the missing ones.
 * PyArg_ParseTupleAndKeywords builds a str for every keyword name and
 * looks each one up in a dict: about 3,000 instructions per call with one
 * keyword argument (callgrind).  This compares the few names given
 * instead.  Return 0, or -1 with an exception set. */
static int
parse_request_arguments(PyObject *const *args, Py_ssize_t nargs,
                        PyObject *kwnames, PyObject **values)
{
    Py_ssize_t keyword_count = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    int given[REQUEST_PARAMETERS] = {0};

    if (nargs > REQUEST_POSITIONAL) {
        PyErr_Format(PyExc_TypeError,
                     "request() takes at most %d positional arguments (%zd "
                     "given)", REQUEST_POSITIONAL, nargs);
        return -1;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        values[i] = args[i];
        given[i] = 1;
    }
    for (Py_ssize_t i = 0; i < keyword_count; i++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i);
        int index = find_request_keyword(name);

        if (index < 0) {
            return -1;
        }
        if (index == REQUEST_PARAMETERS) {
            PyErr_Format(PyExc_TypeError,
                         "'%U' is an invalid keyword argument for request()",
                         name);
            return -1;
        }
        if (given[index]) {
            PyErr_Format(PyExc_TypeError,
                         "argument for request() given by name ('%s') and "
                         "position (%d)", request_keywords[index], index + 1);
            return -1;
        }
        values[index] = args[nargs + i];
        given[index] = 1;
    }
    for (int index = 0; index < REQUEST_REQUIRED; index++) {
        if (!given[index]) {
            PyErr_Format(PyExc_TypeError,
                         "request() missing required argument '%s' (pos %d)",
                         request_keywords[index], index + 1);
            return -1;
        }
    }
    return 0;
}

/* Send the request described by values (indexed by REQUEST_*) and
 * return a Response, or NULL with an exception set. */
static PyObject *
client_send(ClientObject *self, PyObject *const *values, int accept_encoding)
{
    mw_request request;
    mw_transfer transfer;
    char error_buffer[CURL_ERROR_SIZE];
    CURL *easy = NULL;
    int reusable = 1;
    CURLcode code;
    long connects = 0;
    PyObject *result = NULL;

    memset(&request, 0, sizeof(request));
    memset(&transfer, 0, sizeof(transfer));
    if (self->closed) {
        PyErr_SetString(PyExc_ValueError, "Client is closed");
        return NULL;
    }
    if (mw_request_parse(&request, values[REQUEST_METHOD],
                         values[REQUEST_URL], values[REQUEST_HEADERS],
                         values[REQUEST_BODY], values[REQUEST_TIMEOUT],
                         values[REQUEST_VERIFY], values[REQUEST_AUTH],
                         accept_encoding) < 0
            || mw_request_parse_proxy(&request, values[REQUEST_PROXY],
                                      values[REQUEST_NOPROXY]) < 0) {
        goto done;
    }
    easy = acquire_handle(self);
    if (easy == NULL) {
        goto done;
    }
    if (mw_transfer_setup(easy, &request, &transfer, error_buffer,
                          self->max_response_size) < 0) {
        goto done;
    }
    transfer.check_signals = PyThread_get_thread_ident() == main_thread_ident;
    /* The first check comes one interval after the start, like every
     * later one, so that a short transfer takes the GIL back only when
     * it ends. */
    transfer.last_signal_check_ms = transfer.last_activity_ms;
    if (mw_request_authorize(&request) < 0) {
        goto done;
    }
    /* A list that was empty now starts with the Authorization node. */
    if (request.headers == &request.auth_node
            && curl_easy_setopt(easy, CURLOPT_HTTPHEADER, request.headers)
               != CURLE_OK) {
        PyErr_SetString(mwcomms_Error,
                        "curl_easy_setopt(CURLOPT_HTTPHEADER) failed");
        goto done;
    }

    if (request.body_kind == MW_BODY_STREAM) {
        transfer.check_signals = 0;  /* the driver checks them itself */
        if (perform_streamed((PyObject *)self, easy, &request, &transfer,
                             &code, &reusable) < 0) {
            goto done;
        }
    }
    else {
        Py_BEGIN_ALLOW_THREADS
        code = curl_easy_perform(easy);
        Py_END_ALLOW_THREADS
    }

    curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &connects);
    self->requests++;
    self->connects += (unsigned long long)connects;
    if (transfer.exc_type != NULL) {
        /* A signal handler raised (KeyboardInterrupt, usually). */
        PyErr_Restore(transfer.exc_type, transfer.exc_value,
                      transfer.exc_traceback);
        transfer.exc_type = NULL;
        transfer.exc_value = NULL;
        transfer.exc_traceback = NULL;
        goto done;
    }
    if (code != CURLE_OK) {
        mw_raise_transfer_error(code, error_buffer, &request, &transfer);
        goto done;
    }
    result = mw_response_new(easy, &transfer);
done:
    if (easy != NULL) {
        mw_client_release((PyObject *)self, easy, reusable);
    }
    mw_transfer_clear(&transfer);
    mw_request_clear(&request);
    return result;
}

static PyObject *
Client_request(ClientObject *self, PyObject *const *args, Py_ssize_t nargs,
               PyObject *kwnames)
{
    PyObject *values[REQUEST_PARAMETERS] = {
        NULL, NULL, Py_None, Py_None, Py_None, Py_True, Py_None, Py_True,
        Py_None, Py_None
    };
    int accept_encoding;

    if (parse_request_arguments(args, PyVectorcall_NARGS(nargs), kwnames,
                                values) < 0) {
        return NULL;
    }
    accept_encoding = PyObject_IsTrue(values[REQUEST_ACCEPT_ENCODING]);
    if (accept_encoding < 0) {
        return NULL;
    }
    return client_send(self, values, accept_encoding);
}

PyDoc_STRVAR(Client_requests_send_doc,
"requests_send(method, url, headers, body, timeout, verify, auth, cookie,\n"
"              cls, headers_type, /)\n"
"--\n"
"\n"
"Send a request given in the terms of requests.Session.request and\n"
"return (response, method, store), or None, having sent nothing, when\n"
"the input needs more than this method does.\n"
"\n"
"method is a str, sent in upper case; the returned method is that upper\n"
"case str.  url is a str, sent as it is.  headers is None or a dict of\n"
"str names and values; store is {name.lower(): (name, value)}, the\n"
"layout of requests' CaseInsensitiveDict, and its values are the header\n"
"pairs sent.  body is None, bytes or a str sent as UTF-8; a HEAD\n"
"request sends none.  cookie is None or the value of a Cookie header\n"
"sent after the others.  timeout, verify and auth are those of\n"
"request(); no proxy is used and the environment is not read.\n"
"response is Response.requests_response(cls, headers_type, None,\n"
"(method, url, pairs, body)), with pairs the header pairs sent.\n"
"\n"
"None is returned for: a method or url that is a str subclass, headers\n"
"that are not a dict or hold a name or value that is not an exact str,\n"
"a Content-Length, Transfer-Encoding or Cookie header, a body of\n"
"another type, and a str body that UTF-8 cannot encode (a lone\n"
"surrogate).  Errors are raised as request() raises them, and an\n"
"_mwcomms.Error of the transfer has the header pairs sent as its\n"
"sent_headers attribute.");

/* Return 1 when the lower-case header name key is one that the caller's
 * general path handles: Content-Length, Transfer-Encoding or Cookie. */
static int
is_general_header(PyObject *key)
{
    const char *text;
    Py_ssize_t length;

    if (!PyUnicode_IS_ASCII(key)) {
        return 0;
    }
    text = (const char *)PyUnicode_1BYTE_DATA(key);
    length = PyUnicode_GET_LENGTH(key);
    return (length == 14 && memcmp(text, "content-length", 14) == 0)
           || (length == 17 && memcmp(text, "transfer-encoding", 17) == 0)
           || (length == 6 && memcmp(text, "cookie", 6) == 0);
}

/* Return method in upper case as a new reference: method itself when it
 * is ASCII without a small letter, which is the usual case. */
static PyObject *
upper_method(PyObject *method)
{
    const Py_UCS1 *data;
    Py_ssize_t length = PyUnicode_GET_LENGTH(method);

    if (PyUnicode_IS_ASCII(method)) {
        data = PyUnicode_1BYTE_DATA(method);
        for (Py_ssize_t i = 0; i < length; i++) {
            if (data[i] >= 'a' && data[i] <= 'z') {
                return PyObject_CallMethod(method, "upper", NULL);
            }
        }
        return Py_NewRef(method);
    }
    return PyObject_CallMethod(method, "upper", NULL);
}

/* Fill *store with {name.lower(): (name, value)} for the dict headers.
 * Return 1, 0 when the headers need the general path, or -1 with an
 * exception set. */
static int
build_send_store(PyObject *headers, PyObject **store)
{
    Py_ssize_t position = 0;
    PyObject *name;
    PyObject *value;

    *store = PyDict_New();
    if (*store == NULL) {
        return -1;
    }
    if (headers == Py_None) {
        return 1;
    }
    /* The allocations below can start a garbage collection whose
     * finalizers change the dict and free its items, so each name and
     * value is held while it is used.  PyDict_Next stays safe when the
     * dict changes. */
    while (PyDict_Next(headers, &position, &name, &value)) {
        PyObject *key = NULL;
        PyObject *item = NULL;
        int result = 1;

        if (!PyUnicode_CheckExact(name) || !PyUnicode_CheckExact(value)) {
            return 0;
        }
        Py_INCREF(name);
        Py_INCREF(value);
        key = mw_lower_header_name(name);
        if (key == NULL) {
            result = -1;
        }
        else if (is_general_header(key)) {
            result = 0;
        }
        else {
            item = PyTuple_Pack(2, name, value);
            if (item == NULL || PyDict_SetItem(*store, key, item) < 0) {
                result = -1;
            }
        }
        Py_XDECREF(item);
        Py_XDECREF(key);
        Py_DECREF(value);
        Py_DECREF(name);
        if (result <= 0) {
            return result;
        }
    }
    return 1;
}

/* Return the header pairs to send: the values of store, then the Cookie
 * header when cookie is not None. */
static PyObject *
send_pairs(PyObject *store, PyObject *cookie)
{
    Py_ssize_t count = PyDict_GET_SIZE(store);
    Py_ssize_t position = 0;
    Py_ssize_t index = 0;
    PyObject *pairs;
    PyObject *value;

    pairs = PyList_New(count + (cookie != Py_None));
    if (pairs == NULL) {
        return NULL;
    }
    while (PyDict_Next(store, &position, NULL, &value)) {
        PyList_SET_ITEM(pairs, index++, Py_NewRef(value));
    }
    if (cookie != Py_None) {
        PyObject *item = Py_BuildValue("(sO)", "Cookie", cookie);

        if (item == NULL) {
            Py_DECREF(pairs);
            return NULL;
        }
        PyList_SET_ITEM(pairs, index, item);
    }
    return pairs;
}

/* Store pairs as the sent_headers attribute of the exception being
 * raised.  The caller then describes the failed request without reading
 * its headers dict again, which another thread may have changed during
 * the transfer. */
static void
attach_sent_headers(PyObject *pairs)
{
    PyObject *type;
    PyObject *value;
    PyObject *traceback;

    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    if (value != NULL
            && PyObject_SetAttrString(value, "sent_headers", pairs) < 0) {
        /* The caller then has no sent_headers, and the transfer error
         * stays the one raised. */
        PyErr_Clear();
    }
    if (value != NULL && traceback != NULL) {
        PyException_SetTraceback(value, traceback);
    }
    PyErr_Restore(type, value, traceback);
}

static PyObject *
Client_requests_send(ClientObject *self, PyObject *const *args,
                     Py_ssize_t nargs)
{
    static PyObject *no_proxy;
    PyObject *values[REQUEST_PARAMETERS] = {NULL};
    PyObject *method = NULL;
    PyObject *store = NULL;
    PyObject *pairs = NULL;
    PyObject *wire_body = NULL;
    PyObject *result = NULL;
    PyObject *sent = NULL;
    PyObject *response = NULL;
    PyObject *returned = NULL;
    PyObject *url;
    PyObject *headers;
    PyObject *body;
    PyObject *cookie;
    PyObject *build[4];
    int usual;

    if (nargs != 10) {
        PyErr_Format(PyExc_TypeError,
                     "requests_send() takes 10 arguments (%zd given)", nargs);
        return NULL;
    }
    url = args[1];
    headers = args[2];
    body = args[3];
    cookie = args[7];
    if (!PyUnicode_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError,
                        "requests_send(): method must be a str");
        return NULL;
    }
    if (cookie != Py_None && !PyUnicode_Check(cookie)) {
        PyErr_SetString(PyExc_TypeError,
                        "requests_send(): cookie must be None or a str");
        return NULL;
    }
    /* Checked before sending, so that a wrong call sends nothing. */
    if (!PyType_Check(args[8]) || !PyType_Check(args[9])) {
        PyErr_SetString(PyExc_TypeError,
                        "requests_send(): cls and headers_type must be "
                        "classes");
        return NULL;
    }
    /* A str subclass may override upper(), which the general path
     * calls. */
    if (!PyUnicode_CheckExact(args[0]) || !PyUnicode_CheckExact(url)
            || !(headers == Py_None || PyDict_CheckExact(headers))
            || !(body == Py_None || PyBytes_CheckExact(body)
                 || PyUnicode_CheckExact(body))) {
        Py_RETURN_NONE;
    }
    if (no_proxy == NULL) {
        no_proxy = PyUnicode_FromString("");
        if (no_proxy == NULL) {
            return NULL;
        }
    }
    method = upper_method(args[0]);
    if (method == NULL) {
        return NULL;
    }
    usual = build_send_store(headers, &store);
    if (usual <= 0) {
        goto done;
    }
    if (PyUnicode_CompareWithASCIIString(method, "HEAD") == 0) {
        wire_body = Py_NewRef(Py_None);
    }
    else if (PyUnicode_CheckExact(body)) {
        wire_body = PyUnicode_AsUTF8String(body);
        if (wire_body == NULL) {
            if (PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) {
                PyErr_Clear();
                usual = 0;
            }
            goto done;
        }
    }
    else {
        wire_body = Py_NewRef(body);
    }
    pairs = send_pairs(store, cookie);
    if (pairs == NULL) {
        goto done;
    }
    values[REQUEST_METHOD] = method;
    values[REQUEST_URL] = url;
    values[REQUEST_HEADERS] = pairs;
    values[REQUEST_BODY] = wire_body;
    values[REQUEST_TIMEOUT] = args[4];
    values[REQUEST_VERIFY] = args[5];
    values[REQUEST_AUTH] = args[6];
    values[REQUEST_ACCEPT_ENCODING] = Py_True;
    values[REQUEST_PROXY] = no_proxy;
    values[REQUEST_NOPROXY] = Py_None;
    result = client_send(self, values, 1);
    if (result == NULL) {
        if (PyErr_ExceptionMatches(mwcomms_Error)) {
            attach_sent_headers(pairs);
        }
        goto done;
    }
    sent = PyTuple_Pack(4, method, url, pairs, body);
    if (sent == NULL) {
        goto done;
    }
    build[0] = args[8];
    build[1] = args[9];
    build[2] = Py_None;
    build[3] = sent;
    response = mw_requests_response(result, build);
    if (response == NULL) {
        goto done;
    }
    returned = PyTuple_Pack(3, response, method, store);
done:
    Py_XDECREF(method);
    Py_XDECREF(store);
    Py_XDECREF(pairs);
    Py_XDECREF(wire_body);
    Py_XDECREF(result);
    Py_XDECREF(sent);
    Py_XDECREF(response);
    if (returned == NULL && usual == 0 && !PyErr_Occurred()) {
        Py_RETURN_NONE;
    }
    return returned;
}

PyDoc_STRVAR(Client_stream_doc,
"stream(method, url, headers=None, body=None, *, timeout=None,\n"
"       verify=True, auth=None, accept_encoding=True, proxy=None,\n"
"       noproxy=None, progress=None)\n"
"--\n"
"\n"
"Send one HTTP request and return a StreamResponse as soon as the\n"
"response headers arrive.  The body is read with read() or\n"
"iter_chunks(); libcurl pauses the transfer while 1 MiB is buffered\n"
"and unread, so memory stays bounded for any body size.  The arguments\n"
"are those of request().  progress, when given, is called as\n"
"progress(bytes_read, total) after each read that returns data, where\n"
"total is the Content-Length (of the encoded body) or None.  When\n"
"progress raises, that read raises its exception and returns no bytes:\n"
"they stay unread, so the next read returns them and calls progress\n"
"with the same bytes_read again.");

static PyObject *
Client_stream(ClientObject *self, PyObject *args, PyObject *kwargs)
{
    return mw_stream_open((PyObject *)self, args, kwargs);
}

PyDoc_STRVAR(Client_request_many_doc,
"request_many(requests, *, max_concurrency=8, timeout=None, verify=True,\n"
"             accept_encoding=True, proxy=None, noproxy=None)\n"
"--\n"
"\n"
"Send a batch of requests at once and return a list, in the order of\n"
"requests, whose items are a Response or the exception instance that\n"
"request() would have raised for that item.  Only a KeyboardInterrupt\n"
"(or another exception of a signal handler), a client closed before the\n"
"call or invalid batch arguments raise.  See close() for a client closed\n"
"during the batch.\n"
"\n"
"Each item is a dict with the keys method (default 'GET'), url,\n"
"headers, body and auth, or a tuple (method, url[, headers[, body[,\n"
"auth]]]).  body is str, bytes-like, a Multipart or None.  OAuth1\n"
"requests are signed, each with a fresh nonce, before the batch starts.\n"
"\n"
"The batch runs on a libcurl multi handle with the GIL released.  At\n"
"most max_concurrency transfers run at a time, and HTTP/2 servers get\n"
"them multiplexed over one connection.  The client keeps up to\n"
"max_concurrency idle connections of the multi handle for its next\n"
"batch.  While one thread runs a batch, a batch of another thread gets\n"
"a multi handle and connections of its own, closed when it ends.");

static PyObject *
Client_request_many(ClientObject *self, PyObject *args, PyObject *kwargs)
{
    return mw_request_many((PyObject *)self, args, kwargs);
}

static PyObject *
Client_close(ClientObject *self, PyObject *unused)
{
    close_client(self);
    Py_RETURN_NONE;
}

static PyObject *
Client_enter(ClientObject *self, PyObject *unused)
{
    return Py_NewRef(self);
}

static PyObject *
Client_exit(ClientObject *self, PyObject *args)
{
    close_client(self);
    Py_RETURN_FALSE;
}

static PyObject *
Client_get_stats(ClientObject *self, void *closure)
{
    Py_ssize_t handles;
    Py_ssize_t idle;

    if (reset_after_fork(self, 1) < 0) {
        return NULL;
    }
    pthread_mutex_lock(&self->pool_lock);
    handles = self->handle_count;
    idle = self->idle_count;
    pthread_mutex_unlock(&self->pool_lock);
    return Py_BuildValue("{sKsKsnsn}", "requests", self->requests,
                         "connects", self->connects, "handles", handles,
                         "idle", idle);
}

static PyObject *
Client_get_closed(ClientObject *self, void *closure)
{
    return PyBool_FromLong(self->closed);
}

static PyMethodDef Client_methods[] = {
    {"request", (PyCFunction)(void (*)(void))Client_request,
     METH_FASTCALL | METH_KEYWORDS, Client_request_doc},
    {"requests_send", (PyCFunction)(void (*)(void))Client_requests_send,
     METH_FASTCALL, Client_requests_send_doc},
    {"stream", (PyCFunction)(void (*)(void))Client_stream,
     METH_VARARGS | METH_KEYWORDS, Client_stream_doc},
    {"request_many", (PyCFunction)(void (*)(void))Client_request_many,
     METH_VARARGS | METH_KEYWORDS, Client_request_many_doc},
    {"close", (PyCFunction)Client_close, METH_NOARGS,
     PyDoc_STR("close()\n--\n\n"
               "Close the idle connections and free the handles.  It does\n"
               "not wait: requests still running finish, and new ones raise\n"
               "ValueError.  In a running request_many() batch, the items\n"
               "already started finish and every other item gets\n"
               "ValueError('Client is closed') as its result.  Calling\n"
               "close() again does nothing.")},
    {"__enter__", (PyCFunction)Client_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)Client_exit, METH_VARARGS, NULL},
    {NULL}
};

static PyGetSetDef Client_getset[] = {
    {"stats", (getter)Client_get_stats, NULL,
     PyDoc_STR("Dict of counters: requests (transfers run), connects (new\n"
               "connections made), handles (easy handles alive) and idle\n"
               "(handles in the pool)."), NULL},
    {"closed", (getter)Client_get_closed, NULL,
     PyDoc_STR("True after close()."), NULL},
    {NULL}
};

PyDoc_STRVAR(Client_doc,
"Client(*, cookies=True, max_idle_handles=16, max_response_size=None)\n"
"--\n"
"\n"
"HTTP client over libcurl that keeps connections alive; threads may\n"
"share one.  cookies=True keeps the cookies that servers set in memory\n"
"and sends them back.  max_idle_handles caps the pooled easy handles\n"
"(each keeps its own connections).  max_response_size caps the body in\n"
"bytes; a larger one raises TransferError.");

static PyTypeObject ClientType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "_mwcomms.Client",
    .tp_basicsize = sizeof(ClientObject),
    .tp_dealloc = (destructor)Client_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = Client_doc,
    .tp_methods = Client_methods,
    .tp_getset = Client_getset,
    .tp_new = Client_new,
};

/* ---- Module functions ------------------------------------------------ */

static PyObject *
module_curl_version(PyObject *module, PyObject *unused)
{
    return PyUnicode_FromString(curl_version());
}

static PyObject *
module_curl_features(PyObject *module, PyObject *unused)
{
    static const struct {
        int bit;
        const char *name;
    } features[] = {
        {CURL_VERSION_IPV6, "ipv6"},
        {CURL_VERSION_SSL, "ssl"},
        {CURL_VERSION_LIBZ, "libz"},
        {CURL_VERSION_ASYNCHDNS, "asynchdns"},
        {CURL_VERSION_LARGEFILE, "largefile"},
        {CURL_VERSION_IDN, "idn"},
        {CURL_VERSION_HTTP2, "http2"},
        {CURL_VERSION_UNIX_SOCKETS, "unixsockets"},
        {CURL_VERSION_HTTPS_PROXY, "https-proxy"},
        {CURL_VERSION_BROTLI, "brotli"},
        {CURL_VERSION_ALTSVC, "alt-svc"},
        {CURL_VERSION_HTTP3, "http3"},
        {CURL_VERSION_ZSTD, "zstd"},
        {CURL_VERSION_PSL, "psl"},
#ifdef CURL_VERSION_HSTS
        {CURL_VERSION_HSTS, "hsts"},
#endif
#ifdef CURL_VERSION_THREADSAFE
        {CURL_VERSION_THREADSAFE, "threadsafe"},
#endif
    };
    curl_version_info_data *info = curl_version_info(CURLVERSION_NOW);
    PyObject *result = PySet_New(NULL);

    if (result == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < sizeof(features) / sizeof(features[0]); i++) {
        if ((info->features & features[i].bit) != 0) {
            PyObject *name = PyUnicode_FromString(features[i].name);
            if (name == NULL || PySet_Add(result, name) < 0) {
                Py_XDECREF(name);
                Py_DECREF(result);
                return NULL;
            }
            Py_DECREF(name);
        }
    }
    return result;
}

static PyMethodDef module_functions[] = {
    {"curl_version", module_curl_version, METH_NOARGS,
     PyDoc_STR("curl_version()\n--\n\n"
               "Return libcurl's version string, with its libraries.")},
    {"curl_features", module_curl_features, METH_NOARGS,
     PyDoc_STR("curl_features()\n--\n\n"
               "Return the set of libcurl features, such as 'http2',\n"
               "'asynchdns', 'brotli', 'zstd', 'libz' and 'ssl'.")},
    {NULL}
};

static int
read_main_thread_ident(void)
{
    PyObject *threading = NULL;
    PyObject *thread = NULL;
    PyObject *ident = NULL;
    int result = -1;

    threading = PyImport_ImportModule("threading");
    if (threading == NULL) {
        return -1;
    }
    thread = PyObject_CallMethod(threading, "main_thread", NULL);
    if (thread == NULL) {
        goto done;
    }
    ident = PyObject_GetAttrString(thread, "ident");
    if (ident == NULL) {
        goto done;
    }
    main_thread_ident = PyLong_AsUnsignedLong(ident);
    if (main_thread_ident == (unsigned long)-1 && PyErr_Occurred()) {
        goto done;
    }
    result = 0;
done:
    Py_XDECREF(ident);
    Py_XDECREF(thread);
    Py_DECREF(threading);
    return result;
}

int
mwcomms_client_init(PyObject *module)
{
    if (read_main_thread_ident() < 0) {
        return -1;
    }
    process_id = getpid();
    fork_handler_missing = pthread_atfork(NULL, NULL, note_fork_in_child)
                           != 0;
    if (PyType_Ready(&ClientType) < 0 || PyType_Ready(&mw_ResponseType) < 0
            || PyType_Ready(&mw_StreamResponseType) < 0
            || PyType_Ready(&mw_ChunkIteratorType) < 0
            || PyType_Ready(&mw_MultipartType) < 0) {
        return -1;
    }
    if (PyModule_AddObjectRef(module, "Client", (PyObject *)&ClientType) < 0
            || PyModule_AddObjectRef(module, "Response",
                                     (PyObject *)&mw_ResponseType) < 0
            || PyModule_AddObjectRef(module, "StreamResponse",
                                     (PyObject *)&mw_StreamResponseType) < 0
            || PyModule_AddObjectRef(module, "Multipart",
                                     (PyObject *)&mw_MultipartType) < 0) {
        return -1;
    }
    return PyModule_AddFunctions(module, module_functions);
}
