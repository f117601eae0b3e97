from otter.test_files import test_case

OK_FORMAT = False

name = "q4_jsd"
points = 3

@test_case(points=None, hidden=False)
def test_jsd_small(masked_jsd_loss):
    import numpy as np
    from keras import ops
    from cellkit import checks
    from cellkit.infomax import masked_jsd_loss_numpy
    checks.check_defined(masked_jsd_loss, 'masked_jsd_loss')
    g = np.random.default_rng(1)
    local, glob = (g.normal(size=(4, 3, 5)).astype('float32'), g.normal(size=(4, 5)).astype('float32'))
    ids, mask = (np.array([0, 0, 1, 1]), np.ones((4, 3), 'float32'))
    got = float(ops.convert_to_numpy(masked_jsd_loss(ops.convert_to_tensor(local), ops.convert_to_tensor(glob), ids, mask)))
    checks.check_close(got, masked_jsd_loss_numpy(local, glob, ids, mask), name='loss with every location on foreground', rtol=0.0001, atol=1e-05, hint='mean softplus(-s) over positive pairs + mean softplus(s) over negatives')

