"""What console routes read off the running application: the services and the threat catalog."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from starlette.requests import Request

from maestro_gate.api.services import services_of
from maestro_gate.core.catalog.files import load_answers, load_catalog
from maestro_gate.core.catalog.model import Answers, Catalog, CatalogError
from maestro_gate.runtime import Services

__all__ = ["ConsoleConfig", "catalog_of", "config_of", "services_of"]


@dataclass
class ConsoleConfig:
    """Where the console reads the catalog and the policies it sums coverage over."""

    catalog_dir: Path | None
    policy_dir: Path | None
    _catalog: Catalog | None = field(default=None, repr=False)
    _answers: Answers = field(default_factory=Answers, repr=False)
    _loaded: bool = field(default=False, repr=False)

    def catalog(self) -> Catalog | None:
        """The MAESTRO catalog, read once; None when the directory is missing or invalid."""
        self._load()
        return self._catalog

    def answers(self) -> Answers:
        """The catalog's credited and out-of-reach items (`catalog/answers.json`), read once."""
        self._load()
        return self._answers

    def _load(self) -> None:
        if self._loaded:
            return
        try:
            if self.catalog_dir:
                self._catalog = load_catalog(self.catalog_dir)
                self._answers = load_answers(self.catalog_dir)
        except (OSError, CatalogError, ValueError):
            self._catalog, self._answers = None, Answers()
        self._loaded = True


def config_of(request: Request) -> ConsoleConfig:
    """The console's configuration on the application state."""
    config: ConsoleConfig = request.app.state.console
    return config


def catalog_of(request: Request) -> Catalog | None:
    """The MAESTRO catalog, if there is one."""
    return config_of(request).catalog()


def services(request: Request) -> Services:
    """The running gate's services."""
    return services_of(request)
