from otter.test_files import test_case

OK_FORMAT = False

name = "q2_kl_uniform"
points = 3

@test_case(points=None, hidden=False)
def test_kl_extremes(kl_to_uniform):
    import numpy as np
    from keras import ops
    from cellkit import checks
    checks.check_defined(kl_to_uniform, 'kl_to_uniform')
    w = ops.convert_to_tensor(np.array([[0.2] * 5, [1, 0, 0, 0, 0]], 'float32'))
    got = ops.convert_to_numpy(kl_to_uniform(w))
    checks.check_shape(got, (2,), name='kl_to_uniform(weights)', hint='sum over the frame axis, one value per row')
    checks.check_close(got, [0.0, np.log(5)], name='KL of (uniform, one-hot) rows', atol=0.0001, hint='uniform gives 0 and one-hot gives log T: sum a_i log(a_i * T)')

