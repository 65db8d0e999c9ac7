"""Every proportion the synthetic batch generator samples from, in one frozen dataclass.

Shares are probabilities per still image unless stated otherwise. Changing a value changes the
output of a seed, so the defaults are part of the determinism contract: bump them deliberately.
"""

from __future__ import annotations

from dataclasses import dataclass

# Transfer-syntax keys used throughout the generator (mapped to UIDs in dicom_writer).
EXPLICIT_LE = "explicit_le"
RLE = "rle"
J2K = "j2k"
TRANSFER_SYNTAX_KEYS = (EXPLICIT_LE, RLE, J2K)


@dataclass(frozen=True)
class GeneratorConfig:
    """Proportions and switches of the synthetic Mayo-style batch generator."""

    # Study structure.
    stills_per_study: tuple[int, int] = (3, 5)  # inclusive range for a regular study
    stills_per_filter_study: tuple[int, int] = (2, 3)  # small studies that carry a filter case
    second_study_share: float = 0.15  # patients with a second (regular) accession
    bilateral_share: float = 0.2  # studies that scan both breasts
    cine_per_study: tuple[int, int] = (0, 1)  # cine clips per regular study
    cine_frames: tuple[int, int] = (10, 40)
    biopsies_per_study: tuple[int, int] = (1, 3)

    # Capture types (per still; the rest are plain grayscale captures).
    doppler_share: float = 0.12
    yellow_overlay_share: float = 0.06
    dual_view_share: float = 0.06
    dark_share: float = 0.04
    green_corrupt_share: float = 0.03
    grey_as_rgb_share: float = 0.2  # grey captures stored as RGB, as many scanners do
    ybr_full_share: float = 0.15  # of uncompressed / RLE colour captures

    # Overlays and text.
    caliper_share: float = 0.25
    twin_share: float = 0.6  # of caliper images: a caliper-free twin is also saved
    no_text_share: float = 0.08
    degraded_text_share: float = 0.2
    body_marker_share: float = 0.7
    top_left_text_share: float = 0.15

    # Transfer syntaxes (weights for stills; cine clips use only explicit LE and RLE because
    # JPEG 2000 costs ~0.1 s per frame to encode).
    transfer_syntax_weights: tuple[tuple[str, float], ...] = (
        (EXPLICIT_LE, 0.5),
        (RLE, 0.32),
        (J2K, 0.18),
    )

    # Edge cases and selection-filter cases: each appears at least once per batch when on.
    edge_cases: bool = True
    filter_cases: bool = True
    # Re-assign a few stills so every capture type / syntax / photometric appears in each batch.
    ensure_coverage: bool = True

    # Screen styles: "classic" is the first generator's look (fixed text bands, body marker and
    # layout per vendor); "varied" lets each stage's renderer vary what a real fleet varies (text
    # anywhere, more fonts and colours, flow colours, field and marker positions). The draw uses
    # its own random stream, so classic items render exactly as before. 0.0 = classic only.
    varied_style_share: float = 0.6

    zip_compresslevel: int = 1  # speckle barely compresses; level 6 costs 3x the time for ~5%
