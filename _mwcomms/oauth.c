/*
 * The OAuth1 credential type and the Python API of OAuth 1.0a signing.
 * The computation itself is in oauth_sign.c.
 *
 * An OAuth1 object is immutable after __init__ except clock_offset, which
 * is only read and written with the GIL held, so any number of threads may
 * sign with one object.  The secrets are kept only as the HMAC key (or the
 * OpenSSL key) and are never readable from Python.
 */
#include "oauth_sign.h"

#include <limits.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>

typedef struct {
    PyObject_HEAD
    int initialized;
    oauth_credentials creds;
    /* Storage behind the const pointers of creds, all PyMem. */
    char *consumer_key, *token, *realm, *callback, *verifier, *key;
    size_t key_cap;
    PyObject *consumer_key_obj, *token_obj, *realm_obj, *method_obj;
    long long clock_offset;
} OAuth1Object;

static PyTypeObject OAuth1_Type;

/* Limit for clock_offset: a century in seconds, far beyond any clock skew,
 * keeps time(NULL) + offset inside a 64-bit integer. */
#define MAX_CLOCK_OFFSET (100LL * 366 * 24 * 3600)

static const struct {
    const char *name;
    oauth_method method;
} SIGNATURE_METHODS[] = {
    {"HMAC-SHA1", OAUTH_HMAC_SHA1},
    {"HMAC-SHA256", OAUTH_HMAC_SHA256},
    {"RSA-SHA1", OAUTH_RSA_SHA1},
    {"PLAINTEXT", OAUTH_PLAINTEXT},
};

/* ---- argument conversion ---------------------------------------------- */

/* Return a borrowed UTF-8 view of str obj, or NULL with TypeError or
 * ValueError naming only argname: the value may be a secret, so neither
 * it nor the codec's error (which keeps the string) is exposed. */
static const char *
text_argument(PyObject *obj, const char *argname, Py_ssize_t *len)
{
    const char *data;

    if (!PyUnicode_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be str, not %.100s",
                     argname, Py_TYPE(obj)->tp_name);
        return NULL;
    }
    data = PyUnicode_AsUTF8AndSize(obj, len);
    if (data == NULL) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError,
                     "%s cannot be encoded as UTF-8 (it contains lone "
                     "surrogates)", argname);
        return NULL;
    }
    if ((size_t)*len != strlen(data)) {
        PyErr_Format(PyExc_ValueError, "%s must not contain NUL characters",
                     argname);
        return NULL;
    }
    if ((size_t)*len > OAUTH_MAX_FIELD_LEN) {
        PyErr_Format(PyExc_ValueError, "%s is too long: the maximum is %d "
                     "bytes", argname, OAUTH_MAX_FIELD_LEN);
        return NULL;
    }
    return data;
}

/* Store a PyMem copy of optional str obj in *out (NULL for None). */
static int
copy_text(PyObject *obj, const char *argname, int allow_none, char **out)
{
    const char *data;
    Py_ssize_t len;

    *out = NULL;
    if (obj == NULL || obj == Py_None) {
        if (allow_none) {
            return 0;
        }
        PyErr_Format(PyExc_TypeError, "%s must be str, not None", argname);
        return -1;
    }
    data = text_argument(obj, argname, &len);
    if (data == NULL) {
        return -1;
    }
    *out = PyMem_Malloc((size_t)len + 1);
    if (*out == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(*out, data, (size_t)len + 1);
    return 0;
}

static void
free_secret(char **secret, size_t len)
{
    if (*secret != NULL) {
        OPENSSL_cleanse(*secret, len);
        PyMem_Free(*secret);
        *secret = NULL;
    }
}

/* ---- credential setup ------------------------------------------------- */

/* Build enc(consumer_secret) "&" enc(token_secret), the key of section
 * 3.4.2 and 3.4.4. */
static int
build_key(OAuth1Object *self, PyObject *consumer_secret,
          PyObject *token_secret)
{
    oauth_buf key = OAUTH_BUF_INIT;
    const char *data;
    const char *token_data = NULL;
    Py_ssize_t len, token_len = 0;

    data = text_argument(consumer_secret, "consumer_secret", &len);
    if (data == NULL) {
        return -1;
    }
    if (token_secret != Py_None) {
        token_data = text_argument(token_secret, "token_secret", &token_len);
        if (token_data == NULL) {
            return -1;
        }
    }
    /* Reserve the final size first so that no copy of the secrets is left
     * behind in memory freed by a reallocation. */
    if (oauth_buf_reserve(&key, 3 * ((size_t)len + (size_t)token_len) + 1) < 0
            || oauth_buf_append_encoded(&key, data, (size_t)len) < 0
            || oauth_buf_append(&key, "&", 1) < 0) {
        goto error;
    }
    if (oauth_buf_append_encoded(&key, token_data, (size_t)token_len) < 0) {
        goto error;
    }
    self->key = key.data;
    self->key_cap = key.cap;
    self->creds.key = key.data;
    self->creds.key_len = key.len;
    return 0;
error:
    free_secret(&key.data, key.cap);
    return -1;
}

/* Never prompt for a passphrase: an encrypted key fails to load. */
static int
no_passphrase(char *buf, int size, int rwflag, void *userdata)
{
    return -1;
}

static int
load_rsa_key(OAuth1Object *self, PyObject *rsa_key)
{
    Py_buffer view = {NULL, NULL};
    const char *data;
    Py_ssize_t len;
    BIO *bio = NULL;
    EVP_PKEY *pkey = NULL;
    EVP_PKEY_CTX *check = NULL;
    int rc = -1;

    if (PyUnicode_Check(rsa_key)) {
        data = PyUnicode_AsUTF8AndSize(rsa_key, &len);
        if (data == NULL) {
            PyErr_Clear();
            PyErr_SetString(PyExc_ValueError,
                            "rsa_key cannot be encoded as UTF-8");
            return -1;
        }
    }
    else if (PyBytes_Check(rsa_key) || PyByteArray_Check(rsa_key)) {
        if (PyObject_GetBuffer(rsa_key, &view, PyBUF_SIMPLE) < 0) {
            return -1;
        }
        data = view.buf;
        len = view.len;
    }
    else {
        PyErr_Format(PyExc_TypeError,
                     "rsa_key must be str or bytes (a PEM private key), "
                     "not %.100s", Py_TYPE(rsa_key)->tp_name);
        return -1;
    }
    if (len > INT_MAX) {
        PyErr_SetString(PyExc_ValueError, "rsa_key is too large");
        goto done;
    }
    ERR_clear_error();
    bio = BIO_new_mem_buf(data, (int)len);
    if (bio == NULL) {
        oauth_raise_openssl(PyExc_MemoryError, "BIO_new_mem_buf failed");
        goto done;
    }
    pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
    if (pkey == NULL) {
        oauth_raise_openssl(PyExc_ValueError,
                            "rsa_key is not a valid unencrypted PEM "
                            "private key");
        goto done;
    }
    if (!EVP_PKEY_is_a(pkey, "RSA")) {
        PyErr_SetString(PyExc_ValueError,
                        "rsa_key is a PEM private key but not an RSA key");
        goto done;
    }
    /* PEM loading does not check that the numbers fit together, and a
     * damaged key would sign without error, so check the key pair here. */
    check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    if (check == NULL || EVP_PKEY_pairwise_check(check) != 1) {
        oauth_raise_openssl(PyExc_ValueError,
                            "rsa_key failed the RSA key pair check");
        goto done;
    }
    self->creds.rsa_key = pkey;
    pkey = NULL;
    rc = 0;
done:
    EVP_PKEY_CTX_free(check);
    EVP_PKEY_free(pkey);
    BIO_free(bio);
    if (view.obj != NULL) {
        PyBuffer_Release(&view);
    }
    return rc;
}

static int
check_realm(const char *realm)
{
    const unsigned char *p;

    /* The realm is a quoted-string (RFC 2617) sent without encoding, so
     * it must be printable ASCII without '"' and '\\'. */
    for (p = (const unsigned char *)realm; *p; p++) {
        if (*p == '"' || *p == '\\' || *p < 0x20 || *p >= 0x7f) {
            PyErr_SetString(PyExc_ValueError,
                            "realm must be printable ASCII without '\"' "
                            "and '\\'");
            return -1;
        }
    }
    return 0;
}

/* ---- OAuth1 type ------------------------------------------------------ */

static void
OAuth1_clear(OAuth1Object *self)
{
    self->initialized = 0;
    if (self->key != NULL) {
        free_secret(&self->key, self->key_cap);
    }
    oauth_credentials_release(&self->creds);
    EVP_PKEY_free(self->creds.rsa_key);
    memset(&self->creds, 0, sizeof(self->creds));
    PyMem_Free(self->consumer_key);
    PyMem_Free(self->token);
    PyMem_Free(self->realm);
    PyMem_Free(self->callback);
    PyMem_Free(self->verifier);
    self->consumer_key = self->token = self->realm = NULL;
    self->callback = self->verifier = NULL;
    Py_CLEAR(self->consumer_key_obj);
    Py_CLEAR(self->token_obj);
    Py_CLEAR(self->realm_obj);
    Py_CLEAR(self->method_obj);
}

static void
OAuth1_dealloc(OAuth1Object *self)
{
    OAuth1_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
OAuth1_init(OAuth1Object *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {
        "consumer_key", "consumer_secret", "token", "token_secret",
        "signature_method", "rsa_key", "realm", "callback", "verifier",
        "version", "clock_offset", NULL};
    PyObject *consumer_key, *consumer_secret, *token = Py_None;
    PyObject *token_secret = Py_None, *method = NULL, *rsa_key = Py_None;
    PyObject *realm = Py_None, *callback = Py_None, *verifier = Py_None;
    PyObject *version = NULL, *clock_offset = NULL;
    const char *method_name = "HMAC-SHA1";
    size_t i;

    /* Signing reads the credentials without a lock, which is safe only
     * because they never change after the first __init__. */
    if (self->initialized) {
        PyErr_SetString(PyExc_TypeError,
                        "OAuth1 objects are immutable: create a new one "
                        "instead of calling __init__ again");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|OO$OOOOOOO:OAuth1",
            keywords, &consumer_key, &consumer_secret, &token, &token_secret,
            &method, &rsa_key, &realm, &callback, &verifier, &version,
            &clock_offset)) {
        return -1;
    }

    if (method != NULL) {
        Py_ssize_t len;
        method_name = text_argument(method, "signature_method", &len);
        if (method_name == NULL) {
            return -1;
        }
    }
    for (i = 0; i < Py_ARRAY_LENGTH(SIGNATURE_METHODS); i++) {
        if (strcmp(method_name, SIGNATURE_METHODS[i].name) == 0) {
            break;
        }
    }
    if (i == Py_ARRAY_LENGTH(SIGNATURE_METHODS)) {
        PyErr_Format(PyExc_ValueError,
                     "unknown signature_method '%.50s': use 'HMAC-SHA1', "
                     "'HMAC-SHA256', 'RSA-SHA1' or 'PLAINTEXT'", method_name);
        return -1;
    }
    self->creds.method = SIGNATURE_METHODS[i].method;
    self->creds.method_name = SIGNATURE_METHODS[i].name;

    if (version == NULL) {
        self->creds.version = "1.0";
    }
    else if (version != Py_None) {
        if (!PyUnicode_Check(version)
                || PyUnicode_CompareWithASCIIString(version, "1.0") != 0) {
            PyErr_SetString(PyExc_ValueError,
                            "version must be '1.0' or None (None leaves "
                            "oauth_version out)");
            return -1;
        }
        self->creds.version = "1.0";
    }

    if (copy_text(consumer_key, "consumer_key", 0, &self->consumer_key) < 0
            || copy_text(token, "token", 1, &self->token) < 0
            || copy_text(realm, "realm", 1, &self->realm) < 0
            || copy_text(callback, "callback", 1, &self->callback) < 0
            || copy_text(verifier, "verifier", 1, &self->verifier) < 0) {
        goto error;
    }
    if (self->consumer_key[0] == '\0') {
        PyErr_SetString(PyExc_ValueError, "consumer_key must not be empty");
        goto error;
    }
    if (self->realm != NULL && check_realm(self->realm) < 0) {
        goto error;
    }
    if (clock_offset != NULL) {
        int overflow = 0;
        long long offset;
        if (!PyLong_Check(clock_offset)) {
            PyErr_Format(PyExc_TypeError,
                         "clock_offset must be int, not %.100s",
                         Py_TYPE(clock_offset)->tp_name);
            goto error;
        }
        offset = PyLong_AsLongLongAndOverflow(clock_offset, &overflow);
        if (offset == -1 && PyErr_Occurred()) {
            goto error;
        }
        if (overflow || offset > MAX_CLOCK_OFFSET
                || offset < -MAX_CLOCK_OFFSET) {
            PyErr_SetString(PyExc_ValueError,
                            "clock_offset is out of range (at most a "
                            "century in seconds)");
            goto error;
        }
        self->clock_offset = offset;
    }
    else {
        self->clock_offset = 0;
    }

    if (build_key(self, consumer_secret, token_secret) < 0) {
        goto error;
    }
    if (self->creds.method == OAUTH_RSA_SHA1) {
        if (rsa_key == Py_None) {
            PyErr_SetString(PyExc_ValueError,
                            "signature_method 'RSA-SHA1' needs rsa_key (a "
                            "PEM private key)");
            goto error;
        }
        if (load_rsa_key(self, rsa_key) < 0) {
            goto error;
        }
    }
    else if (rsa_key != Py_None) {
        PyErr_Format(PyExc_ValueError,
                     "rsa_key is only used with signature_method "
                     "'RSA-SHA1', not '%s'", self->creds.method_name);
        goto error;
    }
    self->consumer_key_obj = PyUnicode_FromString(self->consumer_key);
    self->method_obj = PyUnicode_FromString(self->creds.method_name);
    if (self->consumer_key_obj == NULL || self->method_obj == NULL) {
        goto error;
    }
    if (self->token != NULL) {
        self->token_obj = PyUnicode_FromString(self->token);
        if (self->token_obj == NULL) {
            goto error;
        }
    }
    if (self->realm != NULL) {
        self->realm_obj = PyUnicode_FromString(self->realm);
        if (self->realm_obj == NULL) {
            goto error;
        }
    }
    self->creds.consumer_key = self->consumer_key;
    self->creds.token = self->token;
    self->creds.realm = self->realm;
    self->creds.callback = self->callback;
    self->creds.verifier = self->verifier;
    if (oauth_credentials_prepare(&self->creds) < 0) {
        goto error;
    }
    self->initialized = 1;
    return 0;
error:
    OAuth1_clear(self);
    return -1;
}

static int
check_initialized(OAuth1Object *self)
{
    if (!self->initialized) {
        PyErr_SetString(PyExc_ValueError,
                        "OAuth1 object is not initialized");
        return -1;
    }
    return 0;
}

/* ---- sign() and friends ----------------------------------------------- */

/* Arguments of sign() converted to an oauth_request, with the references
 * and buffers that keep its pointers valid. */
typedef struct {
    oauth_request request;
    Py_buffer body_view;
    PyObject *content_type;     /* new reference or NULL */
    char nonce[OAUTH_NONCE_LEN + 1];
    char timestamp[24];
} sign_call;

static void
sign_call_release(sign_call *call)
{
    if (call->body_view.obj != NULL) {
        PyBuffer_Release(&call->body_view);
    }
    Py_CLEAR(call->content_type);
}

/* Return 1 if header name (str or bytes) is Content-Type in any case, 0
 * for another name, or -1 with TypeError for a name of another type. */
static int
is_content_type_name(PyObject *name)
{
    static const char lower[] = "content-type";
    const char *text;
    size_t i;

    if (PyUnicode_Check(name)) {
        /* A name with non-ASCII characters cannot match. */
        if (PyUnicode_GET_LENGTH(name) != 12 || !PyUnicode_IS_ASCII(name)) {
            return 0;
        }
        text = (const char *)PyUnicode_1BYTE_DATA(name);
    }
    else if (PyBytes_Check(name)) {
        if (PyBytes_GET_SIZE(name) != 12) {
            return 0;
        }
        text = PyBytes_AS_STRING(name);
    }
    else {
        PyErr_Format(PyExc_TypeError,
                     "header names must be str or bytes, not %.100s",
                     Py_TYPE(name)->tp_name);
        return -1;
    }
    for (i = 0; i < 12; i++) {
        if (Py_TOLOWER((unsigned char)text[i]) != lower[i]) {
            return 0;
        }
    }
    return 1;
}

static int
check_content_type_value(PyObject *value)
{
    if (!PyUnicode_Check(value) && !PyBytes_Check(value)) {
        PyErr_Format(PyExc_TypeError,
                     "Content-Type header must be str or bytes, not %.100s",
                     Py_TYPE(value)->tp_name);
        return -1;
    }
    return 0;
}

/* Return a new reference to the Content-Type value of a dict, Py_None if
 * absent, or NULL on error.  Walks the dict in place, without a list of
 * items. */
static PyObject *
find_content_type_in_dict(PyObject *headers)
{
    Py_ssize_t pos = 0;
    PyObject *name, *value, *found = Py_None;

    /* Neither check below runs Python code, so the borrowed references
     * stay valid. */
    while (PyDict_Next(headers, &pos, &name, &value)) {
        int match = is_content_type_name(name);
        if (match < 0) {
            return NULL;
        }
        if (match) {
            if (check_content_type_value(value) < 0) {
                return NULL;
            }
            found = value;
        }
    }
    return Py_NewRef(found);
}

/* Return a new reference to the Content-Type value in headers (a mapping
 * or an iterable of pairs), Py_None if absent, or NULL on error.  When
 * several names match, the last one wins. */
static PyObject *
find_content_type(PyObject *headers)
{
    PyObject *items = NULL, *iterator = NULL, *item = NULL, *found = NULL;

    if (headers == Py_None) {
        return Py_NewRef(Py_None);
    }
    if (PyDict_CheckExact(headers)) {
        return find_content_type_in_dict(headers);
    }
    if (PyDict_Check(headers)) {
        items = PyDict_Items(headers);
    }
    else if (PyMapping_Check(headers) && !PyUnicode_Check(headers)
             && !PyBytes_Check(headers)
             && PyObject_HasAttrString(headers, "items")) {
        items = PyMapping_Items(headers);
    }
    else if (PyUnicode_Check(headers) || PyBytes_Check(headers)) {
        PyErr_SetString(PyExc_TypeError,
                        "headers must be a dict or (name, value) pairs, "
                        "not a string");
        return NULL;
    }
    else {
        items = Py_NewRef(headers);
    }
    if (items == NULL) {
        return NULL;
    }
    iterator = PyObject_GetIter(items);
    if (iterator == NULL) {
        PyErr_Format(PyExc_TypeError,
                     "headers must be a dict or (name, value) pairs, not "
                     "%.100s", Py_TYPE(headers)->tp_name);
        goto error;
    }
    while ((item = PyIter_Next(iterator)) != NULL) {
        int match;
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
            PyErr_SetString(PyExc_TypeError,
                            "each header must be a (name, value) pair");
            goto error;
        }
        match = is_content_type_name(PyTuple_GET_ITEM(item, 0));
        if (match < 0) {
            goto error;
        }
        if (match) {
            PyObject *value = PyTuple_GET_ITEM(item, 1);
            if (check_content_type_value(value) < 0) {
                goto error;
            }
            Py_XSETREF(found, Py_NewRef(value));
        }
        Py_CLEAR(item);
    }
    if (PyErr_Occurred()) {
        goto error;
    }
    Py_DECREF(iterator);
    Py_DECREF(items);
    return found != NULL ? found : Py_NewRef(Py_None);
error:
    Py_XDECREF(item);
    Py_XDECREF(iterator);
    Py_XDECREF(items);
    Py_XDECREF(found);
    return NULL;
}

/* Write value in decimal and a NUL to out (room for 21 bytes).  Return
 * the number of digits. */
static size_t
format_decimal(char *out, unsigned long long value)
{
    char digits[20];
    size_t count = 0, i;

    do {
        digits[count++] = (char)('0' + value % 10);
        value /= 10;
    } while (value != 0);
    for (i = 0; i < count; i++) {
        out[i] = digits[count - 1 - i];
    }
    out[count] = '\0';
    return count;
}

static int
parse_timestamp(PyObject *timestamp, char *out, size_t *out_len)
{
    if (PyLong_Check(timestamp) && !PyBool_Check(timestamp)) {
        int overflow = 0;
        long long value = PyLong_AsLongLongAndOverflow(timestamp, &overflow);
        if (value == -1 && PyErr_Occurred()) {
            return -1;
        }
        if (overflow || value < 0) {
            PyErr_SetString(PyExc_ValueError,
                            "timestamp must be a non-negative 64-bit "
                            "integer");
            return -1;
        }
        *out_len = format_decimal(out, (unsigned long long)value);
        return 0;
    }
    if (PyUnicode_Check(timestamp)) {
        Py_ssize_t len, i;
        const char *text = PyUnicode_AsUTF8AndSize(timestamp, &len);
        if (text == NULL) {
            return -1;
        }
        if (len < 1 || len > 19) {
            PyErr_SetString(PyExc_ValueError,
                            "timestamp must have 1 to 19 digits");
            return -1;
        }
        for (i = 0; i < len; i++) {
            if (text[i] < '0' || text[i] > '9') {
                PyErr_Format(PyExc_ValueError,
                             "timestamp must be decimal digits, got '%.20s'",
                             text);
                return -1;
            }
        }
        memcpy(out, text, (size_t)len + 1);
        *out_len = (size_t)len;
        return 0;
    }
    PyErr_Format(PyExc_TypeError, "timestamp must be int or str, not %.100s",
                 Py_TYPE(timestamp)->tp_name);
    return -1;
}

static long long last_timestamp_value = -1;
static char last_timestamp_text[24];
static size_t last_timestamp_length;

/* Fill the timestamp of call with time(NULL) + clock_offset. */
static int
current_timestamp(OAuth1Object *self, sign_call *call)
{
    time_t now = time(NULL);
    long long value;

    if (now == (time_t)-1) {
        PyErr_SetFromErrno(mwcomms_OAuthError);
        return -1;
    }
    value = (long long)now + self->clock_offset;
    if (value < 0) {
        PyErr_SetString(mwcomms_OAuthError,
                        "clock_offset makes the timestamp negative");
        return -1;
    }
    /* The same second comes back for every request made in it, so its
     * digits are kept (with the GIL held, like every call here). */
    if (value != last_timestamp_value) {
        last_timestamp_length = format_decimal(last_timestamp_text,
                                               (unsigned long long)value);
        last_timestamp_value = value;
    }
    memcpy(call->timestamp, last_timestamp_text, last_timestamp_length + 1);
    call->request.timestamp_len = last_timestamp_length;
    call->request.timestamp = call->timestamp;
    return 0;
}

/* Parameters of sign(), signature_base_string() and signed_parameters():
 * the first SIGN_POSITIONAL may be passed by position, and the first
 * SIGN_REQUIRED are required. */
enum {
    ARG_METHOD, ARG_URL, ARG_HEADERS, ARG_BODY, ARG_NONCE, ARG_TIMESTAMP,
    SIGN_ARG_COUNT
};
#define SIGN_POSITIONAL 4
#define SIGN_REQUIRED 2

static const char *const SIGN_KEYWORDS[SIGN_ARG_COUNT] = {
    "method", "url", "headers", "body", "nonce", "timestamp"};
/* Interned SIGN_KEYWORDS, so that most keyword lookups are a pointer
 * comparison.  Set by mwcomms_oauth_init(). */
static PyObject *sign_keyword_objects[SIGN_ARG_COUNT];

/* Sort vectorcall arguments into values (NULL for each one not given),
 * with the errors of PyArg_ParseTupleAndKeywords(). */
static int
parse_sign_arguments(const char *fname, PyObject *const *args,
                     Py_ssize_t nargs, PyObject *kwnames, PyObject **values)
{
    Py_ssize_t i, keyword_count;
    size_t j;

    for (j = 0; j < SIGN_ARG_COUNT; j++) {
        values[j] = NULL;
    }
    if (nargs > SIGN_POSITIONAL) {
        PyErr_Format(PyExc_TypeError,
                     "%s() takes at most %d positional arguments (%zd "
                     "given)", fname, SIGN_POSITIONAL, nargs);
        return -1;
    }
    for (i = 0; i < nargs; i++) {
        values[i] = args[i];
    }
    keyword_count = kwnames != NULL ? PyTuple_GET_SIZE(kwnames) : 0;
    for (i = 0; i < keyword_count; i++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i);
        for (j = 0; j < SIGN_ARG_COUNT; j++) {
            if (name == sign_keyword_objects[j]) {
                break;
            }
        }
        if (j == SIGN_ARG_COUNT) {
            for (j = 0; j < SIGN_ARG_COUNT; j++) {
                if (PyUnicode_CompareWithASCIIString(name,
                                                     SIGN_KEYWORDS[j]) == 0) {
                    break;
                }
            }
        }
        if (j == SIGN_ARG_COUNT) {
            PyErr_Format(PyExc_TypeError,
                         "%s() got an unexpected keyword argument '%S'",
                         fname, name);
            return -1;
        }
        if (values[j] != NULL) {
            PyErr_Format(PyExc_TypeError,
                         "%s() got multiple values for argument '%s'",
                         fname, SIGN_KEYWORDS[j]);
            return -1;
        }
        values[j] = args[nargs + i];
    }
    for (j = 0; j < SIGN_REQUIRED; j++) {
        if (values[j] == NULL) {
            PyErr_Format(PyExc_TypeError,
                         "%s() missing required argument '%s' (pos %zu)",
                         fname, SIGN_KEYWORDS[j], j + 1);
            return -1;
        }
    }
    for (j = SIGN_REQUIRED; j < SIGN_ARG_COUNT; j++) {
        if (values[j] == NULL) {
            values[j] = Py_None;
        }
    }
    return 0;
}

static int
parse_body(PyObject *body, sign_call *call)
{
    Py_ssize_t len;

    if (PyUnicode_Check(body)) {
        call->request.body = PyUnicode_AsUTF8AndSize(body, &len);
        if (call->request.body == NULL) {
            return -1;
        }
        call->request.body_len = (size_t)len;
    }
    else if (body != Py_None) {
        if (!PyObject_CheckBuffer(body)) {
            PyErr_Format(PyExc_TypeError,
                         "body must be None, str or bytes-like, not %.100s",
                         Py_TYPE(body)->tp_name);
            return -1;
        }
        if (PyObject_GetBuffer(body, &call->body_view, PyBUF_SIMPLE) < 0) {
            return -1;
        }
        call->request.body = call->body_view.buf;
        call->request.body_len = (size_t)call->body_view.len;
    }
    return 0;
}

static int
parse_nonce(PyObject *nonce, sign_call *call)
{
    Py_ssize_t len;

    if (nonce == Py_None) {
        if (oauth_make_nonce(call->nonce) < 0) {
            return -1;
        }
        call->request.nonce = call->nonce;
        call->request.nonce_len = OAUTH_NONCE_LEN;
        return 0;
    }
    call->request.nonce = text_argument(nonce, "nonce", &len);
    if (call->request.nonce == NULL) {
        return -1;
    }
    if (len == 0) {
        PyErr_SetString(PyExc_ValueError, "nonce must not be empty");
        return -1;
    }
    call->request.nonce_len = (size_t)len;
    return 0;
}

/* Convert the arguments shared by sign(), signature_base_string() and
 * signed_parameters(), sorted by parse_sign_arguments().  With need_fixed,
 * nonce and timestamp are required.  The caller zeroes call first and
 * releases it with sign_call_release() whatever this returns. */
static int
parse_sign_call(OAuth1Object *self, PyObject **values, const char *fname,
                int need_fixed, sign_call *call)
{
    PyObject *method = values[ARG_METHOD], *url = values[ARG_URL];
    Py_ssize_t len;

    if (check_initialized(self) < 0) {
        return -1;
    }
    if (need_fixed && (values[ARG_NONCE] == Py_None
                       || values[ARG_TIMESTAMP] == Py_None)) {
        PyErr_Format(PyExc_TypeError,
                     "%s() needs the keyword arguments nonce and timestamp",
                     fname);
        return -1;
    }
    call->request.method = text_argument(method, "method", &len);
    if (call->request.method == NULL) {
        return -1;
    }
    call->request.method_len = (size_t)len;
    if (!PyUnicode_Check(url)) {
        PyErr_Format(PyExc_TypeError, "%s() argument 'url' must be str, "
                     "not %.100s", fname, Py_TYPE(url)->tp_name);
        return -1;
    }
    call->request.url = PyUnicode_AsUTF8AndSize(url, &len);
    if (call->request.url == NULL) {
        return -1;
    }
    if (memchr(call->request.url, '\0', (size_t)len) != NULL) {
        PyErr_SetString(mwcomms_InvalidURL,
                        "invalid URL: it contains a NUL character");
        return -1;
    }
    call->request.url_len = (size_t)len;

    call->content_type = find_content_type(values[ARG_HEADERS]);
    if (call->content_type == NULL) {
        return -1;
    }
    if (PyUnicode_Check(call->content_type)) {
        call->request.content_type = PyUnicode_AsUTF8AndSize(
            call->content_type, &len);
        if (call->request.content_type == NULL) {
            return -1;
        }
        call->request.content_type_len = (size_t)len;
    }
    else if (PyBytes_Check(call->content_type)) {
        call->request.content_type = PyBytes_AS_STRING(call->content_type);
        call->request.content_type_len =
            (size_t)PyBytes_GET_SIZE(call->content_type);
    }

    if (parse_body(values[ARG_BODY], call) < 0
            || parse_nonce(values[ARG_NONCE], call) < 0) {
        return -1;
    }
    if (values[ARG_TIMESTAMP] == Py_None) {
        return current_timestamp(self, call);
    }
    if (parse_timestamp(values[ARG_TIMESTAMP], call->timestamp,
                        &call->request.timestamp_len) < 0) {
        return -1;
    }
    call->request.timestamp = call->timestamp;
    return 0;
}

/* Parse the arguments of fname and sign into out.  Return 0, or -1 with
 * an exception set.  The caller releases call. */
static int
sign_arguments(OAuth1Object *self, const char *fname, int need_fixed,
               PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
               sign_call *call, oauth_output *out)
{
    PyObject *values[SIGN_ARG_COUNT];

    if (parse_sign_arguments(fname, args, nargs, kwnames, values) < 0
            || parse_sign_call(self, values, fname, need_fixed, call) < 0
            || oauth_sign(&self->creds, &call->request, out) < 0) {
        return -1;
    }
    return 0;
}

/* Return a str of the len ASCII characters at data.  Only for text that
 * the signer built from percent-encoded values and fixed ASCII text, which
 * is ASCII by construction, so it is copied without a check. */
static PyObject *
signer_ascii_string(const char *data, size_t len)
{
    PyObject *result = PyUnicode_New((Py_ssize_t)len, 127);

    if (result != NULL) {
        memcpy(PyUnicode_1BYTE_DATA(result), data, len);
    }
    return result;
}

/* Typical headers fit, so sign() needs no heap buffer. */
#define HEADER_STACK_SIZE 1024

static PyObject *
OAuth1_sign(OAuth1Object *self, PyObject *const *args, Py_ssize_t nargs,
            PyObject *kwnames)
{
    sign_call call;
    char storage[HEADER_STACK_SIZE];
    oauth_buf header;
    oauth_output out = {NULL, &header, NULL};
    PyObject *result = NULL;

    memset(&call, 0, sizeof(call));
    oauth_buf_init(&header, storage, sizeof(storage));
    if (sign_arguments(self, "sign", 0, args, nargs, kwnames, &call,
                       &out) == 0) {
        result = signer_ascii_string(header.data, header.len);
    }
    sign_call_release(&call);
    oauth_buf_free(&header);
    return result;
}

static PyObject *
OAuth1_signature_base_string(OAuth1Object *self, PyObject *const *args,
                             Py_ssize_t nargs, PyObject *kwnames)
{
    sign_call call;
    oauth_buf base = OAUTH_BUF_INIT;
    oauth_output out = {&base, NULL, NULL};
    PyObject *result = NULL;

    memset(&call, 0, sizeof(call));
    if (sign_arguments(self, "signature_base_string", 1, args, nargs,
                       kwnames, &call, &out) == 0) {
        result = signer_ascii_string(base.data, base.len);
    }
    sign_call_release(&call);
    oauth_buf_free(&base);
    return result;
}

/* Decode one section 3.6 encoded string into str (invalid UTF-8 octets
 * become lone surrogates, as with errors='surrogateescape'). */
static PyObject *
decode_encoded(const char *data, size_t len)
{
    char *raw = NULL;
    size_t i, n = 0;
    PyObject *result;

    raw = PyMem_Malloc(len + 1);
    if (raw == NULL) {
        return PyErr_NoMemory();
    }
    for (i = 0; i < len; i++) {
        if (data[i] == '%' && i + 2 < len) {
            int high = data[i + 1] >= 'A' ? data[i + 1] - 'A' + 10
                                          : data[i + 1] - '0';
            int low = data[i + 2] >= 'A' ? data[i + 2] - 'A' + 10
                                         : data[i + 2] - '0';
            raw[n++] = (char)(high * 16 + low);
            i += 2;
        }
        else {
            raw[n++] = data[i];
        }
    }
    result = PyUnicode_DecodeUTF8(raw, (Py_ssize_t)n, "surrogateescape");
    PyMem_Free(raw);
    return result;
}

static PyObject *
OAuth1_signed_parameters(OAuth1Object *self, PyObject *const *args,
                         Py_ssize_t nargs, PyObject *kwnames)
{
    sign_call call;
    oauth_buf params = OAUTH_BUF_INIT;
    oauth_output out = {NULL, NULL, &params};
    PyObject *result = NULL, *pair = NULL, *name = NULL, *value = NULL;
    size_t start = 0;

    memset(&call, 0, sizeof(call));
    if (sign_arguments(self, "signed_parameters", 1, args, nargs, kwnames,
                       &call, &out) < 0) {
        goto error;
    }
    result = PyList_New(0);
    if (result == NULL) {
        goto error;
    }
    /* Encoded names and values never contain "=" or "&", so splitting the
     * normalized string is exact. */
    while (start < params.len) {
        const char *item = params.data + start;
        const char *amp = memchr(item, '&', params.len - start);
        size_t item_len = amp ? (size_t)(amp - item) : params.len - start;
        const char *eq = memchr(item, '=', item_len);
        size_t name_len = (size_t)(eq - item);

        name = decode_encoded(item, name_len);
        value = name ? decode_encoded(eq + 1, item_len - name_len - 1) : NULL;
        pair = value ? PyTuple_Pack(2, name, value) : NULL;
        if (pair == NULL || PyList_Append(result, pair) < 0) {
            goto error;
        }
        Py_CLEAR(name);
        Py_CLEAR(value);
        Py_CLEAR(pair);
        start += item_len + 1;
    }
    sign_call_release(&call);
    oauth_buf_free(&params);
    return result;
error:
    Py_XDECREF(name);
    Py_XDECREF(value);
    Py_XDECREF(pair);
    Py_XDECREF(result);
    sign_call_release(&call);
    oauth_buf_free(&params);
    return NULL;
}

static PyObject *
OAuth1_refuse_pickle(OAuth1Object *self, PyObject *args)
{
    PyErr_SetString(PyExc_TypeError,
                    "OAuth1 objects cannot be pickled or copied because "
                    "they contain secrets");
    return NULL;
}

static PyObject *
OAuth1_repr(OAuth1Object *self)
{
    if (!self->initialized) {
        return PyUnicode_FromString("<_mwcomms.OAuth1 (uninitialized)>");
    }
    return PyUnicode_FromFormat(
        "<_mwcomms.OAuth1 consumer_key=%R token=%R signature_method=%R>",
        self->consumer_key_obj, self->token_obj ? self->token_obj : Py_None,
        self->method_obj);
}

static PyObject *
get_object(PyObject *obj)
{
    return Py_NewRef(obj != NULL ? obj : Py_None);
}

static PyObject *
OAuth1_get_consumer_key(OAuth1Object *self, void *closure)
{
    return get_object(self->consumer_key_obj);
}

static PyObject *
OAuth1_get_token(OAuth1Object *self, void *closure)
{
    return get_object(self->token_obj);
}

static PyObject *
OAuth1_get_signature_method(OAuth1Object *self, void *closure)
{
    return get_object(self->method_obj);
}

static PyObject *
OAuth1_get_realm(OAuth1Object *self, void *closure)
{
    return get_object(self->realm_obj);
}

static PyObject *
OAuth1_get_clock_offset(OAuth1Object *self, void *closure)
{
    return PyLong_FromLongLong(self->clock_offset);
}

static int
OAuth1_set_clock_offset(OAuth1Object *self, PyObject *value, void *closure)
{
    int overflow = 0;
    long long offset;

    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError,
                        "clock_offset cannot be deleted");
        return -1;
    }
    if (!PyLong_Check(value) || PyBool_Check(value)) {
        PyErr_Format(PyExc_TypeError, "clock_offset must be int, not %.100s",
                     Py_TYPE(value)->tp_name);
        return -1;
    }
    offset = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (offset == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (overflow || offset > MAX_CLOCK_OFFSET || offset < -MAX_CLOCK_OFFSET) {
        PyErr_SetString(PyExc_ValueError,
                        "clock_offset is out of range (at most a century "
                        "in seconds)");
        return -1;
    }
    /* Readers and this writer all hold the GIL. */
    self->clock_offset = offset;
    return 0;
}

static PyGetSetDef OAuth1_getset[] = {
    {"consumer_key", (getter)OAuth1_get_consumer_key, NULL,
     "Consumer (client) key.", NULL},
    {"token", (getter)OAuth1_get_token, NULL,
     "Token (access or temporary credential identifier), or None.", NULL},
    {"signature_method", (getter)OAuth1_get_signature_method, NULL,
     "Signature method name, such as 'HMAC-SHA1'.", NULL},
    {"realm", (getter)OAuth1_get_realm, NULL,
     "Realm sent in the Authorization header, or None.", NULL},
    {"clock_offset", (getter)OAuth1_get_clock_offset,
     (setter)OAuth1_set_clock_offset,
     "Seconds added to time(NULL) for oauth_timestamp (int).", NULL},
    {NULL},
};

PyDoc_STRVAR(sign_doc,
"sign(method, url, headers=None, body=None, *, nonce=None, timestamp=None)\n"
"--\n\n"
"Return the Authorization header value for a request (RFC 5849).\n\n"
"headers is None, a dict or (name, value) pairs; only Content-Type is\n"
"read.  body is None, str or bytes-like and is signed only when the\n"
"Content-Type is application/x-www-form-urlencoded and the method is\n"
"not GET or HEAD.  nonce defaults to 32 hex digits from RAND_bytes,\n"
"timestamp to time(NULL) + clock_offset.");

PyDoc_STRVAR(base_string_doc,
"signature_base_string(method, url, headers=None, body=None, *, nonce,\n"
"                      timestamp)\n"
"--\n\n"
"Return the signature base string of RFC 5849 section 3.4.1.");

PyDoc_STRVAR(signed_parameters_doc,
"signed_parameters(method, url, headers=None, body=None, *, nonce,\n"
"                  timestamp)\n"
"--\n\n"
"Return the signed (name, value) pairs, decoded, in normalized order.");

static PyMethodDef OAuth1_methods[] = {
    {"sign", (PyCFunction)(void (*)(void))OAuth1_sign,
     METH_FASTCALL | METH_KEYWORDS, sign_doc},
    {"signature_base_string",
     (PyCFunction)(void (*)(void))OAuth1_signature_base_string,
     METH_FASTCALL | METH_KEYWORDS, base_string_doc},
    {"signed_parameters",
     (PyCFunction)(void (*)(void))OAuth1_signed_parameters,
     METH_FASTCALL | METH_KEYWORDS, signed_parameters_doc},
    {"__reduce__", (PyCFunction)OAuth1_refuse_pickle, METH_NOARGS, NULL},
    {"__reduce_ex__", (PyCFunction)OAuth1_refuse_pickle, METH_VARARGS, NULL},
    {"__getstate__", (PyCFunction)OAuth1_refuse_pickle, METH_NOARGS, NULL},
    {"__copy__", (PyCFunction)OAuth1_refuse_pickle, METH_NOARGS, NULL},
    {"__deepcopy__", (PyCFunction)OAuth1_refuse_pickle, METH_VARARGS, NULL},
    {NULL},
};

PyDoc_STRVAR(OAuth1_doc,
"OAuth1(consumer_key, consumer_secret, token=None, token_secret=None, *,\n"
"       signature_method='HMAC-SHA1', rsa_key=None, realm=None,\n"
"       callback=None, verifier=None, version='1.0', clock_offset=0)\n"
"--\n\n"
"OAuth 1.0a client credentials that sign requests (RFC 5849).\n\n"
"signature_method is 'HMAC-SHA1', 'HMAC-SHA256', 'RSA-SHA1' (with\n"
"rsa_key, an unencrypted PEM private key) or 'PLAINTEXT'.  version\n"
"None leaves oauth_version out.  callback and verifier are sent as\n"
"oauth_callback and oauth_verifier.  The secrets and the key cannot be\n"
"read back, and the object cannot be pickled or copied.");

static PyTypeObject OAuth1_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "_mwcomms.OAuth1",
    .tp_basicsize = sizeof(OAuth1Object),
    .tp_dealloc = (destructor)OAuth1_dealloc,
    .tp_repr = (reprfunc)OAuth1_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = OAuth1_doc,
    .tp_methods = OAuth1_methods,
    .tp_getset = OAuth1_getset,
    .tp_init = (initproc)OAuth1_init,
    .tp_new = PyType_GenericNew,
};

/* ---- module functions and the C interface ----------------------------- */

static PyObject *
oauth_percent_encode(PyObject *module, PyObject *arg)
{
    oauth_buf out = OAUTH_BUF_INIT;
    const char *data;
    Py_ssize_t len;
    PyObject *result;

    if (PyUnicode_Check(arg)) {
        data = PyUnicode_AsUTF8AndSize(arg, &len);
        if (data == NULL) {
            return NULL;
        }
    }
    else if (PyBytes_Check(arg)) {
        data = PyBytes_AS_STRING(arg);
        len = PyBytes_GET_SIZE(arg);
    }
    else {
        PyErr_Format(PyExc_TypeError,
                     "oauth_percent_encode() needs str or bytes, not %.100s",
                     Py_TYPE(arg)->tp_name);
        return NULL;
    }
    if (oauth_buf_append_encoded(&out, data, (size_t)len) < 0
            || oauth_buf_append(&out, "", 0) < 0) {
        oauth_buf_free(&out);
        return NULL;
    }
    result = PyUnicode_DecodeASCII(out.data, (Py_ssize_t)out.len, "strict");
    oauth_buf_free(&out);
    return result;
}

/* Upper limits of _oauth_floor(), which holds no lock while it runs but
 * should still end in seconds. */
#define FLOOR_MAX_BYTES ((Py_ssize_t)1 << 24)
#define FLOOR_MAX_ITERATIONS ((Py_ssize_t)100000000)

static PyObject *
oauth_floor(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"n_bytes", "iterations", "pooled_nonce",
                               NULL};
    Py_ssize_t n_bytes, iterations;
    int pooled_nonce = 0, rc;
    double seconds = 0.0;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "nn|$p:_oauth_floor",
                                     keywords, &n_bytes, &iterations,
                                     &pooled_nonce)) {
        return NULL;
    }
    if (n_bytes < 0 || n_bytes > FLOOR_MAX_BYTES) {
        PyErr_Format(PyExc_ValueError, "n_bytes must be 0 to %zd, not %zd",
                     FLOOR_MAX_BYTES, n_bytes);
        return NULL;
    }
    if (iterations < 1 || iterations > FLOOR_MAX_ITERATIONS) {
        PyErr_Format(PyExc_ValueError,
                     "iterations must be 1 to %zd, not %zd",
                     FLOOR_MAX_ITERATIONS, iterations);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    rc = oauth_time_floor((size_t)n_bytes, (size_t)iterations, pooled_nonce,
                          &seconds);
    Py_END_ALLOW_THREADS
    if (rc < 0) {
        return PyErr_Occurred() ? NULL
            : (oauth_raise_openssl(mwcomms_OAuthError,
                                   "timing the signature floor failed"),
               NULL);
    }
    return PyFloat_FromDouble(seconds);
}

static PyMethodDef oauth_functions[] = {
    {"oauth_percent_encode", (PyCFunction)oauth_percent_encode, METH_O,
     PyDoc_STR("oauth_percent_encode(value)\n--\n\n"
               "Percent-encode str (as UTF-8) or bytes as in RFC 5849 "
               "section 3.6.")},
    {"_oauth_floor", (PyCFunction)(void (*)(void))oauth_floor,
     METH_VARARGS | METH_KEYWORDS,
     PyDoc_STR("_oauth_floor(n_bytes, iterations, *, pooled_nonce=False)\n"
               "--\n\n"
               "Benchmark helper, not an API: return the mean seconds per\n"
               "iteration of a nonce (RAND_bytes(), or the nonce pool when\n"
               "pooled_nonce), HMAC-SHA1 over n_bytes bytes from a\n"
               "precomputed key schedule, and base64.  The GIL is released\n"
               "while it runs.")},
    {NULL},
};

int
mwcomms_oauth_init(PyObject *module)
{
    size_t i;

    for (i = 0; i < SIGN_ARG_COUNT; i++) {
        if (sign_keyword_objects[i] == NULL) {
            /* Kept for the life of the process, like interned names. */
            sign_keyword_objects[i] = PyUnicode_InternFromString(
                SIGN_KEYWORDS[i]);
            if (sign_keyword_objects[i] == NULL) {
                return -1;
            }
        }
    }
    if (PyType_Ready(&OAuth1_Type) < 0
            || PyModule_AddObjectRef(module, "OAuth1",
                                     (PyObject *)&OAuth1_Type) < 0
            || PyModule_AddFunctions(module, oauth_functions) < 0) {
        return -1;
    }
    return 0;
}

int
mwcomms_oauth_check(PyObject *obj)
{
    return Py_IS_TYPE(obj, &OAuth1_Type);
}

int
mwcomms_oauth_authorization(PyObject *oauth, const char *method,
                            const char *url, const char *content_type,
                            const char *body, Py_ssize_t body_len,
                            oauth_buf *header)
{
    OAuth1Object *self = (OAuth1Object *)oauth;
    sign_call call;
    oauth_output out = {NULL, header, NULL};

    if (!mwcomms_oauth_check(oauth)) {
        PyErr_SetString(PyExc_TypeError, "expected an _mwcomms.OAuth1");
        return -1;
    }
    memset(&call, 0, sizeof(call));
    if (check_initialized(self) < 0 || oauth_make_nonce(call.nonce) < 0
            || current_timestamp(self, &call) < 0) {
        return -1;
    }
    call.request.method = method;
    call.request.method_len = strlen(method);
    call.request.url = url;
    call.request.url_len = strlen(url);
    call.request.content_type = content_type;
    call.request.content_type_len = content_type ? strlen(content_type) : 0;
    call.request.body = body;
    call.request.body_len = body != NULL && body_len > 0 ? (size_t)body_len
                                                         : 0;
    call.request.nonce = call.nonce;
    call.request.nonce_len = OAUTH_NONCE_LEN;
    /* A hex nonce and a decimal timestamp. */
    call.request.unreserved_values = 1;
    return oauth_sign(&self->creds, &call.request, &out);
}
