"""Zips a model directory into a .mar in the zip64 forms.

usage: rezip.py SRC_DIR OUT.mar [--force-zip64] [--extra-entries N]

Every file under SRC_DIR (a `torch-model-archiver --archive-format
no-archive` directory) becomes a deflated entry, with zip64 headers on
every entry when --force-zip64 (as an entry over 4 GiB has them); with
--extra-entries N, N more empty entries `extra/NNNNNN.txt` are added, so
that N > 65535 makes the archive itself zip64 (its entry count needs the
zip64 end of central directory record). Prints the entry count.
"""
import argparse
import os
import zipfile


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("src")
    parser.add_argument("out")
    parser.add_argument("--force-zip64", action="store_true")
    parser.add_argument("--extra-entries", type=int, default=0)
    args = parser.parse_args()
    count = 0
    with zipfile.ZipFile(args.out, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as z:
        for folder, _, files in os.walk(args.src):
            for name in sorted(files):
                path = os.path.join(folder, name)
                arcname = os.path.relpath(path, args.src).replace(os.sep, "/")
                info = zipfile.ZipInfo(arcname)
                info.compress_type = zipfile.ZIP_DEFLATED
                with open(path, "rb") as src, z.open(info, "w", force_zip64=args.force_zip64) as dst:
                    while True:
                        block = src.read(1 << 20)
                        if not block:
                            break
                        dst.write(block)
                count += 1
        for i in range(args.extra_entries):
            z.writestr(f"extra/{i:06d}.txt", b"")
            count += 1
    print(count)


if __name__ == "__main__":
    main()
