"""Writes a zip64 model archive of SIZE_MIB MiB without building a model.

usage: big_zip64.py OUT.mar SIZE_MIB

One stored entry `weights.bin` of SIZE_MIB MiB (a 1 MiB random block
repeated: the benchmark measures memory, not compression), beside a
`MAR-INF/MANIFEST.json`. Over 4 GiB, the entry and the archive are zip64.
Prints the archive's size in bytes.
"""
import os
import sys
import zipfile


def main():
    out, size_mib = sys.argv[1], int(sys.argv[2])
    block = os.urandom(1 << 20)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
        z.writestr("MAR-INF/MANIFEST.json", '{"model": {"modelName": "big64", "handler": "h.py"}}')
        info = zipfile.ZipInfo("weights.bin")
        info.compress_type = zipfile.ZIP_STORED
        with z.open(info, "w", force_zip64=True) as dst:
            for _ in range(size_mib):
                dst.write(block)
    print(os.path.getsize(out))


if __name__ == "__main__":
    main()
