#!/usr/bin/env python3
"""backbone_manifest.py: write or verify the integrity part of a backbone folder's
backbone.json (SPEC section 6).

Design: a backbone folder is a tfjs graph model (model.json + the weight files its
weightsManifest lists) plus backbone.json. At install time we record, for model.json and
every weight file, its size and sha256 ("files"), and the sha256 of the weights
concatenated in manifest order ("checksum": the identity of the weights that trained models
record). The engine checks these at load, so missing, truncated or altered files are
reported with the command that repairs them. Standard library only.

  backbone_manifest.py write DIR SKELETON_JSON   # merge skeleton fields, add files+checksum
  backbone_manifest.py verify DIR                # exit 0 when every recorded file matches
"""

import hashlib
import json
import os
import sys
import tempfile


class ManifestError(Exception):
    pass


def weight_paths(model_json_path):
    try:
        with open(model_json_path, "rb") as f:
            model = json.loads(f.read())
    except (OSError, ValueError) as e:
        raise ManifestError("'%s': %s" % (model_json_path, e))
    paths = []
    for group in model.get("weightsManifest", []):
        for p in group.get("paths", []):
            if not isinstance(p, str) or "/" in p or p.startswith("."):
                raise ManifestError("'%s': weight path %r is not a plain file name"
                                    % (model_json_path, p))
            paths.append(p)
    return paths


def sha256_file(path, h=None):
    own = h is None
    h = h or hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                break
            size += len(chunk)
            h.update(chunk)
    return (h.hexdigest() if own else None), size


def integrity(folder):
    """(files list, weights checksum) of a tfjs graph model folder."""
    shards = weight_paths(os.path.join(folder, "model.json"))
    files = []
    whole = hashlib.sha256()
    for name in ["model.json"] + shards:
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            raise ManifestError("'%s' is missing" % path)
        digest, size = sha256_file(path)
        files.append({"path": name, "size": size, "sha256": digest})
        if name != "model.json":
            sha256_file(path, whole)
    return files, whole.hexdigest()


def write_atomic(path, data):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write(folder, skeleton):
    info = dict(skeleton)
    files, checksum = integrity(folder)
    info["checksum"] = checksum
    info["files"] = files
    write_atomic(os.path.join(folder, "backbone.json"),
                 (json.dumps(info, indent=2) + "\n").encode())
    return info


def verify(folder):
    """Raises ManifestError naming the first file that does not match backbone.json."""
    path = os.path.join(folder, "backbone.json")
    try:
        with open(path, "rb") as f:
            info = json.loads(f.read())
    except (OSError, ValueError) as e:
        raise ManifestError("'%s': %s" % (path, e))
    files = info.get("files")
    if not isinstance(files, list) or not files:
        raise ManifestError("'%s' records no files" % path)
    for entry in files:
        p = os.path.join(folder, str(entry.get("path")))
        if not os.path.isfile(p):
            raise ManifestError("'%s' is missing" % p)
        digest, size = sha256_file(p)
        if size != entry.get("size"):
            raise ManifestError("'%s' has %d bytes, expected %s" % (p, size, entry.get("size")))
        if digest != entry.get("sha256"):
            raise ManifestError("'%s' sha256 differs from backbone.json" % p)
    return info


def main(argv):
    try:
        if len(argv) == 4 and argv[1] == "write":
            write(argv[2], json.loads(argv[3]))
            return 0
        if len(argv) == 3 and argv[1] == "verify":
            verify(argv[2])
            return 0
    except (ManifestError, ValueError, OSError) as e:
        print("backbone_manifest: %s" % e, file=sys.stderr)
        return 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
