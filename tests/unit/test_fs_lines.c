/* test_fs_lines.c: fs_line_escape, what every log and status line goes
 * through: no C0 or C1 control, DEL, U+2028/U+2029 or non-UTF-8 byte
 * survives raw (so a name or URL a user wrote cannot forge a log entry,
 * overwrite a line on screen or send a terminal escape); each such byte is
 * shown as \xNN, other UTF-8 text as it is; the output
 * never overflows and never ends in the middle of an escape or a character. */
#include "area.h"
#include "check.h"

#include <string.h>

static void esc(const char *in, const char *want)
{
    char buf[512];
    size_t n = fs_line_escape(buf, sizeof buf, in);
    CHECK_MSG(strcmp(buf, want) == 0, "\"%s\" gave \"%s\", want \"%s\"", in, buf, want);
    CHECK(n == strlen(buf));
}

/* out of room: buf of size n gets exactly want, and nothing past n is written */
static void fit(const char *in, size_t n, const char *want)
{
    char buf[64];
    memset(buf, '#', sizeof buf);
    size_t got = fs_line_escape(buf, n, in);
    CHECK_MSG(strcmp(buf, want) == 0, "\"%s\" in %zu gave \"%s\", want \"%s\"", in, n, buf, want);
    CHECK(got == strlen(want));
    for (size_t i = n; i < sizeof buf; i++)
        CHECK_MSG(buf[i] == '#', "byte %zu written past %zu", i, n);
}

int main(void)
{
    esc("plain text, 1.0", "plain text, 1.0");
    esc("two\nlines", "two\\x0Alines");
    esc("a\n2026-01-01 forged", "a\\x0A2026-01-01 forged");
    esc("over\rwrite", "over\\x0Dwrite");
    esc("\x1b[2Jclear", "\\x1B[2Jclear");
    esc("tab\there\x7f", "tab\\x09here\\x7F");
    esc("back\\slash", "back\\slash");
    esc("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    esc("csi \xc2\x9b"
        "31m",
        "csi \\xC2\\x9B31m");                    /* U+009B, a C1 control */
    esc("nbsp \xc2\xa0 ok", "nbsp \xc2\xa0 ok"); /* U+00A0 is text */
    esc("ls\xe2\x80\xa8ps\xe2\x80\xa9.",
        "ls\\xE2\\x80\\xA8ps\\xE2\\x80\\xA9."); /* line and paragraph separators */
    esc("dash \xe2\x80\x94", "dash \xe2\x80\x94");
    esc("raw \x9b"
        "31m \xff\xfe",
        "raw \\x9B31m \\xFF\\xFE"); /* not UTF-8 */
    esc("overlong \xc0\xaf \xe0\x80\xaf", "overlong \\xC0\\xAF \\xE0\\x80\\xAF");
    esc("surrogate \xed\xa0\x80", "surrogate \\xED\\xA0\\x80");
    esc("cut \xe2\x82", "cut \\xE2\\x82"); /* a sequence cut by the end */
    esc("", "");
    /* bounded: never past n, never half an escape or half a character */
    fit("abc", 1, "");
    fit("abc", 3, "ab");
    fit("ab\n", 5, "ab");
    fit("ab\n", 6, "ab");
    fit("ab\n", 7, "ab\\x0A");
    fit("a\xc3\xa9", 3, "a");
    fit("a\xc3\xa9", 4, "a\xc3\xa9");
    fit("\xe2\x80\xa8z", 12, "");
    fit("\xe2\x80\xa8z", 13, "\\xE2\\x80\\xA8");
    /* whatever comes in, nothing raw goes out: every byte 1..255 alone */
    for (int b = 1; b < 256; b++) {
        char in[2] = {(char)b, 0}, out[8];
        fs_line_escape(out, sizeof out, in);
        int ok = b >= 0x20 && b < 0x7f ? out[0] == b && out[1] == 0
                                       : out[0] == '\\' && out[1] == 'x' && strlen(out) == 4;
        CHECK_MSG(ok, "byte 0x%02x gave \"%s\"", b, out);
    }
    return check_report("test_fs_lines");
}
