"""What the test bed's store tools (s3tool.py, azuretool.py, gcstool.py)
share: reading a fixture's env file, and the files of a directory as the
object keys `put-dir` uploads them under."""
import os


def load_env(path):
    env = {}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if "=" in line and not line.startswith("#"):
                k, v = line.split("=", 1)
                env[k] = v
    return env


def files_under(root, prefix):
    """(key, path) of every file under ROOT, in a stable order: PREFIX plus
    its path relative to ROOT, with `/` separators."""
    for folder, _, files in os.walk(root):
        for name in sorted(files):
            path = os.path.join(folder, name)
            yield prefix + os.path.relpath(path, root).replace(os.sep, "/"), path
