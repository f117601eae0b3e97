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

