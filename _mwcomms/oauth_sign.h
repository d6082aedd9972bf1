/*
 * OAuth 1.0a signature computation (RFC 5849 section 3.4), free of Python
 * objects so that oauth.c can call it for both the Python API and the HTTP
 * client.  Errors are raised as Python exceptions, so the GIL must be held.
 */
#ifndef MWCOMMS_OAUTH_SIGN_H
#define MWCOMMS_OAUTH_SIGN_H

#include "mwcomms.h"

#include <openssl/evp.h>

/* Limits on the inputs of one signature.  A MediaWiki edit form contains
 * the page text (at most 2 MiB by default, $wgMaxArticleSize), so the body
 * limit leaves room for percent-encoded large pages. */
#define OAUTH_MAX_URL_LEN ((size_t)1 << 20)
#define OAUTH_MAX_BODY_LEN ((size_t)64 << 20)
#define OAUTH_MAX_PARAMS 10000
#define OAUTH_MAX_FIELD_LEN 4096

/* Length of the nonce that oauth_make_nonce() writes: 32 hex digits. */
#define OAUTH_NONCE_LEN 32

typedef enum {
    OAUTH_HMAC_SHA1,
    OAUTH_HMAC_SHA256,
    OAUTH_RSA_SHA1,
    OAUTH_PLAINTEXT,
} oauth_method;

/* Growing byte buffer, always NUL-terminated once anything was appended.
 * It starts in caller-provided storage (often on the stack) when set up
 * with oauth_buf_init(), and moves to PyMem memory when it outgrows it. */
typedef struct oauth_buf {
    char *data;
    size_t len;
    size_t cap;
    char *storage;              /* initial storage, never freed, or NULL */
} oauth_buf;

#define OAUTH_BUF_INIT {NULL, 0, 0, NULL}

/* One name=value pair, both percent-encoded twice (as they appear in the
 * signature base string). */
typedef struct {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} oauth_param;

/* HMAC key schedule: hash states after the inner and outer padded key. */
typedef struct oauth_hmac_key oauth_hmac_key;

/* Immutable credential data read by the signer.  oauth.c fills the
 * fields up to rsa_key, then oauth_credentials_prepare() derives the
 * rest. */
typedef struct {
    oauth_method method;
    const char *method_name;
    const char *consumer_key;
    const char *token;          /* NULL: no oauth_token */
    const char *realm;          /* NULL: no realm in the header */
    const char *callback;       /* NULL: no oauth_callback */
    const char *verifier;       /* NULL: no oauth_verifier */
    const char *version;        /* NULL: no oauth_version */
    /* enc(consumer_secret) "&" enc(token_secret): the HMAC key and the
     * PLAINTEXT signature. */
    const char *key;
    size_t key_len;
    EVP_PKEY *rsa_key;          /* RSA-SHA1 only */

    /* Set by oauth_credentials_prepare(). */
    oauth_hmac_key *hmac_key;   /* HMAC methods only */
    char *prepared;             /* PyMem block behind the strings below */
    /* Authorization header up to the oauth_timestamp value, and from the
     * closing quote of the oauth_nonce value up to the signature. */
    const char *header_head;
    size_t header_head_len;
    const char *header_tail;
    size_t header_tail_len;
    /* oauth_* parameters that do not change between requests, sorted by
     * name, and the indexes in it before which oauth_nonce and
     * oauth_timestamp sort. */
    oauth_param protocol[6];
    size_t protocol_count;
    size_t protocol_nonce_index;
    size_t protocol_timestamp_index;
} oauth_credentials;

/* One request to sign.  Strings are UTF-8 with explicit lengths. */
typedef struct {
    const char *method;
    size_t method_len;
    const char *url;
    size_t url_len;
    const char *content_type;   /* NULL when absent */
    size_t content_type_len;
    const char *body;           /* NULL when absent */
    size_t body_len;
    const char *nonce;
    size_t nonce_len;
    const char *timestamp;
    size_t timestamp_len;
    /* 1: nonce and timestamp contain only unreserved characters (a nonce
     * from oauth_make_nonce() and a decimal timestamp), so that they are
     * copied without percent-encoding. */
    int unreserved_values;
} oauth_request;

/* Results of oauth_sign().  oauth_sign() appends to each buffer that the
 * caller passes non-NULL, and the caller frees it with oauth_buf_free(). */
typedef struct {
    oauth_buf *base_string;
    oauth_buf *header;
    /* Normalized parameters as name "=" value "&" ..., encoded once. */
    oauth_buf *parameters;
} oauth_output;

/* Start buf empty in storage of size bytes (size > 0). */
void oauth_buf_init(oauth_buf *buf, char *storage, size_t size);
void oauth_buf_free(oauth_buf *buf);
/* Make room for extra more bytes (and a NUL) without moving later. */
int oauth_buf_reserve(oauth_buf *buf, size_t extra);
int oauth_buf_append(oauth_buf *buf, const char *data, size_t len);
int oauth_buf_append_encoded(oauth_buf *buf, const char *data, size_t len);

/* Derive the HMAC key schedule, the fixed header parts and the fixed
 * protocol parameters of creds.  Return 0, or -1 with an exception set.
 * oauth_credentials_release() frees what it made, also after a failure. */
int oauth_credentials_prepare(oauth_credentials *creds);
void oauth_credentials_release(oauth_credentials *creds);

/* Compute the signature of request with prepared creds and fill out.
 * Return 0, or -1 with an exception set (ValueError or InvalidURL for bad
 * input, OAuthError for OpenSSL failures). */
int oauth_sign(const oauth_credentials *creds, const oauth_request *request,
               oauth_output *out);

/* Raise exc with message followed by the text of OpenSSL's error queue,
 * then clear the queue.  Always return -1. */
int oauth_raise_openssl(PyObject *exc, const char *message);

/* Fill buf with OAUTH_NONCE_LEN lower-case hex digits from 16 random
 * bytes and a NUL.  The bytes come from a per-thread pool that one
 * RAND_bytes() call refills (see oauth_sign.c).  Return 0 or -1 with an
 * exception. */
int oauth_make_nonce(char *buf);

/* Time the part of an HMAC-SHA1 signature that no signer can skip: a
 * nonce (one RAND_bytes() call, or one from the pool of
 * oauth_make_nonce() when pooled_nonce), HMAC-SHA1 over data_len bytes
 * from the precomputed key schedule, and base64.  Store the mean seconds
 * per signature in *seconds.  Safe without the GIL.  Return 0, or -1 on
 * an OpenSSL failure (its error queue is left for the caller). */
int oauth_time_floor(size_t data_len, size_t iterations, int pooled_nonce,
                     double *seconds);

#endif /* MWCOMMS_OAUTH_SIGN_H */
