"""Small builders for the metadata assets attach, so the UI answers "what happened to this batch?"."""

from __future__ import annotations

import dagster as dg
import pandas as pd


def counts(series: pd.Series) -> dict[str, int]:
    """Value counts as a plain, sorted dict (None shown as 'null')."""
    values = series.fillna("null").astype(str).value_counts()
    return {str(k): int(v) for k, v in sorted(values.items())}


def markdown_table(df: pd.DataFrame, columns: list[str], limit: int = 20) -> dg.MetadataValue:
    if df.empty:
        return dg.MetadataValue.md("_no rows_")
    shown = df[columns].head(limit)
    more = f"\n\n_… {len(df) - limit} more rows_" if len(df) > limit else ""
    return dg.MetadataValue.md(shown.to_markdown(index=False) + more)


def contact_sheet(
    paths: list[str], columns: int = 4, tile: int = 160, limit: int = 12
) -> dg.MetadataValue:
    """A small JPEG grid of the first images, inline in markdown (Dagster has no image type).

    Kept to ~50 KB: it is stored in the event log with every materialisation.
    """
    import base64

    import cv2
    import numpy as np

    from casbusi_assets.storage.files import read_image

    tiles = []
    for path in paths[:limit]:
        img = read_image(path, cv2.IMREAD_COLOR)  # a local path or an s3:// URL
        if img is None:
            continue
        scale = tile / max(img.shape[:2])
        img = cv2.resize(
            img,
            (int(img.shape[1] * scale), int(img.shape[0] * scale)),
            interpolation=cv2.INTER_AREA,
        )
        canvas = np.zeros((tile, tile, 3), np.uint8)
        canvas[: img.shape[0], : img.shape[1]] = img
        tiles.append(canvas)
    if not tiles:
        return dg.MetadataValue.md("_no images_")
    while len(tiles) % columns:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.hstack(tiles[i : i + columns]) for i in range(0, len(tiles), columns)]
    ok, buf = cv2.imencode(".jpg", np.vstack(rows), [cv2.IMWRITE_JPEG_QUALITY, 70])
    b64 = base64.b64encode(buf.tobytes()).decode() if ok else ""
    return dg.MetadataValue.md(f"![contact sheet](data:image/jpeg;base64,{b64})")


def embedded_png(image, alt: str = "preview", max_bytes: int = 100_000) -> dg.MetadataValue:
    """An RGB uint8 array as a PNG inline in markdown, halved until it fits in `max_bytes`
    (stored in the event log with every materialisation, so it must stay small)."""
    import base64

    import cv2

    if image is None:
        return dg.MetadataValue.md("_no images_")
    img = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    while True:
        ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        if not ok:
            return dg.MetadataValue.md("_preview could not be encoded_")
        if buf.size <= max_bytes or min(img.shape[:2]) < 32:
            break
        img = cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2), interpolation=cv2.INTER_AREA)
    b64 = base64.b64encode(buf.tobytes()).decode()
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{b64})")
