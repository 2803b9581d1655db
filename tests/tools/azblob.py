#!/usr/bin/python3
"""azblob.py: talks to an Azure Blob endpoint (Azurite on loopback in the
tests) with the standard library only: Shared Key signed requests to make a
container and upload blobs, and an account SAS for reading them.

  azblob.py mkcontainer ENDPOINT CONTAINER
  azblob.py put ENDPOINT CONTAINER BLOB FILE [CONTENT-TYPE]
  azblob.py sas [HOURS]             print an account SAS query string (read only)
  azblob.py badsas                  the same with a wrong signature

ENDPOINT is the account URL, e.g. http://127.0.0.1:10000/devstoreaccount1.
The account is Azurite's documented development account (devstoreaccount1
and its published key), never a real one.
"""
import base64, datetime, hashlib, hmac, http.client, sys, urllib.parse

ACCOUNT = "devstoreaccount1"
KEY = base64.b64decode(
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==")
VERSION = "2021-08-06"


def sign(text):
    return base64.b64encode(hmac.new(KEY, text.encode("utf-8"), hashlib.sha256).digest()).decode()


def request(method, endpoint, path, query, body=b"", headers=None):
    """Shared Key request; path is below the account (e.g. "/c/blob")."""
    u = urllib.parse.urlsplit(endpoint)
    full_path = u.path.rstrip("/") + path
    headers = dict(headers or {})
    headers["x-ms-date"] = datetime.datetime.now(datetime.timezone.utc).strftime(
        "%a, %d %b %Y %H:%M:%S GMT")
    headers["x-ms-version"] = VERSION
    length = str(len(body)) if body else ""
    canon_headers = "".join(f"{k.lower()}:{v.strip()}\n" for k, v in
                            sorted(headers.items(), key=lambda kv: kv[0].lower())
                            if k.lower().startswith("x-ms-"))
    canon_res = f"/{ACCOUNT}{full_path}"
    for k in sorted(query):
        canon_res += f"\n{k.lower()}:{query[k]}"
    to_sign = "\n".join([method, "", "", length, "", headers.get("Content-Type", ""), "", "", "",
                         "", "", ""]) + "\n" + canon_headers + canon_res
    headers["Authorization"] = f"SharedKey {ACCOUNT}:{sign(to_sign)}"
    qs = urllib.parse.urlencode(query)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    conn.request(method, full_path + ("?" + qs if qs else ""), body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, data


def account_sas(hours=1.0, bad=False):
    expiry = (datetime.datetime.now(datetime.timezone.utc) +
              datetime.timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")
    sv, ss, srt, sp, spr = "2020-12-06", "b", "sco", "rl", "https,http"
    to_sign = "\n".join([ACCOUNT, sp, ss, srt, "", expiry, "", spr, sv, "", ""])
    sig = sign(to_sign)
    if bad:
        sig = sign(to_sign + "x")
    return urllib.parse.urlencode({"sv": sv, "ss": ss, "srt": srt, "sp": sp, "se": expiry,
                                   "spr": spr, "sig": sig})


def main():
    a = sys.argv[1:]
    if not a:
        print(__doc__)
        return 2
    if a[0] == "mkcontainer":
        st, data = request("PUT", a[1], "/" + a[2], {"restype": "container"})
        if st not in (201, 409):
            print(f"mkcontainer: http {st}: {data[:300]!r}", file=sys.stderr)
            return 1
        return 0
    if a[0] == "put":
        with open(a[4], "rb") as f:
            body = f.read()
        ctype = a[5] if len(a) > 5 else "application/octet-stream"
        st, data = request("PUT", a[1], f"/{a[2]}/{urllib.parse.quote(a[3])}", {}, body,
                           {"x-ms-blob-type": "BlockBlob", "Content-Type": ctype})
        if st != 201:
            print(f"put: http {st}: {data[:300]!r}", file=sys.stderr)
            return 1
        return 0
    if a[0] in ("sas", "badsas"):
        print(account_sas(float(a[1]) if len(a) > 1 else 1.0, bad=a[0] == "badsas"))
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
