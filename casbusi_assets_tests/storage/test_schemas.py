from pathlib import Path

from casbusi_assets.storage.schemas import TABLE_DESCRIPTIONS, TABLE_SCHEMAS, render_markdown


def test_every_table_is_described():
    assert set(TABLE_DESCRIPTIONS) == set(TABLE_SCHEMAS)
    for schema in TABLE_SCHEMAS.values():
        assert schema.names[0] == "batch_id"


def test_docs_tables_md_is_up_to_date():
    doc = Path(__file__).resolve().parents[2] / "docs" / "tables.md"
    assert doc.read_text() == render_markdown(), (
        "regenerate: python -m casbusi_assets.storage.schemas > docs/tables.md"
    )
