from otter.test_files import test_case

OK_FORMAT = False

name = "q4_events"
points = 2

@test_case(points=None, hidden=False)
def test_precision_small(precision_at_top):
    import numpy as np
    from cellkit import checks
    checks.check_defined(precision_at_top, 'precision_at_top')
    scores = np.array([0.9, 0.1, 0.8, 0.3, 0.5])
    labels = np.array([True, False, False, True, True])
    checks.check_close(precision_at_top(scores, labels, 3), 2 / 3, name='precision_at_top(k=3)', hint='take the 3 highest scores (0.9, 0.8, 0.5): two are events')
    checks.check_close(precision_at_top(scores, labels, 1), 1.0, name='precision_at_top(k=1)')

