"""Annotation text -> fields: a table of sonographer styles, OCR misreads and scanner chrome."""

from __future__ import annotations

import pytest

from casbusi_assets.ocr.parsing import ParsedAnnotation, normalize_text, parse_annotation

U = "unknown"

# text, area, laterality, orientation, clock_pos, nipple_dist_cm
CASES: list[tuple[str, str, str, str, str | None, float | None]] = [
    # --- common sonographer styles
    ("LT BREAST 2:00 3CM FN", "breast", "left", U, "2:00", 3.0),
    ("RT BREAST 10:30 4-5 CM FN", "breast", "right", U, "10:30", 4.5),
    ("LEFT AXILLA", "axilla", "left", U, None, None),
    ("RT BR UOQ", "breast", "right", U, "uoq", None),
    ("R BREAST 9 O'CLOCK 2 CM FN RADIAL", "breast", "right", "radial", "9:00", 2.0),
    ("LT BREAST 2:00 3CM FN RADIAL", "breast", "left", "radial", "2:00", 3.0),
    ("RT BREAST 10:00 5CM FN ANTI-RAD", "breast", "right", "anti-radial", "10:00", 5.0),
    ("LT BREAST 6:00 1CM FN TRANS", "breast", "left", "trans", "6:00", 1.0),
    ("RT BREAST 12:00 SA LONG", "breast", "right", "long", "12:00", None),
    ("LT BR 3:00 2CMFN SAG", "breast", "left", "long", "3:00", 2.0),
    ("RIGHT BREAST 7:00 6 CM FROM NIPPLE OBLIQUE", "breast", "right", "oblique", "7:00", 6.0),
    ("L BREAST 11:00 8CM FN TRV", "breast", "left", "trans", "11:00", 8.0),
    ("LT BR LIQ ARAD", "breast", "left", "anti-radial", "liq", None),
    ("RT BREAST LOQ TRANSVERSE", "breast", "right", "trans", "loq", None),
    ("LT BREAST UIQ LONGITUDINAL", "breast", "left", "long", "uiq", None),
    ("RT AXILLA LONG", "axilla", "right", "long", None, None),
    ("LT AXILLARY TRANS", "axilla", "left", "trans", None, None),
    ("RT AX", "axilla", "right", U, None, None),
    ("LEFT SUPRACLAVICULAR", "supraclavicular", "left", U, None, None),
    ("RT SUPRACLAV TRANS", "supraclavicular", "right", "trans", None, None),
    ("LT SCL LON", "supraclavicular", "left", "long", None, None),
    ("RIGHT INFRACLAVICULAR", "subclavicular", "right", U, None, None),
    ("LT SUBCLAV OBL", "subclavicular", "left", "oblique", None, None),
    ("RT BREAST RETROAREOLAR RADIAL", "breast", "right", "radial", None, None),
    ("LT BREAST SA TRANS", "breast", "left", "trans", None, None),
    ("RT BREAST 1:30 2.5 CM FN", "breast", "right", U, "1:30", 2.5),
    ("LT BREAST 4:45 10 CM FN A-RAD", "breast", "left", "anti-radial", "4:45", 10.0),
    ("RT BREAST 2OC 3CM FN", "breast", "right", U, "2:00", 3.0),
    ("LT BREAST 2 OCLOCK 3 CMFN", "breast", "left", U, "2:00", 3.0),
    ("RT BREAST 11 O\u2019CLOCK 4 CM FN", "breast", "right", U, "11:00", 4.0),
    ("LT BREAST 10:07 2 CM FN", "breast", "left", U, "10:07", 2.0),
    ("RT BREAST AXILLARY TAIL 10:00", "breast", "right", U, "10:00", None),
    ("LT 2:00 3CM FN", "breast", "left", U, "2:00", 3.0),
    ("RT BREAST 10:00 ANTI RADIAL", "breast", "right", "anti-radial", "10:00", None),
    ("RT BREAST 10:00 ANTIRADIAL", "breast", "right", "anti-radial", "10:00", None),
    ("LT BREAST 8:00 RAD", "breast", "left", "radial", "8:00", None),
    ("LEFT BREAST 3:00 4 CM FN OBL", "breast", "left", "oblique", "3:00", 4.0),
    ("RT BREAST 10:00 FN 3CM", "breast", "right", U, "10:00", 3.0),
    ("LT BREAST 1:00 FN 4-5 CM RAD", "breast", "left", "radial", "1:00", 4.5),
    ("Lt Breast 2:00 3CM FN Radial", "breast", "left", "radial", "2:00", 3.0),
    ("RT AXILLA LN 3CM FN TRANS", "axilla", "right", "trans", None, 3.0),
    ("LT BREAST 2:00 MASS #2 2ND LOOK", "breast", "left", U, "2:00", None),
    ("RIGHT SUPRA CLAV LONG", "supraclavicular", "right", "long", None, None),
    ("R INFRACLAV TRANS", "subclavicular", "right", "trans", None, None),
    ("R 12:00 7CM FN\nRAD", "breast", "right", "radial", "12:00", 7.0),
    ("L UOQ", "breast", "left", U, "uoq", None),
    ("LTUIQ 4CM FN RAD", "breast", "left", "radial", "uiq", 4.0),
    ("RT BREAST UIO 4CM FN LONG", "breast", "right", "long", "uiq", 4.0),  # Q read as O
    ("RIGHT BREAST LIO 5CM FN ANTIRADIAL", "breast", "right", "anti-radial", "liq", 5.0),
    ("LT LOO 2CM FN", "breast", "left", U, "loq", 2.0),
    ("L UOO", "breast", "left", U, "uoq", None),
    ("LT BREAST 2:00 BALLOON LOOK", "breast", "left", U, "2:00", None),
    ("RIGHT SUPRACLAVLONG", "supraclavicular", "right", "long", None, None),
    ("SALT BASALT", U, U, U, None, None),
    ("LT BRUOQ\nLONG", "breast", "left", "long", "uoq", None),
    ("LSUPRACLAV TRANSVERSE", "supraclavicular", "left", "trans", None, None),
    ("RUOQ", "breast", "right", U, "uoq", None),
    ("LOGIQ RAD", U, U, "radial", None, None),
    ("LEFTAXILLALN\nLONG", "axilla", "left", "long", None, None),
    ("RICHTBREAST 12:00 2-3CMFN", "breast", "right", U, "12:00", 2.5),
    ("LEFT BREAST 4 0'CLOCK SAG", "breast", "left", "long", "4:00", None),
    ("LT 2:30\n7-8CMFNLONG", "breast", "left", "long", "2:30", 7.5),
    ("LFBR SUBAREOLAR RADIAD", "breast", "left", "radial", None, None),
    ("RT BREAST 10:00 TRANSVERSF", "breast", "right", "trans", "10:00", None),
    ("CLEFT PALATE", U, U, U, None, None),
    ("5:00RADIAL PALP", "breast", U, "radial", "5:00", None),
    ("LTBREAST7.30", "breast", "left", U, "7:30", None),
    ("RIGHT BREAST 8:006.5CMFN ANTIRADIAL", "breast", "right", "anti-radial", "8:00", 6.5),
    ("LT BREAST RDIAL BX SITE", "breast", "left", "radial", None, None),
    ("44CG43 78DR78 630P630 3CM3CM", U, U, U, None, None),
    ("LTSUBCLAVICULAROBL", "subclavicular", "left", "oblique", None, None),
    ("LTAXILLALONGITUDINAL", "axilla", "left", "long", None, None),
    ("LT BREAST U0Q 4-5 CM FN", "breast", "left", U, "uoq", 4.5),
    ("R 1.8 3.6 P", U, U, U, None, None),
    # --- multi-line text (two labels stacked on the screen)
    ("LT BREAST 2:00 3CM FN\nRADIAL", "breast", "left", "radial", "2:00", 3.0),
    ("RT BREAST\n10:30 4CM FN\nANTI-RAD", "breast", "right", "anti-radial", "10:30", 4.0),
    # --- OCR misreads
    ("RT BREAST 10:00 SCM FN", "breast", "right", U, "10:00", 5.0),
    ("LT BREAST 10.00 5CM FN", "breast", "left", U, "10:00", 5.0),
    ("LT BREAST 10 00 5CM FN", "breast", "left", U, "10:00", 5.0),
    ("LT BREAST 10;00 5CM FN", "breast", "left", U, "10:00", 5.0),
    ("RT BREAST 1O:OO 2CM FN", "breast", "right", U, "10:00", 2.0),
    ("RT BREAST IO:OO 2CM FN", "breast", "right", U, "10:00", 2.0),
    ("lt breast 2:00 3cm fn radial", "breast", "left", "radial", "2:00", 3.0),
    ("LTBREAST 2:00 3CMFN", "breast", "left", U, "2:00", 3.0),
    ("RT BREAST 4-SCM FN L0NG", "breast", "right", "long", None, 4.5),
    ("R1GHT BREAST 9:00 1CM FN", "breast", "right", U, "9:00", 1.0),
    ("LT BREAST 2:00 ICM FN", "breast", "left", U, "2:00", 1.0),
    ("RT BREAST 10\uff1a00 3CM FN", "breast", "right", U, "10:00", 3.0),
    ("LT BREAST 2:00 3CM FN \u5473", "breast", "left", U, "2:00", 3.0),
    # --- words that must not match inside other words
    ("CLEFT", U, U, U, None, None),
    ("BOLT ALTERNATIVE", U, U, U, None, None),
    ("ARTERY PORT", U, U, U, None, None),
    ("TRANSDUCER", U, U, U, None, None),
    ("ANS", U, U, U, None, None),
    ("RADIOLOGY", U, U, U, None, None),
    ("HEIGHT LIGHT", U, U, U, None, None),
    ("BREASTFEEDING", U, U, U, None, None),
    # --- conflicts give unknown rather than a guess
    ("LT RT BREAST 2:00", "breast", U, U, "2:00", None),
    ("RT BREAST 10:00 RADIAL TRANS", "breast", "right", U, "10:00", None),
    # --- scanner chrome only
    ("MI 1.1 TIS 0.4 L12-5", U, U, U, None, None),
    ("PHILIPS OB MI 1.1 5/25/2011 TIB 0.2 2:56:22 PM", U, U, U, None, None),
    ("Gen OB C5-1 28Hz 11cm 2D HGen Gn 60", U, U, U, None, None),
    ("BAPTIST MED CTR 3cm3cm M12L +2:09:04 MSCSKEL CINE 0118 IM#2", U, U, U, None, None),
    ("TIS<0.4 MI=0.8 A0=100%", U, U, U, None, None),
    ("*WESTWAY_MEDICAL* 24-MAY-02 :M 11:24:20 20Hz 3:PELVIS DUA: 94%", U, U, U, None, None),
    ("+ Cist Mag 1.06 cm", U, U, U, None, None),
    ("D1 1.23 cm D2 0.85 cm", U, U, U, None, None),
    ("LYMPH NODE", U, U, U, None, None),
    ("4.0", U, U, U, None, None),
    ("11-05-25-142825 Philips Healthcare", U, U, U, None, None),
    # --- chrome next to a real annotation does not leak into the fields
    ("LT BREAST 2:00 3CM FN D1 1.23 cm", "breast", "left", U, "2:00", 3.0),
    ("RT BREAST 10:00 RADIAL 12:31:05 PM 4cm", "breast", "right", "radial", "10:00", 4.0),
    ("MI 1.1 TIS 0.4 L12-5 LT BREAST 6:00 2CM FN", "breast", "left", U, "6:00", 2.0),
    # --- glued words with one misread letter (lost space and a recogniser slip together)
    ("LTINFRAGLAVICULAR", "subclavicular", "left", U, None, None),
    ("RTBREASTRADIAD 2:00", "breast", "right", "radial", "2:00", None),
    ("LEFT BREAST 6:00 2CMFN TRANSVERSFLESION", "breast", "left", "trans", "6:00", 2.0),
    # the fuzzy split never invents words out of ordinary text
    ("BASELINE", U, U, U, None, None),
    # --- a keyword glued to the digits after it (colon and spaces lost)
    ("RTBREAST4307GMFN", "breast", "right", U, None, None),
    ("LEFT AXILLA3CM", "axilla", "left", U, None, None),
    # --- a one-letter side glued to a one-digit clock hour: L1:00 is L 1:00, not 11:00
    ("L1:00 6 CM FROM NIPPLE ANTI RADIAL", "breast", "left", "anti-radial", "1:00", 6.0),
    ("R BREAST 11:00", "breast", "right", U, "11:00", None),
    # --- a space read as a hyphen between a word and a number
    ("LEFT BREAST-3 0'CLOCK 3.5CM FN", "breast", "left", U, "3:00", 3.5),
    ("RT BREAST-10:00 2CM FN", "breast", "right", U, "10:00", 2.0),
    # --- implausible distances
    ("LT BREAST 2:00 30CM FN", "breast", "left", U, "2:00", None),
    ("LT BREAST 2:00 0CM FN", "breast", "left", U, "2:00", None),
    # --- empty / garbage
    ("", U, U, U, None, None),
    ("   \n\t ", U, U, U, None, None),
    ("@@@ ### ~~~", U, U, U, None, None),
    ("\u5473\u4e2d", U, U, U, None, None),
    ("x + X", U, U, U, None, None),
]


def test_table_is_large_enough() -> None:
    assert len(CASES) >= 60


@pytest.mark.parametrize(("text", "area", "side", "orientation", "clock", "dist"), CASES)
def test_parse_annotation_table(
    text: str, area: str, side: str, orientation: str, clock: str | None, dist: float | None
) -> None:
    got = parse_annotation(text)
    assert got == ParsedAnnotation(area, side, orientation, clock, dist), text


def test_normalize_text_upper_ascii_single_spaces() -> None:
    assert normalize_text("  lt breast\n 2:00 \u5473  3cm\tfn ") == "LT BREAST 2:00 3CM FN"
    assert normalize_text("RT 10\uff1a30") == "RT 10:30"
    assert normalize_text("") == ""


def test_parse_accepts_normalised_and_raw_text_alike() -> None:
    raw = "rt breast 10:30\n4-5 cm fn\nanti-rad"
    assert parse_annotation(raw) == parse_annotation(normalize_text(raw))


def test_parsed_annotation_is_frozen_and_defaults_unknown() -> None:
    p = ParsedAnnotation()
    assert p.as_dict() == {
        "area": "unknown",
        "laterality": "unknown",
        "orientation": "unknown",
        "clock_pos": None,
        "nipple_dist_cm": None,
    }
    with pytest.raises(AttributeError):
        p.area = "breast"  # type: ignore[misc]


# --------------------------------------------------------------------------------------------
# issue 8: the vocabulary of breast-ultrasound practice, one row per form

VOCABULARY: list[tuple[str, str, str, str, str | None, float | None]] = [
    # orientation
    ("LT BREAST SAG", "breast", "left", "long", None, None),
    ("LT BREAST SAGITTAL", "breast", "left", "long", None, None),
    ("RT BREAST TRV", "breast", "right", "trans", None, None),
    ("RT BREAST TRANSVERSE", "breast", "right", "trans", None, None),
    ("LT BREAST RAD", "breast", "left", "radial", None, None),
    ("LT BREAST ARAD", "breast", "left", "anti-radial", None, None),
    ("LT BREAST ANTI-RAD", "breast", "left", "anti-radial", None, None),
    ("RT BREAST OBL", "breast", "right", "oblique", None, None),
    ("RT BR 2:00 0BL", "breast", "right", "oblique", "2:00", None),  # O read as 0
    ("RT BR 2:00 5AG", "breast", "right", "long", "2:00", None),  # S read as 5
    # laterality
    ("LT BREAST 2:00", "breast", "left", U, "2:00", None),
    ("L BREAST 2:00", "breast", "left", U, "2:00", None),
    ("LEFT BREAST 2:00", "breast", "left", U, "2:00", None),
    ("RT BREAST 2:00", "breast", "right", U, "2:00", None),
    ("R BREAST 2:00", "breast", "right", U, "2:00", None),
    ("RIGHT BREAST 2:00", "breast", "right", U, "2:00", None),
    ("L BR 2:00", "breast", "left", U, "2:00", None),
    ("RT BRST 2:00", "breast", "right", U, "2:00", None),
    ("L SAG", U, "left", "long", None, None),  # one-letter side before an orientation
    ("R TRV", U, "right", "trans", None, None),
    ("L 2 00 RAD", "breast", "left", "radial", "2:00", None),  # before a clock, any spelling
    ("R 2OC", "breast", "right", U, "2:00", None),
    ("L SA", "breast", "left", U, None, None),
    ("SAG L", U, U, "long", None, None),  # a trailing letter is a stray screen marker
    ("L", U, U, U, None, None),
    ("R MASS", U, U, U, None, None),  # before an unknown word: not a side
    # clock
    ("LT BREAST 2:00", "breast", "left", U, "2:00", None),
    ("LT BREAST 2 O'CLOCK", "breast", "left", U, "2:00", None),
    ("LT BREAST 2 OCLOCK", "breast", "left", U, "2:00", None),
    ("LT BREAST 2OC", "breast", "left", U, "2:00", None),
    ("LT BREAST 2 00", "breast", "left", U, "2:00", None),
    ("LT BREAST 20C", "breast", "left", U, "2:00", None),  # 2OC with the O read as 0
    ("LT BREAST 120C", "breast", "left", U, "12:00", None),
    ("LT BREAST 2 05", "breast", "left", U, None, None),  # weak separator: 00/15/30/45 only
    # distance
    ("LT BREAST 2:00 3CM FN", "breast", "left", U, "2:00", 3.0),
    ("LT BREAST 2:00 3 CMFN", "breast", "left", U, "2:00", 3.0),
    ("LT BREAST 2:00 FN 3CM", "breast", "left", U, "2:00", 3.0),
    ("LT BREAST 2:00 3-4CM", "breast", "left", U, "2:00", 3.5),
    ("3-4CM", U, U, U, None, None),  # a bare length with no label around it: the depth scale?
    # positions with no clock, and areas
    ("LT BREAST SUBAREOLAR", "breast", "left", U, None, None),
    ("RT RETROAREOLAR", "breast", "right", U, None, None),
    ("LT SA RAD", "breast", "left", "radial", None, None),
    ("LT AXILLA", "axilla", "left", U, None, None),
    ("RT AX TRV", "axilla", "right", "trans", None, None),
    ("LT SUPRACLAV", "supraclavicular", "left", U, None, None),
    ("RT INFRACLAV SAG", "subclavicular", "right", "long", None, None),
    # ambiguity: two sides or two orientations leave the field unknown
    ("LT RT BREAST 2:00", "breast", U, U, "2:00", None),
    ("LT BREAST SAG TRV", "breast", "left", U, None, None),
    # a time of day with a misread separator is chrome, not a clock
    ("07/24/2023 13-08:26 LT BREAST 6:00", "breast", "left", U, "6:00", None),
]


@pytest.mark.parametrize(("text", "area", "side", "orientation", "clock", "dist"), VOCABULARY)
def test_practice_vocabulary(
    text: str, area: str, side: str, orientation: str, clock: str | None, dist: float | None
) -> None:
    assert parse_annotation(text) == ParsedAnnotation(area, side, orientation, clock, dist)


def test_unknown_words_flag_header_names_not_annotation_vocabulary() -> None:
    from casbusi_assets.ocr.parsing import unknown_words

    assert unknown_words("MCR RAD") == ["MCR"]
    assert unknown_words("MAYO BREAST CLINIC") == ["MAYO", "CLINIC"]
    assert unknown_words("SUPRACLAV TRANS") == []
    assert unknown_words("RT BREAST 2 O'CLOCK 3CM FROM NIPPLE") == []
    assert unknown_words("LT AXILLA LN 2OC") == []


@pytest.mark.parametrize("preset", ["3:BREAST", "2:SMALL PARTS", "1:BR GEN", "12:BRST"])
def test_a_numbered_preset_in_the_status_bar_sets_no_area(preset: str) -> None:
    from casbusi_assets.ocr.parsing import is_chrome

    # Seen on held-out screens: "3:BREAST" in the status bar was read as area `breast`.
    assert is_chrome(preset)
    assert parse_annotation(preset).area == "unknown"
    # ...while the annotation next to it still reads, and a real clock position is never eaten.
    got = parse_annotation(f"{preset} LT BREAST 3:00 RAD")
    assert (got.laterality, got.area, got.clock_pos, got.orientation) == (
        "left",
        "breast",
        "3:00",
        "radial",
    )
    assert parse_annotation("RT BR 10:00").clock_pos == "10:00"
