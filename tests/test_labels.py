import numpy as np
import pytest

from pcseg.errors import DataError
from pcseg.labels import (BUNDLED_RAW_CATEGORIES, INSTANCE_IDS, INSTANCE_NAMES, NYU40_NAMES, NYU40_PALETTE,
                          map_raw_categories, nyu40_to_semantic20, read_label_map, semantic20_to_nyu40,
                          write_label_tsv)


def test_benchmark_class_tables():
    assert len(INSTANCE_IDS) == 18 and 1 not in INSTANCE_IDS and 2 not in INSTANCE_IDS
    assert INSTANCE_NAMES[INSTANCE_IDS.index(24)] == "refrigerator"
    assert NYU40_NAMES[24] == "refridgerator" and len(NYU40_NAMES) == 41 and NYU40_PALETTE.shape == (41, 3)


def test_semantic20_mapping_roundtrip_and_ignore():
    nyu = np.arange(41)
    idx = nyu40_to_semantic20(nyu)
    assert (idx >= 0).sum() == 20 and idx[13] == -1 and idx[40] == -1 and idx[39] == 19
    back = semantic20_to_nyu40(idx)
    assert np.all(back[idx >= 0] == nyu[idx >= 0]) and np.all(back[idx < 0] == 0)


def test_tsv_roundtrip(tmp_path):
    path = write_label_tsv(tmp_path / "labels.tsv")
    header = path.read_text().splitlines()[0].split("\t")
    assert len(header) == 17 and header[1] == "raw_category" and header[4] == "nyu40id"
    assert read_label_map(path) == BUNDLED_RAW_CATEGORIES


def test_tsv_errors_name_file_and_column(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_label_map(tmp_path / "missing.tsv")
    bad = tmp_path / "bad.tsv"
    bad.write_text("id\traw_category\n1\tchair\n")
    with pytest.raises(DataError, match=r"bad\.tsv: nyu40id: column missing"):
        read_label_map(bad)
    bad.write_text("raw_category\tnyu40id\nchair\tfive\n")
    with pytest.raises(DataError, match="line 2, nyu40id: not an integer"):
        read_label_map(bad)


def test_unknown_raw_category_warns_and_maps_to_unannotated():
    with pytest.warns(UserWarning, match="spaceship"):
        out = map_raw_categories(["chair", "spaceship"], {"chair": 5}, "agg.json")
    assert out.tolist() == [5, 0]
