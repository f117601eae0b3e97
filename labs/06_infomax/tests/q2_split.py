from otter.test_files import test_case

OK_FORMAT = False

name = "q2_split"
points = 1

@test_case(points=None, hidden=False)
def test_split_sizes(split_by_sample):
    from cellkit import checks
    checks.check_defined(split_by_sample, 'split_by_sample')
    ids = [f'{k:04d}' for k in range(14)]
    train, test = split_by_sample(ids, n_train=10, seed=3)
    checks.check_answer(len(train), 10, name='number of training samples')
    checks.check_answer(len(test), 4, name='number of test samples')
    assert not set(train) & set(test), f'samples {sorted(set(train) & set(test))} are in both sets: split whole samples'

