"""Reading the MAESTRO catalog from `catalog/`: JSON files checked against `catalog/schema/`.

Each document `catalog/<stem>.json` must validate against `catalog/schema/<stem>.schema.json`
(JSON Schema 2020-12) before `Catalog.from_documents` checks the references between them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from maestro_gate.core.catalog.model import DOCUMENTS, Answers, Catalog, CatalogError


def schema_path(directory: Path, stem: str) -> Path:
    """The JSON Schema file that governs `catalog/<stem>.json`."""
    return directory / "schema" / f"{stem}.schema.json"


def read_documents(directory: Path) -> dict[str, Any]:
    """Parse every catalog document and validate it against its schema; raise CatalogError.

    Returns the parsed documents keyed by file stem, ready for `Catalog.from_documents`.
    """
    docs: dict[str, Any] = {}
    problems: list[str] = []
    for stem in DOCUMENTS:
        try:
            doc = _read_json(directory / f"{stem}.json")
            schema = _read_json(schema_path(directory, stem))
            Draft202012Validator.check_schema(schema)
        except (OSError, ValueError) as exc:
            problems.append(str(exc))
            continue
        except SchemaError as exc:
            problems.append(
                f"{schema_path(directory, stem)}: not a valid JSON Schema: {exc.message}"
            )
            continue
        errors = sorted(Draft202012Validator(schema).iter_errors(doc), key=lambda e: e.json_path)
        problems += [f"{stem}.json {error.json_path}: {error.message}" for error in errors]
        docs[stem] = doc
    if problems:
        raise CatalogError(problems)
    return docs


def load_catalog(directory: Path) -> Catalog:
    """Read, schema-check and cross-check the catalog in `directory`; raise CatalogError."""
    return Catalog.from_documents(read_documents(directory))


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise OSError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON: {exc}") from exc


ANSWERS = "answers"


def load_answers(directory: Path) -> Answers:
    """Read and schema-check `catalog/answers.json` (credited and out-of-reach items).

    A catalog directory without the file answers nothing: every item a rule does not cite is
    open. Raise CatalogError for an unreadable or invalid file.
    """
    path = directory / f"{ANSWERS}.json"
    if not path.exists():
        return Answers()
    try:
        doc = _read_json(path)
        schema = _read_json(schema_path(directory, ANSWERS))
    except (OSError, ValueError) as exc:
        raise CatalogError([str(exc)]) from exc
    errors = sorted(Draft202012Validator(schema).iter_errors(doc), key=lambda e: e.json_path)
    if errors:
        raise CatalogError([f"{ANSWERS}.json {e.json_path}: {e.message}" for e in errors])
    return Answers.from_document(doc)
