from otter.test_files import test_case

OK_FORMAT = False

name = "q6_protocol"
points = 2

@test_case(points=None, hidden=False)
def test_two_fold_partition(two_fold):
    import numpy as np
    labels = np.array([0, 1] * 20)
    positions = np.arange(0, 40, 2).tolist() + np.arange(1, 40, 2).tolist()
    folds = two_fold(np.array(positions), labels, 0)
    assert len(folds) == 2, f'expected two (train, test) pairs, got {len(folds)}'
    tested = np.concatenate([np.asarray(test) for _, test in folds])
    assert sorted(tested.tolist()) == sorted(positions), 'every well must be tested exactly once'
    for k, (train, test) in enumerate(folds):
        assert not set(np.asarray(train).tolist()) & set(np.asarray(test).tolist()), f'fold {k}: train and test overlap'

