"""The ingest codecs on the real pydicom-data ultrasound captures: ISA-L inflate against zipfile,
`shared/png.encode_png` against OpenCV's PNG encoder (same pixels?, bytes, CPU).

The captures come from several vendors (ALOKA, Philips, GE-like palette colour, JPEG, JPEG 2000,
RLE, 16-bit, clips) and were never used to tune either codec (they are layout-free anyway: the
point is that real files decode to the same pixels and compress alike).

    .venv/bin/python benchmarks/bench_codecs.py [--passes 3]

Prints one line per measure; the latest figures are in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    import cv2
    import numpy as np
    from pydicom.data import get_testdata_file

    from casbusi_assets.ingest import catalog as cat
    from casbusi_assets.ingest import zip_members as zm
    from casbusi_assets.pixels import decode
    from casbusi_assets.shared.png import encode_png
    from casbusi_assets_tests.conftest import REAL_US_FILES

    ap = argparse.ArgumentParser()
    ap.add_argument("--passes", type=int, default=3)
    args = ap.parse_args()
    cv2.setNumThreads(1)  # as in the ingest workers
    cpu = time.process_time

    with tempfile.TemporaryDirectory() as tmp:
        zpath = Path(tmp) / "real.zip"
        with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
            for name in sorted(REAL_US_FILES):
                zf.write(get_testdata_file(name), f"p/{name}")
        with zm.open_batch_zip(zpath) as zf:
            members = zm.list_members(zf)
            same = sum(
                zm._inflate_deflated(zf, zf.getinfo(m.path), m.size) == zf.read(m.path)
                for m in members
            )
            print(f"{len(members)} real captures: ISA-L inflate gives zipfile's bytes on {same}")
            t_zip = t_isal = 0.0
            for _ in range(args.passes):
                for m in members:
                    t = cpu()
                    zf.read(m.path)
                    t_zip += cpu() - t
                    t = cpu()
                    zm._inflate_deflated(zf, zf.getinfo(m.path), m.size)
                    t_isal += cpu() - t
            print(
                f"inflate CPU, {args.passes} passes: zipfile {t_zip:.3f} s, ISA-L {t_isal:.3f} s "
                f"({t_zip / t_isal:.2f}x)"
            )
            frames = equal = ours_bytes = cv_bytes = 0
            t_ours = t_cv = 0.0
            for m in members:
                row, ds = cat.catalog_parsed(m.path, zm.read_member(zf, m))
                if ds is None or row["status"] != "ok":
                    continue
                n = int(ds.get("NumberOfFrames") or 1)
                regions = decode.regions_from_dataset(ds)
                for i in decode.select_frames(n, "first_middle"):
                    img = decode.prepare_still(
                        decode.decode_frame(ds, i), decode._photometric(ds), regions=regions
                    ).array
                    bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR) if img.ndim == 3 else img
                    for _ in range(args.passes):
                        t = cpu()
                        ours = encode_png(img)
                        t_ours += cpu() - t
                        t = cpu()
                        theirs = cv2.imencode(".png", bgr)[1]
                        t_cv += cpu() - t
                    back = cv2.imdecode(np.frombuffer(ours, np.uint8), cv2.IMREAD_UNCHANGED)
                    if img.ndim == 3:
                        back = cv2.cvtColor(back, cv2.COLOR_BGR2RGB)
                    frames += 1
                    equal += bool(np.array_equal(back, img))
                    ours_bytes += len(ours)
                    cv_bytes += len(theirs)
    print(
        f"{frames} frames (stills, first and middle frame of clips): pixels equal on {equal}; "
        f"{ours_bytes / 1e6:.2f} MB vs OpenCV's {cv_bytes / 1e6:.2f} MB "
        f"({ours_bytes / cv_bytes - 1:+.1%}); encode CPU {t_ours:.3f} vs {t_cv:.3f} s "
        f"({t_cv / t_ours:.2f}x)"
    )


if __name__ == "__main__":
    main()
