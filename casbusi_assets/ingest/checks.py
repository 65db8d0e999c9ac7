"""Per-batch checks of the catalog: quarantine share and identifying header fields (PHI)."""

import dagster as dg
import pandas as pd

from casbusi_assets.ingest.phi import fields_summary, phi_findings
from casbusi_assets.ingest.resources import IngestSettings
from casbusi_assets.shared.checks import batch_check
from casbusi_assets.shared.metadata import counts, markdown_table


@batch_check(
    "dicom_catalog",
    "quarantine_share",
    "The share of quarantined members stays under the configured ceiling "
    "(IngestSettings.max_quarantine_share, CASBUSI_MAX_QUARANTINE_SHARE).",
)
def quarantine_share(
    dicom_catalog: pd.DataFrame, ingest_settings: IngestSettings
) -> dg.AssetCheckResult:
    members = len(dicom_catalog)
    quarantined = (
        dicom_catalog[dicom_catalog["status"] == "quarantined"] if members else dicom_catalog
    )
    share = len(quarantined) / members if members else 0.0
    return dg.AssetCheckResult(
        passed=share <= ingest_settings.max_quarantine_share,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "members": members,
            "quarantined": len(quarantined),
            "share": round(share, 4),
            "ceiling": ingest_settings.max_quarantine_share,
            "reasons": counts(quarantined["error_code"]) if len(quarantined) else {},
        },
    )


@batch_check(
    "dicom_catalog",
    "no_identifying_header_fields",
    "No file carries a PS3.15 basic-profile identifying attribute (PatientName, birth date, "
    "addresses, physicians, institution, station, serial number). ERROR: a batch that fails is "
    "not uploaded to Labelbox.",
)
def no_identifying_header_fields(dicom_catalog: pd.DataFrame) -> dg.AssetCheckResult:
    findings = phi_findings(dicom_catalog)
    return dg.AssetCheckResult(
        passed=findings.empty,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "files_with_fields": len(findings),
            "fields": fields_summary(findings),
            # which files and which fields, never the values themselves
            "files": markdown_table(findings, ["member_path", "fields"], limit=20),
        },
    )
