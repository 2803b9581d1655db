/* test_backbone_convert.c: tools/convert_efficientnet.py on checkpoints the
 * test makes (with python3's pickle and a stand-in "torch" module, so no
 * torch is needed): its restricted unpickler must refuse pickles that call
 * anything else (the payload must not run), and damaged or mismatched
 * checkpoints must fail with a message naming the problem, in both the legacy
 * stream layout and the zip layout. Skips (77) without python3. */
#include "check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmp[64];

/* Writes checkpoints into sys.argv[1]: a stand-in torch module gives pickle
 * the global names a real checkpoint uses. */
static const char *generator =
    "import io, os, pickle, struct, sys, types, zipfile, collections\n"
    "out = sys.argv[1]\n"
    "torch = types.ModuleType('torch'); utils = types.ModuleType('torch._utils')\n"
    "sys.modules['torch'] = torch; sys.modules['torch._utils'] = utils\n"
    "class FloatStorage: pass\n"
    "FloatStorage.__module__ = 'torch'; torch.FloatStorage = FloatStorage\n"
    "def _rebuild_tensor_v2(*a): pass\n"
    "_rebuild_tensor_v2.__module__ = 'torch._utils'\n"
    "utils._rebuild_tensor_v2 = _rebuild_tensor_v2\n"
    "OD = collections.OrderedDict\n"
    "class T:\n"
    "    def __init__(s, key, shape, stride): s.key, s.shape, s.stride = key, shape, stride\n"
    "    def __reduce__(s):\n"
    "        return (_rebuild_tensor_v2, (('storage', s.key), 0, s.shape, s.stride, False,\n"
    "                collections.OrderedDict()))\n"
    "class P(pickle.Pickler):\n"
    "    def persistent_id(s, o):\n"
    "        if isinstance(o, tuple) and len(o) == 2 and o[0] == 'storage':\n"
    "            return ('storage', FloatStorage, o[1], 'cpu', 864, None)\n"
    "        return None\n"
    "def dump(f, obj):\n"
    "    P(f, protocol=2).dump(obj)\n"
    "def legacy(name, state, keys, data, cut=0):\n"
    "    f = io.BytesIO()\n"
    "    for x in (0x1950a86a20f9469cfc6c, 1001, {'little_endian': True}):\n"
    "        pickle.dump(x, f, protocol=2)\n"
    "    dump(f, state); pickle.dump(keys, f, protocol=2)\n"
    "    for k in keys:\n"
    "        f.write(struct.pack('<q', 864)); f.write(data)\n"
    "    b = f.getvalue()\n"
    "    open(os.path.join(out, name), 'wb').write(b[:len(b) - cut])\n"
    "class Evil:\n"
    "    def __reduce__(s):\n"
    "        return (os.system, ('touch ' + os.path.join(out, 'PWNED'),))\n"
    "data = struct.pack('<864f', *[0.001 * i for i in range(864)])\n"
    "good = OD([('_conv_stem.weight', T('k0', (32, 3, 3, 3), (27, 9, 3, 1)))])\n"
    "legacy('stem_only.pth', good, ['k0'], data)\n"
    "legacy('truncated.pth', good, ['k0'], data, cut=100)\n"
    "bad = OD([('_conv_stem.weight', T('k0', (16, 3, 3, 3), (27, 9, 3, 1)))])\n"
    "legacy('wrong_shape.pth', bad, ['k0'], data)\n"
    "past = OD([('_conv_stem.weight', T('k0', (32, 3, 3, 3), (270, 9, 3, 1)))])\n"
    "legacy('past_storage.pth', past, ['k0'], data)\n"
    "f = io.BytesIO(); pickle.dump(Evil(), f, protocol=2)\n"
    "open(os.path.join(out, 'evil_first.pth'), 'wb').write(f.getvalue())\n"
    "legacy('evil_state.pth', collections.OrderedDict([('x', Evil())]), [], b'')\n"
    "z = zipfile.ZipFile(os.path.join(out, 'evil_zip.pth'), 'w')\n"
    "z.writestr('archive/data.pkl', pickle.dumps(OD([('x', Evil())]), protocol=2))\n"
    "z.close()\n"
    "z = zipfile.ZipFile(os.path.join(out, 'zip_stem_only.pth'), 'w')\n"
    "f = io.BytesIO(); dump(f, good)\n"
    "z.writestr('archive/data.pkl', f.getvalue()); z.writestr('archive/data/k0', data)\n"
    "z.close()\n"
    "z = zipfile.ZipFile(os.path.join(out, 'zip_no_storage.pth'), 'w')\n"
    "z.writestr('archive/data.pkl', f.getvalue())\n"
    "z.close()\n"
    "open(os.path.join(out, 'text.pth'), 'wb').write(b'hello, not a checkpoint')\n"
    "open(os.path.join(out, 'empty.pth'), 'wb').write(b'')\n";

typedef struct conv_case {
    const char *file;
    const char *want; /* fragment of the converter's message */
} conv_case;

static int run_capture(const char *cmd, char *out, size_t n)
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
    if (system("python3 -c 'import sys' >/dev/null 2>&1") != 0)
        CHECK_SKIP("python3 not found");
    snprintf(tmp, sizeof tmp, "/tmp/vfs-test-convert-XXXXXX");
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        return 1;
    }
    char gen[128], cmd[8192], out[8192];
    snprintf(gen, sizeof gen, "%s/gen.py", tmp);
    FILE *f = fopen(gen, "w");
    fputs(generator, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "python3 '%s' '%s' 2>&1", gen, tmp);
    int rc = run_capture(cmd, out, sizeof out);
    CHECK_MSG(rc == 0, "generator failed: %s", out);

    static const conv_case cases[] = {
        /* parsing works: the stem tensor is read, then the next tensor is missing */
        {"stem_only.pth", "checkpoint lacks _bn0.weight"},
        {"zip_stem_only.pth", "checkpoint lacks _bn0.weight"},
        {"wrong_shape.pth", "_conv_stem.weight has shape [16, 3, 3, 3]"},
        {"truncated.pth", "truncated"},
        {"past_storage.pth", "view runs past its storage"},
        {"evil_first.pth", "posix.system"},
        {"evil_state.pth", "posix.system"},
        {"evil_zip.pth", "posix.system"},
        {"zip_no_storage.pth", "lacks storage archive/data/k0"},
        {"text.pth", "damaged"},
        {"empty.pth", "damaged"},
    };
    char marker[128];
    snprintf(marker, sizeof marker, "%s/PWNED", tmp);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(cmd, sizeof cmd,
                 "python3 '%s/tools/convert_efficientnet.py' '%s/%s' '%s/out%zu' 2>&1",
                 VFS_SOURCE_DIR, tmp, cases[i].file, tmp, i);
        rc = run_capture(cmd, out, sizeof out);
        CHECK_MSG(rc == 1, "%s: exit %d: %s", cases[i].file, rc, out);
        CHECK_MSG(strstr(out, cases[i].want) != NULL, "%s: message lacks '%s': %s", cases[i].file,
                  cases[i].want, out);
        CHECK_MSG(strstr(out, "Traceback") == NULL, "%s: traceback: %s", cases[i].file, out);
        CHECK_MSG(access(marker, F_OK) != 0, "%s: the pickle payload ran", cases[i].file);
        char model[160];
        snprintf(model, sizeof model, "%s/out%zu/model.json", tmp, i);
        CHECK_MSG(access(model, F_OK) != 0, "%s: wrote a model anyway", cases[i].file);
    }
    snprintf(cmd, sizeof cmd, "python3 '%s/tools/convert_efficientnet.py' --version",
             VFS_SOURCE_DIR);
    CHECK(run_capture(cmd, out, sizeof out) == 0 && atoi(out) >= 1);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp);
    return check_report("test_backbone_convert");
}
