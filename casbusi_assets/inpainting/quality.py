"""How close an inpainted image is to the clean pixels: mean absolute error in windows round
each caliper mark (the measure the benchmark and the model card report)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

WINDOW_HALF = 12  # 25 x 25 windows: the largest generated mark (arms of 9 px, 2-px strokes, rim)


def window_mae(
    image: np.ndarray,
    clean: np.ndarray,
    marks: Sequence[dict[str, object]],
    half: int = WINDOW_HALF,
) -> float:
    """Mean absolute error (grey levels, averaged over channels) over the windows centred on
    each mark (clipped at the image edges); NaN when there are no marks."""
    if image.shape != clean.shape:
        raise ValueError(f"image {image.shape} and clean {clean.shape} differ in shape")
    h, w = image.shape[:2]
    total, count = 0.0, 0
    for m in marks:
        x, y = int(m["x"]), int(m["y"])  # type: ignore[call-overload]
        sl = (
            slice(max(0, y - half), min(h, y + half + 1)),
            slice(max(0, x - half), min(w, x + half + 1)),
        )
        a = image[sl].astype(np.float32)
        b = clean[sl].astype(np.float32)
        if a.size == 0:
            continue
        total += float(np.abs(a - b).mean())
        count += 1
    return total / count if count else float("nan")
