#include <lzma.h>
#include <string.h>

/// LZMA_STREAM_INIT is a macro; this zeroes a stream the same way.
static inline void nns_lzma_stream_init(lzma_stream *stream) {
    lzma_stream fresh = LZMA_STREAM_INIT;
    *stream = fresh;
}
