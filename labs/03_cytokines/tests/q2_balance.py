from otter.test_files import test_case

OK_FORMAT = False

name = "q2_balance"
points = 2

@test_case(points=None, hidden=False)
def test_balance_counts(balance):
    import numpy as np
    labels = np.array([0] * 30 + [1] * 8)
    kept = np.asarray(balance(labels, 0))
    assert len(kept) == 16, f'8 producers: expected 8 + 8 = 16 wells, got {len(kept)}'
    assert set(range(30, 38)) <= set(kept.tolist()), 'every producer (the smaller class) must be kept'
    assert list(kept) == sorted(set(kept.tolist())), 'return sorted positions, each well once'

@test_case(points=None, hidden=False)
def test_keep_rules(keep_cytokine):
    import numpy as np
    assert not keep_cytokine(np.array([0] * 100 + [1] * 7)), '7 producers: the cytokine must be dropped'
    assert keep_cytokine(np.array([0] * 100 + [1] * 8)), '8 producers (16 balanced wells): keep it'

