"""README.md of an export: the data card (counts per split and class, exclusions by reason code,
labels, lineage, how to load it), rendered from the export's statistics."""

from __future__ import annotations

from casbusi_assets.export.filters import FILTER_CODES

SUMMARY_START = "<!-- summary -->"
SUMMARY_END = "<!-- /summary -->"


def _labels_line(stats: dict) -> str:
    if not stats.get("has_labels"):
        return (
            "labels: none (no labels archive in the warehouse): bag labels come from the "
            "biopsy results only; no InstanceData.csv, no masks"
        )
    versions = ", ".join(stats.get("labels_archive_versions") or [])
    return (
        f"labels: labels archive version(s) {versions}: {stats.get('labelled_images', 0)} "
        f"exported image(s) with instance labels, {stats['files'].get('mask', 0)} mask(s)"
    )


def summary_lines(stats: dict) -> list[str]:
    """The few lines `casbusi export` and `casbusi demo` print."""
    ps = stats["per_split"]
    patients = sum(s["patients"] for s in ps.values())
    line_split = ", ".join(
        f"{k} {v['patients']} patients / {v['bags']} bags / {v['images']} images"
        for k, v in ps.items()
    )
    files = stats.get("files", {})
    return [
        f"export {stats['export_id']}: {patients} patients, "
        f"{sum(s['bags'] for s in ps.values())} bags, {files.get('image', 0)} images, "
        f"{sum(s['clips'] for s in ps.values())} clips ({files.get('video_frame', 0)} frames), "
        f"{files.get('mask', 0)} masks, {stats.get('bytes', 0) / 1e6:.1f} MB",
        f"splits: {line_split}",
        f"stills: {stats['images_considered']} considered, "
        f"{stats['excluded_by_cleaning_images']} excluded by cleaning, "
        + ", ".join(f"{f['code']} {f['removed']}" for f in stats["filters_images"] if f["removed"])
        + (" by the export filters" if any(f["removed"] for f in stats["filters_images"]) else ""),
        _labels_line(stats),
        f"manifest sha256 {stats['manifest_sha256']}",
    ]


def _table(header: list[str], rows: list[list[object]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def _filter_rows(filters: list[dict], config: dict) -> list[list[object]]:
    rows = []
    for f in filters:
        if f["setting"] == "always on":
            setting = "always on"
        else:
            setting = ", ".join(
                f"`{s.strip()}={config.get(s.strip())}`" for s in f["setting"].split(",")
            )
        rows.append(
            [
                f"`{f['code']}`",
                f["meaning"],
                setting,
                "yes" if f["enabled"] else "off",
                f["removed"],
            ]
        )
    return rows


def render(stats: dict) -> str:
    ps = stats["per_split"]
    config = stats.get("config", {})
    split_rows = [
        [
            name,
            {"train": 0, "val": 1, "test": 2}[name],
            s["patients"],
            s["bags"],
            s["bags_malignant"],
            s["bags_benign_only"],
            s["bags_no_finding"],
            s["images"],
            s["images_malignant"],
            s["clips"],
        ]
        for name, s in ps.items()
    ]
    totals = ["**all**", ""] + [sum(int(r[i]) for r in split_rows) for i in range(2, 10)]
    clean_img = stats.get("cleaning_reasons_images") or {}
    clean_vid = stats.get("cleaning_reasons_videos") or {}
    codes = sorted(set(clean_img) | set(clean_vid))
    cleaning = (
        _table(
            ["reason code", "stills", "clips"],
            [[f"`{c}`", clean_img.get(c, 0), clean_vid.get(c, 0)] for c in codes],
        )
        if codes
        else "_none: cleaning excluded nothing, or no cleaning decisions were available_"
    )
    sources = stats.get("sources", {})
    lines = [
        f"# Training export `{stats['export_id']}`",
        "",
        f"Created {stats['created_at']} from batches {', '.join(stats.get('batches', [])) or '(none)'}.",
        "Produced by casbusi-assets (`export_splits`); every setting and the code version are in",
        "`export_config.json`, and every file's lineage is in `manifest.parquet`.",
        "",
        "## Summary",
        "",
        SUMMARY_START,
        *[f"- {s}" for s in summary_lines(stats)],
        SUMMARY_END,
        "",
        "## Splits",
        "",
        "Splits are **by patient**: all images of a patient are in one split. A patient's split is",
        f"decided by a salted hash of its ID (mode `{config.get('split_mode')}`, salt "
        f"`{config.get('salt')}`, val {config.get('val_fraction')}, test "
        f"{config.get('test_fraction')}), so adding batches never moves an earlier patient.",
        "`Valid` in TrainData.csv is 0 train, 1 val, 2 test. A bag is one breast of one study",
        "(accession + breast); a bag is malignant if a biopsy of that breast was malignant.",
        "",
        _table(
            [
                "split",
                "Valid",
                "patients",
                "bags",
                "malignant bags",
                "benign-only bags",
                "bags without finding",
                "images",
                "images in malignant bags",
                "clips",
            ],
            [*split_rows, totals],
        ),
        "",
        "## Exclusions",
        "",
        f"Of {stats['images_considered']} stills and {stats['videos_considered']} clips in the "
        f"warehouse, cleaning excluded {stats['excluded_by_cleaning_images']} stills and "
        f"{stats['excluded_by_cleaning_videos']} clips (a row may carry several codes):",
        "",
        cleaning,
        "",
        "Then the export filters, in this order (each row counts what it removed first):",
        "",
        "Stills:",
        "",
        _table(
            ["code", "meaning", "setting", "on", "removed"],
            _filter_rows(stats["filters_images"], config),
        ),
        "",
    ]
    if stats.get("filters_videos"):
        lines += [
            "Clips:",
            "",
            _table(
                ["code", "meaning", "setting", "on", "removed"],
                _filter_rows(stats["filters_videos"], config),
            ),
            "",
        ]
    lines += [
        "## Labels",
        "",
        _labels_line(stats) + ".",
        "",
        "## Where the pixels came from",
        "",
        f"- stills: `{sources.get('images')}`; clips: `{sources.get('videos')}`",
        f"- caliper-free copies: `{sources.get('inpainting')}` "
        f"({stats.get('inpainted_images', 0)} exported stills are inpainted copies; "
        f"{stats.get('calipers_not_removed', 0)} exported stills show calipers that no "
        "caliper-free copy removed: `has_calipers AND NOT inpainted` in the manifest)",
        "- every file in `images/`, `masks/` and `videos/` has a row in `manifest.parquet`: batch,",
        "  zip member path, SOPInstanceUID, patient, accession, breast, the DICOM file and pixel",
        "  SHA-256, the SHA-256 of the exported file, the crop box, inpainted or not, label source",
        "  and labels archive version, split and bag.",
        "",
        "## Files",
        "",
        "- `images/<patient>_<accession>_<side>_<uid>.png`: stills cropped to the ultrasound field",
        "- `masks/<same name>`: label masks cropped the same way (when labelled)",
        "- `videos/<clip>/frame_NNNN.png`: saved cine frames, cropped",
        "- `TrainData.csv`: `ID, Accession_Number, Breast, Images, Has_Malignant, Has_Benign,",
        "  Valid, VideoPaths` (list columns are Python literals)",
        "- `InstanceData.csv`: `Accession_Number, ImageName`, and the instance labels"
        + ("" if stats.get("has_labels") else " (not written: no labels)"),
        "",
        "## Loading it",
        "",
        "```python",
        "import ast",
        "import pandas as pd",
        "",
        "bags = pd.read_csv('TrainData.csv')",
        "bags['Images'] = bags['Images'].apply(ast.literal_eval)",
        "bags['VideoPaths'] = bags['VideoPaths'].apply(ast.literal_eval)",
        "train = bags[bags['Valid'] == 0]",
        "first = [f'images/{name}' for name in train.iloc[0]['Images']]",
        "manifest = pd.read_parquet('manifest.parquet')  # lineage of every file",
        "```",
        "",
        "CADBUSI-Training reads the folder as is (`prepare_all_data(<this folder>, ...)`).",
        "",
    ]
    return "\n".join(lines)


def read_summary(readme_text: str) -> list[str]:
    """The summary lines of a data card (what `casbusi export` prints)."""
    if SUMMARY_START not in readme_text:
        return []
    block = readme_text.split(SUMMARY_START, 1)[1].split(SUMMARY_END, 1)[0]
    return [line[2:] for line in block.strip().splitlines() if line.startswith("- ")]


__all__ = ["FILTER_CODES", "read_summary", "render", "summary_lines"]
