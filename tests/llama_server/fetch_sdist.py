"""Download an sdist from PyPI's simple index and check its sha256, without building its metadata.

`pip download --no-binary :all:` would build the package's build backend and its dependencies from
source just to read metadata; the build here needs only the vendored llama.cpp source inside it.
"""

import hashlib
import os
import re
import sys
import urllib.request
from pathlib import Path


def main(package: str, version: str, dest: str) -> None:
    index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")
    name = re.sub(r"[-_.]+", "-", package).lower()
    page = urllib.request.urlopen(f"{index}/{name}/", timeout=60).read().decode()
    filename = f"{package.replace('-', '_')}-{version}.tar.gz"
    match = re.search(rf'href="([^"]*/{re.escape(filename)})#sha256=([0-9a-f]{{64}})"', page)
    if match is None:
        sys.exit(f"{filename} is not on {index}/{name}/")
    url, digest = match.groups()
    target = Path(dest) / filename
    with urllib.request.urlopen(url, timeout=300) as response, target.open("wb") as out:
        while chunk := response.read(1 << 20):
            out.write(chunk)
    if hashlib.sha256(target.read_bytes()).hexdigest() != digest:
        target.unlink()
        sys.exit(f"{filename}: sha256 does not match the index")
    print(target)


if __name__ == "__main__":
    main(*sys.argv[1:4])
