/*
 * Private header shared by the C sources of the _mwcomms extension.
 *
 * module.c  module object, exception classes, libcurl global init
 * client.c  Client (a pool of libcurl easy handles) and Response
 * oauth.c   OAuth 1.0a signing (RFC 5849) and the OAuth1 credential type
 * jwt.c     HS256 check of the JWT that Special:OAuth/identify returns
 *
 * Every function declared here must be called with the GIL held.
 */
#ifndef MWCOMMS_H
#define MWCOMMS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Exception classes, created by module.c before the *_init functions run.
 * Error is the base class.  InvalidURL also derives from ValueError so
 * that callers that treat bad input as ValueError keep working. */
extern PyObject *mwcomms_Error;
extern PyObject *mwcomms_ConnectError;
extern PyObject *mwcomms_Timeout;
extern PyObject *mwcomms_SSLError;
extern PyObject *mwcomms_InvalidURL;
extern PyObject *mwcomms_TransferError;
extern PyObject *mwcomms_OAuthError;

/* Add Client and Response to the module.  Return 0, or -1 with an
 * exception set. */
int mwcomms_client_init(PyObject *module);

/* Add OAuth1 and the signing functions to the module.  Return 0, or -1
 * with an exception set. */
int mwcomms_oauth_init(PyObject *module);

/* Add jwt_verify_hs256 to the module.  Return 0, or -1 with an exception
 * set. */
int mwcomms_jwt_init(PyObject *module);

/* Return 1 if obj is an OAuth1 instance, else 0. */
int mwcomms_oauth_check(PyObject *obj);

struct oauth_buf;

/*
 * Append the value of the Authorization header for one attempt of a
 * request to header, with a fresh nonce from OpenSSL's CSPRNG and the
 * current time plus the credential's clock offset.  header is an
 * oauth_buf (oauth_sign.h), which the caller frees with oauth_buf_free().
 *
 * content_type may be NULL.  The body is signed only when content_type
 * is application/x-www-form-urlencoded (RFC 5849 section 3.4.1.3.1).
 *
 * Return 0, or -1 with an exception set.
 */
int mwcomms_oauth_authorization(PyObject *oauth, const char *method,
                                const char *url, const char *content_type,
                                const char *body, Py_ssize_t body_len,
                                struct oauth_buf *header);

#endif /* MWCOMMS_H */
