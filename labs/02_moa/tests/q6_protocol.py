from otter.test_files import test_case

OK_FORMAT = False

name = "q6_protocol"
points = 2

@test_case(points=None, hidden=False)
def test_mean_and_spread_example(mean_and_spread):
    from cellkit import checks
    mean, sd = mean_and_spread([0.7, 0.8, 0.75])
    checks.check_close([mean, sd], [0.75, 0.05], name='mean_and_spread([0.70, 0.80, 0.75])', hint='the sample standard deviation divides by n - 1: np.std(scores, ddof=1)')

