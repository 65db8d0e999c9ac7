"""The home resource: where the warehouse, files, inbox and DAGSTER_HOME live."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from casbusi_assets.storage.home import HomeLayout, layout


class CasbusiHome(dg.ConfigurableResource):
    """The home folder (warehouse, files, inbox, DAGSTER_HOME). Empty means $CASBUSI_HOME or the
    default `casbusi_home/` in the checkout."""

    home: str = Field(default="", description="Home folder; empty = $CASBUSI_HOME or default")
    data_url: str = Field(
        default="",
        description="Where the warehouse and files live, e.g. s3://bucket/prefix; empty = "
        "$CASBUSI_DATA_URL, else inside the home. Credentials: the standard AWS variables only.",
    )

    def layout(self) -> HomeLayout:
        return layout(self.home or None, self.data_url or None).create()
