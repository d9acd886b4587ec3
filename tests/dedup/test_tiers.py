from __future__ import annotations

import shutil

import numpy as np
from PIL import Image, ImageEnhance

from photoembed.dedup.match import ALIGN_MIN, crop_alignment
from photoembed.dedup.records import Cluster
from photoembed.dedup.service import DedupService
from photoembed.imaging import fingerprint as fp
from photoembed.imaging.fingerprint import fingerprint
from tests.dedup.conftest import PhotoLibrary, save_scene, scene


def _names(cluster: Cluster) -> set[str]:
    return {p.path.name for p in cluster.photos}


def test_identical_copies_form_an_identical_cluster(library: PhotoLibrary, service: DedupService) -> None:
    a = save_scene(library.root / "a.jpg", 1, quality=90)
    b = library.root / "sub" / "a copy.jpg"
    b.parent.mkdir()
    shutil.copyfile(a, b)
    c = save_scene(library.root / "c.jpg", 2, quality=90)
    for path in (a, b, c):
        library.add(path)
    clusters = service.find_clusters(tier="identical")
    assert [(cl.tier, _names(cl)) for cl in clusters] == [("identical", {"a.jpg", "a copy.jpg"})]
    assert all(p.score == 1.0 for p in clusters[0].photos)


def test_same_photo_other_file_without_model(library: PhotoLibrary, service: DedupService) -> None:
    original = scene(7)
    paths = [library.root / "orig.png"]
    original.save(paths[0])
    variants = {
        "small.jpg": original.resize((320, 240)),
        "q40.jpg": original,
        "bright.jpg": ImageEnhance.Brightness(original).enhance(1.2),
        "crop10.jpg": original.crop((64, 48, 640, 480)),
    }
    for name, image in variants.items():
        image.save(library.root / name, quality=40 if name == "q40.jpg" else 90)
        paths.append(library.root / name)
    paths.append(save_scene(library.root / "other.jpg", 8))
    for path in paths:
        library.add(path)
    clusters = service.find_clusters(tier="same")
    assert len(clusters) == 1
    assert clusters[0].tier == "same"
    assert _names(clusters[0]) == {"orig.png", *variants}
    # Without the model the default is the loosest tier available from hashes alone.
    assert [c.tier for c in service.find_clusters()] == ["same"]


def test_identical_copies_join_their_same_photo_cluster(library: PhotoLibrary, service: DedupService) -> None:
    original = scene(9)
    original.save(library.root / "a.png")
    shutil.copyfile(library.root / "a.png", library.root / "b.png")
    original.resize((320, 240)).save(library.root / "c.jpg")
    for name in ("a.png", "b.png", "c.jpg"):
        library.add(library.root / name)
    clusters = service.find_clusters(tier="same")
    assert len(clusters) == 1
    matches = {p.path.name: p.match for p in clusters[0].photos}
    assert matches == {"a.png": "keeper", "b.png": "identical", "c.jpg": "same"}
    assert [c.tier for c in service.find_clusters(tier="identical")] == ["identical"]


def test_near_uniform_images_never_match_by_hash(library: PhotoLibrary, service: DedupService) -> None:
    ramp = np.tile(np.linspace(90, 200, 640, dtype=np.float32), (480, 1))
    for k in range(3):  # three different skies: a perceptual hash alone calls them one photo
        sky = np.stack([ramp * (0.5 + 0.05 * k), ramp * 0.8, ramp], axis=-1)
        Image.fromarray(sky.astype(np.uint8)).save(library.root / f"sky{k}.jpg")
    Image.new("RGB", (640, 480), (3, 3, 3)).save(library.root / "black1.jpg")
    Image.new("RGB", (640, 480), (6, 5, 4)).save(library.root / "black2.jpg")
    shutil.copyfile(library.root / "black1.jpg", library.root / "black1 copy.jpg")
    for path in sorted(library.root.iterdir()):
        library.add(path)
    clusters = service.find_clusters(tier="same")
    # Only the byte-identical copy is a duplicate.
    assert [(c.tier, _names(c)) for c in clusters] == [("identical", {"black1.jpg", "black1 copy.jpg"})]


def test_different_parts_of_one_photo_are_not_the_same(library: PhotoLibrary, service: DedupService) -> None:
    big = scene(11, (1280, 480))
    big.crop((0, 0, 700, 480)).save(library.root / "left.jpg")
    big.crop((580, 0, 1280, 480)).save(library.root / "right.jpg")
    for name in ("left.jpg", "right.jpg"):
        library.add(library.root / name)
    assert service.find_clusters(tier="same") == []


def test_not_duplicates_is_remembered_across_renames(
    library: PhotoLibrary, service: DedupService, catalog: object
) -> None:
    original = scene(12)
    original.save(library.root / "a.png")
    original.resize((320, 240)).save(library.root / "b.jpg")
    ids = [library.add(library.root / n) for n in ("a.png", "b.jpg")]
    assert len(service.find_clusters(tier="same")) == 1
    assert service.mark_not_duplicates([library.root / "a.png", library.root / "b.jpg"]) == 1
    assert service.find_clusters(tier="same") == []
    moved = library.root / "renamed.jpg"
    (library.root / "b.jpg").rename(moved)
    st = moved.stat()
    service.catalog.move_photo(
        ids[1], root_id=library.root_id, new_path=str(moved), size=st.st_size, mtime_ns=st.st_mtime_ns
    )
    assert service.find_clusters(tier="same") == []


def test_not_duplicates_on_a_whole_cluster(library: PhotoLibrary, service: DedupService) -> None:
    original = scene(13)
    original.save(library.root / "a.png")
    original.resize((400, 300)).save(library.root / "b.jpg")
    original.resize((320, 240)).save(library.root / "c.jpg", quality=50)
    for n in ("a.png", "b.jpg", "c.jpg"):
        library.add(library.root / n)
    (cluster,) = service.find_clusters(tier="same")
    assert service.mark_cluster_not_duplicates(cluster) == 3
    assert service.find_clusters(tier="same") == []


def test_two_crops_at_other_offsets_join_their_original(library: PhotoLibrary, service: DedupService) -> None:
    original = scene(13)
    original.save(library.root / "orig.png")
    # 10 % off the right and bottom, and 10 % off the left and top: each keeps an edge the other lost.
    original.crop((0, 0, 576, 432)).save(library.root / "crop-top-left.jpg", quality=90)
    original.crop((64, 48, 640, 480)).save(library.root / "crop-bottom-right.jpg", quality=90)
    # A wider view's two halves overlap too little to be one photo, even with their whole photo present.
    wide = scene(14, (1280, 480))
    wide.save(library.root / "wide.png")
    wide.crop((0, 0, 700, 480)).save(library.root / "left.jpg", quality=90)
    wide.crop((580, 0, 1280, 480)).save(library.root / "right.jpg", quality=90)
    for path in sorted(library.root.iterdir()):
        library.add(path)
    thumbs = {
        name: fp.parse(fingerprint(Image.open(library.root / name).convert("RGB")).phash)
        for name in ("crop-top-left.jpg", "crop-bottom-right.jpg")
    }
    first, second = (t.thumb for t in thumbs.values() if t is not None)
    assert first is not None
    assert second is not None
    assert crop_alignment(first, second) < ALIGN_MIN  # no pair test links the two crops directly
    clusters = service.find_clusters(tier="same")
    assert [_names(c) for c in clusters] == [{"orig.png", "crop-top-left.jpg", "crop-bottom-right.jpg"}]
