"""What a default generated batch holds, and that its truth agrees with the files themselves."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.errors import InvalidDicomError

from casbusi_assets.storage.schemas import QUARANTINE_CODES
from casbusi_assets.synthetic import generate_batch
from casbusi_assets.synthetic.case_csv import CASE_COLUMNS, CASE_CSV_NAME, VALID_BIRADS
from casbusi_assets.synthetic.config import GeneratorConfig
from casbusi_assets.synthetic.scanner_screen import CALIPER_SHAPES
from casbusi_assets.synthetic.truth import TRUTH_COLUMNS

EXPLICIT_LE = "1.2.840.10008.1.2.1"
RLE = "1.2.840.10008.1.2.5"
J2K = "1.2.840.10008.1.2.4.90"
REQUIRED_COLUMNS = [
    "batch_id",
    "member_path",
    "sop_instance_uid",
    "study_instance_uid",
    "series_instance_uid",
    "patient_id",
    "accession_number",
    "member_kind",
    "expected_status",
    "quarantine_code",
    "capture",
    "is_doppler",
    "doppler_kind",
    "missing_links",
    "photometric_interpretation",
    "transfer_syntax_uid",
    "rows",
    "columns",
    "number_of_frames",
    "region_count",
    "region_x0",
    "region_y0",
    "region_x1",
    "region_y1",
    "annotation_text",
    "area",
    "laterality",
    "orientation",
    "clock_pos",
    "nipple_dist_cm",
    "text_degradation",
    "text_font",
    "text_box",
    "has_calipers",
    "calipers",
    "twin_sop_instance_uid",
    "clean_png",
    "body_marker",
    "probe_angle_deg",
    "exact_duplicate_of",
    "resent_from_batch",
    "filter_case",
]


def _read(data: bytes) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(data))


def _ok_pixels(g) -> pd.DataFrame:
    t = g.truth
    return t[(t["expected_status"] == "ok") & t["member_kind"].isin(["image", "video"])]


def test_batch_files_and_ids(default_batches):
    assert [g.files.batch_id for g in default_batches] == ["batch_001", "batch_002"]
    for g in default_batches:
        f = g.files
        assert f.zip_path.name == f"{f.batch_id}.zip"
        assert f.truth_path.name == f"{f.batch_id}.truth.parquet"
        assert f.n_members == len(g.members) == len(g.truth)
        assert f.n_images == int((g.truth["member_kind"] == "image").sum())
        assert f.n_videos == int((g.truth["member_kind"] == "video").sum())
        assert set(g.truth["batch_id"]) == {f.batch_id}
        assert sorted(g.truth["member_path"]) == sorted(g.members)


def test_truth_has_the_required_columns_and_vocabularies(default_batches):
    t = default_batches[0].truth
    assert set(REQUIRED_COLUMNS) <= set(t.columns)
    assert list(t.columns) == list(TRUTH_COLUMNS)
    assert set(t["member_kind"]) == {"image", "video", "no_pixels", "non_dicom", "case_csv"}
    assert set(t["expected_status"]) == {"ok", "quarantined"}
    assert set(t["quarantine_code"].dropna()) <= set(QUARANTINE_CODES)
    assert set(t["area"]) <= {"breast", "axilla", "supraclavicular", "subclavicular", "unknown"}
    assert set(t["laterality"]) <= {"left", "right", "unknown"}
    assert set(t["orientation"]) <= {"long", "trans", "radial", "anti-radial", "oblique", "unknown"}
    clocks = t["clock_pos"].dropna()
    assert clocks.str.fullmatch(r"(1[0-2]|[1-9]):[0-5]\d|uoq|uiq|loq|liq").all()
    assert set(t["text_degradation"]) <= {"none", "blur", "jpeg", "low_contrast"}


def test_default_batch_size(default_batches):
    for g in default_batches:
        stills = (g.truth["member_kind"] == "image").sum()
        clips = (g.truth["member_kind"] == "video").sum()
        assert 40 <= stills <= 75, stills
        assert 1 <= clips <= 8, clips


@pytest.mark.parametrize("index", [0, 1])
def test_every_kind_is_present(default_batches, index):
    g = default_batches[index]
    t = g.truth
    d = g.dicom_rows()
    captures = {"grayscale", "doppler", "yellow_overlay", "dual_view", "dark", "green_corrupt"}
    assert captures | {"cine", "structured_report", "non_dicom", "case_csv"} <= set(t["capture"])
    assert {EXPLICIT_LE, RLE, J2K} <= set(d["transfer_syntax_uid"].dropna())
    assert {"MONOCHROME2", "RGB", "YBR_RCT", "YBR_FULL"} <= set(
        d["photometric_interpretation"].dropna()
    )
    assert {"blur", "jpeg"} <= set(t["text_degradation"])
    # low contrast is rarer (never over bright near-field tissue): one of the two batches has it
    both = set(default_batches[0].truth["text_degradation"]) | set(
        default_batches[1].truth["text_degradation"]
    )
    assert "low_contrast" in both
    assert {
        "hershey_simplex",
        "hershey_duplex",
        "hershey_plain",
        "hershey_complex",
        "pil_ttf",
    } <= set(t["text_font"].dropna())
    assert {"breast", "axilla", "supraclavicular", "subclavicular"} <= set(t["area"])
    stills = d[d["member_kind"] == "image"]
    assert stills["annotation_text"].isna().any()  # some captures carry no text
    assert stills["has_calipers"].any()
    assert stills["twin_sop_instance_uid"].notna().any()
    assert (d["member_kind"] == "video").any()
    # Edge cases.
    assert t["exact_duplicate_of"].notna().any()
    codes = set(t["quarantine_code"].dropna())
    assert {"truncated", "not_dicom"} <= codes and "missing_identifier" not in codes
    # A file without PatientID is readable, hence expected ok, with its missing link named.
    unlinked = t[t["missing_links"].notna()]
    assert len(unlinked) >= 1 and set(unlinked["missing_links"]) == {"patient_id"}
    assert (unlinked["expected_status"] == "ok").all() and unlinked["patient_id"].isna().all()
    names = {p.rsplit("/", 1)[-1] for p in t["member_path"]}
    assert {".DS_Store", "Thumbs.db", CASE_CSV_NAME} <= names
    assert any(n.endswith(".pdf") for n in names)
    assert ((t["member_kind"] == "no_pixels") & (t["expected_status"] == "ok")).any()
    filters = {"male", "chest_study", "mastectomy_study", "invalid_birads"}
    assert filters | {"laterality_mismatch", "biopsy_late"} == set(t["filter_case"].dropna())
    assert t["resent_from_batch"].notna().any() == (index > 0)


def test_member_names_do_not_encode_the_kind(default_batches):
    for g in default_batches:
        dicom_paths = g.dicom_rows()["member_path"]
        names = dicom_paths.str.rsplit("/", n=1).str[-1]
        assert not names.str.lower().str.startswith(("image", "video")).any()
        assert names.str.endswith(".dcm").any() and (~names.str.contains(r"\.")).any()
        assert (dicom_paths.str.count("/") >= 2).all()  # patient folder / study folder / file


def test_truth_agrees_with_dicom_headers(default_batches):
    for g in default_batches:
        for r in g.dicom_rows().itertuples():
            if r.quarantine_code == "truncated":
                continue
            ds = _read(g.members[r.member_path])
            assert ds.SOPInstanceUID == r.sop_instance_uid
            assert ds.StudyInstanceUID == r.study_instance_uid
            assert ds.SeriesInstanceUID == r.series_instance_uid
            assert ds.AccessionNumber == r.accession_number
            assert ds.get("PatientID") == r.patient_id
            assert ds.file_meta.TransferSyntaxUID == r.transfer_syntax_uid
            assert ds.PatientSex == r.patient_sex
            assert ds.StudyDescription == r.study_description
            if r.member_kind == "no_pixels":
                assert "PixelData" not in ds
                continue
            assert ds.Modality == "US" and ds.BurnedInAnnotation == "YES"
            assert (ds.Rows, ds.Columns) == (r.rows, r.columns)
            assert ds.PhotometricInterpretation == r.photometric_interpretation
            assert int(ds.get("NumberOfFrames", 1)) == r.number_of_frames
            video = r.member_kind == "video"
            assert ds.SOPClassUID == (
                "1.2.840.10008.5.1.4.1.1.3.1" if video else "1.2.840.10008.5.1.4.1.1.6.1"
            )
            regions = ds.SequenceOfUltrasoundRegions
            assert len(regions) == r.region_count
            first = regions[0]
            assert (
                first.RegionLocationMinX0,
                first.RegionLocationMinY0,
                first.RegionLocationMaxX1,
                first.RegionLocationMaxY1,
            ) == (r.region_x0, r.region_y0, r.region_x1, r.region_y1)
            assert first.PhysicalUnitsXDirection == 3 and first.PhysicalDeltaX > 0


def test_valid_dicoms_decode_with_the_installed_decoders(default_batches):
    g = default_batches[0]
    for r in _ok_pixels(g).itertuples():
        arr = _read(g.members[r.member_path]).pixel_array
        shape = (
            (r.rows, r.columns)
            if r.number_of_frames == 1
            else (r.number_of_frames, r.rows, r.columns)
        )
        assert arr.shape[: len(shape)] == shape
        assert arr.ndim == len(shape) + (r.photometric_interpretation != "MONOCHROME2")
        assert arr.max() > 0


def test_quarantine_cases_really_fail(default_batches):
    g = default_batches[0]
    t = g.truth
    truncated = t[t["quarantine_code"] == "truncated"]
    assert len(truncated) >= 1
    for path in truncated["member_path"]:
        with pytest.raises(Exception):  # noqa: B017 - either the parser or the decoder must fail
            _ = _read(g.members[path]).pixel_array
    unlinked = t.loc[t["missing_links"] == "patient_id", "member_path"]
    assert len(unlinked) >= 1
    for path in unlinked:
        ds = _read(g.members[path])  # readable, with pixels, just not linkable to a patient
        assert "PatientID" not in ds and ds.SOPInstanceUID and ds.pixel_array.size
    for path in t.loc[t["quarantine_code"] == "not_dicom", "member_path"]:
        with pytest.raises(InvalidDicomError):
            pydicom.dcmread(io.BytesIO(g.members[path]))


def test_duplicate_and_resent_members_are_identical_bytes(default_batches):
    first, second = default_batches
    for g in default_batches:
        dups = g.truth[g.truth["exact_duplicate_of"].notna()]
        for r in dups.itertuples():
            assert r.member_path != r.exact_duplicate_of
            assert g.members[r.member_path] == g.members[r.exact_duplicate_of]
    resent = second.truth[second.truth["resent_from_batch"].notna()]
    assert set(resent["resent_from_batch"]) == {"batch_001"}
    assert len(resent) >= 2
    for r in resent.itertuples():
        assert second.members[r.member_path] == first.members[r.member_path]
    assert set(resent["study_instance_uid"]) <= set(first.truth["study_instance_uid"])
    # The re-sent study's case rows are re-sent with it.
    csv2 = pd.read_csv(io.BytesIO(second.members[CASE_CSV_NAME]), dtype=str, keep_default_na=False)
    assert set(resent["accession_number"]) <= set(csv2["Accession_Number"])


def test_case_csv_columns_join_and_filter_cases(default_batches):
    for g in default_batches:
        csv = pd.read_csv(io.BytesIO(g.members[CASE_CSV_NAME]), dtype=str, keep_default_na=False)
        assert tuple(csv.columns) == CASE_COLUMNS
        assert csv["Patient_ID"].str.fullmatch(r"\d{8}").all()
        d = g.dicom_rows()
        dicom_pairs = set(
            zip(
                d["patient_id"].dropna(),
                d.loc[d["patient_id"].notna(), "accession_number"],
                strict=True,
            )
        )
        csv_pairs = set(zip(csv["Patient_ID"], csv["Accession_Number"], strict=True))
        assert dicom_pairs == csv_pairs
        assert set(csv["Study_Laterality"]) <= {"LEFT", "RIGHT", "BILATERAL"}
        assert csv.groupby("Accession_Number").size().max() >= 2  # several biopsies sometimes
        assert csv["Biopsy"].isin(["Pathology Malignant", "Pathology Benign"]).any()

        by_case = d.dropna(subset=["filter_case"]).groupby("filter_case")
        rows_of = {
            case: csv[csv["Accession_Number"].isin(set(grp["accession_number"]))]
            for case, grp in by_case
        }
        regular = csv[
            ~csv["Accession_Number"].isin(set(d.loc[d["filter_case"].notna(), "accession_number"]))
        ]
        assert regular["BI-RADS"].isin(VALID_BIRADS).all()
        assert (regular["Time_Biop"].astype(int) <= 30).all()
        assert not rows_of["invalid_birads"]["BI-RADS"].isin(VALID_BIRADS).any()
        assert (rows_of["biopsy_late"]["Time_Biop"].astype(int) > 30).all()
        male = d[d["filter_case"] == "male"]
        assert set(male["patient_sex"]) == {"M"}
        assert set(d.loc[d["filter_case"].isna(), "patient_sex"]) == {"F"}
        assert (
            d.loc[d["filter_case"] == "chest_study", "study_description"]
            .str.contains("CHEST")
            .all()
        )
        assert (
            d.loc[d["filter_case"] == "mastectomy_study", "study_description"]
            .str.contains("MASTECTOMY")
            .all()
        )
        mismatch = d[(d["filter_case"] == "laterality_mismatch") & (d["laterality"] != "unknown")]
        csv_lat = set(rows_of["laterality_mismatch"]["Study_Laterality"])
        assert len(csv_lat) == 1 and len(mismatch) >= 1
        assert not (mismatch["laterality"].str.upper() == csv_lat.pop()).any()


def test_calipers_are_drawn_where_truth_says_and_clean_png_differs_only_there(default_batches):
    import cv2

    checked = 0
    for g in default_batches:
        cal = g.truth[g.truth["has_calipers"] & (g.truth["expected_status"] == "ok")]
        for r in cal.itertuples():
            arr = _read(g.members[r.member_path]).pixel_array
            grey = arr if arr.ndim == 2 else arr[..., 0]
            clean = cv2.imdecode(np.frombuffer(r.clean_png, np.uint8), cv2.IMREAD_UNCHANGED)
            assert clean.shape == grey.shape
            marks = json.loads(r.calipers)
            assert len(marks) >= 2 and len(marks) % 2 == 0
            allowed = np.zeros(grey.shape, np.uint8)
            if r.screen_style == "varied":
                # other shapes, sizes and colours: the clean copy still differs only around
                # each mark's box and the dotted line between the pair
                for i, m in enumerate(marks):
                    assert m["shape"] in CALIPER_SHAPES
                    bx, by, bw, bh = m["box"]
                    allowed[max(0, by - 4) : by + bh + 4, max(0, bx - 4) : bx + bw + 4] = 1
                    if i % 2 == 1:
                        p = marks[i - 1]
                        cv2.line(allowed, (p["x"], p["y"]), (m["x"], m["y"]), 1, 7)
                x0, y0, x1, y1 = json.loads(r.caliper_legend_box)
                allowed[y0:y1, x0:x1] = 1
                diff = np.abs(grey.astype(int) - clean.astype(int)) > 3
                assert diff.any()
                assert not (diff & (allowed == 0)).any(), r.member_path
                checked += 1
                continue
            for i, m in enumerate(marks):
                x, y = m["x"], m["y"]
                assert m["shape"] in ("+", "x")
                # The mark's centre and arm tips are bright in the caliper image.
                assert grey[y, x] >= 200
                tips = (
                    [(x + 3, y), (x, y + 3)]
                    if m["shape"] == "+"
                    else [(x + 3, y + 3), (x - 3, y + 3)]
                )
                assert all(grey[ty, tx] >= 200 for tx, ty in tips)
                cv2.circle(allowed, (x, y), 10, 1, -1)
                if i % 2 == 1:  # dotted line of the pair
                    p = marks[i - 1]
                    cv2.line(allowed, (p["x"], p["y"]), (x, y), 1, 5)
            x0, y0, x1, y1 = json.loads(r.caliper_legend_box)
            allowed[y0:y1, x0:x1] = 1
            diff = np.abs(grey.astype(int) - clean.astype(int)) > 3
            assert diff.any()
            assert not (diff & (allowed == 0)).any()
            checked += 1
    assert checked >= 2


def test_twins_are_the_same_view_without_calipers(default_batches):
    g = default_batches[0]
    t = g.truth.set_index("sop_instance_uid", drop=False)
    pairs = t[t["twin_sop_instance_uid"].notna() & (t["exact_duplicate_of"].isna())]
    assert len(pairs) >= 1
    for r in pairs.itertuples():
        twin = t.loc[r.twin_sop_instance_uid]
        if isinstance(twin, pd.DataFrame):
            twin = twin.iloc[0]
        assert twin["twin_source_sop_instance_uid"] == r.sop_instance_uid
        assert not twin["has_calipers"] and twin["annotation_text"] == r.annotation_text
        a = _read(g.members[r.member_path]).pixel_array.astype(int)
        b = _read(g.members[twin["member_path"]]).pixel_array.astype(int)
        # Near-identical (the spec's twin rule is mean abs difference <= 5), yet not identical.
        assert 0 < np.abs(a - b).mean() <= 5


def test_capture_types_have_their_pixel_signatures(default_batches):
    g = default_batches[0]
    ok = _ok_pixels(g)
    for r in ok.itertuples():
        if r.capture not in ("doppler", "yellow_overlay", "dark", "green_corrupt"):
            continue
        arr = _read(g.members[r.member_path]).pixel_array
        if r.capture == "dark":
            grey = arr if arr.ndim == 2 else arr[..., 0]
            y0, y1, x0, x1 = int(r.region_y0), int(r.region_y1), int(r.region_x0), int(r.region_x1)
            region = grey[y0 : y1 + 1, x0 : x1 + 1]
            assert (region <= 20).mean() > 0.65
            continue
        rgb = arr.astype(int)
        red, grn, blu = rgb[..., 0], rgb[..., 1], rgb[..., 2]
        assert (r.doppler_kind is None) == (r.capture != "doppler")
        if r.capture == "doppler":
            # The rule of casbusi-spec §3.5 for red and for blue flow pixels: the velocity scale
            # always has both; power maps are red / orange / yellow and never blue.
            has_red = ((red >= 200) & (red - blu >= 100) & (red - grn >= 100)).any()
            has_blue = ((blu >= 200) & (blu - red >= 100) & (blu - grn >= 100)).any()
            orange = ((red >= 200) & (grn >= 120) & (grn <= 230) & (blu <= 60)).sum()
            assert r.is_doppler and r.doppler_kind in ("color", "power")
            if r.doppler_kind == "color":
                assert has_red and has_blue
            else:
                assert not has_blue and orange >= 20
        elif r.capture == "yellow_overlay":
            assert ((red == 255) & (grn == 255) & (blu == 0)).any()
        else:
            assert grn.mean() > red.mean() + 10 and grn.mean() > blu.mean() + 10


def test_text_truth_is_consistent_with_the_drawn_text(default_batches):
    t = default_batches[0].truth
    texts = t[t["annotation_text"].notna()]
    assert texts["annotation_text"].nunique() >= 20
    for r in texts.itertuples():
        words = r.annotation_text.upper().replace("\n", " ").split()
        if r.laterality == "left":
            assert {"LT", "LEFT", "L"} & set(words)
        if r.laterality == "right":
            assert {"RT", "RIGHT", "R"} & set(words)
        if r.clock_pos and ":" in r.clock_pos:
            hour = r.clock_pos.split(":")[0]
            text = r.annotation_text.upper().replace("\n", " ")
            # the clock forms sonographers write: 2:00, 2 O'CLOCK, 2 OCLOCK, 2OC, 2 00
            forms = (r.clock_pos, f"{hour} O'CLOCK", f"{hour} OCLOCK", f"{hour}OC", f"{hour} 00")
            assert any(f in text for f in forms), (r.clock_pos, text)
        x0, y0, x1, y1 = json.loads(r.text_box)
        assert 0 <= x0 < x1 <= r.columns and 0 <= y0 < y1 <= r.rows
    no_text = t[(t["member_kind"] == "image") & t["annotation_text"].isna()]
    assert (no_text["area"] == "unknown").all() and no_text["clock_pos"].isna().all()


def test_varied_doppler_shows_single_hue_and_power_flow(tmp_path):
    # Varied-style Doppler captures sample colour flow in both / one hue and power maps; classic
    # ones keep the first generator's two-hue colour flow.
    cfg = GeneratorConfig(doppler_share=0.7, varied_style_share=0.7, caliper_share=0.0)
    files = generate_batch(tmp_path, 0, patients=5, seed=31, config=cfg)
    t = pd.read_parquet(files.truth_path)
    members = zipfile.ZipFile(files.zip_path)
    dop = t[t["is_doppler"] & (t["member_kind"] == "image") & (t["expected_status"] == "ok")]
    assert set(dop.loc[dop["screen_style"] == "classic", "doppler_kind"]) == {"color"}
    varied = dop[dop["screen_style"] == "varied"]
    assert {"color", "power"} <= set(varied["doppler_kind"])
    looks = set()
    for r in varied.itertuples():
        rgb = pydicom.dcmread(io.BytesIO(members.read(r.member_path))).pixel_array.astype(int)
        if rgb.ndim != 3:
            continue
        x0, y0, x1, y1 = int(r.region_x0), int(r.region_y0), int(r.region_x1), int(r.region_y1)
        f = rgb[y0 : y1 + 1, x0 : x1 + 1]  # flow lies in the field; the scale bar outside it
        red = ((f[..., 0] - f[..., 2] >= 100) & (f[..., 0] - f[..., 1] >= 100)).sum()
        blue = ((f[..., 2] - f[..., 0] >= 100) & (f[..., 2] - f[..., 1] >= 60)).sum()
        looks.add((r.doppler_kind, red > 50, blue > 50))
    assert ("color", True, False) in looks  # red only
    assert ("color", False, True) in looks or ("color", True, True) in looks
    assert all(not blue for kind, _, blue in looks if kind == "power")
