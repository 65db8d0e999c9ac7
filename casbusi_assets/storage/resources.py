"""The home resource: where the warehouse, files, inbox and DAGSTER_HOME live."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from casbusi_assets.storage.home import HomeLayout, layout


class CasbusiHome(dg.ConfigurableResource):
    """The home folder (warehouse, files, inbox, DAGSTER_HOME). Empty means $CASBUSI_HOME or the
    default `casbusi_home/` in the checkout."""

    home: str = Field(default="", description="Home folder; empty = $CASBUSI_HOME or default")

    def layout(self) -> HomeLayout:
        return layout(self.home or None).create()
