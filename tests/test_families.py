"""The family table: every family, written the way its training code saves it, is detected as
itself, and its record's head layout rebuilds a head whose prototypes are the ones the reader
reports."""

from __future__ import annotations

import numpy as np
import pytest
from layouts import expected_vectors, family_writers, planted_prototypes

from collapse_probe.checkpoints import load_state, network_state, read_checkpoint
from collapse_probe.errors import InputError
from collapse_probe.families import FAMILIES, FORMATS, OBJECTIVES, default_head, family, head_spec
from collapse_probe.repair import SUPPORTED_FORMATS
from collapse_probe.zoo import ZOO, ZooEntry

PROTOS = planted_prototypes(6, 3, 16, seed=0)[0]

WRITERS = family_writers(PROTOS)


def test_every_family_has_a_test_layout_and_every_format_derives_from_the_table():
    assert set(WRITERS) == {f.name for f in FAMILIES}
    assert FORMATS == (*(f.name for f in FAMILIES), "key", "array")
    assert set(SUPPORTED_FORMATS) == set(WRITERS)
    assert all(f.objective in OBJECTIVES for f in FAMILIES)
    assert {entry.family for entry in ZOO.values()} <= set(WRITERS)


@pytest.mark.parametrize("record", FAMILIES, ids=lambda f: f.name)
def test_family_detects_its_layout_and_rebuilds_its_main_head(tmp_path, record):
    path = WRITERS[record.name](tmp_path / f"{record.name}.pth")
    checkpoint = read_checkpoint(path)
    assert checkpoint.format == record.name
    state = network_state(load_state(path), format=record.name, network="teacher")
    name = default_head(record.name, list(state))
    spec = head_spec(record.name, name, list(state))
    assert spec.format == record.name
    from collapse_probe.heads import rebuild_head

    head = rebuild_head(state, format=record.name)
    assert head.spec == spec
    rebuilt = head.prototypes().detach().numpy()
    rebuilt /= np.linalg.norm(rebuilt, axis=1, keepdims=True)
    np.testing.assert_allclose(rebuilt, expected_vectors(PROTOS), atol=1e-5)
    read = next(h for h in checkpoint.heads if h.name == spec.name)
    np.testing.assert_allclose(read.vectors, rebuilt, atol=1e-5)


def test_unknown_family_and_formats_without_one_are_input_errors():
    for name in ("nope", "key", "array"):
        with pytest.raises(InputError, match="format: expected a checkpoint family"):
            family(name)


def test_a_zoo_entry_names_a_family():
    with pytest.raises(InputError, match="format: expected a checkpoint family"):
        ZooEntry(name="x", family="simclr", arch="ViT-S/16", dataset="ImageNet-1K",
                 num_prototypes=10, dim=4, url=None)
