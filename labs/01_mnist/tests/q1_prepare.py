from otter.test_files import test_case

OK_FORMAT = False

name = "q1_prepare"
points = 2

@test_case(points=None, hidden=False)
def test_prepare_shape_dtype(prepare):
    import numpy as np
    from cellkit import checks
    checks.check_defined(prepare, 'prepare')
    out = prepare(np.zeros((3, 28, 28), np.uint8))
    checks.check_shape(out, (3, 28, 28, 1), name='prepare(images)', hint='add a channel axis at the end, e.g. images[..., np.newaxis]')
    assert np.asarray(out).dtype == np.float32, f'expected dtype float32, got {np.asarray(out).dtype}'

