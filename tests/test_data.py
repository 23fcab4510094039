import numpy as np
import pytest
import torch
from PIL import Image

from atlas.data import (
    ImageRecord,
    UnusableImage,
    image_folder,
    load_images,
    read_image,
    read_pixels,
)
from atlas.errors import DataError
from atlas.models import Preprocessing


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((10, 20, 3), np.uint8)
    pixels[:, :10] = 255  # left half white, landscape
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    image.save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    shown = read_image(str(tmp_path / "rotated.jpg"))
    assert shown.size == (10, 20)  # portrait once oriented
    assert np.asarray(shown)[:10].mean() > 200  # the white half is on top
    pixels = read_pixels(str(tmp_path / "rotated.jpg"))
    assert tuple(pixels.shape) == (3, 20, 10) and pixels[:, :10].float().mean() > 200


def test_transparency_is_composited_on_white(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 255  # red, fully transparent except one pixel
    rgba[0, 0, 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = np.asarray(read_image(str(tmp_path / "a.png")))
    assert tuple(out[0, 0]) == (255, 0, 0) and tuple(out[1, 1]) == (255, 255, 255)

    palette = Image.new("P", (4, 4), 0)
    palette.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    palette.putpixel((2, 2), 1)
    palette.save(tmp_path / "p.png", transparency=0)
    out = np.asarray(read_image(str(tmp_path / "p.png")))
    assert tuple(out[0, 0]) == (255, 255, 255) and tuple(out[2, 2]) == (0, 255, 0)


def test_cmyk_grayscale_and_16_bit_become_rgb(tmp_path):
    Image.new("CMYK", (3, 3), (0, 255, 255, 0)).save(tmp_path / "c.jpg")
    assert read_image(str(tmp_path / "c.jpg")).mode == "RGB"
    assert np.asarray(read_image(str(tmp_path / "c.jpg")))[1, 1, 0] > 200  # red

    Image.new("L", (3, 3), 128).save(tmp_path / "g.png")
    assert tuple(np.asarray(read_image(str(tmp_path / "g.png")))[0, 0]) == (128, 128, 128)

    deep = Image.fromarray(np.full((3, 3), 65535 // 2, np.uint16))
    deep.save(tmp_path / "d.png")
    assert Image.open(tmp_path / "d.png").mode.startswith("I")
    assert abs(int(np.asarray(read_image(str(tmp_path / "d.png")))[0, 0, 0]) - 128) <= 1


def test_image_folder_maps_folders_to_model_classes(tiny_world):
    records, names = image_folder(
        tiny_world / "test-swapped", ["x", "desert_leopard", "snow_leopard"]
    )
    assert names == ["x", "desert_leopard", "snow_leopard"]
    assert {r.label for r in records} == {1, 2} and len(records) == 8
    records, names = image_folder(tiny_world / "test-swapped")
    assert names == ["desert_leopard", "snow_leopard"]
    with pytest.raises(
        DataError, match=r"snow_leopard: folder is not a class of the model.*did you mean"
    ):
        image_folder(tiny_world / "test-swapped", ["desert_leopard", "snow_leopards"])
    with pytest.raises(DataError, match="image folder not found"):
        image_folder(tiny_world / "nope")


def test_load_images_decodes_in_order_and_respects_the_memory_cap(tiny_world):
    records, _ = image_folder(tiny_world / "test")
    crop = Preprocessing(16, 16, (0.5,) * 3, (0.5,) * 3).crop
    images = load_images(records[:6], crop)
    assert images.shape == (6, 3, 16, 16) and images.dtype == torch.uint8
    expected = np.asarray(
        read_image(str(records[4].path)).resize((16, 16), Image.Resampling.BILINEAR)
    )
    assert np.abs(images[4].permute(1, 2, 0).numpy().astype(int) - expected).mean() < 3
    with pytest.raises(DataError, match="over the limit"):
        load_images(records, crop, max_bytes=1000)


def test_pixels_equal_the_pillow_image_and_draft_keeps_enough_resolution(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (30, 20, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    assert np.array_equal(read_pixels(str(tmp_path / "a.png")).permute(1, 2, 0).numpy(), rgb)
    Image.fromarray(rgb).resize((800, 600)).save(tmp_path / "big.jpg", quality=90)
    drafted = read_pixels(str(tmp_path / "big.jpg"), draft_size=128)
    assert 128 <= drafted.shape[1] < 600 and drafted.shape[2] >= 128  # reduced, never below
    full = (tmp_path / "big.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(full[: len(full) * 2 // 3])
    with pytest.raises(UnusableImage, match="truncated"):
        read_pixels(str(tmp_path / "cut.jpg"))


def test_crop_resizes_the_shorter_side_then_centers():
    prep = Preprocessing(input_size=4, resize_size=6, mean=(0,) * 3, std=(1,) * 3)
    wide = torch.arange(12 * 24, dtype=torch.uint8).reshape(1, 12, 24).expand(3, -1, -1)
    assert tuple(prep.crop(wide).shape) == (3, 4, 4)
    same = torch.randint(0, 255, (3, 4, 4), dtype=torch.uint8)
    assert torch.equal(Preprocessing(4, 4, (0,) * 3, (1,) * 3).crop(same), same)


def test_undecodable_file_is_a_data_error(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"garbage")
    Image.new("RGB", (4, 4)).save(tmp_path / "good.png")
    with pytest.raises(DataError, match=r"cannot decode .*bad\.png"):
        load_images(
            [ImageRecord(str(tmp_path / "good.png")), ImageRecord(str(tmp_path / "bad.png"))],
            lambda pixels: pixels,
        )
