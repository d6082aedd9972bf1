/*
 * Verification of the JSON Web Token that MediaWiki's
 * Special:OAuth/identify returns: compact serialization (RFC 7515),
 * HS256 (HMAC-SHA256, RFC 7518 section 3.2) keyed with the consumer
 * secret.
 *
 * C checks the structure and the MAC; the caller parses the two JSON
 * parts and checks the header's alg and the claims.
 */
#include "mwcomms.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

/* An identify token is a few hundred bytes; anything far larger is not
 * one, and the cap keeps the decode buffers small. */
#define MAX_TOKEN_LENGTH (64 * 1024)
#define HS256_LENGTH 32

/* Return the value of one base64url character (RFC 4648 section 5),
 * or -1. */
static int
base64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '-') {
        return 62;
    }
    if (c == '_') {
        return 63;
    }
    return -1;
}

/* Decode unpadded base64url text into out, which has room for
 * len * 3 / 4 + 3 bytes.  Return the decoded length, or -1 when the text
 * is not base64url. */
static Py_ssize_t
base64url_decode(const char *text, Py_ssize_t len, unsigned char *out)
{
    Py_ssize_t used = 0;
    unsigned int bits = 0;
    int bit_count = 0;

    if (len % 4 == 1) {
        return -1;
    }
    for (Py_ssize_t i = 0; i < len; i++) {
        int value = base64url_value((unsigned char)text[i]);

        if (value < 0) {
            return -1;
        }
        bits = (bits << 6) | (unsigned int)value;
        bit_count += 6;
        if (bit_count >= 8) {
            bit_count -= 8;
            out[used++] = (unsigned char)((bits >> bit_count) & 0xFF);
        }
    }
    /* The unused low bits of the last character must be zero, so that
     * each token has exactly one encoding. */
    if (bit_count > 0 && (bits & ((1u << bit_count) - 1)) != 0) {
        return -1;
    }
    return used;
}

/* Return bytes decoded from one base64url part, or NULL with ValueError
 * naming the part. */
static PyObject *
decode_part(const char *text, Py_ssize_t len, const char *part)
{
    PyObject *result = NULL;
    unsigned char *buffer = NULL;
    Py_ssize_t used;

    buffer = PyMem_Malloc((size_t)len * 3 / 4 + 3);
    if (buffer == NULL) {
        return PyErr_NoMemory();
    }
    used = base64url_decode(text, len, buffer);
    if (used < 0) {
        PyErr_Format(PyExc_ValueError,
                     "invalid JWT: the %s is not base64url", part);
        goto done;
    }
    result = PyBytes_FromStringAndSize((const char *)buffer, used);

done:
    PyMem_Free(buffer);
    return result;
}

PyDoc_STRVAR(jwt_verify_hs256_doc,
"jwt_verify_hs256(token, key, /)\n"
"--\n"
"\n"
"Check the HS256 signature of a compact JWT and return its parts.\n"
"\n"
"token and key are str (UTF-8) or bytes.  Return (header, payload) as\n"
"the decoded JSON bytes; the caller must still check that the header's\n"
"alg is HS256 and validate the claims.  Raise ValueError when the token\n"
"is malformed or the signature does not match (compared in constant\n"
"time).  Neither the key nor the token appears in a message.");

static PyObject *
jwt_verify_hs256(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer token = {NULL, NULL};
    Py_buffer key = {NULL, NULL};
    PyObject *token_bytes = NULL;
    PyObject *key_bytes = NULL;
    PyObject *header = NULL;
    PyObject *payload = NULL;
    PyObject *result = NULL;
    unsigned char expected[HS256_LENGTH];
    unsigned char given[HS256_LENGTH + 3];
    unsigned int mac_length = 0;
    const char *text;
    const char *first_dot;
    const char *second_dot;
    Py_ssize_t signature_length;

    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError,
                     "jwt_verify_hs256() takes 2 arguments (%zd given)",
                     nargs);
        return NULL;
    }
    if (PyUnicode_Check(args[0])) {
        token_bytes = PyUnicode_AsUTF8String(args[0]);
    }
    else if (PyBytes_Check(args[0])) {
        token_bytes = Py_NewRef(args[0]);
    }
    else {
        PyErr_Format(PyExc_TypeError,
                     "token must be str or bytes, not %.100s",
                     Py_TYPE(args[0])->tp_name);
        return NULL;
    }
    if (token_bytes == NULL) {
        return NULL;
    }
    if (PyUnicode_Check(args[1])) {
        key_bytes = PyUnicode_AsUTF8String(args[1]);
    }
    else if (PyBytes_Check(args[1])) {
        key_bytes = Py_NewRef(args[1]);
    }
    else {
        PyErr_Format(PyExc_TypeError, "key must be str or bytes, not %.100s",
                     Py_TYPE(args[1])->tp_name);
        goto error;
    }
    if (key_bytes == NULL) {
        goto error;
    }
    if (PyObject_GetBuffer(token_bytes, &token, PyBUF_SIMPLE) < 0
            || PyObject_GetBuffer(key_bytes, &key, PyBUF_SIMPLE) < 0) {
        goto error;
    }
    if (token.len > MAX_TOKEN_LENGTH) {
        PyErr_Format(PyExc_ValueError,
                     "invalid JWT: %zd bytes is longer than the %d allowed",
                     token.len, MAX_TOKEN_LENGTH);
        goto error;
    }
    text = token.buf;
    if (memchr(text, '\0', (size_t)token.len) != NULL) {
        PyErr_SetString(PyExc_ValueError, "invalid JWT: it contains NUL");
        goto error;
    }
    first_dot = memchr(text, '.', (size_t)token.len);
    second_dot = first_dot == NULL ? NULL
        : memchr(first_dot + 1, '.',
                 (size_t)(text + token.len - first_dot - 1));
    if (first_dot == NULL || second_dot == NULL
            || memchr(second_dot + 1, '.',
                      (size_t)(text + token.len - second_dot - 1)) != NULL) {
        PyErr_SetString(PyExc_ValueError,
                        "invalid JWT: expected three parts separated by '.'");
        goto error;
    }
    signature_length = text + token.len - second_dot - 1;
    /* 32 bytes of HMAC-SHA256 are 43 base64url characters. */
    if (signature_length != 43
            || base64url_decode(second_dot + 1, signature_length, given)
               != HS256_LENGTH) {
        PyErr_SetString(PyExc_ValueError,
                        "invalid JWT: the signature is not an HS256 MAC");
        goto error;
    }
    if (HMAC(EVP_sha256(), key.buf, (int)key.len,
             (const unsigned char *)text, (size_t)(second_dot - text),
             expected, &mac_length) == NULL
            || mac_length != HS256_LENGTH) {
        PyErr_SetString(PyExc_ValueError,
                        "invalid JWT: HMAC-SHA256 failed in OpenSSL");
        goto error;
    }
    if (CRYPTO_memcmp(expected, given, HS256_LENGTH) != 0) {
        PyErr_SetString(PyExc_ValueError,
                        "invalid JWT signature: it was not made with this "
                        "consumer secret");
        goto error;
    }
    header = decode_part(text, first_dot - text, "header");
    if (header == NULL) {
        goto error;
    }
    payload = decode_part(first_dot + 1, second_dot - first_dot - 1,
                          "payload");
    if (payload == NULL) {
        goto error;
    }
    result = PyTuple_Pack(2, header, payload);

error:
    OPENSSL_cleanse(expected, sizeof(expected));
    if (key.buf != NULL) {
        PyBuffer_Release(&key);
    }
    if (token.buf != NULL) {
        PyBuffer_Release(&token);
    }
    Py_XDECREF(header);
    Py_XDECREF(payload);
    Py_XDECREF(key_bytes);
    Py_XDECREF(token_bytes);
    return result;
}

static PyMethodDef jwt_functions[] = {
    {"jwt_verify_hs256", (PyCFunction)(void (*)(void))jwt_verify_hs256, METH_FASTCALL,
     jwt_verify_hs256_doc},
    {NULL, NULL, 0, NULL}
};

int
mwcomms_jwt_init(PyObject *module)
{
    return PyModule_AddFunctions(module, jwt_functions);
}
