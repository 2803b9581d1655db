#!/usr/bin/env bash
# banned_check.sh CC BANNED_H: every call common/banned.h bans fails to
# compile with an error that names the replacement, and the replacement
# compiles. Run by ctest (test_banned_calls).
set -u
CC=$1
BANNED=$2
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
try() { # try NAME EXPECT(ok|banned) BODY
    printf '#include <stdio.h>\n#include <string.h>\nint f(char *d, const char *s, va_list ap);\n#include <stdarg.h>\nint f(char *d, const char *s, va_list ap) { (void)ap; %s; return 0; }\n' "$3" >"$T/$1.c"
    if out=$("$CC" -D_GNU_SOURCE -include "$BANNED" -fsyntax-only "$T/$1.c" 2>&1); then
        [ "$2" = ok ] || { echo "FAIL: $1 compiled"; fail=1; }
    else
        if [ "$2" = banned ] && grep -q "is_banned_see_common_banned_h" <<<"$out"; then
            echo "ok: $1 is a compile error: $(grep -o 'sorry_[a-z_]*' <<<"$out" | head -n 1)"
        else
            echo "FAIL: $1: $out"; fail=1
        fi
    fi
}
try strcpy banned 'strcpy(d, s)'
try strcat banned 'strcat(d, s)'
try strncpy banned 'strncpy(d, s, 4)'
try strncat banned 'strncat(d, s, 4)'
try sprintf banned 'sprintf(d, "%s", s)'
try vsprintf banned 'vsprintf(d, s, ap)'
try gets banned 'char *g = gets(d); (void)g'
try snprintf ok 'snprintf(d, 8, "%s", s)'
try vsnprintf ok 'vsnprintf(d, 8, s, ap)'
exit $fail
