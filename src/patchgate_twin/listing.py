"""``patchgate twin``: what the twin can play (images) and which updates it knows how to install (behaviours)."""

from __future__ import annotations

import argparse
from pathlib import Path

from patchgate.model.diff import render_table
from patchgate_twin.catalog import Catalog


def _restart(spec: object) -> str:
    if isinstance(spec, str):
        return spec
    return "conditional"


def cmd_list(args: argparse.Namespace) -> int:
    catalog = Catalog.load([Path(d) for d in args.kind_catalogs])
    images = [(name, catalog.image_class(name) or "", catalog.images_.definition(name).description[:70])
              for name in catalog.images()]
    print(f"Twin images ({len(images)}): the starting states a lab VM's 'image' can name")
    print(render_table(images, headers=("image", "class", "description"), max_rows=500))
    behaviours = [(b.kb, b.classification, b.build or "", _restart(b.restart), b.title[:60])
                  for b in catalog.behaviours()]
    print(f"\nUpdate behaviours ({len(behaviours)}): what installing each KB does on the twin (docs/twin.md)")
    print(render_table(behaviours, headers=("KB", "class", "build", "restart", "title"), max_rows=500))
    print("\nCatalogue folders: " + ", ".join(str(d) for d in catalog.dirs))
    return 0
