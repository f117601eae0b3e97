from otter.test_files import test_case

OK_FORMAT = False

name = "q4_evaluate"
points = 2

@test_case(points=None, hidden=False)
def test_accuracy_range(test_accuracy):
    from cellkit import checks
    checks.check_in_range(test_accuracy, 0.0, 1.0, name='test_accuracy', hint='give a fraction (0.97), not a percentage (97)')

