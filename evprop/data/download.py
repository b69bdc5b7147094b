"""Download the official SHD / SSC archives into tonic's folder layout (<root>/SHD, <root>/SSC), check their md5
sums and unpack them. Without network access it fails at once, naming the URL and the folder to put the files in."""

from __future__ import annotations

import hashlib
import logging
import shutil
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from ..model.io import atomic_write
from .hsd import BASE_URL, DATASETS

log = logging.getLogger(__name__)
CONNECT_TIMEOUT_S = 20


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_dataset(dataset: str, root, opener=urllib.request.urlopen) -> list:
    """Fetch every split of `dataset` ('shd' or 'ssc') that is not already unpacked under `root`; returns the .h5
    paths. Each archive is downloaded to a temporary file, its md5 checked against the published sum, then
    unpacked and renamed into place: nothing half-written is left behind."""
    if dataset not in DATASETS:
        raise ValueError(f"dataset '{dataset}' unknown, expected one of {sorted(DATASETS)}")
    folder_name, splits = DATASETS[dataset]
    folder = Path(root).expanduser() / folder_name
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for split, (name, md5) in splits.items():
        target = folder / name
        paths.append(target)
        if target.is_file():
            log.info("%s: present", target)
            continue
        url = f"{BASE_URL}{name}.zip"
        archive = folder / f".{name}.zip.part"
        try:
            _fetch(url, archive, opener)
            if md5sum(archive) != md5:
                raise ValueError(f"{url}: md5 {md5sum(archive)} does not match the published {md5}; "
                                 f"the download is corrupt, try again")
            _unpack(archive, name, target)
        finally:
            archive.unlink(missing_ok=True)
    return paths


def _fetch(url: str, archive: Path, opener) -> None:
    log.info("downloading %s", url)
    try:
        with opener(url, timeout=CONNECT_TIMEOUT_S) as response, open(archive, "wb") as out:
            for block in iter(lambda: response.read(1 << 20), b""):
                out.write(block)
    except (urllib.error.URLError, OSError, TimeoutError) as err:
        reason = getattr(err, "reason", err)
        raise ValueError(f"cannot download {url} ({reason}); without network access, download it elsewhere and "
                         f"unpack it into {archive.parent}") from None


def _unpack(archive: Path, name: str, target: Path) -> None:
    try:
        with zipfile.ZipFile(archive) as bundle:
            member = next((m for m in bundle.namelist() if Path(m).name == name), None)
            if member is None:
                raise ValueError(f"{archive}: the archive holds no {name}")
            with bundle.open(member) as source:
                atomic_write(target, lambda out: shutil.copyfileobj(source, out, 1 << 20))
    except zipfile.BadZipFile as err:
        raise ValueError(f"{archive}: not a zip archive ({err})") from None
