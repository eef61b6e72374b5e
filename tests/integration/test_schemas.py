"""The JSON Schemas in schemas/ against their own example files: every valid
example validates and every invalid one is refused, so a schema the other
tests validate events with cannot silently accept anything."""
import json

import pytest

from posts import EXAMPLES, validator

# Requests come as valid/, invalid_request/ (answered failed) and
# dead_letter/ (not even identifiable); the other schemas as valid/, invalid/.
REFUSED = ("invalid", "invalid_request", "dead_letter")
# Rules JSON Schema cannot express (schemas/README.md): the worker alone
# refuses these.
BEYOND_SCHEMA = {"text-6-links", "text-emoji-and-ascii-501", "text-emoji-over-limit"}

CASES = sorted((d.name, kind.name, f) for d in EXAMPLES.iterdir() if d.is_dir()
               for kind in d.iterdir() if kind.is_dir() for f in sorted(kind.iterdir()))


def test_every_schema_has_accepted_and_refused_examples():
    names = {name for name, _, _ in CASES}
    assert names == {"publish.request.v1", "publish.result.v1", "publish.alert.v1",
                     "account.event.v1", "publish.dlq.headers"}
    for name in names:
        kinds = {kind for n, kind, _ in CASES if n == name}
        assert "valid" in kinds and kinds & set(REFUSED), name


@pytest.mark.parametrize("name,kind,path", CASES, ids=[f"{n}/{k}/{p.stem}" for n, k, p in CASES])
def test_example_against_its_schema(name, kind, path):
    try:
        doc = json.loads(path.read_bytes())
    except ValueError:
        assert kind == "dead_letter", f"{path.name} is not JSON"
        return
    errors = list(validator(name).iter_errors(doc))
    if kind == "valid" or path.stem in BEYOND_SCHEMA:
        assert not errors, [e.message for e in errors]
    else:
        assert kind in REFUSED and errors, f"{path.name} should not validate"
