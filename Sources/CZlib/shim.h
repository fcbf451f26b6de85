#include <zlib.h>

/// deflateInit2 is a macro; Swift needs a function.
static inline int nns_deflate_init_gzip(z_stream *stream, int level) {
    /* windowBits 15 + 16 selects the gzip wrapper; memLevel 8 is zlib's default. */
    return deflateInit2(stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
}

/// inflateInit2 is a macro; 15 + 32 accepts gzip and zlib headers.
static inline int nns_inflate_init_auto(z_stream *stream) {
    return inflateInit2(stream, 15 + 32);
}
