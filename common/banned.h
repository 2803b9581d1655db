/* banned.h: calls that hide buffer overflows or truncation, made compile
 * errors in every C file of the project (CMake force-includes this header
 * with -include). Each error names the replacement:
 *   strcpy, strcat, sprintf, vsprintf -> snprintf / vsnprintf, checking the
 *                                        result against the buffer size
 *   strncpy, strncat                  -> snprintf (strncpy leaves no NUL on
 *                                        truncation and says nothing of it)
 *   gets                              -> fgets
 *   JSON text built by hand           -> coco/jsonw.h
 * The system headers that declare them are included first, so their own
 * declarations are not touched; a later #include of them is a no-op. */
#ifndef VFS_BANNED_H
#define VFS_BANNED_H

#include <stdio.h>
#include <string.h>

#define VFS_BANNED(func) sorry_##func##_is_banned_see_common_banned_h

#undef strcpy
#define strcpy(...) VFS_BANNED(strcpy_use_snprintf)
#undef strcat
#define strcat(...) VFS_BANNED(strcat_use_snprintf)
#undef strncpy
#define strncpy(...) VFS_BANNED(strncpy_use_snprintf)
#undef strncat
#define strncat(...) VFS_BANNED(strncat_use_snprintf)
#undef sprintf
#define sprintf(...) VFS_BANNED(sprintf_use_snprintf)
#undef vsprintf
#define vsprintf(...) VFS_BANNED(vsprintf_use_vsnprintf)
#undef gets
#define gets(...) VFS_BANNED(gets_use_fgets)

#endif
