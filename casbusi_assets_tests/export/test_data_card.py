"""The data card: counts per split and class, exclusions by reason, and the printed summary."""

from __future__ import annotations

from casbusi_assets.export.config import ExportConfig
from casbusi_assets.export.data_card import read_summary
from casbusi_assets.export.writer import export_home
from casbusi_assets_tests.export.conftest import FakeBatch, add_batch, patient_class, pids


def test_card_counts_splits_classes_and_reasons(fake_home):
    patients = pids(0, 10)
    add_batch(fake_home, FakeBatch("batch_001", patients))
    add_batch(fake_home, FakeBatch("batch_002", pids(10, 2), resend=patients[:1]), "batch_001")
    result = export_home(fake_home, ExportConfig(val_fraction=0.3, test_fraction=0.3))
    card = (result.export_dir / "README.md").read_text()
    per_split = result.stats["per_split"]
    assert sum(s["patients"] for s in per_split.values()) == 12
    malignant = sum(patient_class(p) == "malignant" for p in pids(0, 12))
    assert sum(s["bags_malignant"] for s in per_split.values()) == malignant
    assert sum(s["bags"] for s in per_split.values()) == 24
    # The totals row of the split table and the cleaning reason the re-sent study carries.
    assert f"| **all** |  | 12 | 24 | {malignant} |" in card
    assert "| `duplicate` | 3 | 1 |" in card
    summary = read_summary(card)
    assert summary == result.summary
    assert summary[0].startswith(f"export {result.export_id}: 12 patients, 24 bags, 36 images")
    assert any(line.startswith("labels: none") for line in summary)
    assert "ast.literal_eval" in card and result.manifest_sha256 in card
