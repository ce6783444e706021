"""Image member formats: the raw ``npy`` encoding round-trips, is deterministic, decodes without a
copy, is readable by foreign readers (numpy, webdataset), and every kind of damage is an
ImageReadError naming the member, which the stream reports and replaces."""

from __future__ import annotations

import io
import shutil
import tarfile

import numpy as np
import pytest
from conftest import reseal_manifest, tiny_recipe_dict

from anyir.data.build import build_shards
from anyir.data.codec import IMAGE_FORMATS, decode, decode_npy, encode, encode_npy
from anyir.data.images import ImageReadError
from anyir.data.recipe import RecipeError, validate_recipe
from anyir.data.samples import iter_samples
from anyir.data.stream import MixtureStream, ShardSkippedWarning


def image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("shape", [(1, 1), (7, 5), (48, 64), (321, 481)])
def test_npy_round_trip_is_exact_and_deterministic(shape):
    arr = image(*shape)
    data = encode(arr, "npy")
    assert data == encode_npy(arr.copy()) and len(data) == 128 + arr.nbytes  # fixed 128-byte header
    out = decode("gt.npy", data, "x")
    np.testing.assert_array_equal(out, arr)
    assert out.dtype == np.uint8 and out.shape == arr.shape


def test_npy_decode_is_a_read_only_view_without_copy():
    arr = image(40, 30)
    buf = bytearray(encode(arr, "npy"))
    view = memoryview(buf)
    out = decode_npy(view)
    assert np.shares_memory(out, np.frombuffer(buf, np.uint8))  # the pixels were not copied
    assert not out.flags.writeable
    with pytest.raises(ValueError):
        out[0, 0, 0] = 1


def test_npy_members_read_by_numpy_and_webdataset(tmp_path):
    arr = image(9, 11)
    data = encode(arr, "npy")
    np.testing.assert_array_equal(np.load(io.BytesIO(data), allow_pickle=False), arr)
    import webdataset as wds

    tar_path = tmp_path / "one.tar"
    with tarfile.open(tar_path, "w") as tar:
        for name, payload in (("k.gt.npy", data), ("k.json", b'{"key": "k"}')):
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    sample = next(iter(wds.WebDataset(str(tar_path), shardshuffle=False).decode(only=["gt.npy", "json"])))
    np.testing.assert_array_equal(sample["gt.npy"], arr)


def _npy_of(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)
    return buf.getvalue()


@pytest.mark.parametrize("damage", [
    "truncated", "padded", "not npy", "empty", "float32", "gray HxW", "4 channels", "fortran", "pickled objects",
    "header garbage"])
def test_damaged_npy_is_an_image_read_error_naming_the_member(damage):
    good = encode(image(6, 8), "npy")
    data = {
        "truncated": good[:-5],
        "padded": good + b"\0",
        "not npy": b"\x89PNG not at all",
        "empty": b"",
        "float32": _npy_of(np.zeros((6, 8, 3), np.float32)),
        "gray HxW": _npy_of(np.zeros((6, 8), np.uint8)),
        "4 channels": _npy_of(np.zeros((6, 8, 4), np.uint8)),
        "fortran": _npy_of(np.asfortranarray(np.zeros((6, 8, 3), np.uint8))),
        "pickled objects": _npy_of(np.array([[[{"a": 1}] * 3]], dtype=object)),
        "header garbage": good[:10] + b"{'descr': nonsense" + good[28:],
    }[damage]
    with pytest.raises(ImageReadError, match="shard.tar:k.gt.npy"):
        decode("gt.npy", data, "shard.tar:k.gt.npy")


def test_random_byte_damage_never_escapes_as_another_error():
    good = encode(image(5, 6), "npy")
    rng = np.random.default_rng(1)
    for _ in range(300):
        data = bytearray(good)
        for pos in rng.integers(0, 128, 3):  # damage the header; pixel damage is caught by the shard's sha256
            data[pos] = int(rng.integers(0, 256))
        try:
            out = decode("lq.npy", bytes(data), "w")
        except ImageReadError:
            continue
        assert out.shape == (5, 6, 3) and out.dtype == np.uint8  # a harmless change (e.g. padding spaces)


def test_png_still_available_and_unknown_formats_refused():
    arr = image(12, 10)
    np.testing.assert_array_equal(decode("gt.png", encode(arr, "png", 1), "x"), arr)
    assert set(IMAGE_FORMATS) == {"png", "npy"}
    with pytest.raises(ValueError, match="'webp' is not one of"):
        encode(arr, "webp")
    with pytest.raises(RecipeError, match="encoding.format"):
        validate_recipe({**tiny_recipe_dict(), "encoding": {"format": "webp"}})


def test_old_encoding_spelling_keeps_its_recipe_hash_and_png_bytes():
    plain = validate_recipe(tiny_recipe_dict())
    spelled = validate_recipe({**tiny_recipe_dict(), "encoding": {"format": "png", "compress_level": 1}})
    assert plain.content_hash() == spelled.content_hash()  # new fields at their defaults are not hashed
    assert "test_format" not in plain.model_dump()["encoding"] and "patch" not in plain.model_dump()["encoding"]
    npy = validate_recipe({**tiny_recipe_dict(), "encoding": {"format": "npy"}})
    assert npy.content_hash() != plain.content_hash()


@pytest.fixture(scope="module")
def npy_shards(tmp_path_factory):
    out = tmp_path_factory.mktemp("npy_shards")
    build_shards(validate_recipe({**tiny_recipe_dict("tiny_npy"), "encoding": {"format": "npy"}}), out,
                 workers=1, progress=False)
    return out


def test_npy_set_stores_train_raw_and_test_png_with_the_same_pixels(npy_shards, tiny_shards):
    for path in (npy_shards / "derain").iterdir():
        with tarfile.open(path) as tar:
            kinds = {m.name.split(".", 1)[1] for m in tar}
        assert kinds == ({"gt.npy", "lq.npy", "json"} if path.name.startswith("train") else {"gt.png", "lq.png", "json"})
    for split in ("train", "test"):
        png = {s.key: s for s in iter_samples(tiny_shards, split)}
        npy = {s.key: s for s in iter_samples(npy_shards, split)}
        assert png.keys() == npy.keys()
        for key, sample in npy.items():
            assert sample.gt.flags.writeable  # decode_sample gives arrays of their own
            np.testing.assert_array_equal(sample.gt, png[key].gt)
            if sample.lq is not None:
                np.testing.assert_array_equal(sample.lq, png[key].lq)


def test_npy_rebuild_is_byte_identical_for_any_worker_count(npy_shards, tmp_path):
    recipe = validate_recipe({**tiny_recipe_dict("tiny_npy"), "encoding": {"format": "npy"}})
    build_shards(recipe, tmp_path / "again", workers=2, progress=False)
    for path in npy_shards.rglob("*.tar"):
        assert (tmp_path / "again" / path.relative_to(npy_shards)).read_bytes() == path.read_bytes(), path
    assert (tmp_path / "again" / "manifest.json").read_bytes() == (npy_shards / "manifest.json").read_bytes()


def test_damaged_npy_member_is_reported_and_replaced_by_the_stream(npy_shards, tmp_path):
    shards = tmp_path / "shards"
    shutil.copytree(npy_shards, shards)
    tar_path = shards / "dehaze" / "train-000000.tar"
    with tarfile.open(tar_path) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    broken = members[0][0].name.partition(".")[0]
    with tarfile.open(tar_path, "w") as tar:
        for info, data in members:
            if info.name == f"{broken}.lq.npy":
                data = data[:-100]  # truncated pixels inside an intact, resealed tar
            new = tarfile.TarInfo(info.name)
            new.size = len(data)
            tar.addfile(new, io.BytesIO(data))
    reseal_manifest(shards)
    s = MixtureStream(shards, {"dehaze": 1.0}, batch_size=2, crop=32, samples_per_epoch=10)
    with pytest.warns(ShardSkippedWarning, match=rf"{broken}.*ImageReadError.*lq.npy.*truncated"):
        keys = [k for b in s for k in b["key"]]
    assert len(keys) == 10 and broken not in keys and s.replaced_samples >= 1
