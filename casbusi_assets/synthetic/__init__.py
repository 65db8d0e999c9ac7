"""Synthetic Mayo-style batches of breast-ultrasound DICOM screen captures with ground truth.

    from casbusi_assets.synthetic import generate_batches
    generate_batches(Path("out"), batches=2, patients=8, seed=0)

Modules: `plan` (what a batch holds), `annotations` (sonographer text), `scanner_screen`
(pixels), `dicom_writer` (headers and encoding), `case_csv` (total_cases_anon.csv), `truth`
(the Parquet ground truth), `batch` (orchestration and zip), `contact_sheet` (docs picture).
"""

from casbusi_assets.synthetic.batch import BatchFiles, generate_batch, generate_batches
from casbusi_assets.synthetic.config import GeneratorConfig
from casbusi_assets.synthetic.truth import TRUTH_COLUMNS, TRUTH_SCHEMA

__all__ = [
    "TRUTH_COLUMNS",
    "TRUTH_SCHEMA",
    "BatchFiles",
    "GeneratorConfig",
    "generate_batch",
    "generate_batches",
]
