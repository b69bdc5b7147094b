"""`evprop data download`: md5-checked, unpacked into tonic's layout, nothing half-written, clear offline error."""

import io
import urllib.error
import zipfile

import pytest

from evprop.data import download as dl


def _zip_bytes(name, payload=b"HDF5 payload"):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr(name, payload)
    return buffer.getvalue()


class FakeResponse(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_download_checks_md5_and_unpacks(tmp_path, monkeypatch):
    import hashlib
    blobs = {name: _zip_bytes(name) for name in ("shd_train.h5", "shd_test.h5")}
    monkeypatch.setitem(dl.DATASETS, "shd", ("SHD", {split: (f"shd_{split}.h5",
                                                              hashlib.md5(blobs[f"shd_{split}.h5"]).hexdigest())
                                                     for split in ("train", "test")}))
    requested = []

    def opener(url, timeout):
        requested.append(url)
        return FakeResponse(blobs[url.rsplit("/", 1)[1][:-4]])

    paths = dl.download_dataset("shd", tmp_path, opener)
    assert [p.read_bytes() for p in paths] == [b"HDF5 payload"] * 2
    assert requested == [f"{dl.BASE_URL}shd_train.h5.zip", f"{dl.BASE_URL}shd_test.h5.zip"]
    assert sorted(p.name for p in (tmp_path / "SHD").iterdir()) == ["shd_test.h5", "shd_train.h5"]
    assert dl.download_dataset("shd", tmp_path, opener) == paths and len(requested) == 2     # present: no fetch


def test_corrupt_download_is_refused_and_removed(tmp_path):
    with pytest.raises(ValueError, match="md5 .* does not match the published"):
        dl.download_dataset("ssc", tmp_path, lambda url, timeout: FakeResponse(_zip_bytes("ssc_train.h5")))
    assert list((tmp_path / "SSC").iterdir()) == []


def test_offline_names_the_url_and_the_folder(tmp_path):
    def offline(url, timeout):
        raise urllib.error.URLError("Name or service not known")
    with pytest.raises(ValueError, match=r"cannot download https://zenkelab.org/datasets/shd_train.h5.zip .*"
                                         r"unpack it into .*SHD"):
        dl.download_dataset("shd", tmp_path, offline)
