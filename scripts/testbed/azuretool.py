"""Azure Blob helper for the test bed (azure-storage-blob from the venv:
Microsoft's own client, so the emulator sees what a real client sends).

usage: azuretool.py ENVFILE ls
       azuretool.py ENVFILE mb CONTAINER
       azuretool.py ENVFILE put CONTAINER BLOB FILE
       azuretool.py ENVFILE put-dir CONTAINER PREFIX DIR   (every file under DIR
                 as PREFIX + its path relative to DIR; PREFIX ends in /)
       azuretool.py ENVFILE sas CONTAINER BLOB [EXPIRES_S]   (print a read-only
                 blob SAS URL, default 3600 s)
ENVFILE is the env file written by `scripts/testbed/azurite start`.
"""
import datetime
import sys
import urllib.parse

from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobSasPermissions, BlobServiceClient, generate_blob_sas

from toolkit import files_under, load_env


def service(env):
    return BlobServiceClient(
        account_url=env["AZURITE_ENDPOINT"],
        credential={"account_name": env["AZURITE_ACCOUNT"], "account_key": env["AZURITE_KEY"]},
        connection_timeout=3,
        read_timeout=60,
        retry_total=0,
    )


def upload(svc, container, blob, path):
    with open(path, "rb") as data:
        svc.get_blob_client(container, blob).upload_blob(data, overwrite=True, max_concurrency=2)


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    env = load_env(argv[1])
    svc = service(env)
    cmd, args = argv[2], argv[3:]
    if cmd == "ls":
        for c in svc.list_containers():
            print(c.name)
    elif cmd == "mb" and len(args) == 1:
        try:
            svc.create_container(args[0])
        except ResourceExistsError:
            pass
    elif cmd == "put" and len(args) == 3:
        upload(svc, args[0], args[1], args[2])
    elif cmd == "put-dir" and len(args) == 3:
        container, prefix, root = args
        for key, path in files_under(root, prefix):
            upload(svc, container, key, path)
    elif cmd == "sas" and len(args) in (2, 3):
        container, blob = args[0], args[1]
        expires = int(args[2]) if len(args) == 3 else 3600
        sas = generate_blob_sas(
            account_name=env["AZURITE_ACCOUNT"],
            container_name=container,
            blob_name=blob,
            account_key=env["AZURITE_KEY"],
            permission=BlobSasPermissions(read=True),
            expiry=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=expires),
        )
        quoted = urllib.parse.quote(blob, safe="/")
        print(f"{env['AZURITE_ENDPOINT']}/{container}/{quoted}?{sas}")
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
