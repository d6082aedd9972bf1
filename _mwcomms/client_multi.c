/*
 * Client.request_many(): a batch of requests on the client's libcurl
 * multi handle, whose connections are kept for the next batch.  The
 * batch runs in rounds.  With the GIL held, a round builds the results
 * of the finished items, returning their easy handles to the pool, and
 * checks, signs and sets up the next max_concurrency items.  Then the
 * transfers run with the GIL released until every item set up has been
 * started.  So at most twice max_concurrency easy handles are in use,
 * and each finished body is handed to its Response (or freed) within a
 * round.
 *
 * Client.close() during a batch lets the items already started finish
 * with their own results.  No further item starts: each gets a
 * ValueError("Client is closed") as its result.
 *
 * An easy handle whose item completed stays with the batch for a later
 * item, with the batch's options still set, instead of going back to
 * the client's pool.  Its body buffer stays too.  Both go back when the
 * batch ends.  The batch remembers the options that it set on a kept
 * handle (see mw_kept_options), so that the next item sets only those
 * that differ.
 */
#include "client.h"

#include <string.h>
#include <strings.h>
#include <time.h>

/* Maximum wait in curl_multi_poll (milliseconds), and so the interval
 * of the signal checks on the main thread. */
#define POLL_INTERVAL_MS 100

/* Largest body or header buffer that the batch keeps for a later item.
 * Bodies with a Content-Length of 64 KiB or more are written into their
 * bytes object instead (see write_to_bytes in client_request.c), so
 * larger buffers are rare. */
#define SPARE_BUFFER_MAX_BYTES (64 * 1024)

typedef struct {
    mw_request request;
    mw_transfer transfer;
    char error_buffer[CURL_ERROR_SIZE];
    CURL *easy;
    mw_kept_options kept;        /* options set on easy */
    int no_progress;             /* CURLOPT_NOPROGRESS set on easy */
    int pipewait;                /* CURLOPT_PIPEWAIT set on easy */
    int ready;                   /* set up, waiting to be added */
    int done;
    CURLcode code;
    PyObject *result;            /* Response or exception instance */
} batch_item;

/* An easy handle kept between two items of a batch, set up for a plain
 * request (kept.tag is not NULL).  Its CURLOPT_PRIVATE still points to
 * the last item, and release_to_pool sets it to kept.tag.
 * CURLOPT_HTTPHEADER and CURLOPT_POSTFIELDS still point into the freed
 * request of the last item.  libcurl reads them only during a transfer.
 * Before that, mw_transfer_setup_kept sets CURLOPT_HTTPHEADER unless
 * both lists are empty (NULL), and CURLOPT_POSTFIELDS for every POST.
 * A GET does not read CURLOPT_POSTFIELDS, and any other request resets
 * the handle. */
typedef struct {
    CURL *easy;
    mw_kept_options kept;
    int no_progress;
    int pipewait;
} spare_handle;

/* Progress of a batch through its items, in request order.  Items before
 * next_add were started (or failed before); items from next_add to
 * next_setup are set up and wait to start. */
typedef struct {
    PyObject *client;
    batch_item *items;
    Py_ssize_t count;
    Py_ssize_t max_concurrency;
    Py_ssize_t next_collect;     /* first item whose easy handle may be out */
    Py_ssize_t next_add;
    Py_ssize_t next_setup;
    Py_ssize_t active;           /* items on the multi handle */
    int check_signals;
    int64_t last_check_ms;
    /* Easy handles, body buffers and header buffers of collected items,
     * for the next ones.  Each array has spare_capacity entries. */
    spare_handle *spare_handles;
    Py_ssize_t spare_handle_count;
    mw_buffer *spare_bodies;
    Py_ssize_t spare_body_count;
    mw_buffer *spare_headers;
    Py_ssize_t spare_header_count;
    Py_ssize_t spare_capacity;
} batch_state;

typedef struct {
    PyObject *timeout;
    PyObject *verify;
    int accept_encoding;
    PyObject *proxy;
    PyObject *noproxy;
} batch_options;

/* Turn the current exception into the item's result. */
static void
store_exception(batch_item *item)
{
    PyObject *type = NULL;
    PyObject *value = NULL;
    PyObject *traceback = NULL;

    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    if (value != NULL && traceback != NULL) {
        PyException_SetTraceback(value, traceback);
    }
    item->result = value;
    Py_XDECREF(type);
    Py_XDECREF(traceback);
}

/* Read method, url, headers, body and auth from a dict or a tuple. */
static int
unpack_item(PyObject *entry, PyObject **fields)
{
    static const char *const names[] = {
        "method", "url", "headers", "body", "auth", NULL
    };

    fields[0] = NULL;
    for (int i = 1; i < 5; i++) {
        fields[i] = Py_None;
    }
    if (PyDict_Check(entry)) {
        PyObject *key;
        PyObject *value;
        Py_ssize_t position = 0;

        while (PyDict_Next(entry, &position, &key, &value)) {
            int known = 0;

            for (int i = 0; names[i] != NULL; i++) {
                if (PyUnicode_Check(key)
                        && PyUnicode_CompareWithASCIIString(key, names[i])
                           == 0) {
                    fields[i] = value;
                    known = 1;
                }
            }
            if (!known) {
                PyErr_Format(PyExc_TypeError,
                             "unknown request key %R: expected method, url, "
                             "headers, body or auth", key);
                return -1;
            }
        }
        if (fields[1] == Py_None) {
            PyErr_SetString(PyExc_TypeError, "the request has no url");
            return -1;
        }
        return 0;
    }
    if (PyTuple_Check(entry)) {
        Py_ssize_t size = PyTuple_GET_SIZE(entry);

        if (size < 2 || size > 5) {
            PyErr_Format(PyExc_TypeError,
                         "a request tuple must be (method, url[, headers[, "
                         "body[, auth]]]), got %zd items", size);
            return -1;
        }
        for (Py_ssize_t i = 0; i < size; i++) {
            fields[i] = PyTuple_GET_ITEM(entry, i);
        }
        return 0;
    }
    PyErr_Format(PyExc_TypeError,
                 "each request must be a dict or a tuple, not %.100s",
                 Py_TYPE(entry)->tp_name);
    return -1;
}

/* Give the item an easy handle that an earlier item of the batch left,
 * or else one from the client's pool.  Set *spare to the kept handle's
 * entry, or clear spare->easy for a handle from the pool.  The item
 * takes the reference to spare->kept.url. */
static int
take_handle(PyObject *client, batch_state *state, batch_item *item,
            spare_handle *spare)
{
    if (state->spare_handle_count > 0) {
        *spare = state->spare_handles[--state->spare_handle_count];
        item->easy = spare->easy;
        item->kept = spare->kept;
        spare->kept.url = NULL;
        return 0;
    }
    spare->easy = NULL;
    item->easy = mw_client_acquire(client);
    return item->easy != NULL ? 0 : -1;
}

/* Return 1 when url uses TLS.  parse_url accepted only the schemes http
 * and https, in any case. */
static int
is_https(const char *url)
{
    return strncasecmp(url, "https:", 6) == 0;
}

/* Set the options that only batches set.  After mw_transfer_setup_kept,
 * a handle from the pool has CURLOPT_PIPEWAIT 0, CURLOPT_NOPROGRESS 0
 * and the receive buffer size of single transfers.  A kept handle that
 * got its earlier tag back still has the values of its last item.  One
 * whose tag changed may have been reset, so all three are set again. */
static int
set_batch_options(batch_item *item, const spare_handle *spare)
{
    int from_pool = spare->easy == NULL;
    int tag_changed = !from_pool && spare->kept.tag != item->kept.tag;
    int set_pipewait;
    int set_no_progress;

    /* Over TLS, wait for a connection that may multiplex (HTTP/2)
     * instead of opening one per transfer before the server's HTTP/2
     * support is known.  Plain http stays on HTTP/1.1 (the client asks
     * for HTTP/2 over TLS only), where waiting would only hold transfers
     * back until a connection is free. */
    item->pipewait = is_https(item->request.url_utf8);
    if (from_pool) {
        set_pipewait = item->pipewait;
    }
    else {
        set_pipewait = tag_changed || item->pipewait != spare->pipewait;
    }
    if (set_pipewait
            && curl_easy_setopt(item->easy, CURLOPT_PIPEWAIT,
                                (long)item->pipewait) != CURLE_OK) {
        PyErr_SetString(mwcomms_Error,
                        "curl_easy_setopt(CURLOPT_PIPEWAIT) failed");
        return -1;
    }
    /* libcurl 7.88 allocates the receive buffer of each batch transfer
     * anew.  With 8 transfers of 128 KiB buffers in flight, glibc gave
     * the top of the heap back to the kernel and faulted it in again.
     * In some runs that was 0.3 brk calls and 0.8 page faults per small
     * GET (perf stat), and the benchmark's request_many used 24.5 us of
     * CPU per GET instead of 22.4.  Batch items use libcurl's default
     * size instead; release_to_pool restores the other. */
    if ((from_pool || tag_changed)
            && curl_easy_setopt(item->easy, CURLOPT_BUFFERSIZE,
                                MW_BATCH_RECEIVE_BUFFER_BYTES) != CURLE_OK) {
        PyErr_SetString(mwcomms_Error,
                        "curl_easy_setopt(CURLOPT_BUFFERSIZE) failed");
        return -1;
    }
    /* Without a read timeout, xferinfo_callback has nothing to do for a
     * batch item (run_batch checks the signals), so libcurl need not
     * call it several times per transfer. */
    item->no_progress = item->request.read_timeout_ms == 0;
    if (from_pool) {
        set_no_progress = item->no_progress;
    }
    else {
        set_no_progress = tag_changed
                          || item->no_progress != spare->no_progress;
    }
    if (set_no_progress
            && curl_easy_setopt(item->easy, CURLOPT_NOPROGRESS,
                                (long)item->no_progress) != CURLE_OK) {
        PyErr_SetString(mwcomms_Error,
                        "curl_easy_setopt(CURLOPT_NOPROGRESS) failed");
        return -1;
    }
    return 0;
}

/* Check, set up and sign one item.  Return 0, or -1 with an exception
 * set that becomes the item's result. */
static int
prepare_item(PyObject *client, batch_state *state, batch_item *item,
             PyObject *entry, batch_options *options)
{
    PyObject *fields[5];
    PyObject *method = NULL;
    spare_handle spare;
    struct curl_slist *unsigned_headers;
    int result = -1;

    if (unpack_item(entry, fields) < 0) {
        return -1;
    }
    /* The fields of a dict are borrowed, and parsing can run Python code
     * (the items() of a headers object) that changes the dict. */
    for (int i = 1; i < 5; i++) {
        Py_INCREF(fields[i]);
    }
    method = fields[0] != NULL ? Py_NewRef(fields[0])
                               : PyUnicode_FromString("GET");
    if (method == NULL) {
        goto done;
    }
    if (mw_request_parse(&item->request, method, fields[1], fields[2],
                         fields[3], options->timeout, options->verify,
                         fields[4], options->accept_encoding) < 0
            || mw_request_parse_proxy(&item->request, options->proxy,
                                      options->noproxy) < 0) {
        goto done;
    }
    if (item->request.body_kind == MW_BODY_STREAM) {
        PyErr_SetString(PyExc_TypeError,
                        "request_many bodies must be str, bytes-like, a "
                        "Multipart or None: file-like and iterator bodies "
                        "need request() or stream()");
        goto done;
    }
    if (take_handle(client, state, item, &spare) < 0) {
        goto done;
    }
    if (mw_transfer_setup_kept(item->easy, &item->request, &item->transfer,
                               item->error_buffer,
                               mw_client_max_response_size(client),
                               &item->kept) < 0) {
        goto done;
    }
    /* run_batch finds the item through CURLOPT_PRIVATE.  With the item
     * there, the handle is reset when it goes back to the pool (see
     * mw_transfer_detach), unless release_to_pool puts the tag back
     * after a complete transfer. */
    if (curl_easy_setopt(item->easy, CURLOPT_PRIVATE, (char *)item)
            != CURLE_OK) {
        PyErr_SetString(mwcomms_Error,
                        "curl_easy_setopt(CURLOPT_PRIVATE) failed");
        goto done;
    }
    /* One thread checks signals for the whole batch. */
    item->transfer.check_signals = 0;
    if (set_batch_options(item, &spare) < 0) {
        goto done;
    }
    unsigned_headers = item->request.headers;
    if (mw_request_authorize(&item->request) < 0) {
        goto done;
    }
    /* Signing appends its header to a list that libcurl already has,
     * unless the list was empty. */
    if (item->request.headers != unsigned_headers) {
        if (curl_easy_setopt(item->easy, CURLOPT_HTTPHEADER,
                             item->request.headers) != CURLE_OK) {
            PyErr_SetString(mwcomms_Error,
                            "curl_easy_setopt(CURLOPT_HTTPHEADER) failed");
            goto done;
        }
        item->kept.has_headers = 1;
    }
    if (state->spare_body_count > 0) {
        item->transfer.body = state->spare_bodies[--state->spare_body_count];
    }
    /* The Response gets a copy of the header lines, and the buffer goes
     * to the next item. */
    item->transfer.copy_headers = 1;
    if (state->spare_header_count > 0) {
        item->transfer.headers =
            state->spare_headers[--state->spare_header_count];
    }
    item->ready = 1;
    result = 0;
done:
    Py_XDECREF(method);
    for (int i = 1; i < 5; i++) {
        Py_DECREF(fields[i]);
    }
    return result;
}

static int64_t
monotonic_ms(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* Run a signal check with the GIL taken for it.  Return 1 when a signal
 * handler raised; its exception stays set in this thread's state. */
static int
signal_raised(void)
{
    PyGILState_STATE state = PyGILState_Ensure();
    int raised = PyErr_CheckSignals() < 0;

    PyGILState_Release(state);
    return raised;
}

/*
 * Drive the batch without the GIL until every item set up so far has
 * been started and more items wait to be set up, or until every item
 * has finished.  Return CURLM_OK, a CURLMcode error, or -1 when a signal
 * handler raised (its exception is set).
 */
static int
run_batch(CURLM *multi, batch_state *state)
{
    batch_item *items = state->items;
    CURLMcode code = CURLM_OK;

    while (1) {
        CURLMsg *message;
        int running = 0;
        int left = 0;
        int closed = -1;         /* not checked yet in this pass */

        while (state->active < state->max_concurrency
               && state->next_add < state->next_setup) {
            batch_item *item = &items[state->next_add];

            if (item->ready && closed < 0) {
                closed = mw_client_is_closed(state->client);
            }
            if (item->ready && closed) {
                /* close() ran: mw_request_many fails this item and the
                 * rest once the items on the multi handle finish. */
                break;
            }
            state->next_add++;
            if (!item->ready) {
                continue;
            }
            code = curl_multi_add_handle(multi, item->easy);
            if (code != CURLM_OK) {
                return code;
            }
            item->ready = 0;
            state->active++;
        }
        if (state->active == 0) {
            return CURLM_OK;
        }
        code = curl_multi_perform(multi, &running);
        if (code != CURLM_OK) {
            return code;
        }
        while ((message = curl_multi_info_read(multi, &left)) != NULL) {
            batch_item *item = NULL;

            if (message->msg != CURLMSG_DONE) {
                continue;
            }
            curl_easy_getinfo(message->easy_handle, CURLINFO_PRIVATE,
                              (char **)&item);
            item->done = 1;
            item->code = message->data.result;
            curl_multi_remove_handle(multi, item->easy);
            state->active--;
        }
        if (state->next_add == state->next_setup
                && state->next_setup < state->count) {
            /* The requests just added were sent by curl_multi_perform;
             * set up the next items while their responses arrive. */
            return CURLM_OK;
        }
        if (state->active > 0) {
            code = curl_multi_poll(multi, NULL, 0, POLL_INTERVAL_MS, NULL);
            if (code != CURLM_OK) {
                return code;
            }
        }
        if (state->check_signals) {
            int64_t now = monotonic_ms();

            if (now - state->last_check_ms >= POLL_INTERVAL_MS) {
                state->last_check_ms = now;
                if (signal_raised()) {
                    return -1;
                }
            }
        }
    }
}

static int
parse_options(PyObject *args, PyObject *kwargs, PyObject **requests,
              Py_ssize_t *max_concurrency, batch_options *options)
{
    static char *keywords[] = {"requests", "max_concurrency", "timeout",
                               "verify", "accept_encoding", "proxy",
                               "noproxy", NULL};

    *max_concurrency = 8;
    options->timeout = Py_None;
    options->verify = Py_True;
    options->accept_encoding = 1;
    options->proxy = Py_None;
    options->noproxy = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|$nOOpOO:request_many",
                                     keywords, requests, max_concurrency,
                                     &options->timeout, &options->verify,
                                     &options->accept_encoding,
                                     &options->proxy, &options->noproxy)) {
        return -1;
    }
    if (*max_concurrency < 1) {
        PyErr_Format(PyExc_ValueError,
                     "max_concurrency must be 1 or more, not %zd",
                     *max_concurrency);
        return -1;
    }
    return 0;
}

/* Set the connection limits of this batch on the multi handle, which
 * keeps its connections between batches.  CURLMOPT_MAXCONNECTS keeps up
 * to max_concurrency idle connections: libcurl 7.88's default of four
 * per easy handle added would close most of them as the last transfers
 * of a batch finish. */
static int
configure_multi(CURLM *multi, Py_ssize_t max_concurrency)
{
    long limit = max_concurrency > 10000 ? 10000L : (long)max_concurrency;

    if (curl_multi_setopt(multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX)
                != CURLM_OK
            || curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, limit)
               != CURLM_OK
            || curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, limit)
               != CURLM_OK
            || curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, limit)
               != CURLM_OK) {
        PyErr_SetString(mwcomms_Error, "curl_multi_setopt failed");
        return -1;
    }
    return 0;
}

/* Set CURLOPT_PIPEWAIT and CURLOPT_NOPROGRESS back to 0, the values of
 * a pooled handle, and give the handle back to the pool with its plain
 * setup tag, or NULL, in CURLOPT_PRIVATE.  A handle whose options could
 * not be set back loses its tag, so that the pool resets it.  Clear
 * kept. */
static void
release_to_pool(PyObject *client, CURL *easy, mw_kept_options *kept)
{
    if (curl_easy_setopt(easy, CURLOPT_PIPEWAIT, 0L) != CURLE_OK
            || curl_easy_setopt(easy, CURLOPT_NOPROGRESS, 0L) != CURLE_OK
            || curl_easy_setopt(easy, CURLOPT_BUFFERSIZE,
                                MW_RECEIVE_BUFFER_BYTES) != CURLE_OK
            || curl_easy_setopt(easy, CURLOPT_PRIVATE, kept->tag)
               != CURLE_OK) {
        curl_easy_setopt(easy, CURLOPT_PRIVATE, (char *)NULL);
    }
    mw_kept_options_clear(kept);
    mw_client_release(client, easy, 1);
}

/* Keep a collected item's easy handle for the next item of the batch,
 * or give it back to the pool.  Only a handle set up for a plain request
 * (see plain_setup_tags in client_request.c) is kept, because any other
 * needs the reset that the pool gives it. */
static void
keep_handle(PyObject *client, batch_state *state, batch_item *item)
{
    if (item->kept.tag != NULL
            && state->spare_handle_count < state->spare_capacity) {
        spare_handle *spare =
            &state->spare_handles[state->spare_handle_count++];

        spare->easy = item->easy;
        spare->kept = item->kept;
        spare->no_progress = item->no_progress;
        spare->pipewait = item->pipewait;
        item->kept.url = NULL;
        item->kept.tag = NULL;
        return;
    }
    /* With its tag NULL, the pool resets the handle. */
    release_to_pool(client, item->easy, &item->kept);
}

/* Keep a collected item's body or header buffer in spares, a list of
 * state->spare_capacity entries, for the next item.  A buffer that is
 * too large, or finds the list full, stays for mw_transfer_clear to
 * free. */
static void
keep_buffer(const batch_state *state, mw_buffer *spares, Py_ssize_t *count,
            mw_buffer *buffer)
{
    if (buffer->data != NULL && buffer->cap <= SPARE_BUFFER_MAX_BYTES
            && *count < state->spare_capacity) {
        mw_buffer *spare = &spares[(*count)++];

        spare->data = buffer->data;
        spare->len = 0;
        spare->cap = buffer->cap;
        buffer->data = NULL;
        buffer->len = 0;
        buffer->cap = 0;
    }
}

/* Build a finished item's Response or exception, keep its easy handle
 * and body buffer for the next items, and free its other buffers. */
static void
collect_item(PyObject *client, batch_state *state, batch_item *item)
{
    long connects = 0;

    curl_easy_getinfo(item->easy, CURLINFO_NUM_CONNECTS, &connects);
    mw_client_count(client, connects);
    if (item->result == NULL) {
        if (item->code == CURLE_OK) {
            item->result = mw_response_new(item->easy, &item->transfer);
        }
        else {
            mw_raise_transfer_error(item->code, item->error_buffer,
                                    &item->request, &item->transfer);
        }
        if (item->result == NULL) {
            store_exception(item);
        }
    }
    keep_handle(client, state, item);
    item->easy = NULL;
    keep_buffer(state, state->spare_bodies, &state->spare_body_count,
                &item->transfer.body);
    keep_buffer(state, state->spare_headers, &state->spare_header_count,
                &item->transfer.headers);
    mw_transfer_clear(&item->transfer);
    mw_request_clear(&item->request);
}

/* Collect every finished item that was started. */
static void
collect_finished(PyObject *client, batch_state *state)
{
    int settled = 1;

    for (Py_ssize_t i = state->next_collect; i < state->next_add; i++) {
        batch_item *item = &state->items[i];

        if (item->easy != NULL && item->done) {
            collect_item(client, state, item);
        }
        if (item->easy != NULL) {
            settled = 0;
        }
        else if (settled) {
            state->next_collect = i + 1;
        }
    }
}

/* Take an item out of the batch: its handle goes back to the pool
 * without its connection, and its request and transfer are freed. */
static void
drop_item(PyObject *client, batch_item *item)
{
    item->ready = 0;
    if (item->easy != NULL) {
        mw_client_release(client, item->easy, 0);
        item->easy = NULL;
    }
    mw_kept_options_clear(&item->kept);
    mw_transfer_clear(&item->transfer);
    mw_request_clear(&item->request);
}

/* Set "Client is closed" as the result of an item that was not started,
 * and give back its easy handle if it has one. */
static void
fail_closed_item(PyObject *client, batch_item *item)
{
    PyErr_SetString(PyExc_ValueError, "Client is closed");
    store_exception(item);
    drop_item(client, item);
}

/* After close(): fail every item that has not started.  Items on the
 * multi handle go on until they finish. */
static void
fail_unstarted_items(PyObject *client, batch_state *state)
{
    for (Py_ssize_t i = state->next_add; i < state->count; i++) {
        if (i >= state->next_setup) {
            memset(&state->items[i], 0, sizeof(batch_item));
        }
        else if (state->items[i].result != NULL) {
            continue;  /* its setup failed, so it keeps its own error */
        }
        fail_closed_item(client, &state->items[i]);
    }
    state->next_add = state->count;
    state->next_setup = state->count;
}

/* Check, sign and set up the next items, up to max_concurrency of them
 * waiting to start.  An item's own error becomes its result.  An error
 * that is not an Exception, such as a KeyboardInterrupt or SystemExit
 * raised by the items() of a headers object, ends the whole batch, so
 * return -1 with it set. */
static int
set_up_items(PyObject *client, batch_state *state, PyObject *sequence,
             batch_options *options)
{
    while (state->next_setup < state->count
           && state->next_setup - state->next_add < state->max_concurrency) {
        batch_item *item = &state->items[state->next_setup];
        PyObject *type = NULL;
        PyObject *value = NULL;
        PyObject *traceback = NULL;
        int fatal;

        memset(item, 0, sizeof(*item));
        state->next_setup++;
        if (prepare_item(client, state, item,
                         PySequence_Fast_GET_ITEM(sequence,
                                                  state->next_setup - 1),
                         options) == 0) {
            continue;
        }
        fatal = !PyErr_ExceptionMatches(PyExc_Exception);
        if (fatal) {
            PyErr_Fetch(&type, &value, &traceback);
        }
        else {
            store_exception(item);
        }
        drop_item(client, item);
        if (fatal) {
            PyErr_Restore(type, value, traceback);
            return -1;
        }
    }
    return 0;
}

PyObject *
mw_request_many(PyObject *client, PyObject *args, PyObject *kwargs)
{
    PyObject *requests = NULL;
    PyObject *sequence = NULL;
    batch_options options;
    batch_state state;
    batch_item *items = NULL;
    Py_ssize_t count = 0;
    CURLM *multi = NULL;
    int multi_kept = 0;
    PyObject *result = NULL;
    int ran = CURLM_OK;

    memset(&state, 0, sizeof(state));
    if (parse_options(args, kwargs, &requests, &state.max_concurrency,
                      &options) < 0) {
        return NULL;
    }
    if (mw_client_is_closed(client)) {
        PyErr_SetString(PyExc_ValueError, "Client is closed");
        return NULL;
    }
    /* Copy a list, because parsing an item can run Python code (the
     * items() of a headers object) that changes the caller's list, and
     * the batch reads its first count items by index. */
    if (PyList_Check(requests)) {
        sequence = PyList_AsTuple(requests);
    }
    else {
        sequence = PySequence_Fast(requests,
                                   "requests must be an iterable of "
                                   "requests");
    }
    if (sequence == NULL) {
        return NULL;
    }
    count = PySequence_Fast_GET_SIZE(sequence);
    /* Each item is zeroed when it is set up (see set_up_items), and only
     * items before state.next_setup are read: zeroing the whole array at
     * once costs more and touches memory long before it is used. */
    if ((size_t)count > PY_SSIZE_T_MAX / sizeof(*items)) {
        PyErr_NoMemory();
        goto done;
    }
    items = PyMem_Malloc((count > 0 ? (size_t)count : 1) * sizeof(*items));
    if (items == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    /* At most twice max_concurrency handles are in use at a time (see
     * the top of this file), so the arrays do not fill up.  If they
     * did, keep_handle would give the handle back to the pool, and the
     * body buffer would be freed. */
    state.spare_capacity = state.max_concurrency <= count / 2
                           ? 2 * state.max_concurrency : count;
    state.spare_handles = PyMem_Malloc(
        (state.spare_capacity > 0 ? (size_t)state.spare_capacity : 1)
        * sizeof(*state.spare_handles));
    state.spare_bodies = PyMem_Malloc(
        (state.spare_capacity > 0 ? (size_t)state.spare_capacity : 1)
        * sizeof(*state.spare_bodies));
    state.spare_headers = PyMem_Malloc(
        (state.spare_capacity > 0 ? (size_t)state.spare_capacity : 1)
        * sizeof(*state.spare_headers));
    if (state.spare_handles == NULL || state.spare_bodies == NULL
            || state.spare_headers == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    state.client = client;
    state.items = items;
    state.count = count;
    state.check_signals = mw_on_main_thread();
    state.last_check_ms = monotonic_ms();
    multi = mw_client_acquire_multi(client, &multi_kept);
    if (multi == NULL || configure_multi(multi, state.max_concurrency) < 0) {
        goto done;
    }

    while (1) {
        collect_finished(client, &state);
        if (mw_client_is_closed(client)) {
            fail_unstarted_items(client, &state);
        }
        if (state.next_add == count && state.active == 0) {
            break;
        }
        if (set_up_items(client, &state, sequence, &options) < 0) {
            goto done;
        }
        Py_BEGIN_ALLOW_THREADS
        ran = run_batch(multi, &state);
        Py_END_ALLOW_THREADS
        if (ran == -1) {
            goto done;  /* the exception of a signal handler is set */
        }
        if (ran != CURLM_OK) {
            PyErr_Format(mwcomms_Error, "libcurl multi interface failed: %s",
                         curl_multi_strerror((CURLMcode)ran));
            goto done;
        }
    }
    result = PyList_New(count);
    if (result == NULL) {
        goto done;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *value = items[i].result != NULL ? items[i].result : Py_None;

        PyList_SET_ITEM(result, i, Py_NewRef(value));
    }
done:
    if (items != NULL) {
        PyObject *type;
        PyObject *value;
        PyObject *traceback;

        /* Keep the pending exception while releasing handles. */
        PyErr_Fetch(&type, &value, &traceback);
        if (multi != NULL) {
            Py_BEGIN_ALLOW_THREADS
            for (Py_ssize_t i = 0; i < state.next_setup; i++) {
                if (items[i].easy != NULL && !items[i].done) {
                    curl_multi_remove_handle(multi, items[i].easy);
                }
            }
            Py_END_ALLOW_THREADS
        }
        /* Only the items that still have a handle have buffers left,
         * because collect_item and drop_item free them. */
        for (Py_ssize_t i = 0; i < state.next_setup; i++) {
            if (items[i].easy != NULL) {
                /* CURLOPT_PRIVATE is the item, so the pool resets a
                 * complete handle, and an incomplete one is closed. */
                mw_client_release(client, items[i].easy, items[i].done);
                mw_transfer_clear(&items[i].transfer);
                mw_request_clear(&items[i].request);
            }
            mw_kept_options_clear(&items[i].kept);
            Py_XDECREF(items[i].result);
        }
        /* Give the kept handles back before the items are freed,
         * because their libcurl pointers lead into the items until
         * mw_transfer_detach clears them. */
        for (Py_ssize_t i = 0; i < state.spare_handle_count; i++) {
            release_to_pool(client, state.spare_handles[i].easy,
                            &state.spare_handles[i].kept);
        }
        for (Py_ssize_t i = 0; i < state.spare_body_count; i++) {
            PyMem_RawFree(state.spare_bodies[i].data);
        }
        for (Py_ssize_t i = 0; i < state.spare_header_count; i++) {
            PyMem_RawFree(state.spare_headers[i].data);
        }
        PyErr_Restore(type, value, traceback);
        PyMem_Free(items);
    }
    PyMem_Free(state.spare_handles);
    PyMem_Free(state.spare_bodies);
    PyMem_Free(state.spare_headers);
    if (multi != NULL) {
        mw_client_release_multi(client, multi, multi_kept);
    }
    Py_DECREF(sequence);
    return result;
}
