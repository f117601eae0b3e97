from otter.test_files import test_case

OK_FORMAT = False

name = "q1_dot_attention"
points = 3

@test_case(points=None, hidden=False)
def test_dot_attention_shapes(dot_attention):
    import numpy as np
    from keras import ops
    from cellkit import checks
    checks.check_defined(dot_attention, 'dot_attention')
    g = np.random.default_rng(0)
    context, weights = dot_attention(g.normal(size=(3, 8)).astype('float32'), g.normal(size=(3, 6, 8)).astype('float32'))
    checks.check_shape(ops.convert_to_numpy(context), (3, 8), name='context', hint='sum the weighted values over T')
    checks.check_shape(ops.convert_to_numpy(weights), (3, 6), name='weights', hint='one weight per frame')
    checks.check_close(ops.convert_to_numpy(weights).sum(axis=1), np.ones(3), name='sum of each row of weights', atol=1e-05, hint='take the softmax over the frame axis (axis=-1)')

@test_case(points=None, hidden=False)
def test_dot_attention_mask(dot_attention):
    import numpy as np
    from keras import ops
    from cellkit import checks
    g = np.random.default_rng(1)
    mask = np.array([[True, True, False, False], [True, False, True, True]])
    _, weights = dot_attention(g.normal(size=(2, 4)).astype('float32'), g.normal(size=(2, 4, 4)).astype('float32'), mask=mask)
    w = ops.convert_to_numpy(weights)
    checks.check_close(w[~mask], np.zeros((~mask).sum()), name='weights of masked frames', atol=1e-06, hint='replace masked scores by -1e9 before the softmax')
    checks.check_close(w.sum(axis=1), np.ones(2), name='sum of each row of weights', atol=1e-05)

