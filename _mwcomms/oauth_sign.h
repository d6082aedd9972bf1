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

typedef enum {
    OAUTH_HMAC_SHA1,
    OAUTH_HMAC_SHA256,
    OAUTH_RSA_SHA1,
    OAUTH_PLAINTEXT,
} oauth_method;

/* Growing byte buffer in PyMem memory, always NUL-terminated once
 * anything was appended. */
typedef struct {
    char *data;
    size_t len;
    size_t cap;
} oauth_buf;

/* Immutable credential data read by the signer. */
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
    EVP_MAC_CTX *mac_template;  /* HMAC methods: keyed context to copy */
    EVP_PKEY *rsa_key;          /* RSA-SHA1 only */
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
} oauth_request;

/* Results of oauth_sign().  Each buffer the caller passes non-NULL is
 * filled; the caller frees all of them with oauth_buf_free(). */
typedef struct {
    oauth_buf *base_string;
    oauth_buf *header;
    /* Normalized parameters as name "=" value "&" ..., encoded. */
    oauth_buf *parameters;
} oauth_output;

void oauth_buf_free(oauth_buf *buf);
/* Make room for extra more bytes (and a NUL) without moving later. */
int oauth_buf_reserve(oauth_buf *buf, size_t extra);
int oauth_buf_append(oauth_buf *buf, const char *data, size_t len);
int oauth_buf_append_encoded(oauth_buf *buf, const char *data, size_t len);

/* Compute the signature of request with creds and fill out.  Return 0, or
 * -1 with an exception set (ValueError or InvalidURL for bad input,
 * OAuthError for OpenSSL failures). */
int oauth_sign(const oauth_credentials *creds, const oauth_request *request,
               oauth_output *out);

/* Raise exc with message followed by the text of OpenSSL's error queue,
 * then clear the queue.  Always return -1. */
int oauth_raise_openssl(PyObject *exc, const char *message);

/* Fill buf with 32 lower-case hex digits from 16 bytes of RAND_bytes.
 * buf must have room for 33 bytes.  Return 0 or -1 with an exception. */
int oauth_make_nonce(char *buf);

#endif /* MWCOMMS_OAUTH_SIGN_H */
