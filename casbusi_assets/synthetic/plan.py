"""Planning a batch: patients, studies, and one spec per member, before any pixel is drawn.

Planning is cheap and fully determined by (seed, batch index, patients, config), so a later batch
can re-plan the previous one to re-send one of its studies byte for byte without rendering it all.
Each item carries its own render seed (a hash of its key), so rendering order does not matter.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

import numpy as np

from casbusi_assets.synthetic.annotations import Annotation, sample_annotation
from casbusi_assets.synthetic.case_csv import (
    ETHNICITIES,
    RACES,
    pick_weighted,
    sample_biopsy_rows,
)
from casbusi_assets.synthetic.config import EXPLICIT_LE, J2K, RLE, GeneratorConfig
from casbusi_assets.synthetic.dicom_writer import StudyHeader, make_uid
from casbusi_assets.synthetic.scanner_screen import (
    FONTS,
    PROFILES,
    VARIED_FONTS,
    VARIED_TEXT_POSITIONS,
    ScannerProfile,
)

FILTER_CASES = (
    "male",
    "chest_study",
    "mastectomy_study",
    "invalid_birads",
    "laterality_mismatch",
    "biopsy_late",
)
_FONT_W = (0.34, 0.2, 0.12, 0.12, 0.22)
# Varied style: the classic fonts plus the other legible OpenCV Hershey families.
_VARIED_FONT_W = (0.14, 0.1, 0.08, 0.08, 0.12, 0.14, 0.12, 0.12, 0.1)
_VARIED_POS_W = (0.1, 0.06, 0.08, 0.14, 0.1, 0.16, 0.12, 0.12, 0.12)
_AREA_W = (("breast", 0.84), ("axilla", 0.1), ("supraclavicular", 0.03), ("subclavicular", 0.03))


def seed_int(*parts: object) -> int:
    """A 63-bit integer from a hash of `parts` (independent streams without shared RNG state)."""
    key = "/".join(str(p) for p in parts).encode()
    return int(hashlib.sha256(key).hexdigest()[:16], 16) >> 1


@dataclass
class ItemPlan:
    """One DICOM member (still or cine clip) to render."""

    key: str
    capture: str
    side: str  # left | right: the breast the view shows
    area: str
    annotation: Annotation | None
    photometric: str
    transfer_syntax: str
    width: int
    height: int
    n_frames: int = 1
    text_font: str = "hershey_simplex"
    text_degradation: str = "none"
    text_position: str = "bottom_left"
    calipers: bool = False
    twin: bool = False
    body_marker: bool = True
    style: str = "classic"  # classic | varied (see GeneratorConfig.varied_style_share)
    edge: str | None = None  # truncated | missing_identifier
    file_name: str = ""
    twin_file_name: str = ""


@dataclass
class StudyPlan:
    key: str
    origin_batch: int
    header: StudyHeader
    profile: ScannerProfile
    laterality: str  # LEFT | RIGHT | BILATERAL (what the images show)
    csv_laterality: str
    filter_case: str | None
    folder: str
    items: list[ItemPlan] = field(default_factory=list)
    csv_rows: list[dict[str, str]] = field(default_factory=list)
    has_sr: bool = False
    resent_from: str | None = None

    @property
    def series_uid(self) -> str:
        return make_uid("series", self.key, 1)


@dataclass
class BatchPlan:
    seed: int
    batch_index: int
    batch_id: str
    studies: list[StudyPlan]


def batch_id_for(index: int) -> str:
    return f"batch_{index + 1:03d}"


def plan_batch(seed: int, batch_index: int, patients: int, cfg: GeneratorConfig) -> BatchPlan:
    """Plan every study and member of one batch (no pixels)."""
    rng = np.random.default_rng([seed, batch_index, 7001])
    bid = batch_id_for(batch_index)
    # Anonymised patient numbers continue from the previous batch, as the upstream tool numbers
    # them; the seed picks the starting point so different seeds do not share IDs.
    first_patient = 1000 + (seed_int("patients", seed) % 90_000) * 10 + batch_index * patients
    filters: dict[int, list[str]] = {}
    if cfg.filter_cases and patients > 0:
        others = list(FILTER_CASES[1:])
        if patients >= 2:
            filters.setdefault(patients - 1, []).append("male")
            hosts = list(range(patients - 2, -1, -1))
        else:
            hosts = [0]
        for i, case in enumerate(others):
            filters.setdefault(hosts[i % len(hosts)], []).append(case)

    studies: list[StudyPlan] = []
    used_acc: set[str] = set()
    for p in range(patients):
        pid = f"{first_patient + p:08d}"
        cases = filters.get(p, [])
        male = "male" in cases
        n_regular = 1 + int(rng.random() < cfg.second_study_share)
        study_cases: list[str | None]
        study_cases = ["male"] if male else [None] * n_regular + [c for c in cases]
        age = int(np.clip(rng.normal(55, 13), 22, 92))
        race = pick_weighted(rng, RACES)
        eth = pick_weighted(rng, ETHNICITIES)
        for s, case in enumerate(study_cases):
            acc = f"{int(rng.integers(10_000_000, 99_999_999)):08d}"
            while acc in used_acc:
                acc = f"{int(rng.integers(10_000_000, 99_999_999)):08d}"
            used_acc.add(acc)
            studies.append(
                _plan_study(
                    rng,
                    cfg,
                    seed,
                    batch_index,
                    f"b{batch_index}/p{p}/s{s}",
                    pid,
                    acc,
                    age + s // 2,
                    race,
                    eth,
                    case,
                )
            )
    if cfg.ensure_coverage:
        _ensure_coverage(rng, cfg, studies)
    if cfg.edge_cases:
        _add_edge_items(rng, studies)
    # The style draw has its own stream so the rest of the plan does not depend on it.
    style_rng = np.random.default_rng([seed, batch_index, 7002])
    for st in studies:
        for item in st.items:
            if style_rng.random() < cfg.varied_style_share:
                item.style = "varied"
                _vary_text(seed, item)
    for st in studies:
        _name_files(st)
    return BatchPlan(seed=seed, batch_index=batch_index, batch_id=bid, studies=studies)


def _vary_text(seed: int, item: ItemPlan) -> None:
    """The varied style's text: wide vocabulary, more fonts, text placed anywhere.

    Drawn from a stream of its own (seed, item key), so classic items and the rest of the plan
    are untouched; the truth follows from ``item.annotation`` as for classic items. The exact
    position of a placement kind is drawn at render time (scanner_screen.varied_rng "text").
    """
    rng = np.random.default_rng(seed_int("varied-text", seed, item.key))
    item.text_font = str(rng.choice(VARIED_FONTS, p=np.array(_VARIED_FONT_W) / sum(_VARIED_FONT_W)))
    item.text_position = str(
        rng.choice(VARIED_TEXT_POSITIONS, p=np.array(_VARIED_POS_W) / sum(_VARIED_POS_W))
    )
    if item.annotation is not None:
        item.annotation = sample_annotation(rng, item.side, item.area, wide=True)
    if item.text_degradation == "low_contrast" and item.text_position in ("top_left", "field_any"):
        # Dim text over the bright skin line is unreadable even for a human (as for classic).
        item.text_degradation = "none"


def _plan_study(
    rng: np.random.Generator,
    cfg: GeneratorConfig,
    seed: int,
    batch_index: int,
    key: str,
    pid: str,
    acc: str,
    age: int,
    race: str,
    eth: str,
    case: str | None,
) -> StudyPlan:
    profile = PROFILES[int(rng.integers(len(PROFILES)))]
    probe = str(rng.choice(profile.probes))
    size = profile.sizes[int(rng.integers(len(profile.sizes)))]
    lat = "BILATERAL" if rng.random() < cfg.bilateral_share else str(rng.choice(["LEFT", "RIGHT"]))
    if case in ("laterality_mismatch",):
        lat = str(rng.choice(["LEFT", "RIGHT"]))
    csv_lat = lat
    if case == "laterality_mismatch":
        csv_lat = "RIGHT" if lat == "LEFT" else "LEFT"
    desc_lat = lat
    if case == "chest_study":
        desc = str(rng.choice(["US CHEST WALL", "US CHEST"])) + f" {desc_lat}"
    elif case == "mastectomy_study":
        desc = str(rng.choice(["US BREAST MASTECTOMY SITE", "US MASTECTOMY BED"])) + f" {desc_lat}"
    else:
        desc = (
            str(
                rng.choice(
                    ["US BREAST", "US BREAST LIMITED", "US BREAST COMPLETE", "US BREAST FOCUSED"]
                )
            )
            + f" {desc_lat}"
        )
    year = int(rng.integers(2018, 2024))
    day = int(rng.integers(0, 365))
    date = np.datetime64(f"{year}-01-01") + np.timedelta64(day, "D")
    study_date = str(date).replace("-", "")
    study_time = f"{int(rng.integers(7, 18)):02d}{int(rng.integers(0, 60)):02d}{int(rng.integers(0, 60)):02d}"
    sex = "M" if case == "male" else "F"
    header = StudyHeader(
        patient_id=pid,
        accession_number=acc,
        study_instance_uid=make_uid("study", seed, key),
        study_date=study_date,
        study_time=study_time,
        study_description=desc,
        patient_sex=sex,
        patient_age=age,
        patient_size_m=round(float(rng.normal(1.64, 0.07)), 2) if rng.random() < 0.7 else None,
        patient_weight_kg=round(float(rng.normal(75, 15)), 1) if rng.random() < 0.7 else None,
        manufacturer=profile.manufacturer,
        model=profile.model,
        software=profile.software,
        probe=probe,
        study_id=f"{int(rng.integers(1000, 99999))}",
    )
    folder = f"{pid}_dicoms_anon/{acc}" + (
        f"/SE{int(rng.integers(1, 9)):04d}" if rng.random() < 0.3 else ""
    )
    st = StudyPlan(
        key=key,
        origin_batch=batch_index,
        header=header,
        profile=profile,
        laterality=lat,
        csv_laterality=csv_lat,
        filter_case=case,
        folder=folder,
    )
    lo, hi = cfg.stills_per_filter_study if case else cfg.stills_per_study
    n_stills = int(rng.integers(lo, hi + 1))
    sides = _sides(lat)
    for i in range(n_stills):
        st.items.append(_sample_item(rng, cfg, f"{key}/i{i}", sides, size))
    if case is None:
        lo, hi = cfg.cine_per_study
        for c in range(int(rng.integers(lo, hi + 1))):
            st.items.append(_sample_cine(rng, cfg, f"{key}/c{c}", sides, profile))
    # Biopsies: on the imaged side(s); bilateral studies may biopsy one or both breasts.
    lo, hi = cfg.biopsies_per_study
    n_bx = int(rng.integers(lo, hi + 1))
    bx_sides = [str(rng.choice(sides)).upper() for _ in range(n_bx)]
    st.csv_rows = sample_biopsy_rows(
        rng,
        patient_id=pid,
        accession=acc,
        study_laterality=lat,
        biopsy_sides=sorted(bx_sides),
        age=age,
        race=race,
        ethnicity=eth,
        filter_case=case,
        csv_study_laterality=csv_lat,
    )
    if case == "laterality_mismatch":
        for r in st.csv_rows:
            r["Biopsy_Laterality"] = csv_lat
    return st


def _sides(lat: str) -> list[str]:
    return ["left", "right"] if lat == "BILATERAL" else [lat.lower()]


def _sample_item(
    rng: np.random.Generator,
    cfg: GeneratorConfig,
    key: str,
    sides: list[str],
    size: tuple[int, int],
) -> ItemPlan:
    shares = [
        ("doppler", cfg.doppler_share),
        ("yellow_overlay", cfg.yellow_overlay_share),
        ("dual_view", cfg.dual_view_share),
        ("dark", cfg.dark_share),
        ("green_corrupt", cfg.green_corrupt_share),
    ]
    u = rng.random()
    capture = "grayscale"
    acc = 0.0
    for name, share in shares:
        acc += share
        if u < acc:
            capture = name
            break
    side = str(rng.choice(sides))
    area = pick_weighted(rng, tuple(_AREA_W))
    item = ItemPlan(
        key=key,
        capture=capture,
        side=side,
        area=area,
        annotation=None,
        photometric="MONOCHROME2",
        transfer_syntax=EXPLICIT_LE,
        width=size[0],
        height=size[1],
    )
    item.text_font = str(rng.choice(FONTS, p=np.array(_FONT_W) / sum(_FONT_W)))
    if rng.random() < cfg.degraded_text_share:
        item.text_degradation = str(rng.choice(["blur", "jpeg", "low_contrast"]))
    item.text_position = (
        "top_left"
        if rng.random() < cfg.top_left_text_share
        else str(rng.choice(["bottom_left", "bottom_centre"], p=[0.65, 0.35]))
    )
    if item.text_position == "top_left" and item.text_degradation == "low_contrast":
        # Dim text over the bright skin line is unreadable even for a human: not a fair test.
        item.text_degradation = "none"
    item.body_marker = bool(rng.random() < cfg.body_marker_share)
    no_text = rng.random() < cfg.no_text_share
    item.calipers = capture == "grayscale" and bool(rng.random() < cfg.caliper_share)
    item.twin = item.calipers and bool(rng.random() < cfg.twin_share)
    ts = _pick_ts(rng, cfg)
    _finish(rng, cfg, item, ts, no_text)
    return item


def _pick_ts(rng: np.random.Generator, cfg: GeneratorConfig) -> str:
    names = [k for k, _ in cfg.transfer_syntax_weights]
    w = np.array([v for _, v in cfg.transfer_syntax_weights], dtype=float)
    return str(names[int(rng.choice(len(names), p=w / w.sum()))])


def _finish(
    rng: np.random.Generator,
    cfg: GeneratorConfig,
    item: ItemPlan,
    ts: str,
    no_text: bool,
    photometric: str | None = None,
) -> None:
    """Fill the fields that depend on the capture type: photometric, annotation, syntax."""
    colour = item.capture in ("doppler", "yellow_overlay", "green_corrupt")
    if photometric is None:
        if colour or rng.random() < cfg.grey_as_rgb_share:
            photometric = "RGB"
            if ts == J2K and rng.random() < 0.5:
                photometric = "YBR_RCT"
            elif ts != J2K and rng.random() < cfg.ybr_full_share:
                photometric = "YBR_FULL"
        else:
            photometric = "MONOCHROME2"
    item.photometric = photometric
    item.transfer_syntax = ts
    item.annotation = None if no_text else sample_annotation(rng, item.side, item.area)
    if item.annotation is None:
        item.text_degradation = "none"
    if item.capture == "dual_view":
        item.calipers = item.twin = False


def _sample_cine(
    rng: np.random.Generator,
    cfg: GeneratorConfig,
    key: str,
    sides: list[str],
    profile: ScannerProfile,
) -> ItemPlan:
    # Cine clips are stored at the scanner's smaller screen size: keeps zips and tests light.
    size = min(profile.sizes, key=lambda s: s[0] * s[1])
    item = _sample_item(rng, cfg, key, sides, size)
    item.capture = "cine"
    item.calipers = item.twin = False
    lo, hi = cfg.cine_frames
    item.n_frames = int(rng.integers(lo, hi + 1))
    ts = EXPLICIT_LE if rng.random() < 0.5 else RLE
    _finish(rng, cfg, item, ts, no_text=rng.random() < cfg.no_text_share / 2)
    if item.photometric == "YBR_RCT":
        item.photometric = "RGB"
    return item


# Requirements applied to distinct regular stills so every default batch holds every kind.
_COVERAGE: tuple[dict[str, object], ...] = (
    {"capture": "doppler", "ts": J2K, "pi": "YBR_RCT"},
    {"capture": "yellow_overlay", "ts": RLE, "pi": "RGB", "font": "pil_ttf"},
    {"capture": "dual_view", "ts": EXPLICIT_LE, "pi": "YBR_FULL"},
    {"capture": "dark", "font": "hershey_plain"},
    {"capture": "green_corrupt", "ts": RLE, "pi": "RGB"},
    {"capture": "grayscale", "calipers": True, "twin": True, "ts": J2K, "pi": "MONOCHROME2"},
    {
        "capture": "grayscale",
        "calipers": True,
        "twin": False,
        "deg": "blur",
        "font": "hershey_duplex",
    },
    {"capture": "grayscale", "no_text": True, "ts": RLE, "pi": "MONOCHROME2"},
    {"capture": "grayscale", "deg": "jpeg", "font": "hershey_complex", "area": "axilla"},
    {"capture": "grayscale", "deg": "low_contrast", "area": "supraclavicular", "pi": "RGB"},
    {"capture": "grayscale", "area": "subclavicular", "ts": EXPLICIT_LE, "pi": "MONOCHROME2"},
)
_SHARE_OF = {
    "doppler": "doppler_share",
    "yellow_overlay": "yellow_overlay_share",
    "dual_view": "dual_view_share",
    "dark": "dark_share",
    "green_corrupt": "green_corrupt_share",
}


def _ensure_coverage(
    rng: np.random.Generator, cfg: GeneratorConfig, studies: list[StudyPlan]
) -> None:
    regular = [st for st in studies if st.filter_case is None]
    pool = [(st, i) for st in regular for i, it in enumerate(st.items) if it.capture != "cine"]
    order = rng.permutation(len(pool))
    slots = [pool[int(k)] for k in order]
    for req in _COVERAGE:
        cap = str(req["capture"])
        if cap in _SHARE_OF and getattr(cfg, _SHARE_OF[cap]) <= 0:
            continue
        if req.get("calipers") and cfg.caliper_share <= 0:
            continue
        if not slots:
            break
        st, i = slots.pop()
        old = st.items[i]
        sides = _sides(st.laterality)
        item = replace(old, capture=cap, side=str(rng.choice(sides)))
        if "area" in req:
            item.area = str(req["area"])
        if "font" in req:
            item.text_font = str(req["font"])
        item.calipers = bool(req.get("calipers", False))
        item.twin = bool(req.get("twin", False))
        item.text_degradation = str(req.get("deg", "none"))
        if "deg" in req:
            item.text_position = "bottom_left"

        ts = str(req.get("ts", old.transfer_syntax))
        pi = req.get("pi")
        _finish(rng, cfg, item, ts, bool(req.get("no_text", False)), str(pi) if pi else None)
        st.items[i] = item
    if not any(it.capture == "cine" for st in regular for it in st.items) and regular:
        st = regular[int(rng.integers(len(regular)))]
        st.items.append(_sample_cine(rng, cfg, f"{st.key}/c9", _sides(st.laterality), st.profile))


def _add_edge_items(rng: np.random.Generator, studies: list[StudyPlan]) -> None:
    regular = [st for st in studies if st.filter_case is None] or studies
    if not regular:
        return
    for edge in ("truncated", "missing_identifier"):
        st = regular[int(rng.integers(len(regular)))]
        sides = _sides(st.laterality)
        item = ItemPlan(
            key=f"{st.key}/{edge}",
            capture="grayscale",
            side=str(rng.choice(sides)),
            area="breast",
            annotation=sample_annotation(rng, str(rng.choice(sides)), "breast"),
            photometric="MONOCHROME2",
            transfer_syntax=EXPLICIT_LE,
            width=st.items[0].width if st.items else 800,
            height=st.items[0].height if st.items else 600,
            edge=edge,
        )
        item.annotation = sample_annotation(rng, item.side, "breast")
        st.items.insert(int(rng.integers(0, len(st.items) + 1)), item)
    regular[int(rng.integers(len(regular)))].has_sr = True


def _name_files(st: StudyPlan) -> None:
    """Arbitrary member names: never encode the kind; extensionless and .dcm mixed."""
    rng = np.random.default_rng(seed_int("names", st.key))
    style = int(rng.integers(3))
    used: set[str] = set()
    n = int(rng.integers(1, 400))

    def fresh() -> str:
        nonlocal n
        while True:
            n += int(rng.integers(1, 4))
            if style == 0:
                name = f"IM{n:06d}"
            elif style == 1:
                name = f"I{n:07d}.dcm"
            else:
                name = hashlib.sha1(f"{st.key}/{n}".encode()).hexdigest()[:20]
                name += ".dcm" if rng.random() < 0.5 else ""
            if name not in used:
                used.add(name)
                return name

    for it in st.items:
        if it.twin:
            it.twin_file_name = fresh()
        it.file_name = fresh()
