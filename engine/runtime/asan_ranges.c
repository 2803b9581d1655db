/* asan_ranges.c: eng_asan_range (asan_ranges.h) */
#include "asan_ranges.h"

#if ENG_ASAN
#include <sanitizer/asan_interface.h>
#include <stdint.h>

void eng_asan_range(const void *p, size_t bytes, int write)
{
    if (!bytes)
        return;
    void *bad = __asan_region_is_poisoned((void *)(uintptr_t)p, bytes);
    if (bad) /* ASan's own report (which allocation, where it was made), then it stops */
        __asan_report_error(__builtin_return_address(0), __builtin_frame_address(0),
                            __builtin_frame_address(0), bad, write, 1);
}
#else
typedef int eng_asan_ranges_unused; /* a translation unit may not be empty */
#endif
