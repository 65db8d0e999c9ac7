"""Parse a sonographer's burned-in annotation ("LT BREAST 2:00 3CM FN RADIAL") into fields.

Pure text in, fields out: no images, no OCR engine, no Dagster.

Why not the original substring tests (casbusi-spec §4.3): they matched "ft" inside any word as
*left*, "ans" as *trans*, "ht" as *right*, and took the first ``\\d+ cm`` on the screen (often the
depth scale) as the nipple distance. Here every keyword is matched as a whole word (letters on
either side forbid a match, so LEFT is not found in CLEFT, LT not in BOLT/ALTERNATIVE, RT not in
ARTERY/PORT, TRANS not in TRANSDUCER), the text is first stripped of scanner chrome, and the
usual OCR confusions are repaired only where the context makes the intended reading certain.

Scanner chrome is rejected in two ways:

1. *Removal before matching* (``_CHROME_PATTERNS``): times with seconds or AM/PM, dates, acoustic
   output indices (MI, TIS, TIB), percentages, frame rates (Hz), dB, probe names (L12-5, C5-1,
   9L4), image counters (IM#2), and measurement legends (``D1 1.23 cm``, any ``x.yy cm`` with two
   decimals, any value in mm or cm2) are blanked out, so they can neither match a keyword nor be
   read as a clock position or a distance.
2. *Context for bare numbers*: a distance written as ``N CM`` without a nipple cue (FN, CM FN,
   FROM NIPPLE) is accepted only when the same text also carries laterality, a clock position or
   an area word. A lone ``11cm`` (the depth scale) therefore gives no distance. Single letters L
   and R count as laterality only directly before an area word (L BREAST, R AX), because scanner
   screens print stray R/L/P markers next to the image.

Decisions worth knowing:

- Subareolar / retroareolar (``SA``, ``SUBAREOLAR``, ``RETROAREOLAR``) means "behind the nipple":
  it has no clock-face position, so it gives ``clock_pos=None``, and ``nipple_dist_cm=None``
  rather than 0 (0 is treated as implausible, like the original export clean-up). It implies the
  breast. An explicit clock in the same text still wins (``12:00 SA`` gives ``12:00``).
- A clock position, quadrant or nipple distance without an area word implies ``area='breast'``
  (those coordinates exist only on the breast). "AXILLARY TAIL" / "AX TAIL" is part of the breast.
- Conflicting words (both LT and RT, or both RADIAL and TRANS) give ``'unknown'`` rather than a
  guess: a wrong label is worse than a missing one for training data.
- Clock positions with ``:`` accept any minute 00-59; the weaker separators an OCR engine
  produces for ``:`` (``.``, ``;``, a space) are accepted only with minutes 00/15/30/45 so that
  decimals such as ``1.23`` are not read as clock positions.
- A range ``4-5 CM`` gives the mean (4.5). Values of 0 or above 25 cm give ``None``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

AREAS = ("breast", "axilla", "supraclavicular", "subclavicular", "unknown")
LATERALITIES = ("left", "right", "unknown")
ORIENTATIONS = ("long", "trans", "radial", "anti-radial", "oblique", "unknown")
QUADRANTS = ("uoq", "uiq", "loq", "liq")

MAX_NIPPLE_DIST_CM = 25.0


@dataclass(frozen=True)
class ParsedAnnotation:
    """Fields read from one annotation; ``'unknown'`` / ``None`` when the text does not say."""

    area: str = "unknown"
    laterality: str = "unknown"
    orientation: str = "unknown"
    clock_pos: str | None = None  # 'H:MM' or a quadrant ('uoq', 'uiq', 'loq', 'liq')
    nipple_dist_cm: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------------------------
# normalisation

# Typographic quotes and dashes OCR engines emit for ' and - (NFKC leaves them alone).
_ASCII_LOOKALIKES = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u02bc": "'",
        "\u00b4": "'",
        "`": "'",
        "\u2010": "-",
        "\u2011": "-",
        "\u2012": "-",
        "\u2013": "-",
        "\u2014": "-",
        "\u2212": "-",
        "\uff1a": ":",
    }
)


def normalize_text(text: str) -> str:
    """Upper-case ASCII with single spaces: the stored ``description`` and the parser's input.

    NFKC folds full-width forms (a CJK engine may return ``：``) to ASCII before anything that is
    still not ASCII is dropped; line breaks become spaces.
    """
    if not text:
        return ""
    text = unicodedata.normalize("NFKC", text).translate(_ASCII_LOOKALIKES)
    text = text.encode("ascii", "ignore").decode("ascii")
    return " ".join(text.upper().split())


# --------------------------------------------------------------------------------------------
# chrome removal

_NUM = r"\d+(?:\.\d+)?"

_CHROME_PATTERNS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(p)
    for p in (
        # times of day: 2:56:22 PM, 11:24:20, 2:56 PM (a clock position never has seconds/AM/PM)
        r"(?<![\d:])\d{1,2}:\d{2}:\d{2}(?:\s*[AP]\.?M\.?)?(?![\d:])",
        # the same with one separator misread (13-08:26, 13:08.26): still a time of day
        r"(?<![\d:.\-])\d{1,2}(?::\d{2}[.\-;]|[.\-;]\d{2}:)\d{2}(?![\d:])",
        r"(?<![\d:])\d{1,2}:\d{2}\s*[AP]\.?M\b",
        # dates: 5/25/2011, 2011-05-25, 24-MAY-02, 11-05-25(-142825)
        r"(?<!\d)\d{1,2}/\d{1,2}/\d{2,4}(?!\d)",
        r"(?<!\d)\d{4}[-/.]\d{1,2}[-/.]\d{1,2}(?!\d)",
        r"(?<!\d)\d{1,2}-[A-Z]{3}-\d{2,4}(?!\d)",
        r"(?<!\d)\d{2}-\d{2}-\d{2}(?:-\d+)?(?!\d)",
        # acoustic output and system settings: MI 1.1, TIS<0.4, TIB 0.2, A0=100%, 28Hz, 60 dB
        r"(?<![A-Z])(?:MI|TIS|TIB|TIC|TI)\s*[=<>:]?\s*\d*\.?\d+",
        r"(?<![A-Z])A[O0]\s*[=:]?\s*\d+\s*%",
        r"\d+(?:\.\d+)?\s*%",
        r"\d[\dO]*(?:\.\d+)?\s*(?:HZ|KHZ|MHZ|DB)(?![A-Z])",
        # colour / power Doppler labels on the colour bar
        r"(?<![A-Z])(?:PWR|CFM|CPA|PDI)(?![A-Z])",
        r"(?<![A-Z])(?:FR|DR|GN|GAIN|PRF|WF|FPS)\s*[=:]?\s*\d+(?:\.\d+)?\s*K?(?![A-Z])",
        # parameter panel: Frq 12.0, Map B, E/A 2/1, S/P 3/2, PRF 1.2k, 3/3/4
        r"(?<![A-Z])(?:FRQ|FREQ|PRF)\s*[=:]?\s*\d+(?:\.\d+)?\s*K?(?![A-Z])",
        r"(?<![A-Z])MAP\s*[A-Z0-9](?![A-Z0-9])",
        r"(?<![A-Z])(?:E/A|S/P)\s*\d+\s*/\s*\d+",
        r"(?<![\d/:])\d+/\d+(?:/\d+)?(?![\d/])",
        # probe names with hyphens: 9L-D, L2-9-D, ML6-15-D, PLT-1204BT, EL18-4 (never LT-2)
        r"(?<![A-Z0-9])(?!(?:LT|RT|LEFT|RIGHT|L|R)-\d)(?=[A-Z0-9-]*\d)"
        r"(?:[A-Z]+\d*[A-Z]*|\d+[A-Z]+\d*)(?:-[A-Z0-9]+)+(?![A-Z0-9])",
        # probe names: L12-5, C5-1, ML6-15, 9L4, 12L5, M12L, L8-18I
        r"(?<![A-Z0-9])[A-Z]{1,3}\d{1,2}-\d{1,2}[A-Z]?(?![A-Z0-9])",
        r"(?<![A-Z0-9:.])\d{1,2}[A-Z]{1,2}\d{1,2}(?![A-Z0-9:])",
        r"(?<![A-Z0-9])[A-Z]\d{2}[A-Z](?![A-Z0-9])",  # M12L; not U0Q (a misread UOQ)
        # a numbered exam preset in the status bar: 3:BREAST, 2:SMALL PARTS (a clock position
        # is H:MM, so a digit, a colon and a word glued to it is the preset slot, not a field)
        r"(?<![\d:])\d{1,2}:(?:BREAST|BRST|BR\s*GEN|BR|SMALL\s*PARTS|SM\s*PARTS)(?![A-Z])",
        # counters: IM#2, #12, CINE 0118
        r"\S*#\s*\d+",
        r"(?<![A-Z])CINE\s*\d+",
        # measurement legends: D1 1.23 cm, DIST 0.8CM, L: 2.1 cm, A 1.2 cm2, VOL 3 ML
        r"(?<![A-Z])(?:D\d?|DIST|DEPTH|AREA|VOL|CIRC|AP|W|H)\s*\d?\s*[:=]?\s*"
        + _NUM
        + r"\s*(?:CM|MM|ML)[23]?(?![A-Z])(?!\s*(?:FN|FROM))",
        # any 2-decimal length, anything in mm / cm2 / cm3 / ml, unless a nipple cue follows
        r"(?<![\d.])\d+\.\d{2,}\s*(?:CM|MM)(?![A-Z])(?!\s*(?:FN|FROM))",
        r"(?<![\d.])" + _NUM + r"\s*(?:MM|ML)(?![A-Z])(?!\s*(?:FN|FROM))",
        r"(?<![\d.])" + _NUM + r"\s*CM[23](?![A-Z0-9])",
    )
)


def _strip_chrome(text: str) -> str:
    for pattern in _CHROME_PATTERNS:
        # a separator, not nothing, so that the text either side cannot fuse into a new token
        text = pattern.sub(" | ", text)
    return text


_LEFTOVER_PUNCT = re.compile(r"[|+*#.,;:=<>\-/_()\[\]'\"~!?@$&^%\s]+")


def strip_chrome(text: str) -> str:
    """``text`` normalised, with the scanner-chrome patterns above removed."""
    rest = _strip_chrome(f" {normalize_text(text)} ")
    return " ".join(rest.replace("|", " ").split())


def is_chrome(text: str) -> bool:
    """True when ``text`` (one OCR box) is nothing but scanner chrome.

    That is: nothing is left once the chrome patterns are removed, or only one stray digit
    (the index of a measurement legend, "1 Dist 1.23 cm").
    """
    rest = _LEFTOVER_PUNCT.sub(" ", strip_chrome(text)).strip()
    return rest == "" or bool(re.fullmatch(r"\d", rest))


# --------------------------------------------------------------------------------------------
# OCR repair and phrase canonicalisation

# Multi-word and hyphenated spellings folded into one token before the word lookup.
_PHRASES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p), r)
    for p, r in (
        (r"(?<![A-Z])ANTI\s*-?\s*RAD(?:IAL)?(?![A-Z])", " ANTIRADIAL "),
        (r"(?<![A-Z])A\s*-\s*RAD(?:IAL)?(?![A-Z])", " ANTIRADIAL "),
        (r"(?<![A-Z])(?:RETRO|SUB)\s*-?\s*AREOLAR(?![A-Z])", " SUBAREOLAR "),
        (r"(?<![A-Z])SUPRA\s*-?\s*CLAV(?:ICULAR)?(?![A-Z])", " SUPRACLAVICULAR "),
        (r"(?<![A-Z])(?:SUB|INFRA)\s*-\s*CLAV(?:ICULAR)?(?![A-Z])", " SUBCLAVICULAR "),
        (r"(?<![A-Z])(?:SUB|INFRA)\s+CLAV(?:ICULAR)?(?![A-Z])", " SUBCLAVICULAR "),
        (r"(?<![A-Z])AX(?:ILLARY|ILLA|ILA)?\s*-?\s*TAIL(?![A-Z])", " AXTAIL "),
        (r"(?<![A-Z])UPPER\s+OUTER(?:\s+QUAD(?:RANT)?)?(?![A-Z])", " UOQ "),
        (r"(?<![A-Z])UPPER\s+INNER(?:\s+QUAD(?:RANT)?)?(?![A-Z])", " UIQ "),
        (r"(?<![A-Z])LOWER\s+OUTER(?:\s+QUAD(?:RANT)?)?(?![A-Z])", " LOQ "),
        (r"(?<![A-Z])LOWER\s+INNER(?:\s+QUAD(?:RANT)?)?(?![A-Z])", " LIQ "),
        # glued laterality + area: LTBREAST, RTBR, LBREAST, RAXILLA
        (
            r"(?<![A-Z0-9])(LT|RT|L|R)(?=(?:BREAST|BRST|BR|AXILLA|AXILLARY|AXILA|AX)(?![A-Z]))",
            r" \1 ",
        ),
        # glued area + laterality, seen when a engine drops a space: BREASTLT is not a word
        (r"(?<![A-Z])(BREAST)(LT|RT|LEFT|RIGHT)(?![A-Z])", r" \1 \2 "),
    )
)

# word -> (field, value). Whole-word lookup only; see the module docstring.
_WORDS: dict[str, tuple[str, str]] = {}


def _add(field: str, value: str, words: Iterable[str]) -> None:
    for word in words:
        _WORDS[word] = (field, value)


# LF: the recogniser's usual misread of LT in small fonts
_add("laterality", "left", ["LT", "LEFT", "LFT", "LF"])
# RICHT / RIGHI / RLGHT: the recogniser's usual misreads of RIGHT on speckle
_add("laterality", "right", ["RT", "RIGHT", "RGT", "RIGH", "RICHT", "RIGHI", "RLGHT", "RIGHF"])
_add("area", "breast", ["BREAST", "BR", "BRST", "BREASTS", "AXTAIL"])
_add("area", "axilla", ["AXILLA", "AXILLARY", "AX", "AXILA", "AXLLA", "AXIL", "AXILL"])
_add(
    "area",
    "supraclavicular",
    ["SUPRACLAVICULAR", "SUPRACLAV", "SUPERCLAVICULAR", "SCL", "SUPRACLAVIC"],
)
_add(
    "area",
    "subclavicular",
    ["SUBCLAVICULAR", "SUBCLAV", "SUBCLAVCULAR", "INFRACLAVICULAR", "INFRACLAV", "ICL"],
)
_add("orientation", "anti-radial", ["ANTIRADIAL", "ANTIRAD", "ARAD", "ARADIAL"])
_add("orientation", "radial", ["RADIAL", "RAD"])
_add(
    "orientation",
    "trans",
    ["TRANS", "TRV", "TRANSVERSE", "TRANSV", "TRANSVERSAL", "TRANSVERS", "TRNS", "TRANSAXIAL"],
)
_add(
    "orientation",
    "long",
    ["LONG", "LON", "LNG", "SAG", "SAGITTAL", "SAGITAL", "SAGT", "LONGITUDINAL", "LONGIT"],
)
_add("orientation", "oblique", ["OBL", "OBLIQUE", "OBLQ", "OBLIQ"])
# ...O for ...Q: the recogniser's usual misread of the quadrant's last letter (no scanner or
# practice word is spelled UOO, UIO, LOO or LIO)
_add("quadrant", "uoq", ["UOQ", "UOO"])
_add("quadrant", "uiq", ["UIQ", "UIO"])
_add("quadrant", "loq", ["LOQ", "LOO"])
_add("quadrant", "liq", ["LIQ", "LIO"])
# Words that set no field but must be known so that glued text can be split around them
# ("LEFTAXILLALN" is LEFT AXILLA LN).
_add(
    "other",
    "other",
    ["LN", "LNS", "NODE", "MASS", "CYST", "LESION", "PALP", "CLIP", "SITE", "CM", "FN", "CMFN"],
)
_add("subareolar", "subareolar", ["SA", "SUBAREOLAR", "RETROAREOLAR", "RETROAREOLA", "SUBAREOLA"])
# Words of annotations that set nothing and split nothing (not in _WORDS, so that glued-word
# splitting cannot conjure them); see :func:`unknown_words`.
_ANNOTATION_WORDS = frozenset(
    [
        "FROM",
        "NIPPLE",
        "THE",
        "CLOCK",
        "OCLOCK",
        "CLK",
        "LOOK",
        "SECOND",
        "PALPABLE",
        "LUMP",
        "VIEW",
        "TAIL",
        "QUAD",
        "QUADRANT",
        "UPPER",
        "LOWER",
        "OUTER",
        "INNER",
        "AREA",
        "REGION",
        "SCAR",
        "IMPLANT",
        "BIOPSY",
        "NODES",
        "LYMPH",
        "MARKER",
        "COMPLEX",
        "SOLID",
        "SIMPLE",
        "TARGET",
    ]
)

# digits an engine returns inside a word, mapped back to the letter they resemble. Applied only
# when the repaired token is a known word ("L0NG" -> LONG, "R1GHT" -> RIGHT); never to numbers.
_DIGIT_AS_LETTER = str.maketrans({"0": "O", "1": "I", "5": "S", "7": "T", "8": "B", "6": "G"})
_LETTER_AS_DIGIT = str.maketrans({"O": "0", "D": "0", "I": "1", "L": "1", "S": "5", "Z": "2"})

_AREA_WORDS = sorted((w for w, (f, _) in _WORDS.items() if f == "area"), key=len, reverse=True)
_QUADRANT_WORDS = sorted(w for w, (f, _) in _WORDS.items() if f == "quadrant")
_SIDE_NEXT_WORDS = sorted(
    (w for w, (f, _) in _WORDS.items() if f in ("area", "quadrant", "orientation", "subareolar")),
    key=len,
    reverse=True,
)
# L / R alone (rule "one-letter side"): a side only when the next thing is an annotation
# keyword (area, quadrant, orientation, SA/SUBAREOLAR) or a clock in any of its forms
# ("R 12:00", "L 2 00", "R 2OC", "L SAG"); a removed chrome token ("|") may stand between.
# Anything else, an L or R at the end of the text or before an unknown word, is a stray
# screen marker and sets nothing.
_SINGLE_LETTER_SIDE = re.compile(
    r"(?<![A-Z0-9'])([LR])(?:\s|\|)*(?=(?:(?:"
    + "|".join(_SIDE_NEXT_WORDS)
    + r")(?![A-Z])|\d{1,2}\s*[:;.]\s*\d{2}(?![\d.])|\d{1,2}\s(?:00|15|30|45)(?![\d.:])"
    + r"|\d{1,2}\s*O'?\s*C))"
)
_WORD_RE = re.compile(r"(?<![A-Z])[A-Z][A-Z0-9]*(?![A-Z])")


def _words(text: str) -> list[tuple[int, str, str]]:
    """(position, field, value) of every keyword; position keeps first-mention ordering."""
    found: list[tuple[int, str, str]] = []
    for m in _SINGLE_LETTER_SIDE.finditer(text):
        found.append((m.start(), "laterality", "left" if m.group(1) == "L" else "right"))
    for m in _WORD_RE.finditer(text):
        token = m.group(0)
        if m.start() > 0 and text[m.start() - 1].isdigit() and len(token) < 3:
            continue  # "5:00RADIAL" is RADIAL, but a 2-letter LT/RT/BR after a digit is noise
        hit = _WORDS.get(token)
        if hit is None and any(c.isdigit() for c in token):
            # "L0NG" is LONG misread; "LT2" is LT glued to the clock "2:00"
            hit = _WORDS.get(token.translate(_DIGIT_AS_LETTER))
            if hit is None:
                hit = _WORDS.get(token.rstrip("0123456789"))
            if hit is None:
                # a word glued to the digits after it: "BREAST4307GMFN" (spaces and colon lost)
                lead = re.match(r"[A-Z]{3,}", token)
                hit = _WORDS.get(lead.group(0)) if lead else None
        if hit is not None:
            found.append((m.start(), hit[0], hit[1]))
    return sorted(found)


# Words glued by lost spaces (LTUIQ, LTSUBCLAVICULAROBL) are split into known words of 3+
# letters or these short ones, so that short words cannot be conjured out of ordinary ones (SALT).
_SHORT_PARTS = ("LT", "RT", "LF", "BR", "LN", "CM", "FN")


def _known_part(part: str, fuzzy: bool) -> str | None:
    """``part`` as a known word (itself), its one-edit long keyword when ``fuzzy``, or None."""
    if part in _WORDS:
        return part if len(part) >= 3 or part in _SHORT_PARTS else None
    if fuzzy and len(part) >= 6:
        close = [w for w in _FUZZY_WORDS if _within_one_edit(part, w)]
        if close and len({_WORDS[w] for w in close}) == 1:
            return close[0]
    return None


def _split_glued(token: str, max_parts: int = 4, fuzzy: bool = False) -> list[str] | None:
    """The fewest known words that spell ``token``, or None (dynamic programming).

    With ``fuzzy``, a part of 6+ letters may also be one edit away from a long area or
    orientation keyword (LTINFRAGLAVICULAR: a lost space *and* a misread letter); exact parts
    win ties, so the fuzzy route only decides what the exact one cannot split.
    """
    n = len(token)
    # best[i]: (parts, fuzzy parts used) for token[:i]
    best: list[tuple[list[str], int] | None] = [None] * (n + 1)
    best[0] = ([], 0)
    for end in range(2, n + 1):
        for start in range(0, end - 1):
            prev = best[start]
            if prev is None or len(prev[0]) >= max_parts:
                continue
            part = token[start:end]
            word = _known_part(part, fuzzy)
            if word is None:
                continue
            cand = ([*prev[0], word], prev[1] + (word != part))
            cur = best[end]
            if cur is None or (len(cand[0]), cand[1]) < (len(cur[0]), cur[1]):
                best[end] = cand
    result = best[n]
    if result is None or len(result[0]) < 2 or result[1] > 1:
        return None
    return result[0]


_CLOCK_GLUED = re.compile(r"(?<![\d:])(\d{1,2}[:;](?:00|15|30|45))(?=\d)")
_ALPHA_RUN = re.compile(r"(?<![A-Z])[A-Z]{3,}(?![A-Z])")
# long area / orientation words an engine may misspell by one letter (RADIAD, TRANSVERSF); 6+
# letters only, and never the side: LIGHT is one letter from RIGHT, CLEFT from LEFT
_FUZZY_WORDS = sorted(
    w for w, (f, _) in _WORDS.items() if len(w) >= 6 and f in ("area", "orientation")
)


def _within_one_edit(a: str, b: str) -> bool:
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) == 1
    if len(a) > len(b):
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    return a[i:] == b[i + 1 :]


def _repair_word(m: re.Match[str]) -> str:
    """Re-space glued words (7-8CMFNLONG) and fix one-letter misspellings of long keywords."""
    token = m.group(0)
    if token in _WORDS:
        return token
    parts = _split_glued(token)
    if parts is not None:
        return " ".join(parts)
    if token[0] in "LR" and _WORDS.get(token[1:], ("", ""))[0] in ("area", "quadrant"):
        return f"{token[0]} {token[1:]}"  # LSUPRACLAV, RUOQ: a single-letter side glued on
    if len(token) >= 5:
        close = [w for w in _FUZZY_WORDS if _within_one_edit(token, w)]
        if len({_WORDS[w] for w in close}) == 1:
            return close[0]
    if len(token) >= 8:
        # glued *and* misread (LTINFRAGLAVICULAR, BREASTRADIAD): at most one part off by one
        parts = _split_glued(token, fuzzy=True)
        if parts is not None:
            return " ".join(parts)
    return token


# --------------------------------------------------------------------------------------------
# clock position

_TYPICAL_MINUTES = ("00", "15", "30", "45")

# hour / minute characters an engine confuses with digits (1O:OO, IO:OO, lO:OO)
_CLOCK_COLON = re.compile(r"(?<![0-9.:/])([0-9OIL]{1,2})\s*[:;]\s*([0-9OD]{2})(?![0-9:])")
_CLOCK_WEAK = re.compile(r"(?<![0-9.:/-])(\d{1,2})(?:\s*[.,]\s*|\s)(\d{2})(?![0-9:.]|\s*-)")
_CLOCK_WORD = re.compile(
    r"(?<![A-Z0-9.:/-])([0-9OIL]{1,2})\s*(?:[O0]\s*'?\s*CL[O0]CK|[O0]'?\s*CLK|[O0]'?C)(?![A-Z])"
)


def _hour(raw: str) -> int | None:
    digits = raw.translate(_LETTER_AS_DIGIT)
    if not digits.isdigit():
        return None
    hour = int(digits)
    return hour if 1 <= hour <= 12 else None


_SIDE_GLUED = re.compile(r"(?<![A-Z0-9])L\d\s*[:;]")


def _find_clock(text: str) -> tuple[int, str] | None:
    """(position, 'H:MM') of the first plausible clock position in chrome-free text."""
    hits: list[tuple[int, str]] = []
    for m in _CLOCK_COLON.finditer(text):
        # a misread like "IO:OO" is only trusted with a real colon and a repairable shape
        raw = m.group(1)
        start = m.start()
        if not raw.isdigit() and start > 0 and text[start - 1].isalpha():
            continue  # "LO:" inside a word; a glued "RT10:00" (all digits) is still fine
        if len(raw) == 2 and raw[0] == "L" and raw[1].isdigit() and _SIDE_GLUED.match(text, start):
            # "L1:00" is the side L glued to 1:00 (the laterality rule reads it so too), not
            # 11:00 with a misread 1: the clock must agree with the side taken from the L
            raw, start = raw[1], start + 1
        hour = _hour(raw)
        minute = m.group(2).translate(_LETTER_AS_DIGIT)
        if hour is not None and minute.isdigit() and int(minute) < 60:
            hits.append((start, f"{hour}:{minute}"))
    for m in _CLOCK_WEAK.finditer(text):
        hour = _hour(m.group(1))
        minute = m.group(2)
        # a following CM/MM makes it a length ("2.30 CM"), not a clock
        tail = text[m.end() : m.end() + 4].lstrip()
        if hour is not None and minute in _TYPICAL_MINUTES and not tail.startswith(("CM", "MM")):
            hits.append((m.start(), f"{hour}:{minute}"))
    for m in _CLOCK_WORD.finditer(text):
        # "LOC" (GE LOGIQ misread) must not become 1 o'clock: one real digit is required
        hour = _hour(m.group(1)) if any(c.isdigit() for c in m.group(1)) else None
        if hour is not None:
            hits.append((m.start(), f"{hour}:00"))
    return min(hits) if hits else None


# --------------------------------------------------------------------------------------------
# nipple distance

_DIST_NUM = r"[0-9SIOZ]{1,2}(?:\.\d)?"
_NIPPLE_CUE = r"(?:FN|F\.N\.?|FNP|FR\s*NIP(?:PLE)?|FROM\s*(?:THE\s*)?NIP(?:PLE)?|FROM\s*N)(?![A-Z])"
_DIST_WITH_CUE = re.compile(
    rf"(?<![A-Z0-9.:/])({_DIST_NUM})(?:\s*-\s*({_DIST_NUM}))?\s*(?:CM\s*)?{_NIPPLE_CUE}"
)
# the cue written first: "FN 3CM", "FN 4-5 CM"
_DIST_CUE_FIRST = re.compile(
    rf"(?<![A-Z])FN\s*[:=]?\s*({_DIST_NUM})(?:\s*-\s*({_DIST_NUM}))?\s*CM(?![A-Z])"
)
_DIST_BARE = re.compile(rf"(?<![A-Z0-9.:/])({_DIST_NUM})(?:\s*-\s*({_DIST_NUM}))?\s*CM(?![A-Z0-9])")


def _number(raw: str | None) -> float | None:
    if raw is None:
        return None
    # "SCM" is "5CM", "ICM" is "1CM", "1OCM" is "10CM": letters only ever stand for digits here
    repaired = raw.translate(_LETTER_AS_DIGIT)
    try:
        return float(repaired)
    except ValueError:
        return None


def _distance(m: re.Match[str]) -> float | None:
    low, high = _number(m.group(1)), _number(m.group(2))
    if low is None:
        return None
    value = low if high is None else (low + high) / 2.0
    if high is not None and high < low:
        return None
    if value <= 0 or value > MAX_NIPPLE_DIST_CM:
        return None
    return round(value, 2)


def _find_distance(text: str, has_context: bool) -> float | None:
    for m in _DIST_CUE_FIRST.finditer(text):
        value = _distance(m)
        if value is not None:
            return value
    for m in _DIST_WITH_CUE.finditer(text):
        if m.group(1).isalpha() and m.group(2) is None and "CM" not in m.group(0):
            continue  # "S FN" without a CM is too weak to call a number
        value = _distance(m)
        if value is not None:
            return value
    if not has_context:
        return None
    for m in _DIST_BARE.finditer(text):
        value = _distance(m)
        if value is not None:
            return value
    return None


# --------------------------------------------------------------------------------------------
# the parser


def _single(values: list[str]) -> str:
    """The one value named, or 'unknown' when none or several different ones are named."""
    distinct = list(dict.fromkeys(values))
    return distinct[0] if len(distinct) == 1 else "unknown"


# A keyword whose first letter was read as a digit: "0BL" (OBL), "5AG" (SAG), "8RST" (BRST).
_DIGIT_LEAD = re.compile(r"(?<![A-Z0-9.:/])[0158][A-Z][A-Z0-9]+(?![A-Z0-9])")


def _repair_digit_lead(m: re.Match[str]) -> str:
    token = m.group(0)
    fixed = token.translate(_DIGIT_AS_LETTER)
    return f" {fixed} " if fixed in _WORDS and _WORDS[fixed][0] != "other" else token


_WORD_HYPHEN_DIGIT = re.compile(r"(?<=[A-Z]{4})-(?=\d)")


def _clean(norm: str) -> str:
    """Normalised text with chrome removed, phrases folded and OCR repairs applied."""
    # a space read as a hyphen between a word and a number: "BREAST-3 O'CLOCK" (before the
    # chrome patterns, which would take it for a probe name). Ranges ("4-5 CM") and probe names
    # ("L12-5", "PLT-1204BT": under four letters) are left alone.
    norm = _WORD_HYPHEN_DIGIT.sub(" ", norm)
    clean = _strip_chrome(f" {norm} ")
    for pattern, repl in _PHRASES:
        clean = pattern.sub(repl, clean)
    clean = _DIGIT_LEAD.sub(_repair_digit_lead, clean)
    clean = _ALPHA_RUN.sub(_repair_word, clean)
    # a clock glued to the distance by a lost space: "8:006.5CMFN" is 8:00 6.5CM FN
    return _CLOCK_GLUED.sub(r"\1 ", clean)


_ALPHA_WORD = re.compile(r"(?<![A-Z0-9])[A-Z]{3,}(?![A-Z0-9])")


def unknown_words(text: str) -> list[str]:
    """Words of three or more letters in ``text`` that are no annotation vocabulary.

    Decides rule "side-less block" of the reader: text that does not name the side is taken
    as annotation only when every word in it is annotation vocabulary, so that header names
    such as "MCR RAD" (RAD: radial?) or "MAYO BREAST CLINIC" cannot set a field.
    """
    clean = _clean(normalize_text(text))
    return [
        w
        for w in _ALPHA_WORD.findall(clean)
        if w not in _WORDS and w not in _ANNOTATION_WORDS and _CLOCK_WORD.fullmatch(w) is None
    ]


def parse_annotation(text: str) -> ParsedAnnotation:
    """Parse an annotation (raw OCR text or an already normalised description) into fields."""
    norm = normalize_text(text)
    if not norm:
        return ParsedAnnotation()
    clean = _clean(norm)

    words = _words(clean)
    by_field: dict[str, list[str]] = {}
    for _, field, value in words:
        by_field.setdefault(field, []).append(value)

    laterality = _single(by_field.get("laterality", []))
    orientation = _single(by_field.get("orientation", []))

    clock = _find_clock(clean)
    quadrants = by_field.get("quadrant", [])
    subareolar = bool(by_field.get("subareolar"))
    if clock is not None:
        clock_pos: str | None = clock[1]
    elif quadrants:
        clock_pos = _single(quadrants)
        clock_pos = None if clock_pos == "unknown" else clock_pos
    else:
        clock_pos = None

    areas = by_field.get("area", [])
    # the first area named wins: "RT AXILLA ... BREAST" is rare, and sonographers lead with it
    area = areas[0] if areas else "unknown"

    has_context = bool(laterality != "unknown" or clock_pos is not None or areas or subareolar)
    nipple = _find_distance(clean, has_context)

    if area == "unknown" and (clock_pos is not None or nipple is not None or subareolar):
        area = "breast"
    return ParsedAnnotation(
        area=area,
        laterality=laterality,
        orientation=orientation,
        clock_pos=clock_pos,
        nipple_dist_cm=nipple,
    )


def annotation_fields(parsed: ParsedAnnotation) -> set[str]:
    """Names of the fields ``parsed`` sets (not 'unknown' / None)."""
    return {k for k, v in parsed.as_dict().items() if v is not None and v != "unknown"}
