/* asan_ranges.h: AddressSanitizer and the engine's hot loops.
 *
 * Checked load by load, the GEMM micro-kernels and the depthwise row kernels ran a backbone 10x
 * slower than in Release, which made up most of the sanitizer CI stage's time. Under ASan such
 * loops are built without those checks (ENG_NO_ASAN) and check, once per call, every range they
 * read and write (eng_asan_range: the first poisoned byte of [p, p + bytes) is reported as ASan
 * reports a bad access, then ASan stops). A call reaching outside its allocations is still
 * caught, at the call; outside ASan builds both are nothing.
 */
#ifndef VFS_ENGINE_ASAN_RANGES_H
#define VFS_ENGINE_ASAN_RANGES_H

#include <stddef.h>

#if defined(__SANITIZE_ADDRESS__)
#define ENG_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ENG_ASAN 1
#endif
#endif
#ifndef ENG_ASAN
#define ENG_ASAN 0
#endif

#if ENG_ASAN
#define ENG_NO_ASAN __attribute__((no_sanitize("address")))
void eng_asan_range(const void *p, size_t bytes, int write);
#else
#define ENG_NO_ASAN
static inline void eng_asan_range(const void *p, size_t bytes, int write)
{
    (void)p, (void)bytes, (void)write;
}
#endif

#endif
