"""Leak audit: planted exact and near duplicates are found, the demo recipe has none, the index
gives the same pairs as brute force, and reports and fingerprint files are deterministic."""

from __future__ import annotations

import io
import pickle
import random

import numpy as np
import pytest
from PIL import Image

from anyir.data.audit import (
    DEFAULT_THRESHOLD,
    HASH_BITS,
    METHOD,
    PREFIX_THRESHOLD,
    AuditReport,
    Fingerprint,
    audit,
    audit_set,
    audit_sets,
    fingerprint,
    near_duplicates,
    read_fingerprints,
    write_fingerprints,
)
from anyir.data.sources.refs import load_skimage


def photo(name: str, top: int = 0, left: int = 0, height: int | None = None, width: int | None = None) -> np.ndarray:
    img = load_skimage(name)[0]
    height = height or img.shape[0] - top
    width = width or img.shape[1] - left
    return np.ascontiguousarray(img[top:top + height, left:left + width])


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


def resized(img: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.asarray(Image.fromarray(img).resize((width, height), Image.BICUBIC))


@pytest.fixture(scope="module")
def originals() -> dict[str, np.ndarray]:
    """Three training photos (crops of scikit-image samples, not square, not aligned to anything)."""
    return {"astronaut": photo("astronaut", 40, 24, 400, 440), "coffee": photo("coffee", 10, 60, 360, 480),
            "camera": photo("camera", 0, 0, 480, 400)}


def test_planted_exact_and_near_duplicates_are_found(originals):
    astro, coffee, camera = originals["astronaut"], originals["coffee"], originals["camera"]
    h, w = coffee.shape[:2]
    planted = {
        "copy_of_astronaut": (astro.copy(), "astronaut", "exact"),
        "astronaut_jpeg_q75": (jpeg(astro, 75), "astronaut", "near"),
        "coffee_shifted_1px": (coffee[1:, 1:], "coffee", "near"),
        "coffee_crop90": (coffee[int(0.07 * h):int(0.07 * h) + int(0.9 * h), int(0.02 * w):int(0.02 * w) + int(0.9 * w)],
                          "coffee", "near"),
        "camera_border5_resized": (resized(camera[24:-24, 20:-20], 400, 480), "camera", "near"),
        "camera_crop90_jpeg85": (jpeg(camera[0:432, 40:400], 85), "camera", "near"),
    }
    unrelated = {"chelsea": photo("chelsea"), "coins": photo("coins"), "rocket": photo("rocket")}
    train = [fingerprint(f"train_{k}", "denoise", "train", v) for k, v in originals.items()]
    test = [fingerprint(k, "dehaze", "test", img) for k, (img, _, _) in planted.items()]
    test += [fingerprint(k, "dehaze", "test", img) for k, img in unrelated.items()]

    report = audit(test, train)

    found = {p.test_key: p for p in report.pairs}
    assert set(found) == set(planted), report.pairs
    for key, (_, source, kind) in planted.items():
        assert found[key].train_key == f"train_{source}"
        assert found[key].kind == kind
        assert (found[key].distance == 0) if kind == "exact" else (found[key].distance <= report.threshold)
    assert (report.exact, report.near, report.leaked) == (1, 5, 6)
    assert report.pairs[0].kind == "exact"  # exact pairs first, then by distance
    assert [p.distance for p in report.pairs[1:]] == sorted(p.distance for p in report.pairs[1:])


def test_the_train_image_may_be_the_crop(originals):
    """Both directions: here the TRAINING sample is a 90 % crop of the test image."""
    astro = originals["astronaut"]
    test = [fingerprint("full", "derain", "test", astro)]
    train = [fingerprint("crop", "derain", "train", astro[30:390, 20:416])]
    report = audit(test, train)
    assert [(p.test_key, p.train_key, p.kind) for p in report.pairs] == [("full", "crop", "near")]


def test_different_photos_and_far_crops_do_not_match(originals):
    """Negative controls: other photos, and a crop of a different region of the same photo."""
    astro = photo("astronaut")
    train = [fingerprint("astronaut_left", "t", "train", astro[:, :200])]
    test = [fingerprint("astronaut_right", "t", "test", astro[:, 300:]),
            fingerprint("chelsea", "t", "test", photo("chelsea")),
            fingerprint("coffee", "t", "test", originals["coffee"])]
    assert audit(test, train).pairs == []


def demo_fingerprints() -> list[Fingerprint]:
    """The clean image of every demo recipe sample, cut exactly as the shard writer cuts it."""
    from anyir.data.build import scan_recipe
    from anyir.data.recipe import load_recipe
    from anyir.data.sources.materialize import crop_box
    from anyir.data.sources.refs import load_ref

    recipe = load_recipe("demo")
    scan = scan_recipe(recipe)
    assert not scan.rejections
    fps = []
    for item in scan.items:
        image = load_ref(item.gt)[0]
        top, left, size = crop_box(item, image.shape[0], image.shape[1], recipe.seed)  # the demo crops all
        clean = np.ascontiguousarray(image[top:top + size, left:left + size])
        fps.append(fingerprint(item.key, item.task, item.split, clean))
    return fps


def test_demo_recipe_has_no_overlap_but_a_planted_copy_is_found():
    fps = demo_fingerprints()
    tests = [f for f in fps if f.split == "test"]
    trains = [f for f in fps if f.split == "train"]
    assert len(tests) >= 15 and len(trains) >= 300  # five tasks, denoise with three sigmas

    report = audit_set(fps)

    assert report.pairs == [], report.pairs[:5]
    assert (report.n_test, report.n_train) == (len(tests), len(trains))
    assert report.summary() == f"leak audit: {len(tests)} test x {len(trains)} train clean images: no overlap"
    # The audit is not blind on these images: a re-encoded copy of one test crop put into training is
    # caught for that crop (and at most for other crops of the same photo that overlap it).
    from anyir.data.build import scan_recipe
    from anyir.data.recipe import load_recipe
    from anyir.data.sources.materialize import crop_box

    recipe = load_recipe("demo")
    item = next(i for i in scan_recipe(recipe).items if i.split == "test" and "chelsea" in i.key)
    chelsea = photo("chelsea")
    top, left, size = crop_box(item, chelsea.shape[0], chelsea.shape[1], recipe.seed)
    leaked = jpeg(chelsea[top:top + size, left:left + size], 85)
    planted = audit_set([*fps, fingerprint("planted", "deblur", "train", leaked)])
    caught = {p.test_key for p in planted.pairs}
    assert item.key in caught and all("chelsea" in key for key in caught), caught
    assert {(p.train_key, p.kind) for p in planted.pairs} == {("planted", "near")}


def random_hash(rng: random.Random) -> int:
    return rng.getrandbits(HASH_BITS)


def flip(value: int, rng: random.Random, in_prefix: int, in_rest: int) -> int:
    """Flip ``in_prefix`` bits among the 64 highest (lowest-frequency) bits and ``in_rest`` others."""
    for bit in rng.sample(range(HASH_BITS - 64, HASH_BITS), in_prefix) + rng.sample(range(HASH_BITS - 64), in_rest):
        value ^= 1 << bit
    return value


def to_bytes(hashes: list[int]) -> bytes:
    return b"".join(h.to_bytes(HASH_BITS // 8, "big") for h in hashes)


def brute_force(test: list[list[int]], train: list[list[int]], threshold: int) -> dict[tuple[int, int], int]:
    """The matching rule written plainly on Python integers, over all pairs."""
    def close(a: int, b: int) -> int | None:
        if bin((a ^ b) >> (HASH_BITS - 64)).count("1") > PREFIX_THRESHOLD:
            return None
        d = bin(a ^ b).count("1")
        return d if d <= threshold else None

    out = {}
    for i, t in enumerate(test):
        for j, r in enumerate(train):
            if not t or not r:
                continue
            found = [d for v in r if (d := close(t[0], v)) is not None]
            found += [d for v in t if (d := close(v, r[0])) is not None]
            if found:
                out[(i, j)] = min(found)
    return out


def test_index_gives_the_same_pairs_as_brute_force():
    rng = random.Random(7)
    threshold = 40
    train = [[random_hash(rng) for _ in range(rng.randint(1, 6))] for _ in range(400)]
    train[5] = []  # a flat image: no hashes
    test = [[random_hash(rng) for _ in range(rng.randint(1, 6))] for _ in range(80)]
    # Plant copies around both thresholds, in both directions (test whole ~ a train view, and a
    # test view ~ the train whole), with prefix distances around the index radius.
    for k in range(60):
        i, j = rng.randrange(len(test)), rng.randrange(len(train))
        if not train[j]:
            continue
        in_prefix, in_rest = rng.randint(0, PREFIX_THRESHOLD + 3), rng.randint(0, threshold - 5)
        if k % 2:
            test[i][0] = flip(rng.choice(train[j]), rng, in_prefix, in_rest)
        else:
            test[i].append(flip(train[j][0], rng, in_prefix, in_rest))
    expected = brute_force(test, train, threshold)
    assert len(expected) >= 20  # the planted pairs exercise the rule, not only random misses

    got = near_duplicates([to_bytes(t) for t in test], [to_bytes(r) for r in train], threshold)

    assert got == expected


def test_report_is_deterministic_and_order_free(originals):
    images = [*originals.values(), jpeg(originals["coffee"], 80), originals["camera"][2:, 3:]]
    fps = [fingerprint(f"s{i}", "t", "train" if i < 3 else "test", img) for i, img in enumerate(images)]
    again = [fingerprint(f"s{i}", "t", "train" if i < 3 else "test", img) for i, img in enumerate(images)]
    assert fps == again

    first = audit_set(fps)
    shuffled = audit_set(list(reversed(fps)))

    assert first.model_dump() == shuffled.model_dump()
    assert len(first.pairs) == 2
    assert AuditReport.model_validate_json(first.model_dump_json()) == first  # as stored in the manifest


def test_fingerprint_file_round_trip_and_bytes(tmp_path, originals):
    splits = ["train", "test", "train"]
    fps = [fingerprint(k, "denoise", split, img) for (k, img), split in zip(originals.items(), splits, strict=True)]
    fps.append(fingerprint("flat", "denoise", "train", np.full((40, 50, 3), 128, np.uint8)))
    a = write_fingerprints(tmp_path / "a.parquet", fps)
    b = write_fingerprints(tmp_path / "b.parquet", list(reversed(fps)))

    assert a.read_bytes() == b.read_bytes()  # the file of a set does not depend on worker order
    back = read_fingerprints(a)
    assert sorted(back, key=lambda f: f.key) == sorted(fps, key=lambda f: f.key)
    assert audit_set(back) == audit_set(fps)


def test_fingerprint_file_errors_name_the_file(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    with pytest.raises(ValueError, match="missing.parquet: no fingerprint file"):
        read_fingerprints(tmp_path / "missing.parquet")
    stale = tmp_path / "stale.parquet"
    pq.write_table(pa.table({"key": ["x"]}).replace_schema_metadata({"anyir.audit.method": "old-method"}), stale)
    with pytest.raises(ValueError, match=r"stale.parquet: fingerprints made by method 'old-method'.*rebuild"):
        read_fingerprints(stale)
    partial = tmp_path / "partial.parquet"
    pq.write_table(pa.table({"key": ["x"]}).replace_schema_metadata({"anyir.audit.method": METHOD}), partial)
    with pytest.raises(ValueError, match=r"partial.parquet: fingerprint file lacks columns \['task'"):
        read_fingerprints(partial)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet")
    with pytest.raises(ValueError, match="broken.parquet: cannot read fingerprints"):
        read_fingerprints(broken)


def test_fingerprint_is_small_picklable_and_checks_its_input(originals):
    fp = fingerprint("k", "t", "train", originals["coffee"])
    assert pickle.loads(pickle.dumps(fp)) == fp
    assert len(fp.exact) == 64 and 0 < len(fp.phash) <= 37 * 32 and len(fp.hashes()) == len(fp.phash) // 32
    with pytest.raises(ValueError, match=r"fingerprint\('k'\): image must be an HxWx3 uint8 array, got float32"):
        fingerprint("k", "t", "train", originals["coffee"].astype(np.float32))
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        fingerprint("k", "t", "train", originals["coffee"][..., 0])


def ramp(height: int, width: int, low: float, high: float, vertical: bool) -> np.ndarray:
    values = np.linspace(low, high, height if vertical else width)
    grid = np.broadcast_to(values[:, None] if vertical else values[None, :], (height, width))
    return np.repeat(grid[..., None], 3, axis=2).astype(np.uint8)


def test_flat_and_smooth_images_are_compared_by_exact_hash_only():
    """Uniform images and plain gradients carry too little structure to tell photos apart (two
    unrelated skies would match): they get no perceptual hash; exact copies are still found."""
    grey = np.full((64, 64, 3), 120, np.uint8)
    sky = ramp(150, 200, 230, 120, vertical=True)
    other_sky = ramp(90, 120, 250, 90, vertical=True)
    fps = [fingerprint("grey", "t", "train", grey), fingerprint("sky", "t", "train", sky),
           fingerprint("darker", "t", "test", np.full((80, 60, 3), 20, np.uint8)),
           fingerprint("other_sky", "t", "test", other_sky), fingerprint("grey_again", "t", "test", grey.copy())]
    assert all(fp.phash == b"" for fp in fps)
    report = audit_set(fps)
    assert [(p.test_key, p.train_key, p.kind) for p in report.pairs] == [("grey_again", "grey", "exact")]
    assert (report.smooth_test, report.smooth_train) == (3, 2)
    assert report.summary().startswith("leak audit: 3 test x 2 train clean images (3 test too smooth for the near check)")


def test_audit_sets_checks_both_directions_only_across_sets(originals):
    astro, coffee = originals["astronaut"], originals["coffee"]
    set_a = [fingerprint("x", "t", "test", astro), fingerprint("y", "t", "train", coffee),
             fingerprint("x_copy", "t", "train", astro.copy())]  # an in-set leak: not this audit's business
    set_b = [fingerprint("x", "t", "train", jpeg(astro, 80)), fingerprint("z", "t", "test", coffee[2:, :])]

    report = audit_sets(set_a, set_b, labels=("mine", "other"))

    assert {(p.test_key, p.train_key, p.kind) for p in report.pairs} == {
        ("mine:x", "other:x", "near"), ("other:z", "mine:y", "near")}
    assert (report.n_test, report.n_train, report.near, report.leaked) == (2, 3, 2, 2)


def test_summary_and_threshold_validation(originals):
    astro = originals["astronaut"]
    report = audit([fingerprint("t1", "t", "test", astro)], [fingerprint("r1", "t", "train", astro.copy()),
                                                             fingerprint("r2", "t", "train", jpeg(astro, 70))])
    assert report.method == METHOD and report.threshold == DEFAULT_THRESHOLD
    assert report.summary() == ("leak audit: 1 test x 2 train clean images: 1 exact, 1 near duplicate pairs in "
                                "1 test sample (first: test t1 = train r1)")
    with pytest.raises(ValueError, match="threshold must be 0..256"):
        audit([], [], threshold=300)
