/*
 * The single-transfer driver on the libcurl multi interface, and
 * StreamResponse, the result of Client.stream().
 *
 * curl_easy_perform runs a transfer to its end, so Python code cannot
 * run in between.  The driver instead steps a multi handle (the
 * client's kept one when no other transfer uses it, so that one stream
 * after another reuses its connection) with the GIL released, and
 * between the steps, with the GIL held, it
 * reads the next piece of a streamed upload from Python and lets Python
 * drain the downloaded body.  The libcurl callbacks never call Python:
 * they pause the transfer (CURL_READFUNC_PAUSE, CURL_WRITEFUNC_PAUSE)
 * and the driver resumes it.
 */
#include "client.h"

#include <string.h>
#include <structmember.h>
#include <time.h>
#include <unistd.h>

/* Unread body bytes at which the download pauses. */
#define STREAM_BUFFER_BYTES (1024 * 1024)

/* Size of each read() call on a file-like upload body. */
#define UPLOAD_READ_BYTES 65536

/* Maximum wait in curl_multi_poll, so that signals are checked about
 * ten times a second (milliseconds). */
#define POLL_INTERVAL_MS 100

/* ---- Driver ---------------------------------------------------------- */

static int64_t
monotonic_ms(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

int
mw_single_start(mw_single *single, PyObject *client, CURL *easy,
                mw_request *request, mw_transfer *transfer)
{
    CURLMcode code;

    memset(single, 0, sizeof(*single));
    single->easy = easy;
    single->request = request;
    single->transfer = transfer;
    single->result = CURLE_OK;
    single->multi = mw_client_acquire_multi(client, &single->multi_kept);
    if (single->multi == NULL) {
        return -1;
    }
    single->client = client;
    code = curl_multi_add_handle(single->multi, easy);
    if (code != CURLM_OK) {
        PyErr_Format(mwcomms_Error, "curl_multi_add_handle failed: %s",
                     curl_multi_strerror(code));
        mw_client_release_multi(client, single->multi, single->multi_kept);
        single->multi = NULL;
        return -1;
    }
    return 0;
}

/* Remove the easy handle and give the multi handle back to the client.
 * libcurl closes the connection of a transfer removed before it
 * completed, so a half-read response never reaches the next transfer.
 * Idempotent. */
void
mw_single_finish(mw_single *single)
{
    if (single->multi == NULL) {
        return;
    }
    Py_BEGIN_ALLOW_THREADS
    curl_multi_remove_handle(single->multi, single->easy);
    Py_END_ALLOW_THREADS
    mw_client_release_multi(single->client, single->multi,
                            single->multi_kept);
    single->multi = NULL;
}

/* Raise ValueError for a streamed body whose size differs from the one
 * sent in the Content-Length header.  Sending it anyway would leave the
 * server waiting for the rest, or have it read the extra bytes as the
 * next request on the connection.  Return -1. */
static int
raise_upload_size(mw_request *request, const char *comparison)
{
    PyErr_Format(PyExc_ValueError,
                 "the streamed body is %s than its size of %lld bytes (the "
                 "Content-Length header or the size of the file); the "
                 "transfer was aborted", comparison,
                 (long long)request->upload_length);
    return -1;
}

static int
check_upload_end(mw_request *request, mw_transfer *transfer)
{
    if (request->upload_length >= 0
            && transfer->upload_produced != request->upload_length) {
        return raise_upload_size(request, "shorter");
    }
    return 0;
}

/* Append the next piece of the upload body to transfer->upload, or set
 * upload_eof.  Called with the GIL. */
static int
fill_upload(mw_request *request, mw_transfer *transfer)
{
    while (1) {
        PyObject *chunk = NULL;
        PyObject *encoded = NULL;
        Py_buffer view;
        int appended;

        if (request->upload_read != NULL) {
            chunk = PyObject_CallFunction(request->upload_read, "n",
                                          (Py_ssize_t)UPLOAD_READ_BYTES);
            if (chunk == NULL) {
                return -1;
            }
        }
        else {
            chunk = PyIter_Next(request->upload_iterator);
            if (chunk == NULL) {
                if (PyErr_Occurred()) {
                    return -1;
                }
                transfer->upload_eof = 1;
                return check_upload_end(request, transfer);
            }
        }
        if (PyUnicode_Check(chunk)) {
            encoded = PyUnicode_AsUTF8String(chunk);
            Py_DECREF(chunk);
            if (encoded == NULL) {
                mw_raise_unencodable(NULL, "body");
                return -1;
            }
            chunk = encoded;
        }
        if (PyObject_GetBuffer(chunk, &view, PyBUF_SIMPLE) < 0) {
            PyErr_Format(PyExc_TypeError,
                         "a streamed body must produce bytes-like objects "
                         "or str, not %.100s", Py_TYPE(chunk)->tp_name);
            Py_DECREF(chunk);
            return -1;
        }
        if (view.len == 0) {
            PyBuffer_Release(&view);
            Py_DECREF(chunk);
            if (request->upload_read != NULL) {
                /* read() returns b'' at the end of the file. */
                transfer->upload_eof = 1;
                return check_upload_end(request, transfer);
            }
            continue;  /* an empty item of an iterator ends nothing */
        }
        if (request->upload_length >= 0
                && view.len > request->upload_length
                              - transfer->upload_produced) {
            PyBuffer_Release(&view);
            Py_DECREF(chunk);
            return raise_upload_size(request, "longer");
        }
        transfer->upload_produced += view.len;
        appended = mw_buffer_append(&transfer->upload, view.buf,
                                    (size_t)view.len);
        PyBuffer_Release(&view);
        Py_DECREF(chunk);
        if (appended < 0) {
            PyErr_NoMemory();
            return -1;
        }
        return 0;
    }
}

/* Fill the upload or resume the download when Python made room, and
 * tell libcurl the new pause state.  Called with the GIL. */
static int
update_pause(mw_single *single)
{
    mw_transfer *transfer = single->transfer;
    int changed = 0;
    int mask;
    CURLcode code;

    if (transfer->upload_paused) {
        if (fill_upload(single->request, transfer) < 0) {
            return -1;
        }
        transfer->upload_paused = 0;
        changed = 1;
    }
    if (transfer->download_paused
            && transfer->body.len - transfer->body_offset
               < transfer->pause_threshold) {
        transfer->download_paused = 0;
        changed = 1;
    }
    if (!changed) {
        return 0;
    }
    mask = (transfer->download_paused ? CURLPAUSE_RECV : 0)
           | (transfer->upload_paused ? CURLPAUSE_SEND : 0);
    /* curl_easy_pause may run the write callback with the data libcurl
     * held back, but it does not wait for the network. */
    Py_BEGIN_ALLOW_THREADS
    code = curl_easy_pause(single->easy, mask);
    Py_END_ALLOW_THREADS
    if (code != CURLE_OK) {
        /* The callbacks flagged the cause; the transfer ends with it. */
        single->done = 1;
        single->result = code;
    }
    return 0;
}

static int
has_unread_body(mw_transfer *transfer)
{
    return transfer->body.len > transfer->body_offset;
}

/* Return 1 when the caller has what it waits for. */
static int
reached(mw_single *single, int until_headers)
{
    mw_transfer *transfer = single->transfer;

    if (single->done) {
        return 1;
    }
    if (until_headers) {
        return transfer->headers_done;
    }
    return has_unread_body(transfer);
}

static void
read_messages(mw_single *single)
{
    CURLMsg *message;
    int left = 0;

    while ((message = curl_multi_info_read(single->multi, &left)) != NULL) {
        if (message->msg == CURLMSG_DONE
                && message->easy_handle == single->easy) {
            single->done = 1;
            single->result = message->data.result;
        }
    }
}

/*
 * Run the transfer until it ends, or until the response headers arrived
 * (until_headers) or some body bytes are unread (otherwise).  Signal
 * handlers run between steps on the main thread.  Return 0, or -1 with
 * an exception set (one of a signal handler or of the upload body), in
 * which case the transfer must be abandoned with mw_single_finish.
 */
int
mw_single_run(mw_single *single, int until_headers)
{
    mw_transfer *transfer = single->transfer;
    int check_signals = mw_on_main_thread();
    CURLMcode code = CURLM_OK;
    int running = 0;

    if (single->multi == NULL) {
        PyErr_SetString(PyExc_ValueError, "the transfer was closed");
        return -1;
    }
    /* Time spent in Python since the last step is not server idle time. */
    transfer->last_activity_ms = monotonic_ms();
    while (1) {
        if (update_pause(single) < 0) {
            return -1;
        }
        if (reached(single, until_headers)) {
            return 0;
        }
        Py_BEGIN_ALLOW_THREADS
        code = curl_multi_perform(single->multi, &running);
        Py_END_ALLOW_THREADS
        if (code != CURLM_OK) {
            PyErr_Format(mwcomms_Error, "curl_multi_perform failed: %s",
                         curl_multi_strerror(code));
            return -1;
        }
        read_messages(single);
        if (check_signals && PyErr_CheckSignals() < 0) {
            return -1;
        }
        if (reached(single, until_headers) || transfer->upload_paused
                || (transfer->download_paused
                    && !has_unread_body(transfer))) {
            continue;
        }
        Py_BEGIN_ALLOW_THREADS
        code = curl_multi_poll(single->multi, NULL, 0, POLL_INTERVAL_MS,
                               NULL);
        Py_END_ALLOW_THREADS
        if (code != CURLM_OK) {
            PyErr_Format(mwcomms_Error, "curl_multi_poll failed: %s",
                         curl_multi_strerror(code));
            return -1;
        }
        if (check_signals && PyErr_CheckSignals() < 0) {
            return -1;
        }
    }
}

/* ---- StreamResponse -------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *client;            /* NULL once the handle went back */
    mw_single single;
    mw_request request;
    mw_transfer transfer;
    char error_buffer[CURL_ERROR_SIZE];
    int busy;                    /* a read runs with the GIL released */
    int closed;
    pid_t pid;                   /* process that started the transfer */
    int error_raised;

    int status;
    PyObject *reason;
    PyObject *http_version;
    PyObject *headers;
    PyObject *url;
    PyObject *progress;          /* callable, or NULL */
    unsigned long long bytes_read;
} StreamObject;

/* End the transfer: return the handle to the pool when the transfer
 * completed, else clean it up with its connection.  Idempotent. */
static void
stream_release(StreamObject *self)
{
    PyObject *client = self->client;
    CURL *easy = self->single.easy;
    long connects = 0;
    int reusable = self->single.done;

    self->closed = 1;
    self->client = NULL;
    if (easy != NULL && self->pid != mw_current_pid()) {
        /* Opened before fork(): the connection belongs to the parent, so
         * the handles are leaked as in the client's reset_after_fork. */
        self->single.multi = NULL;
        self->single.easy = NULL;
        easy = NULL;
    }
    mw_single_finish(&self->single);
    if (client != NULL && easy != NULL) {
        curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &connects);
        mw_client_count(client, connects);
        mw_client_release(client, easy, reusable);
    }
    self->single.easy = NULL;
    mw_transfer_clear(&self->transfer);
    mw_request_clear(&self->request);
    Py_XDECREF(client);
}

static int
Stream_traverse(StreamObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->client);
    Py_VISIT(self->progress);
    Py_VISIT(self->request.upload_read);
    Py_VISIT(self->request.upload_iterator);
    Py_VISIT(self->request.auth);
    Py_VISIT(self->request.body_owner);
    Py_VISIT(self->request.multipart);
    return 0;
}

static int
Stream_clear(StreamObject *self)
{
    /* tp_finalize released the transfer, client and request first. */
    Py_CLEAR(self->progress);
    Py_CLEAR(self->reason);
    Py_CLEAR(self->http_version);
    Py_CLEAR(self->headers);
    Py_CLEAR(self->url);
    return 0;
}

static void
Stream_finalize(StreamObject *self)
{
    PyObject *type;
    PyObject *value;
    PyObject *traceback;

    PyErr_Fetch(&type, &value, &traceback);
    stream_release(self);
    PyErr_Restore(type, value, traceback);
}

static void
Stream_dealloc(StreamObject *self)
{
    if (PyObject_CallFinalizerFromDealloc((PyObject *)self) < 0) {
        return;  /* resurrected */
    }
    PyObject_GC_UnTrack(self);
    Stream_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Enter a read: reject concurrent use and use after close(). */
static int
stream_enter(StreamObject *self)
{
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError,
                        "StreamResponse is being read by another thread");
        return -1;
    }
    if (self->closed) {
        PyErr_SetString(PyExc_ValueError, "StreamResponse is closed");
        return -1;
    }
    if (self->pid != mw_current_pid()) {
        PyErr_SetString(PyExc_ValueError,
                        "StreamResponse was opened before fork(): read it "
                        "in the process that opened it");
        return -1;
    }
    self->busy = 1;
    return 0;
}

/* Wait until body bytes are unread or the transfer ended.  Return 1 when
 * bytes are unread, 0 at the end of a complete body, or -1 with an
 * exception set (a failed transfer raises its error). */
static int
stream_wait(StreamObject *self)
{
    if (!has_unread_body(&self->transfer) && !self->single.done) {
        if (mw_single_run(&self->single, 0) < 0) {
            return -1;
        }
    }
    if (has_unread_body(&self->transfer)) {
        return 1;
    }
    if (self->single.result != CURLE_OK) {
        mw_raise_transfer_error(self->single.result, self->error_buffer,
                                &self->request, &self->transfer);
        return -1;
    }
    return 0;
}

/* Move up to limit unread bytes to dest (PyMem buffer growing). */
static size_t
stream_take(StreamObject *self, char *dest, size_t limit)
{
    mw_transfer *transfer = &self->transfer;
    size_t available = transfer->body.len - transfer->body_offset;

    if (available > limit) {
        available = limit;
    }
    memcpy(dest, transfer->body.data + transfer->body_offset, available);
    transfer->body_offset += available;
    if (transfer->body_offset == transfer->body.len) {
        transfer->body_offset = 0;
        transfer->body.len = 0;
    }
    return available;
}

/* Put count bytes that a read took back before the unread body, so that
 * the next read returns them again.  Return 0, or -1 with MemoryError
 * set (the bytes are then lost).  Called with the GIL held, while no
 * libcurl callback runs. */
static int
stream_unread(StreamObject *self, const char *data, size_t count)
{
    mw_buffer *body = &self->transfer.body;
    size_t unread = body->len - self->transfer.body_offset;

    if (count == 0) {
        return 0;
    }
    if (self->transfer.body_offset >= count) {
        self->transfer.body_offset -= count;
        memcpy(body->data + self->transfer.body_offset, data, count);
        return 0;
    }
    if (count + unread > body->cap) {
        char *grown = PyMem_RawRealloc(body->data, count + unread);

        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        body->data = grown;
        body->cap = count + unread;
    }
    memmove(body->data + count, body->data + self->transfer.body_offset,
            unread);
    memcpy(body->data, data, count);
    self->transfer.body_offset = 0;
    body->len = count + unread;
    return 0;
}

static int
report_progress(StreamObject *self, size_t count)
{
    curl_off_t total = -1;
    PyObject *result;

    self->bytes_read += count;
    if (self->progress == NULL || count == 0) {
        return 0;
    }
    if (self->single.easy != NULL) {
        curl_easy_getinfo(self->single.easy,
                          CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &total);
    }
    if (total >= 0) {
        result = PyObject_CallFunction(self->progress, "KL",
                                       self->bytes_read, (long long)total);
    }
    else {
        result = PyObject_CallFunction(self->progress, "KO",
                                       self->bytes_read, Py_None);
    }
    if (result == NULL) {
        self->bytes_read -= count;
        return -1;
    }
    Py_DECREF(result);
    return 0;
}

/* Return the next piece of the body: up to size bytes (no limit when
 * size < 0) of what is unread, waiting only when nothing is, and b'' at
 * the end.  The bytes go from the stream's buffer straight into the
 * bytes object returned. */
static PyObject *
stream_read_piece(StreamObject *self, Py_ssize_t size)
{
    PyObject *result = NULL;
    size_t available = 0;
    int state;

    if (stream_enter(self) < 0) {
        return NULL;
    }
    state = stream_wait(self);
    if (state < 0) {
        goto done;
    }
    if (state > 0) {
        available = self->transfer.body.len - self->transfer.body_offset;
        if (size >= 0 && available > (size_t)size) {
            available = (size_t)size;
        }
    }
    result = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)available);
    if (result == NULL) {
        goto done;
    }
    stream_take(self, PyBytes_AS_STRING(result), available);
    /* As in stream_read: a progress callback that raises puts the bytes
     * back, so that the next read returns them again. */
    if (report_progress(self, available) < 0) {
        (void)stream_unread(self, PyBytes_AS_STRING(result), available);
        Py_CLEAR(result);
    }
done:
    self->busy = 0;
    return result;
}

/* Read size bytes (all when size < 0), or fewer at the end of the
 * body. */
static PyObject *
stream_read(StreamObject *self, Py_ssize_t size)
{
    char *data = NULL;
    size_t length = 0;
    size_t capacity = 0;
    PyObject *result = NULL;

    if (stream_enter(self) < 0) {
        return NULL;
    }
    while (size < 0 || length < (size_t)size) {
        int state = stream_wait(self);
        size_t available;
        size_t wanted;

        if (state < 0) {
            goto done;
        }
        if (state == 0) {
            break;
        }
        available = self->transfer.body.len - self->transfer.body_offset;
        wanted = size < 0 ? available : (size_t)size - length;
        if (wanted > available) {
            wanted = available;
        }
        if (length + wanted > capacity) {
            size_t grown = capacity != 0 ? capacity : 65536;
            char *resized;

            while (grown < length + wanted) {
                grown *= 2;
            }
            if (size >= 0 && grown > (size_t)size) {
                grown = (size_t)size;
            }
            resized = PyMem_Realloc(data, grown);
            if (resized == NULL) {
                PyErr_NoMemory();
                goto done;
            }
            data = resized;
            capacity = grown;
        }
        length += stream_take(self, data + length, wanted);
    }
    result = PyBytes_FromStringAndSize(data != NULL ? data : "",
                                       (Py_ssize_t)length);
    /* A progress callback that raises makes the read raise.  Its bytes
     * go back to the unread body and bytes_read is not advanced, so the
     * next read returns them (and reports them) again. */
    if (result != NULL && report_progress(self, length) < 0) {
        Py_CLEAR(result);
        /* On failure, its MemoryError replaces the callback's exception. */
        (void)stream_unread(self, data, length);
    }
done:
    PyMem_Free(data);
    self->busy = 0;
    return result;
}

static PyObject *
Stream_read(StreamObject *self, PyObject *args)
{
    Py_ssize_t size = -1;

    if (!PyArg_ParseTuple(args, "|n:read", &size)) {
        return NULL;
    }
    if (size == 0) {
        return PyBytes_FromStringAndSize("", 0);
    }
    return stream_read(self, size);
}

static PyObject *
Stream_close(StreamObject *self, PyObject *unused)
{
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError,
                        "StreamResponse is being read by another thread");
        return NULL;
    }
    stream_release(self);
    Py_RETURN_NONE;
}

static PyObject *
Stream_enter(StreamObject *self, PyObject *unused)
{
    return Py_NewRef(self);
}

static PyObject *
Stream_exit(StreamObject *self, PyObject *args)
{
    PyObject *result = Stream_close(self, NULL);

    if (result == NULL) {
        return NULL;
    }
    Py_DECREF(result);
    Py_RETURN_FALSE;
}

/* Iterator of iter_chunks(): each item is the bytes that arrived, at
 * most chunk_size of them. */
typedef struct {
    PyObject_HEAD
    StreamObject *stream;
    Py_ssize_t chunk_size;
} ChunkIteratorObject;

static void
ChunkIterator_dealloc(ChunkIteratorObject *self)
{
    PyObject_GC_UnTrack(self);
    Py_CLEAR(self->stream);
    PyObject_GC_Del(self);
}

static int
ChunkIterator_traverse(ChunkIteratorObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->stream);
    return 0;
}

static PyObject *
ChunkIterator_next(ChunkIteratorObject *self)
{
    PyObject *chunk;

    if (self->stream->closed && self->stream->single.done) {
        return NULL;
    }
    chunk = stream_read_piece(self->stream, self->chunk_size);
    if (chunk == NULL) {
        return NULL;
    }
    if (PyBytes_GET_SIZE(chunk) == 0) {
        Py_DECREF(chunk);
        return NULL;  /* StopIteration */
    }
    return chunk;
}

PyTypeObject mw_ChunkIteratorType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "_mwcomms.ChunkIterator",
    .tp_basicsize = sizeof(ChunkIteratorObject),
    .tp_dealloc = (destructor)ChunkIterator_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_traverse = (traverseproc)ChunkIterator_traverse,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)ChunkIterator_next,
};

static PyObject *
Stream_iter_chunks(StreamObject *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"chunk_size", NULL};
    Py_ssize_t chunk_size = 65536;
    ChunkIteratorObject *iterator;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|n:iter_chunks",
                                     keywords, &chunk_size)) {
        return NULL;
    }
    if (chunk_size <= 0) {
        PyErr_Format(PyExc_ValueError,
                     "chunk_size must be 1 or more bytes, not %zd",
                     chunk_size);
        return NULL;
    }
    iterator = PyObject_GC_New(ChunkIteratorObject, &mw_ChunkIteratorType);
    if (iterator == NULL) {
        return NULL;
    }
    iterator->stream = (StreamObject *)Py_NewRef(self);
    iterator->chunk_size = chunk_size;
    PyObject_GC_Track(iterator);
    return (PyObject *)iterator;
}

static PyObject *
Stream_get_header(StreamObject *self, PyObject *args, PyObject *kwargs)
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
    values = mw_find_header_values(self->headers, name);
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

static PyObject *
Stream_get_all(StreamObject *self, PyObject *name)
{
    return mw_find_header_values(self->headers, name);
}

static PyObject *
Stream_repr(StreamObject *self)
{
    return PyUnicode_FromFormat("<_mwcomms.StreamResponse [%d]%s>",
                                self->status,
                                self->closed ? " closed" : "");
}

static PyObject *
Stream_get_closed(StreamObject *self, void *closure)
{
    return PyBool_FromLong(self->closed);
}

static PyObject *
Stream_get_bytes_read(StreamObject *self, void *closure)
{
    return PyLong_FromUnsignedLongLong(self->bytes_read);
}

static PyMethodDef Stream_methods[] = {
    {"read", (PyCFunction)Stream_read, METH_VARARGS,
     PyDoc_STR("read(size=-1)\n--\n\n"
               "Return the next size bytes of the body, fewer only at its\n"
               "end, or the rest of the body when size is negative.  A\n"
               "failed transfer raises its error once the bytes that\n"
               "arrived before the failure were read.")},
    {"iter_chunks", (PyCFunction)(void (*)(void))Stream_iter_chunks,
     METH_VARARGS | METH_KEYWORDS,
     PyDoc_STR("iter_chunks(chunk_size=65536)\n--\n\n"
               "Return an iterator of the body in pieces of 1 to\n"
               "chunk_size bytes, each yielded as soon as it arrives.")},
    {"close", (PyCFunction)Stream_close, METH_NOARGS,
     PyDoc_STR("close()\n--\n\n"
               "End the transfer.  The handle goes back to the client's\n"
               "pool when the body was complete; otherwise the transfer\n"
               "is aborted and its connection closed.  Idempotent, and\n"
               "called when the object is collected.")},
    {"get_header", (PyCFunction)(void (*)(void))Stream_get_header,
     METH_VARARGS | METH_KEYWORDS,
     PyDoc_STR("get_header(name, default=None)\n--\n\n"
               "Return the values of the headers named name (any case)\n"
               "joined with ', ', or default when there is none.")},
    {"get_all", (PyCFunction)Stream_get_all, METH_O,
     PyDoc_STR("get_all(name)\n--\n\n"
               "Return the list of values of the headers named name.")},
    {"__enter__", (PyCFunction)Stream_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)Stream_exit, METH_VARARGS, NULL},
    {NULL}
};

static PyMemberDef Stream_members[] = {
    {"status", T_INT, offsetof(StreamObject, status), READONLY,
     PyDoc_STR("HTTP status code.")},
    {"reason", T_OBJECT_EX, offsetof(StreamObject, reason), READONLY,
     PyDoc_STR("Reason phrase from the status line; '' for HTTP/2.")},
    {"http_version", T_OBJECT_EX, offsetof(StreamObject, http_version),
     READONLY, PyDoc_STR("HTTP version used: '1.0', '1.1', '2' or '3'.")},
    {"headers", T_OBJECT_EX, offsetof(StreamObject, headers), READONLY,
     PyDoc_STR("Tuple of (name, value) pairs of the response headers,\n"
               "in received order, decoded as Latin-1.")},
    {"url", T_OBJECT_EX, offsetof(StreamObject, url), READONLY,
     PyDoc_STR("Effective URL.")},
    {NULL}
};

static PyGetSetDef Stream_getset[] = {
    {"closed", (getter)Stream_get_closed, NULL,
     PyDoc_STR("True after close()."), NULL},
    {"bytes_read", (getter)Stream_get_bytes_read, NULL,
     PyDoc_STR("Body bytes returned to Python so far."), NULL},
    {NULL}
};

PyTypeObject mw_StreamResponseType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "_mwcomms.StreamResponse",
    .tp_basicsize = sizeof(StreamObject),
    .tp_dealloc = (destructor)Stream_dealloc,
    .tp_repr = (reprfunc)Stream_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = PyDoc_STR("Response of Client.stream(): the headers, and the\n"
                        "body read incrementally.  Close it, or use it as\n"
                        "a context manager."),
    .tp_traverse = (traverseproc)Stream_traverse,
    .tp_clear = (inquiry)Stream_clear,
    .tp_methods = Stream_methods,
    .tp_members = Stream_members,
    .tp_getset = Stream_getset,
    .tp_finalize = (destructor)Stream_finalize,
    /* tp_new stays NULL, so Python code cannot create instances. */
};

/* Fill status, reason, headers, http_version and url once the headers
 * arrived. */
static int
stream_read_head(StreamObject *self)
{
    CURL *easy = self->single.easy;
    long status = 0;
    long version = 0;
    char *url = NULL;

    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(easy, CURLINFO_HTTP_VERSION, &version);
    curl_easy_getinfo(easy, CURLINFO_EFFECTIVE_URL, &url);
    self->status = (int)status;
    self->http_version = PyUnicode_FromString(mw_http_version_name(version));
    if (self->http_version == NULL) {
        return -1;
    }
    if (mw_parse_header_block(self->transfer.headers.data != NULL
                                  ? self->transfer.headers.data : "",
                              self->transfer.headers.len, &self->reason,
                              &self->headers, NULL) < 0) {
        return -1;
    }
    self->url = PyUnicode_DecodeUTF8(url != NULL ? url : "",
                                     url != NULL ? strlen(url) : 0,
                                     "surrogateescape");
    return self->url != NULL ? 0 : -1;
}

PyObject *
mw_stream_open(PyObject *client, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"method", "url", "headers", "body", "timeout",
                               "verify", "auth", "accept_encoding", "proxy",
                               "noproxy", "progress", NULL};
    PyObject *method;
    PyObject *url;
    PyObject *headers = Py_None;
    PyObject *body = Py_None;
    PyObject *timeout = Py_None;
    PyObject *verify = Py_True;
    PyObject *auth = Py_None;
    int accept_encoding = 1;
    PyObject *proxy = Py_None;
    PyObject *noproxy = Py_None;
    PyObject *progress = Py_None;
    StreamObject *self = NULL;
    CURL *easy = NULL;
    Py_ssize_t max_response_size;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|OO$OOOpOOO:stream",
                                     keywords, &method, &url, &headers,
                                     &body, &timeout, &verify, &auth,
                                     &accept_encoding, &proxy, &noproxy,
                                     &progress)) {
        return NULL;
    }
    if (progress != Py_None && !PyCallable_Check(progress)) {
        PyErr_Format(PyExc_TypeError,
                     "progress must be None or callable, not %.100s",
                     Py_TYPE(progress)->tp_name);
        return NULL;
    }
    if (mw_client_is_closed(client)) {
        PyErr_SetString(PyExc_ValueError, "Client is closed");
        return NULL;
    }
    self = PyObject_GC_New(StreamObject, &mw_StreamResponseType);
    if (self == NULL) {
        return NULL;
    }
    /* Zero everything after the object header. */
    memset((char *)self + sizeof(PyObject), 0,
           sizeof(StreamObject) - sizeof(PyObject));
    self->closed = 1;  /* until a handle is held */
    self->pid = mw_current_pid();
    PyObject_GC_Track(self);
    if (progress != Py_None) {
        self->progress = Py_NewRef(progress);
    }
    if (mw_request_parse(&self->request, method, url, headers, body, timeout,
                         verify, auth, accept_encoding) < 0
            || mw_request_parse_proxy(&self->request, proxy, noproxy) < 0) {
        goto error;
    }
    easy = mw_client_acquire(client);
    if (easy == NULL) {
        goto error;
    }
    self->client = Py_NewRef(client);
    self->closed = 0;
    self->single.easy = easy;
    max_response_size = mw_client_max_response_size(client);
    if (mw_transfer_setup(easy, &self->request, &self->transfer,
                          self->error_buffer, max_response_size) < 0) {
        goto error;
    }
    self->transfer.pause_threshold = STREAM_BUFFER_BYTES;
    self->transfer.check_signals = 0;  /* the driver checks them itself */
    if (mw_request_authorize(&self->request) < 0) {
        goto error;
    }
    if (curl_easy_setopt(easy, CURLOPT_HTTPHEADER, self->request.headers)
            != CURLE_OK) {
        PyErr_SetString(mwcomms_Error,
                        "curl_easy_setopt(CURLOPT_HTTPHEADER) failed");
        goto error;
    }
    if (mw_single_start(&self->single, client, easy, &self->request,
                        &self->transfer) < 0) {
        self->single.easy = easy;  /* mw_single_start cleared it */
        goto error;
    }
    self->busy = 1;
    if (mw_single_run(&self->single, 1) < 0) {
        self->busy = 0;
        goto error;
    }
    self->busy = 0;
    if (!self->transfer.headers_done && self->single.result != CURLE_OK) {
        mw_raise_transfer_error(self->single.result, self->error_buffer,
                                &self->request, &self->transfer);
        goto error;
    }
    if (stream_read_head(self) < 0) {
        goto error;
    }
    return (PyObject *)self;
error:
    stream_release(self);
    Py_DECREF(self);
    return NULL;
}
