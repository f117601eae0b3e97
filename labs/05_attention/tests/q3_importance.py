from otter.test_files import test_case

OK_FORMAT = False

name = "q3_importance"
points = 2

@test_case(points=None, hidden=False)
def test_importance_small(importance):
    import numpy as np
    from cellkit import checks
    checks.check_defined(importance, 'importance')
    got = importance(np.array([[0.1, 0.2, 0.7], [0.5, 0.25, 0.25]]))
    checks.check_close(got, [[0, np.log(2), np.log(7)], [np.log(2), 0, 0]], name='importance', atol=1e-06, hint='divide each row by its own minimum (keepdims=True), then take np.log')

@test_case(points=None, hidden=False)
def test_importance_underflow(importance):
    import numpy as np
    from cellkit import checks
    got = np.asarray(importance(np.array([[0.0, 0.999, 0.001], [0.5, 0.5, 0.0]])))
    assert np.all(np.isfinite(got)), f"importance of rows with an exact 0 weight gave {got.tolist()}: raise the weights to at least 1e-9 (np.maximum) before dividing by the row's minimum"
    checks.check_close(got, [[0, np.log(0.999 / 1e-09), np.log(0.001 / 1e-09)], [np.log(0.5 / 1e-09)] * 2 + [0]], name='importance with zero weights', atol=1e-06, hint='floor the weights at 1e-9 first')

