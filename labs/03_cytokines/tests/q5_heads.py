from otter.test_files import test_case

OK_FORMAT = False

name = "q5_heads"
points = 2

@test_case(points=None, hidden=False)
def test_linear_head(build_head):
    from cellkit import checks
    checks.check_defined(build_head, 'build_head')
    checks.check_param_count(build_head(()), 769, hint='768 weights and one bias into a single sigmoid unit')

