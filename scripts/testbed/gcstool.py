"""fake-gcs-server helper for the test bed: its JSON API, which needs no
credentials (Python's standard library only; uploads stream from disk).

usage: gcstool.py ENVFILE ls
       gcstool.py ENVFILE mb BUCKET
       gcstool.py ENVFILE put BUCKET KEY FILE
       gcstool.py ENVFILE put-dir BUCKET PREFIX DIR   (every file under DIR as
                 PREFIX + its path relative to DIR; PREFIX ends in /)
       gcstool.py ENVFILE url BUCKET KEY   (print the object's XML-API URL)
ENVFILE is the env file written by `scripts/testbed/gcs start`.
"""
import http.client
import json
import os
import sys
import urllib.parse

from toolkit import files_under, load_env


def request(env, method, path, body=None, headers=None, ok=(200,)):
    conn = http.client.HTTPConnection(env["GCS_HOST"], int(env["GCS_PORT"]), timeout=60)
    try:
        try:
            conn.request(method, path, body=body, headers=headers or {})
        except (BrokenPipeError, ConnectionResetError) as e:
            # The server answered (an error) before reading the whole body.
            try:
                resp = conn.getresponse()
            except (OSError, http.client.HTTPException):
                raise SystemExit(f"{method} {path}: {e}")
            raise SystemExit(f"{method} {path}: {resp.status} {resp.read()[:500]!r}")
        resp = conn.getresponse()
        data = resp.read()
        if resp.status not in ok:
            raise SystemExit(f"{method} {path}: {resp.status} {data[:500]!r}")
        return resp.status, data
    finally:
        conn.close()


def upload(env, bucket, key, path):
    query = urllib.parse.urlencode({"uploadType": "media", "name": key}, quote_via=urllib.parse.quote)
    target = f"/upload/storage/v1/b/{urllib.parse.quote(bucket, safe='')}/o?{query}"
    headers = {
        "Content-Type": "application/octet-stream",
        "Content-Length": str(os.path.getsize(path)),
    }
    with open(path, "rb") as body:
        request(env, "POST", target, body=body, headers=headers)


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    env = load_env(argv[1])
    cmd, args = argv[2], argv[3:]
    if cmd == "ls":
        _, data = request(env, "GET", "/storage/v1/b")
        for b in json.loads(data).get("items", []):
            print(b["name"])
    elif cmd == "mb" and len(args) == 1:
        body = json.dumps({"name": args[0]})
        request(
            env,
            "POST",
            "/storage/v1/b?project=test",
            body=body,
            headers={"Content-Type": "application/json"},
            ok=(200, 409),  # 409: exists already
        )
    elif cmd == "put" and len(args) == 3:
        upload(env, args[0], args[1], args[2])
    elif cmd == "put-dir" and len(args) == 3:
        bucket, prefix, root = args
        for key, path in files_under(root, prefix):
            upload(env, bucket, key, path)
    elif cmd == "url" and len(args) == 2:
        print(f"{env['GCS_ENDPOINT']}/{args[0]}/{urllib.parse.quote(args[1], safe='/')}")
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
