from otter.test_files import test_case

OK_FORMAT = False

name = "q3_alpha"
points = 2

@test_case(points=None, hidden=False)
def test_alpha_pieces(alpha):
    from cellkit import checks
    checks.check_defined(alpha, 'alpha')
    for t, expected in ((0, 0.0), (10, 0.0), (15, 0.4), (20, 0.8), (50, 0.8)):
        checks.check_close(float(alpha(t, 10, 20, 0.8)), expected, name=f'alpha({t}, T1=10, T2=20, alpha_f=0.8)', atol=1e-06, hint='0 up to T1, a straight line to alpha_f at T2, then alpha_f')

