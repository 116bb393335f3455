"""One catalogue run per test session: every behaviour with `expect` rows, through `patchgate validate`."""

from __future__ import annotations

import pytest

from patchgate_twin.catalog import Catalog
from tests.invariants.catalogue_runs import CatalogueRuns


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return Catalog.load()


@pytest.fixture(scope="session")
def catalogue_runs(catalog: Catalog, tmp_path_factory: pytest.TempPathFactory) -> CatalogueRuns:
    runs = CatalogueRuns(catalog, tmp_path_factory.mktemp("catalogue"))
    runs.run_all()
    return runs
