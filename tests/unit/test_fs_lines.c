/* test_fs_lines.c: fs_line_clean, what every log line goes through: no C0
 * or C1 control, DEL or non-UTF-8 byte survives (so a name or URL a user
 * wrote cannot forge a log entry, overwrite a line on screen or send a
 * terminal escape), valid UTF-8 text is kept as it is, and the length never
 * changes. */
#include "area.h"
#include "check.h"

#include <string.h>

static void clean(const char *in, const char *want)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", in);
    size_t n = strlen(buf);
    fs_line_clean(buf);
    CHECK_MSG(strcmp(buf, want) == 0, "\"%s\" gave \"%s\", want \"%s\"", in, buf, want);
    CHECK(strlen(buf) == n);
}

int main(void)
{
    clean("plain text, 1.0", "plain text, 1.0");
    clean("two\nlines", "two?lines");
    clean("over\rwrite", "over?write");
    clean("\x1b[2Jclear", "?[2Jclear");
    clean("tab\there\x7f", "tab?here?");
    clean("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    clean("csi \xc2\x9b"
          "31m",
          "csi ??31m");                            /* U+009B, a C1 control */
    clean("nbsp \xc2\xa0 ok", "nbsp \xc2\xa0 ok"); /* U+00A0 is text */
    clean("raw \x9b"
          "31m \xff\xfe",
          "raw ?31m ??"); /* not UTF-8 */
    clean("overlong \xc0\xaf \xe0\x80\xaf", "overlong ?? ???");
    clean("surrogate \xed\xa0\x80", "surrogate ???");
    clean("cut \xe2\x82", "cut ??"); /* a sequence cut by the end */
    clean("", "");
    return check_report("test_fs_lines");
}
