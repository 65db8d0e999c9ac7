import dagster as dg
import pytest

from casbusi_assets.definitions import build_definitions, defs
from casbusi_assets.shared.device import DeviceUnavailableError, cuda_available
from casbusi_assets.shared.resources import DeviceResource

EXPECTED_GROUPS = {
    "dicom_catalog": "ingest",
    "image_table": "images",
    "video_table": "videos",
    "case_table": "cases",
    "case_study_table": "cases",
    "breast_table": "cases",
    "ocr_table": "ocr",
    "cleaned_images": "cleaning",
    "cleaned_videos": "cleaning",
    "inpainted_images": "inpainting",
    "labelbox_crops": "labelling",
}


# Assets over every batch (not partitioned), each in its own job.
UNPARTITIONED = {"export_splits": "export"}
# Partitioned otherwise: one partition per retrieval of labels.
BY_RETRIEVAL = {"labels_archive": ("labelling", "labels_version")}


def test_definitions_load():
    dg.Definitions.validate_loadable(defs)


def test_asset_graph_keys_groups_and_partitions():
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == {*EXPECTED_GROUPS, "inbox_zip", *UNPARTITIONED, *BY_RETRIEVAL}
    for name, (group, partitions) in BY_RETRIEVAL.items():
        node = graph.get(dg.AssetKey(name))
        assert node.group_name == group and node.partitions_def.name == partitions, name
    for name, group in UNPARTITIONED.items():
        node = graph.get(dg.AssetKey(name))
        assert node.group_name == group and node.partitions_def is None, name
        assert node.description, f"{name} needs a docstring: it is the UI description"
    for name, group in EXPECTED_GROUPS.items():
        node = graph.get(dg.AssetKey(name))
        assert node.group_name == group, name
        assert node.partitions_def is not None and node.partitions_def.name == "batch"
        assert node.description, f"{name} needs a docstring: it is the UI description"
    # Lineage: OCR reads images and clips; the catalog hangs off the delivered zip.
    assert graph.get(dg.AssetKey("ocr_table")).parent_keys == {
        dg.AssetKey("image_table"),
        dg.AssetKey("video_table"),
        dg.AssetKey("dicom_catalog"),
    }
    assert dg.AssetKey("inbox_zip") in graph.get(dg.AssetKey("dicom_catalog")).parent_keys


def test_batch_job_covers_every_materialisable_asset():
    job = defs.resolve_job_def("batch_job")
    selected = {k.to_user_string() for k in job.asset_layer.executable_asset_keys}
    assert selected == set(EXPECTED_GROUPS)


def test_home_override_reaches_every_home_aware_resource(tmp_path):
    custom = build_definitions(str(tmp_path))
    resources = custom.resources
    assert resources["casbusi_home"].home == str(tmp_path)
    assert resources["warehouse_io_manager"].home == str(tmp_path)


def test_device_resource_resolves_on_this_machine():
    assert DeviceResource(device="cpu").resolve() == "cpu"
    expected = "cuda" if cuda_available() else "cpu"
    assert DeviceResource(device="auto").resolve() == expected
    if not cuda_available():
        with pytest.raises(DeviceUnavailableError, match="cuda"):
            DeviceResource(device="cuda").resolve()
    with pytest.raises(ValueError, match="device must be one of"):
        DeviceResource(device="tpu").resolve()


EXPECTED_CHECKS = {
    ("dicom_catalog", "quarantine_share"),
    ("dicom_catalog", "no_identifying_header_fields"),
    ("image_table", "every_image_decoded"),
    ("image_table", "unique_sop_instance_uid"),
    ("video_table", "unique_sop_instance_uid"),
    ("ocr_table", "one_row_per_image_and_clip"),
    ("ocr_table", "unique_sop_instance_uid"),
    ("cleaned_images", "included_images_have_crop_inside"),
}


def test_batch_assets_carry_their_checks():
    graph = defs.resolve_asset_graph()
    checks = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    assert checks >= EXPECTED_CHECKS
    job = defs.resolve_job_def("batch_job")
    in_job = {
        (k.asset_key.to_user_string(), k.name) for k in job.asset_layer.asset_graph.asset_check_keys
    }
    assert in_job >= EXPECTED_CHECKS
    # every check is per batch, so the UI shows each batch's own result
    for key in graph.asset_check_keys:
        if key.asset_key.to_user_string() in UNPARTITIONED:
            continue  # an export's checks speak for that export, not for a batch
        assert graph.get(key).partitions_def is not None, key


def test_descriptions_keep_their_path_placeholders():
    # The UI renders descriptions as markdown, which eats a bare `<batch>`: keep them in code spans.
    import re

    graph = defs.resolve_asset_graph()
    nodes = [graph.get(k) for k in graph.get_all_asset_keys()]
    nodes += [graph.get(k) for k in graph.asset_check_keys]
    for node in nodes:
        outside_code = re.sub(r"`[^`]*`", "", node.description or "")
        assert not re.findall(r"<[a-z_]+>", outside_code), node.key


def test_caliper_detector_is_chosen_by_environment(monkeypatch):
    from casbusi_assets.definitions import build_resources

    monkeypatch.delenv("CASBUSI_CALIPER_DETECTOR", raising=False)
    assert build_resources()["cleaning_settings"].use_caliper_model is True
    monkeypatch.setenv("CASBUSI_CALIPER_DETECTOR", "classical")
    assert build_resources()["cleaning_settings"].use_caliper_model is False
    monkeypatch.setenv("CASBUSI_CALIPER_DETECTOR", "magic")
    with pytest.raises(ValueError, match="CASBUSI_CALIPER_DETECTOR must be"):
        build_resources()
