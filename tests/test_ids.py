import numpy as np

from pcseg.ids import dense_ids, members_of_rows, positions_of


def test_positions_of_selected_ids_in_the_order_given():
    ids = np.array([2, 0, 2, 1, 0, 2])
    of = positions_of(ids, 4)
    assert of([2, 0]).tolist() == [0, 2, 5, 1, 4]
    assert of([3]).tolist() == [] and of([]).tolist() == [] and of([1]).tolist() == [3]


def test_members_of_rows_equals_the_rows_taken_per_entry():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 50, 1000)
    rows = rng.random((7, 50)) < 0.2
    rows[3] = False  # a row holding no group
    got = members_of_rows(rows, ids)
    assert len(got) == 7
    for row, members in zip(rows, got):
        assert members.tolist() == np.flatnonzero(row[ids]).tolist()
    assert members_of_rows(np.zeros((0, 50), bool), ids) == []


def test_dense_ids_match_numpy_unique():
    for ids in (np.array([7, 3, 7, 100]), np.array([-4, 10**12, -4])):
        values, index = dense_ids(ids)
        want_values, want_index = np.unique(ids, return_inverse=True)
        assert values.tolist() == want_values.tolist() and index.tolist() == want_index.tolist()


def test_members_of_pairs_equals_members_of_rows_in_any_pair_order():
    from pcseg.ids import members_of_pairs, members_of_rows

    rng = np.random.default_rng(0)
    rows = rng.random((7, 40)) < 0.2
    rows[2] = False
    ids = rng.integers(0, 40, 500)
    want = members_of_rows(rows, ids)
    row, group = np.nonzero(rows)
    shuffle = rng.permutation(len(row))
    got = members_of_pairs(row[shuffle], group[shuffle], ids, 7, 40)
    assert len(got) == 7 and all(np.array_equal(a, b) for a, b in zip(got, want))
    assert got[2].size == 0 and members_of_pairs(row[:0], group[:0], ids, 0, 40) == []
