"""S3 helper for the test bed (boto3 from the venv).

usage: s3tool.py ENVFILE ls
       s3tool.py ENVFILE mb BUCKET
       s3tool.py ENVFILE put BUCKET KEY FILE
       s3tool.py ENVFILE put-dir BUCKET PREFIX DIR   (every file under DIR as
                 PREFIX + its path relative to DIR; PREFIX ends in /)
       s3tool.py ENVFILE put-checksum BUCKET KEY FILE ALGORITHM   (one part, with
                 the store keeping a SHA256/SHA1/CRC32 checksum of it)
       s3tool.py ENVFILE presign BUCKET KEY [EXPIRES_S]
       s3tool.py ENVFILE rm BUCKET KEY
ENVFILE is the env file written by `scripts/testbed/s3 start`.
"""
import sys

import boto3
from botocore.config import Config

from toolkit import files_under, load_env


def client(env):
    return boto3.client(
        "s3",
        endpoint_url=env["S3_ENDPOINT"],
        aws_access_key_id=env["S3_ACCESS_KEY"],
        aws_secret_access_key=env["S3_SECRET_KEY"],
        region_name=env.get("S3_REGION", "us-east-1"),
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            retries={"max_attempts": 1},
            connect_timeout=3,
            read_timeout=60,
        ),
    )


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    env = load_env(argv[1])
    s3 = client(env)
    cmd, args = argv[2], argv[3:]
    if cmd == "ls":
        for b in s3.list_buckets().get("Buckets", []):
            print(b["Name"])
    elif cmd == "mb" and len(args) == 1:
        try:
            s3.create_bucket(Bucket=args[0])
        except s3.exceptions.BucketAlreadyOwnedByYou:
            pass
    elif cmd == "put" and len(args) == 3:
        s3.upload_file(args[2], args[0], args[1])
    elif cmd == "put-dir" and len(args) == 3:
        bucket, prefix, root = args
        for key, path in files_under(root, prefix):
            s3.upload_file(path, bucket, key)
    elif cmd == "put-checksum" and len(args) == 4:
        with open(args[2], "rb") as body:
            s3.put_object(Bucket=args[0], Key=args[1], Body=body, ChecksumAlgorithm=args[3])
    elif cmd == "rm" and len(args) == 2:
        s3.delete_object(Bucket=args[0], Key=args[1])
    elif cmd == "presign" and len(args) in (2, 3):
        expires = int(args[2]) if len(args) == 3 else 3600
        print(
            s3.generate_presigned_url(
                "get_object", Params={"Bucket": args[0], "Key": args[1]}, ExpiresIn=expires
            )
        )
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
