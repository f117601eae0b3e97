from otter.test_files import test_case

OK_FORMAT = False

name = "q3_pairs"
points = 2

@test_case(points=None, hidden=False)
def test_pairs_small(pair_masks):
    import numpy as np
    from keras import ops
    from cellkit import checks
    checks.check_defined(pair_masks, 'pair_masks')
    pos, neg = pair_masks(np.array([0, 0, 1]))
    checks.check_close(ops.convert_to_numpy(pos), [[1, 1, 0], [1, 1, 0], [0, 0, 1]], name='positive for ids [0, 0, 1]', hint='positive where the two images share a sample id, the diagonal included')
    checks.check_close(ops.convert_to_numpy(neg), [[0, 0, 1], [0, 0, 1], [1, 1, 0]], name='negative for ids [0, 0, 1]')

