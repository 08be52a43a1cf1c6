"""Fetch the four benchmark files published with the ELCRec paper and check their sha256."""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

DEFAULT_BASE_URL = "https://raw.githubusercontent.com/yueliu1999/ELCRec/main/data"
SHA256 = {
    "Beauty": "226cce9c3105299ca0db9615d7d3fb32b3175e90da43100ae352599f0f0107b8",
    "Sports_and_Outdoors": "2a095e0648872beb9982408958290f5d655db5be2911c3756b5446de9f0b8de2",
    "Toys_and_Games": "176c680c688d497598c4a89a03b402c0fe78d795e5db335c2e78dd5f2d778a3f",
    "Yelp": "724b219106b81dd2349027da997334ddb6da9fe2f152ad6e0d97a93170f7caed",
}


class DownloadError(Exception):
    pass


def download(name: str, out_dir: str | Path, base_url: str | None = None, timeout: float = 60.0) -> Path:
    if name not in SHA256:
        raise DownloadError(f"unknown data set {name!r}; choose one of {', '.join(SHA256)}")
    base = (base_url or os.environ.get("ELCREC_DATA_URL") or DEFAULT_BASE_URL).rstrip("/")
    url = f"{base}/{name}.txt"
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{name}.txt"
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{name}.")
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as fh, urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310
            for chunk in iter(lambda: resp.read(1 << 16), b""):
                digest.update(chunk)
                fh.write(chunk)
        if digest.hexdigest() != SHA256[name]:
            raise DownloadError(f"{url}: sha256 {digest.hexdigest()} does not match the published {SHA256[name]}")
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise DownloadError(f"could not download {url}: {exc}") from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target
