/* test_backbone_fetch.c: scripts/fetch-backbones.sh on copies of the
 * installed backbones (VISIONFS_BACKBONES pointed at a temp folder, so the
 * real installation is never touched and nothing is downloaded): --check
 * passes on intact copies and fails on damaged ones, naming the backbone;
 * a CenterNet folder whose weights match but whose backbone.json is gone is
 * repaired without a download; and the engine's message for the damage names
 * the same script. Skips (77) when the backbones are not installed; fails
 * when one is installed without a readable backbone.json. */
#include "check.h"
#include "engine.h"
#include "test_backbone_dir.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int run(const char *cmd, char *out, size_t n)
{
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t got = fread(out, 1, n - 1, p);
    out[got] = '\0';
    int rc = pclose(p);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

int main(void)
{
    char src[1024], cn[1100], eff[1100];
    int have_cn = test_backbone_path("centernet", "backbone.json", cn, sizeof cn);
    int have_eff = test_backbone_path("efficientnet-lite0", "backbone.json", eff, sizeof eff);
    /* an installed backbone without a readable backbone.json is broken, and
     * the copies below would test the damage rather than the script */
    if (have_cn == 1 && access(cn, R_OK) != 0)
        return test_backbone_broken(cn, strerror(errno));
    if (have_eff == 1 && access(eff, R_OK) != 0)
        return test_backbone_broken(eff, strerror(errno));
    if (have_cn != 1 || have_eff != 1 || test_backbones_dir(src, sizeof src) != 0)
        CHECK_SKIP("backbones not installed (run scripts/fetch-backbones.sh)");
    char tmp[] = "/tmp/vfs-test-fetch-XXXXXX";
    if (!mkdtemp(tmp))
        return 1;
    char cmd[4096], out[8192];
    /* -L: copies of the files, never links to them, since the test damages
     * its copies and a link would damage the installation itself */
    snprintf(cmd, sizeof cmd, "cp -rL '%s/centernet' '%s/efficientnet-lite0' '%s/'", src, src, tmp);
    CHECK(system(cmd) == 0);
    char script[1200];
    snprintf(script, sizeof script, "VISIONFS_BACKBONES='%s' bash '%s/scripts/fetch-backbones.sh'",
             tmp, VFS_SOURCE_DIR);

    /* intact copies: --check passes and says so (naming the two copied:
     * without names it checks every default backbone) */
    snprintf(cmd, sizeof cmd, "%s --check centernet efficientnet-lite0 2>&1", script);
    int rc = run(cmd, out, sizeof out);
    CHECK_MSG(rc == 0, "check on intact copies: %d: %s", rc, out);
    CHECK_MSG(strstr(out, "centernet: up to date") && strstr(out, "efficientnet-lite0: up to date"),
              "%s", out);
    /* the installation itself is damaged: the steps below assume intact
     * copies (and the repair step would download), so stop here, failed */
    if (rc != 0) {
        fprintf(stderr, "FAIL: the installed backbones in %s do not pass --check\n", src);
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", tmp);
        return check_report("test_backbone_fetch");
    }

    /* truncate a shard: --check fails, names the backbone and the repair */
    char shard[1200];
    snprintf(shard, sizeof shard, "%s/efficientnet-lite0/group1-shard2of5.bin", tmp);
    CHECK(truncate(shard, 1000) == 0);
    rc = run(cmd, out, sizeof out);
    CHECK_MSG(rc == 1, "check on a truncated shard: %d: %s", rc, out);
    CHECK_MSG(strstr(out, "efficientnet-lite0: not installed, damaged") != NULL, "%s", out);
    CHECK_MSG(strstr(out, "run scripts/fetch-backbones.sh") != NULL, "%s", out);
    CHECK_MSG(strstr(out, "centernet: up to date") != NULL, "%s", out);
    /* the engine says the same */
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/efficientnet-lite0", tmp);
    eng_backbone *bb = NULL;
    eng_diag d = {{0}};
    CHECK(eng_backbone_open(dir, &bb, &d) == ENG_EFORMAT);
    CHECK_MSG(strstr(d.msg, "truncated") && strstr(d.msg, "scripts/fetch-backbones.sh"), "%s",
              d.msg);

    /* CenterNet with matching weights but no backbone.json: rewritten, no download */
    snprintf(cmd, sizeof cmd, "rm '%s/centernet/backbone.json' && %s centernet 2>&1", tmp, script);
    rc = run(cmd, out, sizeof out);
    CHECK_MSG(rc == 0, "repair of backbone.json: %d: %s", rc, out);
    CHECK_MSG(strstr(out, "weights already match") != NULL, "%s", out);
    snprintf(dir, sizeof dir, "%s/centernet", tmp);
    CHECK(eng_backbone_open(dir, &bb, &d) == ENG_OK);
    if (bb) {
        CHECK(eng_backbone_get_info(bb)->embedding_dim == 480);
        eng_backbone_free(bb);
    }
    /* the rewritten description equals the installed one */
    snprintf(cmd, sizeof cmd, "cmp -s '%s/centernet/backbone.json' '%s/centernet/backbone.json'",
             src, tmp);
    CHECK(system(cmd) == 0);

    /* unknown arguments are refused */
    snprintf(cmd, sizeof cmd, "%s --frobnicate 2>&1", script);
    CHECK(run(cmd, out, sizeof out) == 2);

    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp);
    return check_report("test_backbone_fetch");
}
