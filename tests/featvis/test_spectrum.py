"""The spectrum slope recovers the exponent of a synthetic power law, reads white noise as
flat, and ignores colour, size and contrast."""

import numpy as np
import pytest

from atlas.featvis.spectrum import luminance, radial_power, spectrum_slope


def power_law_images(exponent: float, side: int = 128, count: int = 8, seed: int = 0):
    """Gaussian images whose power falls as 1 / f^exponent (random phases)."""
    rng = np.random.default_rng(seed)
    frequency = np.fft.fftfreq(side) * side
    radius = np.hypot(*np.meshgrid(frequency, frequency, indexing="ij"))
    radius[0, 0] = 1.0
    amplitude = radius ** (-exponent / 2)
    spectra = amplitude * (rng.standard_normal((count, side, side)) + 0j)
    spectra *= np.exp(2j * np.pi * rng.random((count, side, side)))
    return np.real(np.fft.ifft2(spectra))


@pytest.mark.parametrize("exponent", [1.0, 2.0, 3.0])
def test_the_slope_of_a_power_law_image_recovers_its_exponent(exponent):
    slopes = spectrum_slope(power_law_images(exponent))
    assert np.mean(slopes) == pytest.approx(-exponent, abs=0.1)
    assert np.all(np.abs(slopes + exponent) < 0.3)


def test_white_noise_is_flat():
    noise = np.random.default_rng(1).random((8, 64, 64, 3))
    assert np.abs(np.mean(spectrum_slope(noise))) < 0.1


def test_high_frequency_texture_raises_a_photographs_slope():
    """Fine noise flattens the fall-off, and so does a pixel checkerboard, whose power lies
    in the spectrum's corners (which the rings reach)."""
    (image,) = power_law_images(2.0, side=64, count=1)
    image = image / image.std()
    checker = np.indices((64, 64)).sum(axis=0) % 2
    noise = np.random.default_rng(2).standard_normal((64, 64))
    plain, checkered, noisy = spectrum_slope(
        np.stack([image, image + 0.3 * checker, image + 0.3 * noise])
    )
    assert checkered > plain + 0.2 and noisy > plain + 0.2


def test_the_slope_ignores_contrast_offset_and_the_uint8_scale():
    (image,) = power_law_images(2.0, side=64, count=1)
    image = (image - image.min()) / np.ptp(image)
    rgb = np.repeat(image[..., None], 3, axis=-1)
    as_uint8 = (rgb * 255 + 0.5).astype(np.uint8)
    slopes = spectrum_slope(np.stack([rgb, 0.5 * rgb + 0.2]))
    assert slopes[0] == pytest.approx(slopes[1], abs=1e-9)
    assert spectrum_slope(as_uint8[None])[0] == pytest.approx(slopes[0], abs=0.05)
    np.testing.assert_allclose(luminance(rgb[None])[0], image, atol=1e-12)


def test_a_flat_image_has_no_slope_and_rings_reach_the_corners():
    assert np.isnan(spectrum_slope(np.full((1, 16, 16, 3), 128, np.uint8))[0])
    assert len(radial_power(np.zeros((16, 16)))) == 12  # radius round(8 * sqrt 2) = 11


def test_a_non_square_image_is_cut_to_its_central_square():
    (image,) = power_law_images(2.0, side=64, count=1)
    wide = np.pad(image, ((0, 0), (10, 10)), mode="reflect")
    assert spectrum_slope(wide[None])[0] == pytest.approx(spectrum_slope(image[None])[0])
