"""Per-batch checks of the catalog: quarantine share and identifying header fields (PHI)."""

import dagster as dg
import pandas as pd

from casbusi_assets.ingest.phi import fields_summary, phi_findings
from casbusi_assets.ingest.resources import IngestSettings
from casbusi_assets.shared.checks import batch_check
from casbusi_assets.shared.metadata import counts, markdown_table
from casbusi_assets.storage import warehouse
from casbusi_assets.storage.resources import CasbusiHome


@batch_check(
    "dicom_catalog",
    "quarantine_share",
    "The share of quarantined members stays under the configured ceiling "
    "(IngestSettings.max_quarantine_share, CASBUSI_MAX_QUARANTINE_SHARE).",
)
def quarantine_share(
    context: dg.AssetCheckExecutionContext,
    casbusi_home: CasbusiHome,
    ingest_settings: IngestSettings,
) -> dg.AssetCheckResult:
    # Only the two columns it needs: the whole catalog (every member's DICOM-JSON header) was
    # ~40 MB of a 3,557-member batch in the run process, loaded once per catalog check.
    dicom_catalog = warehouse.read_batch(
        casbusi_home.layout().warehouse,
        "dicom_catalog",
        context.partition_key,
        columns=["status", "error_code"],
    )
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
def no_identifying_header_fields(
    context: dg.AssetCheckExecutionContext, casbusi_home: CasbusiHome
) -> dg.AssetCheckResult:
    # The headers a row group at a time, so the check's memory does not grow with the batch.
    chunks = warehouse.iter_batch(
        casbusi_home.layout().warehouse,
        "dicom_catalog",
        context.partition_key,
        columns=["member_path", "sop_instance_uid", "patient_id", "status", "header"],
    )
    found = [phi_findings(chunk) for chunk in chunks]
    findings = pd.concat(found, ignore_index=True) if len(found) > 1 else found[0]
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
