from otter.test_files import test_case

OK_FORMAT = False

name = "q1_binarise"
points = 2

@test_case(points=None, hidden=False)
def test_binarise_two_modes(binarise):
    import numpy as np
    from cellkit import checks
    checks.check_defined(binarise, 'binarise')
    values = np.array([0.0, 0.01, -0.02, 0.03, -0.01, 0.02, 0.0, -0.03, 0.9, 1.1])
    labels, edge = binarise(values)
    assert list(np.asarray(labels)) == [0] * 8 + [1] * 2, f'expected the two high wells (0.9, 1.1) to be producers (1), got labels {list(np.asarray(labels))}'
    checks.check_in_range(edge, 0.03, 0.9, name='edge', hint='the edge lies between the two modes')

