"""The served OpenAPI document covers the contract's endpoint catalogue (API.md 3)."""

from __future__ import annotations

import pathlib
import re

import pytest

API_MD = pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "API.md"
OAUTH = ("/oauth/", "/.well-known/")  # the OAuth issue


def catalogue() -> list[tuple[str, str]]:
    text = API_MD.read_text()
    section = text[text.index("## 3. Endpoint catalogue"):text.index("## 4. OAuth")]
    rows = re.findall(r"^\| (GET|POST|PATCH|DELETE|GET, POST) \| `([^`]+)` \|", section, re.M)
    out = []
    for methods, path in rows:
        for method in methods.split(", "):
            out.append((method, re.sub(r":(\w+)", r"{\1}", path)))
    return out


@pytest.mark.skipif(not API_MD.exists(), reason="shared/reference/API.md not beside the repo")
def test_every_catalogue_endpoint_is_documented(server):
    doc = server.client.get("/openapi.json").json()
    paths = {re.sub(r"\{[^}]+\}", "{}", p): ops for p, ops in doc["paths"].items()}
    expected = [(m, p) for m, p in catalogue() if not p.startswith(OAUTH)]
    assert len(expected) >= 30
    missing = [(m, p) for m, p in expected
               if m.lower() not in paths.get(re.sub(r"\{[^}]+\}", "{}", p), {})]
    assert missing == []


def test_operations_have_ids_and_typed_responses(server):
    doc = server.client.get("/openapi.json").json()
    ids = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            ids.append(op["operationId"])
            if path.startswith("/api/v2/"):
                schema = op["responses"][next(iter(op["responses"]))]["content"][
                    "application/json"]["schema"]
                assert "$ref" in schema, (method, path)
    assert len(ids) == len(set(ids))
    schemas = doc["components"]["schemas"]
    assert schemas["OptimizationCreate"]["additionalProperties"] is False
    assert "ServeOut" in schemas and "IngestResult" in schemas
