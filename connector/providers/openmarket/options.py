"""OpenMarket's own options: a pydantic model, apart from the parser (mime.py), which mypyc
compiles (setup.py) and whose compiled form cannot hold a model's field defaults."""

from __future__ import annotations

from pydantic import Field

from connector.providers.contract import Options


class PartLimits(Options):
    """OpenMarket's own options (`providers.openmarket.max_parts`, `.max_part_bytes`): past
    them an MO is refused (413) before more of it is read."""

    max_parts: int = Field(50, gt=0)
    max_part_bytes: int = Field(5 * 1024 * 1024, gt=0)
