/*
 * OAuth 1.0a signature base string, signature and Authorization header
 * (RFC 5849 sections 3.4 to 3.6).
 *
 * The whole computation works on UTF-8 byte strings.  Each query or body
 * parameter is decoded and written percent-encoded twice into one arena,
 * because that is how it appears in the base string.  Twice-encoded
 * strings sort in the same order as once-encoded ones (encoding again only
 * turns each "%" into "%25"), so the entries are sorted as they are and
 * the base string is a concatenation of arena slices.  The parts that
 * depend only on the credentials (the HMAC key schedule, the fixed oauth_*
 * parameters and most of the header) are computed once per credential by
 * oauth_credentials_prepare().  Small requests use stack storage only.
 */
#include "oauth_sign.h"

#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

static const char HEX_UPPER[] = "0123456789ABCDEF";
static const char HEX_LOWER[] = "0123456789abcdef";

static const char FORM_URLENCODED[] = "application/x-www-form-urlencoded";

/* RFC 5849 section 3.6: 1 for the octets that stay as they are (ALPHA,
 * DIGIT, "-", ".", "_" and "~").  Every other octet becomes "%" and two
 * upper-case hex digits. */
static const unsigned char UNRESERVED[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0,
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1,
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

/* Stack storage of oauth_sign(), enough for a typical MediaWiki API
 * request; larger requests move to PyMem memory. */
#define ARENA_STACK_SIZE 2048
#define BASE_STACK_SIZE 4096
#define SIGNATURE_STACK_SIZE 512
#define ENTRIES_STACK_COUNT 48

/* ---- buffers ---------------------------------------------------------- */

void
oauth_buf_init(oauth_buf *buf, char *storage, size_t size)
{
    buf->data = storage;
    buf->len = 0;
    buf->cap = size;
    buf->storage = storage;
    storage[0] = '\0';
}

void
oauth_buf_free(oauth_buf *buf)
{
    if (buf != NULL) {
        if (buf->data != buf->storage) {
            PyMem_Free(buf->data);
        }
        buf->data = buf->storage = NULL;
        buf->len = buf->cap = 0;
    }
}

/* Grow buf for extra more bytes and a NUL. */
static int
buf_grow(oauth_buf *buf, size_t extra)
{
    size_t need, cap;
    char *data;

    if (extra > PY_SSIZE_T_MAX / 2 - buf->len) {
        PyErr_NoMemory();
        return -1;
    }
    need = buf->len + extra + 1;
    if (need <= buf->cap) {
        return 0;
    }
    cap = buf->cap ? buf->cap : 256;
    while (cap < need) {
        cap *= 2;
    }
    if (buf->data != NULL && buf->data == buf->storage) {
        data = PyMem_Malloc(cap);
        if (data != NULL && buf->len > 0) {
            memcpy(data, buf->data, buf->len);
        }
    }
    else {
        data = PyMem_Realloc(buf->data, cap);
    }
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    data[buf->len] = '\0';
    buf->data = data;
    buf->cap = cap;
    return 0;
}

/* oauth_buf_reserve() with the common case inlined.  The first test
 * cannot overflow because cap is at most PY_SSIZE_T_MAX. */
static inline int
buf_reserve(oauth_buf *buf, size_t extra)
{
    if (extra < buf->cap - buf->len) {
        return 0;
    }
    return buf_grow(buf, extra);
}

int
oauth_buf_reserve(oauth_buf *buf, size_t extra)
{
    return buf_reserve(buf, extra);
}

int
oauth_buf_append(oauth_buf *buf, const char *data, size_t len)
{
    if (buf_reserve(buf, len) < 0) {
        return -1;
    }
    if (len > 0) {
        memcpy(buf->data + buf->len, data, len);
    }
    buf->len += len;
    buf->data[buf->len] = '\0';
    return 0;
}

/* ---- percent-encoding (section 3.6) ----------------------------------- */

/* Write the n octets of s encoded once at p, which has room for 3 * n
 * bytes.  Return the end of the output. */
static char *
encode_once(char *p, const char *s, size_t n)
{
    const unsigned char *octets = (const unsigned char *)s;
    size_t i;

    for (i = 0; i < n; i++) {
        unsigned char c = octets[i];
        if (UNRESERVED[c]) {
            *p++ = (char)c;
        }
        else {
            p[0] = '%';
            p[1] = HEX_UPPER[c >> 4];
            p[2] = HEX_UPPER[c & 15];
            p += 3;
        }
    }
    return p;
}

/* Copy n bytes from s to p and return the end.  Most pieces of the base
 * string are names and values of a few bytes, for which a call to
 * memcpy() costs more than the copy: those are copied with at most two
 * fixed-size, possibly overlapping moves. */
static inline char *
copy_piece(char *p, const char *s, size_t n)
{
    if (n >= 8 && n <= 16) {
        memcpy(p, s, 8);
        memcpy(p + n - 8, s + n - 8, 8);
    }
    else if (n >= 4 && n < 8) {
        memcpy(p, s, 4);
        memcpy(p + n - 4, s + n - 4, 4);
    }
    else if (n < 4) {
        size_t i;
        for (i = 0; i < n; i++) {
            p[i] = s[i];
        }
    }
    else {
        memcpy(p, s, n);
    }
    return p + n;
}

/* Write octet c encoded twice ("%25" and two hex digits) at p. */
static inline char *
put_reserved_twice(char *p, unsigned char c)
{
    p[0] = '%';
    p[1] = '2';
    p[2] = '5';
    p[3] = HEX_UPPER[c >> 4];
    p[4] = HEX_UPPER[c & 15];
    return p + 5;
}

/* Write the n octets of s encoded twice at p, which has room for 5 * n
 * bytes.  Return the end of the output. */
static char *
encode_twice(char *p, const char *s, size_t n)
{
    const unsigned char *octets = (const unsigned char *)s;
    size_t i;

    for (i = 0; i < n; i++) {
        unsigned char c = octets[i];
        if (UNRESERVED[c]) {
            *p++ = (char)c;
        }
        else {
            p = put_reserved_twice(p, c);
        }
    }
    return p;
}

static int
is_all_unreserved(const char *s, size_t n)
{
    const unsigned char *octets = (const unsigned char *)s;
    size_t i;

    for (i = 0; i < n; i++) {
        if (!UNRESERVED[octets[i]]) {
            return 0;
        }
    }
    return 1;
}

int
oauth_buf_append_encoded(oauth_buf *buf, const char *data, size_t len)
{
    char *end;

    if (len > PY_SSIZE_T_MAX / 4 || buf_reserve(buf, len * 3) < 0) {
        if (!PyErr_Occurred()) {
            PyErr_NoMemory();
        }
        return -1;
    }
    end = encode_once(buf->data + buf->len, data, len);
    buf->len = (size_t)(end - buf->data);
    buf->data[buf->len] = '\0';
    return 0;
}

static inline int
hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Input octets that append_form_component() decodes per reservation, so
 * that the arena grows with the output instead of by the worst case for
 * the whole input. */
#define FORM_CHUNK 4096

/* Append one name or value of an application/x-www-form-urlencoded string
 * (a query or a form body) to arena, from data[*pos] up to the next "&"
 * (or "=" too when in_name) or the end, and leave *pos at that separator.
 * "+" is a space and %XX an octet, and the decoded octets are encoded
 * with section 3.6, then encoded once more as the base string needs.
 * part only serves the error message: the input itself is never echoed
 * because a form body can contain passwords. */
static int
append_form_component(oauth_buf *arena, const char *data, size_t len,
                      size_t *pos, int in_name, const char *part)
{
    const unsigned char *octets = (const unsigned char *)data;
    size_t i = *pos, end;
    char *p;
    int high, low;

    while (i < len) {
        end = len - i > FORM_CHUNK ? i + FORM_CHUNK : len;
        /* Each pass of the inner loop starts before end, consumes one
         * octet or one escape and writes at most 5 bytes. */
        if (buf_reserve(arena, 5 * (end - i)) < 0) {
            return -1;
        }
        p = arena->data + arena->len;
        while (i < end) {
            unsigned char c = octets[i];
            if (UNRESERVED[c]) {
                *p++ = (char)c;
                i++;
                continue;
            }
            if (c == '&' || (c == '=' && in_name)) {
                goto separator;
            }
            if (c == '+') {
                c = ' ';
                i++;
            }
            else if (c == '%') {
                high = i + 1 < len ? hex_value(data[i + 1]) : -1;
                low = i + 2 < len ? hex_value(data[i + 2]) : -1;
                if (high < 0 || low < 0) {
                    arena->len = (size_t)(p - arena->data);
                    arena->data[arena->len] = '\0';
                    PyErr_Format(PyExc_ValueError,
                                 "invalid percent escape in the %s at "
                                 "offset %zu: '%%' must be followed by two "
                                 "hex digits", part, i);
                    return -1;
                }
                c = (unsigned char)(high * 16 + low);
                i += 3;
                if (UNRESERVED[c]) {
                    *p++ = (char)c;
                    continue;
                }
            }
            else {
                i++;
            }
            p = put_reserved_twice(p, c);
        }
        arena->len = (size_t)(p - arena->data);
        arena->data[arena->len] = '\0';
    }
    *pos = i;
    return 0;
separator:
    arena->len = (size_t)(p - arena->data);
    arena->data[arena->len] = '\0';
    *pos = i;
    return 0;
}

/* ---- OpenSSL helpers -------------------------------------------------- */

int
oauth_raise_openssl(PyObject *exc, const char *message)
{
    char text[1024];
    size_t used = 0;
    unsigned long code;

    text[0] = '\0';
    while ((code = ERR_get_error()) != 0) {
        if (used + 3 >= sizeof(text)) {
            continue;
        }
        if (used > 0) {
            memcpy(text + used, "; ", 3);
            used += 2;
        }
        ERR_error_string_n(code, text + used, sizeof(text) - used);
        used += strlen(text + used);
    }
    ERR_clear_error();
    if (used == 0) {
        PyErr_Format(exc, "%s", message);
    }
    else {
        PyErr_Format(exc, "%s (OpenSSL: %s)", message, text);
    }
    return -1;
}

/* ---- nonces ----------------------------------------------------------- */

/* With OpenSSL 3.0.x, one RAND_bytes() call costs about the same for 16
 * bytes as for 1 KiB (0.7 us against 0.8 us on the 2-core x86-64 machine
 * that benchmarks/bench_sign.py was run on), because most of it is per-call
 * DRBG work.  So each thread draws the random bytes of 64 nonces at once
 * and hands them out in order.  A forked child starts with a copy of the
 * pool, and would send the same nonces as its parent, so a fork() handler
 * makes every pool refill before its next use. */
#define NONCE_RANDOM_BYTES 16
#define NONCE_POOL_SIZE (64 * NONCE_RANDOM_BYTES)

typedef struct {
    unsigned char bytes[NONCE_POOL_SIZE];
    size_t available;           /* unused bytes, at the start of bytes */
    unsigned long generation;   /* fork_generation when filled */
} nonce_pool;

static _Thread_local nonce_pool thread_nonce_pool;
/* Written only in a child right after fork(), when no other thread
 * exists yet. */
static unsigned long fork_generation = 0;
static pthread_once_t fork_handler_once = PTHREAD_ONCE_INIT;
static int fork_handler_missing = 0;

static void
count_fork(void)
{
    fork_generation++;
}

static void
register_fork_handler(void)
{
    fork_handler_missing = pthread_atfork(NULL, NULL, count_fork) != 0;
}

/* Fill raw with NONCE_RANDOM_BYTES random bytes.  Touches no Python
 * state.  Return 0, or -1 with OpenSSL's error queue set. */
static int
take_nonce_bytes(unsigned char *raw)
{
    nonce_pool *pool = &thread_nonce_pool;

    pthread_once(&fork_handler_once, register_fork_handler);
    if (fork_handler_missing) {
        /* Without the handler a pool could outlive a fork(). */
        return RAND_bytes(raw, NONCE_RANDOM_BYTES) == 1 ? 0 : -1;
    }
    if (pool->available < NONCE_RANDOM_BYTES
            || pool->generation != fork_generation) {
        pool->available = 0;
        if (RAND_bytes(pool->bytes, (int)sizeof(pool->bytes)) != 1) {
            return -1;
        }
        pool->available = sizeof(pool->bytes);
        pool->generation = fork_generation;
    }
    pool->available -= NONCE_RANDOM_BYTES;
    memcpy(raw, pool->bytes + pool->available, NONCE_RANDOM_BYTES);
    return 0;
}

/* The two lower-case hex digits of each octet, filled on first use. */
static char hex_pairs[256][2];
static pthread_once_t hex_pairs_once = PTHREAD_ONCE_INIT;

static void
fill_hex_pairs(void)
{
    size_t i;

    for (i = 0; i < 256; i++) {
        hex_pairs[i][0] = HEX_LOWER[i >> 4];
        hex_pairs[i][1] = HEX_LOWER[i & 15];
    }
}

static void
write_hex_nonce(char *buf, const unsigned char *raw)
{
    size_t i;

    pthread_once(&hex_pairs_once, fill_hex_pairs);
    for (i = 0; i < NONCE_RANDOM_BYTES; i++) {
        memcpy(buf + 2 * i, hex_pairs[raw[i]], 2);
    }
    buf[OAUTH_NONCE_LEN] = '\0';
}

int
oauth_make_nonce(char *buf)
{
    unsigned char raw[NONCE_RANDOM_BYTES];

    if (take_nonce_bytes(raw) < 0) {
        return oauth_raise_openssl(mwcomms_OAuthError,
                                   "RAND_bytes failed to make a nonce");
    }
    write_hex_nonce(buf, raw);
    return 0;
}

/* ---- HMAC (RFC 2104) from a precomputed key schedule ------------------ */

/* OpenSSL 3.0 deprecates the SHA1_* and SHA256_* functions in favour of
 * EVP_MD, and this block silences only that warning.  They are used
 * because their state is a plain struct: the states after hashing the
 * inner and outer padded key are saved once per credential, and each
 * signature copies them by assignment.  Per HMAC-SHA1 over a 668-byte
 * base string, this took 0.40 us, against 0.48 us with
 * EVP_MD_CTX_copy_ex() of saved states and 0.83 us with
 * EVP_MAC_CTX_dup() of a keyed EVP_MAC_CTX (same machine as above). */
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif

#define HMAC_BLOCK_SIZE 64      /* SHA-1 and SHA-256 */
/* Blocks of the last base string whose hash states a key keeps: 512
 * bytes, more than the constant start of a typical MediaWiki request. */
#define HMAC_CACHED_BLOCKS 8

typedef union {
    SHA_CTX sha1;
    SHA256_CTX sha256;
} hash_state;

struct oauth_hmac_key {
    int sha256;
    hash_state inner, outer;
    /* The first cached_blocks blocks of the last message that
     * hmac_compute_cached() signed with this key, and the inner state
     * after each of them.  Base strings of one client usually start alike:
     * method, URI, then the sorted parameters, where the constant ones
     * (action, assert, format, oauth_consumer_key) often come before the
     * nonce.  Each block found again saves one compression.  Only read
     * and written with the GIL held, as oauth_sign() runs. */
    size_t cached_blocks;
    unsigned char prefix[HMAC_CACHED_BLOCKS * HMAC_BLOCK_SIZE];
    hash_state after_block[HMAC_CACHED_BLOCKS];
};

/* Hash len bytes of data with a fresh state of the key's digest into
 * digest.  Return the digest length, or 0 on failure. */
static size_t
hmac_plain_digest(int sha256, const unsigned char *data, size_t len,
                  unsigned char *digest)
{
    if (sha256) {
        return SHA256(data, len, digest) != NULL ? SHA256_DIGEST_LENGTH : 0;
    }
    return SHA1(data, len, digest) != NULL ? SHA_DIGEST_LENGTH : 0;
}

/* Hash one padded key block into a fresh state. */
static int
hmac_pad_state(oauth_hmac_key *key, int outer, const unsigned char *block)
{
    if (key->sha256) {
        SHA256_CTX *ctx = outer ? &key->outer.sha256 : &key->inner.sha256;
        return SHA256_Init(ctx) == 1
            && SHA256_Update(ctx, block, HMAC_BLOCK_SIZE) == 1 ? 0 : -1;
    }
    else {
        SHA_CTX *ctx = outer ? &key->outer.sha1 : &key->inner.sha1;
        return SHA1_Init(ctx) == 1
            && SHA1_Update(ctx, block, HMAC_BLOCK_SIZE) == 1 ? 0 : -1;
    }
}

/* Set up key for HMAC with secret.  Return 0 or -1. */
static int
hmac_key_setup(oauth_hmac_key *key, int sha256, const unsigned char *secret,
               size_t secret_len)
{
    unsigned char block[HMAC_BLOCK_SIZE];
    unsigned char hashed[SHA256_DIGEST_LENGTH];
    size_t i;
    int rc = -1;

    key->sha256 = sha256;
    key->cached_blocks = 0;
    memset(block, 0, sizeof(block));
    /* A key longer than the block is replaced by its digest. */
    if (secret_len > HMAC_BLOCK_SIZE) {
        secret_len = hmac_plain_digest(sha256, secret, secret_len, hashed);
        if (secret_len == 0) {
            goto done;
        }
        secret = hashed;
    }
    if (secret_len > 0) {
        memcpy(block, secret, secret_len);
    }
    for (i = 0; i < HMAC_BLOCK_SIZE; i++) {
        block[i] ^= 0x36;
    }
    if (hmac_pad_state(key, 0, block) < 0) {
        goto done;
    }
    for (i = 0; i < HMAC_BLOCK_SIZE; i++) {
        block[i] ^= 0x36 ^ 0x5c;
    }
    if (hmac_pad_state(key, 1, block) < 0) {
        goto done;
    }
    rc = 0;
done:
    OPENSSL_cleanse(block, sizeof(block));
    OPENSSL_cleanse(hashed, sizeof(hashed));
    return rc;
}

/* Write the HMAC of data into mac (room for SHA256_DIGEST_LENGTH).
 * Return the MAC length, or 0 on failure.  The working copies end up
 * past the saved states, so they hold nothing that reveals the key. */
static size_t
hmac_compute(const oauth_hmac_key *key, const unsigned char *data,
             size_t len, unsigned char *mac)
{
    unsigned char inner_digest[SHA256_DIGEST_LENGTH];

    if (key->sha256) {
        SHA256_CTX ctx = key->inner.sha256;
        if (SHA256_Update(&ctx, data, len) != 1
                || SHA256_Final(inner_digest, &ctx) != 1) {
            return 0;
        }
        ctx = key->outer.sha256;
        if (SHA256_Update(&ctx, inner_digest, SHA256_DIGEST_LENGTH) != 1
                || SHA256_Final(mac, &ctx) != 1) {
            return 0;
        }
        return SHA256_DIGEST_LENGTH;
    }
    else {
        SHA_CTX ctx = key->inner.sha1;
        if (SHA1_Update(&ctx, data, len) != 1
                || SHA1_Final(inner_digest, &ctx) != 1) {
            return 0;
        }
        ctx = key->outer.sha1;
        if (SHA1_Update(&ctx, inner_digest, SHA_DIGEST_LENGTH) != 1
                || SHA1_Final(mac, &ctx) != 1) {
            return 0;
        }
        return SHA_DIGEST_LENGTH;
    }
}

/* hmac_compute() that starts from the key's saved state after the
 * longest run of leading blocks that data shares with the last message,
 * and saves the states of the blocks that differ for the next call. */
static size_t
hmac_compute_cached(oauth_hmac_key *key, const unsigned char *data,
                    size_t len, unsigned char *mac)
{
    unsigned char inner_digest[SHA256_DIGEST_LENGTH];
    hash_state ctx;
    size_t blocks = len / HMAC_BLOCK_SIZE, matched = 0, i;

    if (blocks > HMAC_CACHED_BLOCKS) {
        blocks = HMAC_CACHED_BLOCKS;
    }
    while (matched < key->cached_blocks && matched < blocks
           && memcmp(key->prefix + matched * HMAC_BLOCK_SIZE,
                     data + matched * HMAC_BLOCK_SIZE, HMAC_BLOCK_SIZE) == 0) {
        matched++;
    }
    ctx = matched > 0 ? key->after_block[matched - 1] : key->inner;
    for (i = matched; i < blocks; i++) {
        const unsigned char *block = data + i * HMAC_BLOCK_SIZE;
        int ok = key->sha256
            ? SHA256_Update(&ctx.sha256, block, HMAC_BLOCK_SIZE)
            : SHA1_Update(&ctx.sha1, block, HMAC_BLOCK_SIZE);

        if (ok != 1) {
            key->cached_blocks = 0;
            return 0;
        }
        key->after_block[i] = ctx;
        memcpy(key->prefix + i * HMAC_BLOCK_SIZE, block, HMAC_BLOCK_SIZE);
    }
    key->cached_blocks = blocks;
    data += blocks * HMAC_BLOCK_SIZE;
    len -= blocks * HMAC_BLOCK_SIZE;
    if (key->sha256) {
        if (SHA256_Update(&ctx.sha256, data, len) != 1
                || SHA256_Final(inner_digest, &ctx.sha256) != 1) {
            return 0;
        }
        ctx = key->outer;
        if (SHA256_Update(&ctx.sha256, inner_digest, SHA256_DIGEST_LENGTH)
                    != 1
                || SHA256_Final(mac, &ctx.sha256) != 1) {
            return 0;
        }
        return SHA256_DIGEST_LENGTH;
    }
    if (SHA1_Update(&ctx.sha1, data, len) != 1
            || SHA1_Final(inner_digest, &ctx.sha1) != 1) {
        return 0;
    }
    ctx = key->outer;
    if (SHA1_Update(&ctx.sha1, inner_digest, SHA_DIGEST_LENGTH) != 1
            || SHA1_Final(mac, &ctx.sha1) != 1) {
        return 0;
    }
    return SHA_DIGEST_LENGTH;
}

#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

/* ---- base string URI (section 3.4.1.2) -------------------------------- */

static int
raise_bad_url(const char *url, size_t url_len, const char *reason)
{
    char shown[304];
    size_t used = 0, i = 0, host_start = 0, auth_end, at = 0;
    const char *scheme_end = strstr(url, "://");

    /* Never echo user info, because it may be user:password. */
    if (scheme_end != NULL) {
        host_start = (size_t)(scheme_end - url) + 3;
        auth_end = host_start;
        while (auth_end < url_len && strchr("/?#", url[auth_end]) == NULL) {
            if (url[auth_end] == '@') {
                at = auth_end + 1;
            }
            auth_end++;
        }
    }
    while (i < url_len && used < sizeof(shown) - 4) {
        if (at > 0 && i == host_start) {
            i = at;
            continue;
        }
        shown[used++] = url[i++];
    }
    if (i < url_len) {
        memcpy(shown + used, "...", 3);
        used += 3;
    }
    shown[used] = '\0';
    PyErr_Format(mwcomms_InvalidURL, "invalid URL '%s': %s", shown, reason);
    return -1;
}

/* Parts of a URL that the base string URI and the parameters use. */
typedef struct {
    int https;
    const char *host;           /* not yet lower-cased */
    size_t host_len;
    long port;                  /* -1: none, or the default port */
    const char *path;           /* empty for "/" */
    size_t path_len;
    const char *query;          /* without "?"; NULL when absent */
    size_t query_len;
} url_parts;

/* Split and check url (NUL-terminated at url_len). */
static int
parse_url(const char *url, size_t url_len, url_parts *parts)
{
    const char *end = url + url_len;
    const char *p, *scheme_end, *auth, *auth_end, *host, *host_end;
    const char *port = NULL, *path, *path_end;
    size_t scheme_len;
    long port_number = -1;

    parts->query = NULL;
    parts->query_len = 0;
    for (p = url; p < end; p++) {
        unsigned char c = (unsigned char)*p;
        if (c <= 0x20 || c == 0x7f) {
            return raise_bad_url(url, url_len,
                                 "URLs must not contain spaces or control "
                                 "characters; percent-encode them");
        }
    }
    scheme_end = memchr(url, ':', url_len);
    if (scheme_end == NULL) {
        return raise_bad_url(url, url_len, "missing scheme (http or https)");
    }
    scheme_len = (size_t)(scheme_end - url);
    if (scheme_len == 4 && PyOS_strnicmp(url, "http", 4) == 0) {
        parts->https = 0;
    }
    else if (scheme_len == 5 && PyOS_strnicmp(url, "https", 5) == 0) {
        parts->https = 1;
    }
    else {
        return raise_bad_url(url, url_len,
                             "only http and https URLs can be signed");
    }
    if (end - scheme_end < 3 || scheme_end[1] != '/' || scheme_end[2] != '/') {
        return raise_bad_url(url, url_len, "missing '//' after the scheme");
    }
    auth = scheme_end + 3;
    auth_end = auth;
    while (auth_end < end && *auth_end != '/' && *auth_end != '?'
            && *auth_end != '#') {
        auth_end++;
    }
    if (memchr(auth, '@', (size_t)(auth_end - auth)) != NULL) {
        return raise_bad_url(url, url_len,
                             "user info (user@ or user:password@) is not "
                             "allowed in a signed URL");
    }

    host = auth;
    if (host < auth_end && *host == '[') {
        host_end = memchr(host, ']', (size_t)(auth_end - host));
        if (host_end == NULL) {
            return raise_bad_url(url, url_len, "unterminated IPv6 address");
        }
        host_end++;
        if (host_end < auth_end) {
            if (*host_end != ':') {
                return raise_bad_url(url, url_len,
                                     "unexpected text after the IPv6 address");
            }
            port = host_end + 1;
        }
    }
    else {
        host_end = host;
        while (host_end < auth_end && *host_end != ':') {
            host_end++;
        }
        if (host_end < auth_end) {
            port = host_end + 1;
        }
    }
    if (host_end == host || (host_end - host == 2 && *host == '[')) {
        return raise_bad_url(url, url_len, "missing host");
    }
    for (p = host; p < host_end; p++) {
        if (!UNRESERVED[(unsigned char)*p]
                && strchr("\"<>\\^`{|}", *p) != NULL) {
            return raise_bad_url(url, url_len, "invalid character in host");
        }
    }
    /* An empty port (http://host:/) means the default port (RFC 3986
     * section 3.2.3). */
    if (port != NULL && port < auth_end) {
        port_number = 0;
        for (p = port; p < auth_end; p++) {
            if (*p < '0' || *p > '9') {
                return raise_bad_url(url, url_len, "port is not a number");
            }
            port_number = port_number * 10 + (*p - '0');
            if (port_number > 65535) {
                break;
            }
        }
        if (port_number < 1 || port_number > 65535) {
            return raise_bad_url(url, url_len,
                                 "port is out of range 1-65535");
        }
    }
    if (port_number == (parts->https ? 443 : 80)) {
        port_number = -1;
    }

    path = auth_end;
    path_end = path;
    while (path_end < end && *path_end != '?' && *path_end != '#') {
        path_end++;
    }
    if (path_end < end && *path_end == '?') {
        const char *q = path_end + 1;
        const char *q_end = memchr(q, '#', (size_t)(end - q));
        parts->query = q;
        parts->query_len = (size_t)((q_end ? q_end : end) - q);
    }
    parts->host = host;
    parts->host_len = (size_t)(host_end - host);
    parts->port = port_number;
    parts->path = path;
    parts->path_len = (size_t)(path_end - path);
    return 0;
}

/* Upper bound of what write_base_uri() writes. */
static size_t
base_uri_max_len(const url_parts *parts)
{
    /* "https%3A%2F%2F", "%3A" and 5 digits, and "%2F" for an empty path */
    return 14 + 3 * parts->host_len + 8 + 3 * (parts->path_len + 1);
}

/* Write the base string URI (scheme and host lower-cased, default port
 * dropped, path as sent) encoded once at p. */
static char *
write_base_uri(char *p, const url_parts *parts)
{
    size_t i;

    if (parts->https) {
        memcpy(p, "https%3A%2F%2F", 14);
        p += 14;
    }
    else {
        memcpy(p, "http%3A%2F%2F", 13);
        p += 13;
    }
    for (i = 0; i < parts->host_len; i++) {
        unsigned char c = Py_TOLOWER((unsigned char)parts->host[i]);
        if (UNRESERVED[c]) {
            *p++ = (char)c;
        }
        else {
            p[0] = '%';
            p[1] = HEX_UPPER[c >> 4];
            p[2] = HEX_UPPER[c & 15];
            p += 3;
        }
    }
    if (parts->port > 0) {
        /* 1 to 65535, written without snprintf(), which costs more than
         * the rest of the URI. */
        char digits[5];
        size_t n = 0;
        long port = parts->port;

        while (port > 0) {
            digits[n++] = (char)('0' + port % 10);
            port /= 10;
        }
        memcpy(p, "%3A", 3);
        p += 3;
        while (n > 0) {
            *p++ = digits[--n];
        }
    }
    if (parts->path_len == 0) {
        memcpy(p, "%2F", 3);
        return p + 3;
    }
    return encode_once(p, parts->path, parts->path_len);
}

/* ---- parameters (section 3.4.1.3) ------------------------------------- */

#define NAME_IN_ARENA 1
#define VALUE_IN_ARENA 2

/* One parameter.  While the arena can still move, a name or value in it
 * is kept as an offset.  params_resolve() turns the offsets into pointers
 * and sets name_key. */
typedef struct {
    oauth_param param;
    size_t name_off;
    size_t value_off;
    int in_arena;
    uint64_t name_key;          /* see compare_entries() */
} param_entry;

/* Stack storage of a param_list. */
typedef struct {
    char arena[ARENA_STACK_SIZE];
    param_entry entries[ENTRIES_STACK_COUNT];
    const param_entry *order[ENTRIES_STACK_COUNT];
} param_storage;

typedef struct {
    oauth_buf arena;
    param_entry *entries;
    size_t count, cap;
    /* The entries in normalized order, set by params_sort(). */
    const param_entry **order;
    param_storage *storage;     /* initial storage, never freed */
} param_list;

static void
params_init(param_list *params, param_storage *storage)
{
    oauth_buf_init(&params->arena, storage->arena, sizeof(storage->arena));
    params->entries = storage->entries;
    params->count = 0;
    params->cap = Py_ARRAY_LENGTH(storage->entries);
    params->order = NULL;
    params->storage = storage;
}

static void
params_free(param_list *params)
{
    oauth_buf_free(&params->arena);
    if (params->entries != params->storage->entries) {
        PyMem_Free(params->entries);
    }
    if (params->order != params->storage->order) {
        PyMem_Free((void *)params->order);
    }
    params->entries = NULL;
    params->order = NULL;
    params->count = params->cap = 0;
}

static param_entry *
params_new_entry(param_list *params)
{
    if (params->count >= OAUTH_MAX_PARAMS) {
        PyErr_Format(PyExc_ValueError,
                     "too many parameters to sign: the maximum is %d",
                     OAUTH_MAX_PARAMS);
        return NULL;
    }
    if (params->count == params->cap) {
        size_t cap = params->cap * 2;
        param_entry *entries;
        if (params->entries == params->storage->entries) {
            entries = PyMem_Malloc(cap * sizeof(param_entry));
            if (entries != NULL) {
                memcpy(entries, params->entries,
                       params->count * sizeof(param_entry));
            }
        }
        else {
            entries = PyMem_Realloc(params->entries,
                                    cap * sizeof(param_entry));
        }
        if (entries == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        params->entries = entries;
        params->cap = cap;
    }
    return &params->entries[params->count++];
}

/* Add a parameter whose name and value are already encoded twice and
 * stay valid until the signature is done. */
static int
params_add_fixed(param_list *params, const oauth_param *param)
{
    param_entry *entry = params_new_entry(params);

    if (entry == NULL) {
        return -1;
    }
    entry->param = *param;
    entry->in_arena = 0;
    return 0;
}

/* Add protocol parameter name (unreserved) with raw value.  unreserved
 * is 1 when the caller knows that value needs no encoding. */
static int
params_add_protocol(param_list *params, const char *name, const char *value,
                    size_t value_len, int unreserved)
{
    param_entry *entry = params_new_entry(params);
    oauth_buf *arena = &params->arena;
    char *end;

    if (entry == NULL) {
        return -1;
    }
    entry->param.name = name;
    entry->param.name_len = strlen(name);
    if (unreserved || is_all_unreserved(value, value_len)) {
        entry->param.value = value;
        entry->param.value_len = value_len;
        entry->in_arena = 0;
        return 0;
    }
    if (buf_reserve(arena, 5 * value_len) < 0) {
        return -1;
    }
    entry->value_off = arena->len;
    end = encode_twice(arena->data + arena->len, value, value_len);
    arena->len = (size_t)(end - arena->data);
    arena->data[arena->len] = '\0';
    entry->param.value_len = arena->len - entry->value_off;
    entry->in_arena = VALUE_IN_ARENA;
    return 0;
}

/* Add every name=value pair of a form-urlencoded string.  Like Python's
 * urllib.parse.parse_qsl(keep_blank_values=True), which oauthlib uses,
 * empty pairs ("a=1&&b=2") are skipped and a pair without "=" is a name
 * with an empty value. */
static int
params_add_form(param_list *params, const char *data, size_t len,
                const char *part)
{
    oauth_buf *arena = &params->arena;
    size_t i = 0;

    while (i < len) {
        param_entry *entry;

        if (data[i] == '&') {
            i++;
            continue;
        }
        entry = params_new_entry(params);
        if (entry == NULL) {
            return -1;
        }
        entry->in_arena = NAME_IN_ARENA | VALUE_IN_ARENA;
        entry->name_off = arena->len;
        if (append_form_component(arena, data, len, &i, 1, part) < 0) {
            return -1;
        }
        entry->param.name_len = arena->len - entry->name_off;
        entry->value_off = arena->len;
        if (i < len && data[i] == '=') {
            i++;
            if (append_form_component(arena, data, len, &i, 0, part) < 0) {
                return -1;
            }
        }
        entry->param.value_len = arena->len - entry->value_off;
        /* data[i] is now "&" or i is len. */
        i++;
    }
    return 0;
}

/* The first 8 bytes of s, zero-padded, as a big-endian number.  A name
 * shorter than 8 bytes is built in a register, byte by byte, because
 * storing bytes and loading them as one word would stall on store
 * forwarding.  Longer names (all the oauth_* names) are loaded at once. */
static inline uint64_t
make_name_key(const char *s, size_t len)
{
    uint64_t key = 0;
    size_t i;

#if defined(__GNUC__) && defined(__BYTE_ORDER__) \
    && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (len >= 8) {
        memcpy(&key, s, 8);
        return __builtin_bswap64(key);
    }
#endif
    for (i = 0; i < 8; i++) {
        key = key << 8 | (i < len ? (unsigned char)s[i] : 0);
    }
    return key;
}

/* Point the entries into the arena, which no longer moves. */
static void
params_resolve(param_list *params)
{
    size_t i;

    for (i = 0; i < params->count; i++) {
        param_entry *entry = &params->entries[i];
        if (entry->in_arena & NAME_IN_ARENA) {
            entry->param.name = params->arena.data + entry->name_off;
        }
        if (entry->in_arena & VALUE_IN_ARENA) {
            entry->param.value = params->arena.data + entry->value_off;
        }
        entry->name_key = make_name_key(entry->param.name,
                                        entry->param.name_len);
    }
}

static inline int
compare_bytes(const char *a, size_t a_len, const char *b, size_t b_len)
{
    int cmp = memcmp(a, b, a_len < b_len ? a_len : b_len);

    if (cmp != 0) {
        return cmp;
    }
    return (a_len > b_len) - (a_len < b_len);
}

/* Order of section 3.4.1.3.2: encoded name, then encoded value, both in
 * ascending byte order.  Encoded names contain no NUL, so the zero-padded
 * name_key orders names by their first 8 bytes, and equal keys with a
 * name shorter than 8 bytes mean equal names. */
static inline int
compare_entries(const param_entry *a, const param_entry *b)
{
    int cmp = 0;

    if (a->name_key != b->name_key) {
        return a->name_key < b->name_key ? -1 : 1;
    }
    if (a->param.name_len >= 8 && b->param.name_len >= 8) {
        cmp = compare_bytes(a->param.name + 8, a->param.name_len - 8,
                            b->param.name + 8, b->param.name_len - 8);
    }
    if (cmp != 0) {
        return cmp;
    }
    return compare_bytes(a->param.value, a->param.value_len, b->param.value,
                         b->param.value_len);
}

static int
compare_entries_qsort(const void *left, const void *right)
{
    return compare_entries(*(const param_entry *const *)left,
                           *(const param_entry *const *)right);
}

/* Entry count up to which insertion sort beats qsort(). */
#define INSERTION_SORT_MAX 32

/* Set params->order to the entries in normalized order.  The first
 * form_count entries come from the query and body in any order, and the
 * rest are the protocol parameters, added in order.  Sorting pointers
 * moves 8 bytes per step instead of a whole entry. */
static int
params_sort(param_list *params, size_t form_count)
{
    const param_entry **order = params->storage->order;
    const param_entry *item;
    size_t count = params->count, i, j, k;

    if (count > Py_ARRAY_LENGTH(params->storage->order)) {
        order = PyMem_Malloc(count * sizeof(*order));
        if (order == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    params->order = order;
    for (i = 0; i < form_count; i++) {
        order[i] = &params->entries[i];
    }
    if (form_count > INSERTION_SORT_MAX) {
        qsort((void *)order, form_count, sizeof(*order),
              compare_entries_qsort);
    }
    else {
        for (i = 1; i < form_count; i++) {
            item = order[i];
            for (j = i; j > 0 && compare_entries(order[j - 1], item) > 0;
                    j--) {
                order[j] = order[j - 1];
            }
            order[j] = item;
        }
    }
    /* Merge in the sorted protocol entries from the back.  Slots from
     * form_count on are free, and k = i + j stays above i. */
    i = form_count;
    j = count - form_count;
    k = count;
    while (j > 0) {
        item = &params->entries[form_count + j - 1];
        if (i > 0 && compare_entries(order[i - 1], item) > 0) {
            order[--k] = order[--i];
        }
        else {
            order[--k] = item;
            j--;
        }
    }
    return 0;
}

/* Media type of content_type equal to application/x-www-form-urlencoded,
 * compared case-insensitively, with any parameters ("; charset=UTF-8")
 * and surrounding spaces ignored. */
static int
is_form_urlencoded(const char *type, size_t len)
{
    const char *end;

    if (type == NULL) {
        return 0;
    }
    end = memchr(type, ';', len);
    if (end == NULL) {
        end = type + len;
    }
    while (type < end && (*type == ' ' || *type == '\t')) {
        type++;
    }
    while (end > type && (end[-1] == ' ' || end[-1] == '\t')) {
        end--;
    }
    if ((size_t)(end - type) != sizeof(FORM_URLENCODED) - 1) {
        return 0;
    }
    return memcmp(type, FORM_URLENCODED, sizeof(FORM_URLENCODED) - 1) == 0
        || PyOS_strnicmp(type, FORM_URLENCODED,
                         sizeof(FORM_URLENCODED) - 1) == 0;
}

/* ---- signature (section 3.4.2 to 3.4.4) ------------------------------- */

static const char BASE64_ALPHABET[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Write base64 digit c (64 for the "=" of padding) at p, percent-encoded:
 * "+", "/" and "=" are the only base64 characters that are reserved. */
static inline char *
put_base64_digit(char *p, unsigned int c)
{
    static const char escapes[3][3] = {"%2B", "%2F", "%3D"};

    if (c < 62) {
        *p = BASE64_ALPHABET[c];
        return p + 1;
    }
    memcpy(p, escapes[c - 62], 3);
    return p + 3;
}

/* Append data in base64 (RFC 4648 section 4, with padding), encoded once
 * for the header, to out. */
static int
append_base64(oauth_buf *out, const unsigned char *data, size_t len)
{
    size_t i;
    char *p;

    /* At most 4 digits of 3 bytes each per 3 input bytes. */
    if (len > PY_SSIZE_T_MAX / 8 || buf_reserve(out, 4 * (len + 2)) < 0) {
        if (!PyErr_Occurred()) {
            PyErr_NoMemory();
        }
        return -1;
    }
    p = out->data + out->len;
    for (i = 0; i + 3 <= len; i += 3) {
        unsigned long group = (unsigned long)data[i] << 16
                              | (unsigned long)data[i + 1] << 8 | data[i + 2];
        p = put_base64_digit(p, (unsigned int)(group >> 18));
        p = put_base64_digit(p, (unsigned int)(group >> 12) & 63);
        p = put_base64_digit(p, (unsigned int)(group >> 6) & 63);
        p = put_base64_digit(p, (unsigned int)group & 63);
    }
    if (i < len) {
        unsigned long group = (unsigned long)data[i] << 16;
        if (i + 1 < len) {
            group |= (unsigned long)data[i + 1] << 8;
        }
        p = put_base64_digit(p, (unsigned int)(group >> 18));
        p = put_base64_digit(p, (unsigned int)(group >> 12) & 63);
        p = put_base64_digit(p, i + 1 < len
                                ? (unsigned int)(group >> 6) & 63 : 64);
        p = put_base64_digit(p, 64);
    }
    out->len = (size_t)(p - out->data);
    out->data[out->len] = '\0';
    return 0;
}

static int
append_hmac(const oauth_credentials *creds, const oauth_buf *base,
            oauth_buf *out)
{
    unsigned char mac[SHA256_DIGEST_LENGTH];
    size_t mac_len;

    mac_len = hmac_compute_cached(creds->hmac_key,
                                  (const unsigned char *)base->data,
                                  base->len, mac);
    if (mac_len == 0) {
        return oauth_raise_openssl(mwcomms_OAuthError,
                                   "HMAC computation failed");
    }
    return append_base64(out, mac, mac_len);
}

static int
append_rsa_sha1(const oauth_credentials *creds, const oauth_buf *base,
                oauth_buf *out)
{
    EVP_MD_CTX *ctx = NULL;
    unsigned char *sig = NULL;
    size_t sig_len = 0;
    int rc = -1;

    ctx = EVP_MD_CTX_new();
    if (ctx == NULL
            || EVP_DigestSignInit(ctx, NULL, EVP_sha1(), NULL,
                                  creds->rsa_key) != 1
            || EVP_DigestSign(ctx, NULL, &sig_len,
                              (const unsigned char *)base->data,
                              base->len) != 1) {
        oauth_raise_openssl(mwcomms_OAuthError, "RSA-SHA1 signing failed");
        goto done;
    }
    sig = PyMem_Malloc(sig_len ? sig_len : 1);
    if (sig == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (EVP_DigestSign(ctx, sig, &sig_len, (const unsigned char *)base->data,
                       base->len) != 1) {
        oauth_raise_openssl(mwcomms_OAuthError, "RSA-SHA1 signing failed");
        goto done;
    }
    rc = append_base64(out, sig, sig_len);
done:
    PyMem_Free(sig);
    EVP_MD_CTX_free(ctx);
    return rc;
}

/* Append the oauth_signature value, encoded for the header. */
static int
append_signature(const oauth_credentials *creds, const oauth_buf *base,
                 oauth_buf *out)
{
    switch (creds->method) {
    case OAUTH_HMAC_SHA1:
    case OAUTH_HMAC_SHA256:
        return append_hmac(creds, base, out);
    case OAUTH_RSA_SHA1:
        return append_rsa_sha1(creds, base, out);
    case OAUTH_PLAINTEXT:
        /* Section 3.4.4: the signature is the key itself. */
        return oauth_buf_append_encoded(out, creds->key, creds->key_len);
    }
    PyErr_SetString(PyExc_SystemError, "unknown OAuth signature method");
    return -1;
}

/* ---- credentials ------------------------------------------------------ */

static const char *
protocol_value_name(size_t index)
{
    static const char *const names[] = {
        "oauth_consumer_key", "oauth_token", "oauth_signature_method",
        "oauth_version", "oauth_callback", "oauth_verifier"};

    return names[index];
}

/* Append ", " (unless first), name, "=\"" and value encoded once. */
static int
append_header_param(oauth_buf *header, int first, const char *name,
                    const char *value)
{
    if ((!first && oauth_buf_append(header, ", ", 2) < 0)
            || oauth_buf_append(header, name, strlen(name)) < 0
            || oauth_buf_append(header, "=\"", 2) < 0
            || oauth_buf_append_encoded(header, value, strlen(value)) < 0
            || oauth_buf_append(header, "\"", 1) < 0) {
        return -1;
    }
    return 0;
}

/* Build the parts of the Authorization header (section 3.5.1) around
 * oauth_timestamp and oauth_nonce into buf.  The head ends with the
 * opening quote of the timestamp.  The tail starts with the closing quote
 * of the nonce and ends with the opening quote of the signature. */
static int
prepare_header(const oauth_credentials *creds, oauth_buf *buf,
               size_t *head_len)
{
    int first = 1;

    if (oauth_buf_append(buf, "OAuth ", 6) < 0) {
        return -1;
    }
    if (creds->realm != NULL) {
        if (oauth_buf_append(buf, "realm=\"", 7) < 0
                || oauth_buf_append(buf, creds->realm,
                                    strlen(creds->realm)) < 0
                || oauth_buf_append(buf, "\"", 1) < 0) {
            return -1;
        }
        first = 0;
    }
    if (append_header_param(buf, first, "oauth_consumer_key",
                            creds->consumer_key) < 0
            || (creds->token != NULL
                && append_header_param(buf, 0, "oauth_token",
                                       creds->token) < 0)
            || append_header_param(buf, 0, "oauth_signature_method",
                                   creds->method_name) < 0
            || oauth_buf_append(buf, ", oauth_timestamp=\"", 19) < 0) {
        return -1;
    }
    *head_len = buf->len;
    if (oauth_buf_append(buf, "\"", 1) < 0
            || (creds->version != NULL
                && append_header_param(buf, 0, "oauth_version",
                                       creds->version) < 0)
            || (creds->callback != NULL
                && append_header_param(buf, 0, "oauth_callback",
                                       creds->callback) < 0)
            || (creds->verifier != NULL
                && append_header_param(buf, 0, "oauth_verifier",
                                       creds->verifier) < 0)
            || oauth_buf_append(buf, ", oauth_signature=\"", 19) < 0) {
        return -1;
    }
    return 0;
}

/* Sort the fixed protocol parameters by name and find where oauth_nonce
 * and oauth_timestamp go among them. */
static void
sort_protocol_params(oauth_credentials *creds)
{
    oauth_param *params = creds->protocol;
    size_t count = creds->protocol_count, i, j;

    for (i = 1; i < count; i++) {
        oauth_param item = params[i];
        for (j = i; j > 0 && strcmp(params[j - 1].name, item.name) > 0; j--) {
            params[j] = params[j - 1];
        }
        params[j] = item;
    }
    creds->protocol_nonce_index = 0;
    creds->protocol_timestamp_index = 0;
    for (i = 0; i < count; i++) {
        if (strcmp(params[i].name, "oauth_nonce") < 0) {
            creds->protocol_nonce_index = i + 1;
        }
        if (strcmp(params[i].name, "oauth_timestamp") < 0) {
            creds->protocol_timestamp_index = i + 1;
        }
    }
}

int
oauth_credentials_prepare(oauth_credentials *creds)
{
    oauth_buf buf = OAUTH_BUF_INIT;
    const char *values[6];
    size_t offsets[6], lengths[6];
    size_t head_len = 0, header_len, i, count = 0;

    values[0] = creds->consumer_key;
    values[1] = creds->token;
    values[2] = creds->method_name;
    values[3] = creds->version;
    values[4] = creds->callback;
    values[5] = creds->verifier;

    if (creds->method == OAUTH_HMAC_SHA1
            || creds->method == OAUTH_HMAC_SHA256) {
        creds->hmac_key = PyMem_Malloc(sizeof(oauth_hmac_key));
        if (creds->hmac_key == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        if (hmac_key_setup(creds->hmac_key,
                           creds->method == OAUTH_HMAC_SHA256,
                           (const unsigned char *)creds->key,
                           creds->key_len) < 0) {
            return oauth_raise_openssl(mwcomms_OAuthError,
                                       "HMAC key setup failed");
        }
    }

    if (prepare_header(creds, &buf, &head_len) < 0) {
        goto error;
    }
    header_len = buf.len;
    for (i = 0; i < Py_ARRAY_LENGTH(values); i++) {
        size_t len;
        char *end;
        if (values[i] == NULL) {
            continue;
        }
        len = strlen(values[i]);
        if (buf_reserve(&buf, 5 * len) < 0) {
            goto error;
        }
        offsets[i] = buf.len;
        end = encode_twice(buf.data + buf.len, values[i], len);
        lengths[i] = (size_t)(end - (buf.data + buf.len));
        buf.len += lengths[i];
        buf.data[buf.len] = '\0';
    }

    creds->prepared = buf.data;
    creds->header_head = buf.data;
    creds->header_head_len = head_len;
    creds->header_tail = buf.data + head_len;
    creds->header_tail_len = header_len - head_len;
    for (i = 0; i < Py_ARRAY_LENGTH(values); i++) {
        oauth_param *param;
        if (values[i] == NULL) {
            continue;
        }
        param = &creds->protocol[count++];
        param->name = protocol_value_name(i);
        param->name_len = strlen(param->name);
        param->value = buf.data + offsets[i];
        param->value_len = lengths[i];
    }
    creds->protocol_count = count;
    sort_protocol_params(creds);
    return 0;
error:
    oauth_buf_free(&buf);
    return -1;
}

void
oauth_credentials_release(oauth_credentials *creds)
{
    if (creds->hmac_key != NULL) {
        OPENSSL_cleanse(creds->hmac_key, sizeof(oauth_hmac_key));
        PyMem_Free(creds->hmac_key);
        creds->hmac_key = NULL;
    }
    PyMem_Free(creds->prepared);
    creds->prepared = NULL;
    creds->header_head = creds->header_tail = NULL;
    creds->header_head_len = creds->header_tail_len = 0;
    creds->protocol_count = 0;
}

/* ---- request validation and the whole computation --------------------- */

/* HTTP method: a token of RFC 9110 section 5.6.2, upper-cased into out. */
static int
normalize_method(const char *method, size_t len, char *out, size_t out_size)
{
    size_t i;

    if (len == 0 || len >= out_size) {
        PyErr_SetString(PyExc_ValueError,
                        "invalid HTTP method: expected 1 to 32 characters");
        return -1;
    }
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)method[i];
        if (!(Py_ISALNUM(c) || (c != '\0'
                                && strchr("!#$%&'*+-.^_`|~", c) != NULL))) {
            PyErr_Format(PyExc_ValueError,
                         "invalid HTTP method '%.32s': only letters, digits "
                         "and !#$%%&'*+-.^_`|~ are allowed", method);
            return -1;
        }
        out[i] = (char)Py_TOUPPER(c);
    }
    out[len] = '\0';
    return 0;
}

static int
collect_params(const oauth_credentials *creds, const oauth_request *request,
               const char *method, const url_parts *url, param_list *params)
{
    size_t form_count, i;

    if (url->query != NULL
            && params_add_form(params, url->query, url->query_len,
                               "query string") < 0) {
        return -1;
    }
    /* Section 3.4.1.3.1: the body counts only when it is form-urlencoded.
     * GET and HEAD bodies have no defined meaning (RFC 9110 section 9.3),
     * so they are never signed.  oauthlib's Client raises ValueError for
     * them instead. */
    if (request->body != NULL
            && is_form_urlencoded(request->content_type,
                                  request->content_type_len)
            && strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        /* Only a signed body is limited: a multipart upload of any size
         * is sent unsigned. */
        if (request->body_len > OAUTH_MAX_BODY_LEN) {
            PyErr_Format(PyExc_ValueError,
                         "form body is too large to sign: %zu bytes, the "
                         "maximum is %zu", request->body_len,
                         OAUTH_MAX_BODY_LEN);
            return -1;
        }
        if (params_add_form(params, request->body, request->body_len,
                            "body") < 0) {
            return -1;
        }
    }
    /* The protocol parameters go in sorted order, so that params_sort()
     * only merges them in. */
    form_count = params->count;
    for (i = 0; i <= creds->protocol_count; i++) {
        if (i == creds->protocol_nonce_index
                && params_add_protocol(params, "oauth_nonce", request->nonce,
                                       request->nonce_len,
                                       request->unreserved_values) < 0) {
            return -1;
        }
        if (i == creds->protocol_timestamp_index
                && params_add_protocol(params, "oauth_timestamp",
                                       request->timestamp,
                                       request->timestamp_len,
                                       request->unreserved_values) < 0) {
            return -1;
        }
        if (i < creds->protocol_count
                && params_add_fixed(params, &creds->protocol[i]) < 0) {
            return -1;
        }
    }
    params_resolve(params);
    return params_sort(params, form_count);
}

/* Section 3.4.1.1: METHOD "&" enc(base URI) "&" enc(parameters), where
 * the parameters are the encoded name=value pairs joined with "&".  The
 * entries are encoded twice already, and the "=" and "&" between them
 * become "%3D" and "%26". */
static int
build_base_string(const char *method, const url_parts *url,
                  const param_list *params, oauth_buf *base)
{
    size_t size = 3 * strlen(method) + 2 + base_uri_max_len(url), i;
    char *p;

    for (i = 0; i < params->count; i++) {
        const oauth_param *param = &params->order[i]->param;
        size += param->name_len + param->value_len + 6;
    }
    if (buf_reserve(base, size) < 0) {
        return -1;
    }
    p = encode_once(base->data, method, strlen(method));
    *p++ = '&';
    p = write_base_uri(p, url);
    *p++ = '&';
    for (i = 0; i < params->count; i++) {
        const oauth_param *param = &params->order[i]->param;
        if (i > 0) {
            memcpy(p, "%26", 3);
            p += 3;
        }
        p = copy_piece(p, param->name, param->name_len);
        memcpy(p, "%3D", 3);
        p = copy_piece(p + 3, param->value, param->value_len);
    }
    base->len = (size_t)(p - base->data);
    base->data[base->len] = '\0';
    return 0;
}

/* Append s (encoded twice) encoded once: every "%25" becomes "%". */
static char *
decode_once(char *p, const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        *p++ = s[i];
        if (s[i] == '%') {
            i += 2;
        }
    }
    return p;
}

/* Normalized parameters of section 3.4.1.3.2, encoded once. */
static int
build_parameters(const param_list *params, oauth_buf *out)
{
    size_t size = 0, i;
    char *p;

    for (i = 0; i < params->count; i++) {
        const oauth_param *param = &params->order[i]->param;
        size += param->name_len + param->value_len + 2;
    }
    if (buf_reserve(out, size) < 0) {
        return -1;
    }
    p = out->data + out->len;
    for (i = 0; i < params->count; i++) {
        const oauth_param *param = &params->order[i]->param;
        if (i > 0) {
            *p++ = '&';
        }
        p = decode_once(p, param->name, param->name_len);
        *p++ = '=';
        p = decode_once(p, param->value, param->value_len);
    }
    out->len = (size_t)(p - out->data);
    out->data[out->len] = '\0';
    return 0;
}

/* Authorization header of section 3.5.1.  signature is already encoded. */
static int
build_header(const oauth_credentials *creds, const oauth_request *request,
             const oauth_buf *signature, oauth_buf *header)
{
    size_t size = creds->header_head_len + 3 * request->timestamp_len + 16
        + 3 * request->nonce_len + creds->header_tail_len + signature->len
        + 1;
    char *p;

    if (buf_reserve(header, size) < 0) {
        return -1;
    }
    p = header->data + header->len;
    memcpy(p, creds->header_head, creds->header_head_len);
    p += creds->header_head_len;
    if (request->unreserved_values) {
        memcpy(p, request->timestamp, request->timestamp_len);
        p += request->timestamp_len;
        memcpy(p, "\", oauth_nonce=\"", 16);
        memcpy(p + 16, request->nonce, request->nonce_len);
        p += 16 + request->nonce_len;
    }
    else {
        p = encode_once(p, request->timestamp, request->timestamp_len);
        memcpy(p, "\", oauth_nonce=\"", 16);
        p += 16;
        p = encode_once(p, request->nonce, request->nonce_len);
    }
    /* The tail starts with the closing quote of the nonce. */
    memcpy(p, creds->header_tail, creds->header_tail_len);
    p += creds->header_tail_len;
    memcpy(p, signature->data, signature->len);
    p += signature->len;
    *p++ = '"';
    header->len = (size_t)(p - header->data);
    header->data[header->len] = '\0';
    return 0;
}

int
oauth_sign(const oauth_credentials *creds, const oauth_request *request,
           oauth_output *out)
{
    char method[33];
    param_storage storage;
    char base_storage[BASE_STACK_SIZE];
    char signature_storage[SIGNATURE_STACK_SIZE];
    url_parts url = {0};
    param_list params;
    oauth_buf base, signature;
    int rc = -1;

    params_init(&params, &storage);
    oauth_buf_init(&base, base_storage, sizeof(base_storage));
    oauth_buf_init(&signature, signature_storage, sizeof(signature_storage));

    if (creds->header_head == NULL) {
        PyErr_SetString(PyExc_SystemError,
                        "OAuth credentials were not prepared");
        goto done;
    }
    if (request->url_len > OAUTH_MAX_URL_LEN) {
        PyErr_Format(PyExc_ValueError,
                     "URL is too long to sign: %zu bytes, the maximum is %zu",
                     request->url_len, OAUTH_MAX_URL_LEN);
        goto done;
    }
    if (normalize_method(request->method, request->method_len, method,
                         sizeof(method)) < 0
            || parse_url(request->url, request->url_len, &url) < 0
            || collect_params(creds, request, method, &url, &params) < 0
            || build_base_string(method, &url, &params, &base) < 0) {
        goto done;
    }
    if (out->parameters != NULL
            && build_parameters(&params, out->parameters) < 0) {
        goto done;
    }
    if (out->header != NULL
            && (append_signature(creds, &base, &signature) < 0
                || build_header(creds, request, &signature,
                                out->header) < 0)) {
        goto done;
    }
    if (out->base_string != NULL
            && oauth_buf_append(out->base_string, base.data, base.len) < 0) {
        goto done;
    }
    rc = 0;
done:
    if (creds->method == OAUTH_PLAINTEXT) {
        /* The PLAINTEXT signature is the key. */
        OPENSSL_cleanse(signature.data, signature.cap);
    }
    oauth_buf_free(&signature);
    oauth_buf_free(&base);
    params_free(&params);
    return rc;
}

/* ---- the floor of a signature, for benchmarks/bench_sign.py ------------ */

int
oauth_time_floor(size_t data_len, size_t iterations, int pooled_nonce,
                 double *seconds)
{
    /* A key as long as enc(consumer_secret) "&" enc(token_secret) of a
     * MediaWiki consumer: longer than a block, so it is hashed first. */
    static const char secret[] =
        "0f1e2d3c4b5a69788796a5b4c3d2e1f0a1b2c3d4&"
        "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b";
    oauth_hmac_key key;
    unsigned char raw[NONCE_RANDOM_BYTES], mac[SHA256_DIGEST_LENGTH];
    unsigned char encoded[64];
    char nonce[OAUTH_NONCE_LEN + 1];
    unsigned char *data = NULL;
    struct timespec start, stop;
    volatile unsigned char sink = 0;
    size_t i;
    int rc = -1;

    data = PyMem_RawMalloc(data_len ? data_len : 1);
    if (data == NULL) {
        return -1;
    }
    memset(data, 'a', data_len);
    if (hmac_key_setup(&key, 0, (const unsigned char *)secret,
                       sizeof(secret) - 1) < 0) {
        goto done;
    }
    /* The first RAND_bytes() call of a thread sets up its DRBG. */
    if (RAND_bytes(raw, (int)sizeof(raw)) != 1) {
        goto done;
    }
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (i = 0; i < iterations; i++) {
        if (pooled_nonce ? take_nonce_bytes(raw) < 0
                         : RAND_bytes(raw, (int)sizeof(raw)) != 1) {
            goto done;
        }
        write_hex_nonce(nonce, raw);
        if (hmac_compute(&key, data, data_len, mac) == 0) {
            goto done;
        }
        EVP_EncodeBlock(encoded, mac, SHA_DIGEST_LENGTH);
        sink ^= encoded[0] ^ (unsigned char)nonce[0];
    }
    clock_gettime(CLOCK_MONOTONIC, &stop);
    *seconds = ((double)(stop.tv_sec - start.tv_sec)
                + (double)(stop.tv_nsec - start.tv_nsec) * 1e-9)
               / (double)(iterations ? iterations : 1);
    rc = 0;
done:
    OPENSSL_cleanse(&key, sizeof(key));
    PyMem_RawFree(data);
    return rc;
}
